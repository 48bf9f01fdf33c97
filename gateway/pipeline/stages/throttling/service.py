"""The long-lived throttling service: picks the store and applies the Redis failure policy.

Role in the pipeline: lives in ``services.extras["throttle"]`` (so counters survive config swaps) and is
what the order-70 stage calls. Without Redis (no ``redis_url`` in ``single`` mode) every decision is made
by the in-process store; with ``redis_mode`` ``cluster`` or ``sentinel`` the same store talks to the
cluster / the current primary (:mod:`gateway.lib.redis_conn`).
With Redis, a decision is one EVALSHA bounded by ``throttle_redis_timeout_ms``, or none when every limit of
the call has a token lease of this node (:mod:`gateway.pipeline.stages.throttling.lease`, large limits only);
when Redis fails or is slow the request is decided by ``throttle_redis_failure``:

* ``local`` (default) — the in-process fallback store, each limit divided by ``throttle_nodes``
  (the number of gateway processes sharing the limit; 0 = ``workers``), so the cluster as a whole stays
  close to the configured limit. Every call Redis admits is also recorded there, so a fallback starts
  from this node's recent usage rather than from full buckets;
* ``open`` — admit without counting;
* ``closed`` — reject with THROTTLED (429, ``Retry-After: 1``).

The deadline is ``throttle_redis_timeout_ms`` plus at most ``GRACE_TURNS`` event-loop turns (see
:func:`_expire`). A connection error marks the store down at once. Timeouts mark it down only when they persist:
``TIMEOUTS_TO_DOWN`` in a row spanning at least ``TIMEOUT_STREAK_S`` with no success in between. A
burst of timeouts from one scheduling stall of this process (every waiter whose deadline passed during
the stall fires at once, before the already-arrived replies are read) should not cost the cluster its
exact limits for a whole probe interval; each timed-out request is still decided by the failure policy. While down,
requests go straight to the failure policy (no waiting) and a background probe PINGs Redis every
``throttle_redis_probe_ms``; the first successful PING (cluster: of every master, after re-reading the
slot map; sentinel: of the primary the sentinels name now) brings Redis back. A failover therefore looks
like a short outage: the failure policy decides during the gap, shared limits resume at the first probe
after the promotion, and the first script call on the promoted node reloads the script (``NOSCRIPT``).
``stats`` counts decisions by source for the metrics module (keys documented in docs/throttling.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.lib.redis_conn import RedisTarget, target_from_settings
from gateway.pipeline.stages.throttling.lease import Leases
from gateway.pipeline.stages.throttling.redis_store import RedisStore, make_client
from gateway.pipeline.stages.throttling.store import Check, Decision, LocalStore, scaled

if TYPE_CHECKING:
    from gateway.model.services import Services

log = logging.getLogger("gateway.pipeline.stages.throttling")

EXTRAS_KEY = "throttle"
FAILURE_POLICIES = ("local", "open", "closed")
WARN_EVERY_S = 10.0
TIMEOUTS_TO_DOWN = 3
GAP_KEYS_MAX = 50_000  # counters remembered for the replay after an outage (the rest are not replayed)
GRACE_TURNS = 4


def _expire(fut: asyncio.Future[Decision], turns: int) -> None:
    """The deadline passed: give the loop ``turns`` more iterations to read a reply that has already
    arrived (a process descheduled past the deadline wakes with the reply in its socket, but timers run
    before the reader resumes), then fail the waiter with TimeoutError."""
    if fut.done():
        return
    if turns > 0:
        asyncio.get_running_loop().call_soon(_expire, fut, turns - 1)
    else:
        fut.set_exception(TimeoutError("Redis did not answer within the deadline"))
TIMEOUT_STREAK_S = 0.2


class ThrottleService:
    def __init__(self, services: Services) -> None:
        s = services.settings
        self.settings = s
        self.local = LocalStore()  # primary store when no Redis is configured
        self.fallback = LocalStore()  # used only while Redis is down (policy "local")
        # what the fallback admitted that Redis never saw (policy "local"), added to the shared counters when
        # Redis answers again, so they do not offer a second full burst right after an outage or failover
        self.gap = LocalStore()
        self._gap_checks: dict[str, Check] = {}
        self.gap_replays = 0
        try:
            self.target: RedisTarget | None = target_from_settings(s)
        except ValueError as exc:  # the CLI refuses to start with this; an embedding caller gets local limits
            log.error("throttling: %s; using in-process limits only", exc)
            self.target = None
        self.redis_url: str | None = self.target.describe() if self.target is not None else None
        self.timeout_s = max(0.001, s.throttle_redis_timeout_ms / 1000.0)
        self.probe_s = max(0.01, s.throttle_redis_probe_ms / 1000.0)
        self.failure_policy = s.throttle_redis_failure if s.throttle_redis_failure in FAILURE_POLICIES else "local"
        self.local_divisor = max(1, int(s.workers or 1))
        self.fallback_divisor = max(1, int(s.throttle_nodes or s.workers or 1))
        self.redis: RedisStore | None = None
        # token leases on large shared limits (lease.py): None without Redis or with throttle_lease_max 0
        self.leases: Leases | None = None
        if self.target is not None and int(s.throttle_lease_max) > 0:
            self.leases = Leases(int(s.throttle_lease_max), self.fallback_divisor)
        self.redis_up = True
        self._timeouts_in_row = 0
        self._streak_started = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._warmed = False
        self._warm_task: asyncio.Task[None] | None = None
        self._last_warn = 0.0
        self._unwarned = 0
        self.stats: dict[str, int] = {
            "decisions_local": 0,
            "decisions_redis": 0,
            "decisions_leased": 0,  # admitted from this node's token leases, no Redis call
            "redis_errors": 0,
            "redis_timeouts": 0,
            "redis_fallbacks": 0,  # decisions made by the failure policy while Redis was failing/down
            "redis_down_events": 0,
            "redis_recoveries": 0,
            "rejected": 0,
            "admitted": 0,
        }
        # fallback decisions by reason: the request timed out / errored, or Redis was already marked down
        self.fallback_reasons: dict[str, int] = {"timeout": 0, "error": 0, "down": 0}
        services.close_hooks.append(self.close)
        services.swap_hooks.append(self._on_swap)

    @classmethod
    def of(cls, services: Services) -> ThrottleService:
        svc = services.extras.get(EXTRAS_KEY)
        if not isinstance(svc, ThrottleService):
            svc = cls(services)
            services.extras[EXTRAS_KEY] = svc
            services.extras["throttle_stats"] = svc.stats
            services.extras["throttle_fallbacks"] = svc.fallback_reasons  # read by gateway.observe.metrics
        return svc

    def _store(self) -> RedisStore:
        if self.redis is None:
            assert self.target is not None
            self.redis = RedisStore(make_client(self.target, max(1.0, 10 * self.timeout_s)))
        return self.redis

    def _on_swap(self, _runtime: object) -> None:
        """After a snapshot swap inside the running loop: open a connection and load the script in the
        background, so the first requests do not pay connect + NOSCRIPT + SCRIPT LOAD on their deadline."""
        if self.redis_url is None or self._warmed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._warmed = True
        self._warm_task = loop.create_task(self._warm())

    async def _warm(self) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self._store().load_script()
        except Exception as exc:
            log.warning("throttling: could not preload the Redis script (%s: %s)", type(exc).__name__, exc)

    # --- decisions -------------------------------------------------------------------------------
    def decide_now(self, checks: Sequence[Check], shared: bool = True) -> Decision | None:
        """The decision when it needs no Redis call: the in-process store (no Redis, or a limit kept local) or
        this node's token leases; else None, and then ``admit(checks, shared, leases_tried=True)`` must be
        awaited. Spares the stage a coroutine per call on those paths."""
        if self.redis_url is None or not shared:
            self.stats["decisions_local"] += 1
            d = self.local.admit(scaled(checks, self.local_divisor) if self.local_divisor > 1 else checks)
            self.stats["admitted" if d.allowed else "rejected"] += 1
            return d
        if self.redis_up and self.leases is not None:
            return self._leased(checks)
        return None

    def decide_fast(self, checks: Sequence[Check], shared: bool = True) -> list[int] | Decision | None:
        """:meth:`decide_now` for the stage's hot path: the calls left per check (a list) when the call is
        admitted without a wait, by the in-process store's token buckets or this node's leases (no Decision
        made); a Decision when it was decided otherwise without a wait (a refusal, a window counter, a divided
        local limit); None when ``admit(checks, shared, leases_tried=True)`` must be awaited."""
        stats = self.stats
        if self.redis_url is None or not shared:
            stats["decisions_local"] += 1
            local = self.local
            if self.local_divisor > 1:
                d = local.admit(scaled(checks, self.local_divisor))
            else:
                remaining = local.take(checks)
                if remaining is not None:
                    stats["admitted"] += 1
                    return remaining
                d = local.admit_exact(checks)
            stats["admitted" if d.allowed else "rejected"] += 1
            return d
        if self.redis_up and self.leases is not None:
            remaining = self.leases.take_units(checks)
            if remaining is not None:  # every check had a live lease: no Redis call
                stats["decisions_leased"] += 1
                stats["admitted"] += 1
            return remaining
        return None

    def _leased(self, checks: Sequence[Check]) -> Decision | None:
        leased = self.leases.take(checks)  # type: ignore[union-attr]
        if leased is not None:  # every check had a live lease: no Redis call (the fallback shadow counted the
            self.stats["decisions_leased"] += 1  # lease's units when it was granted)
            self.stats["admitted"] += 1
        return leased

    async def admit(self, checks: Sequence[Check], shared: bool = True, leases_tried: bool = False) -> Decision:
        if self.redis_url is None or not shared:
            self.stats["decisions_local"] += 1
            d = self.local.admit(scaled(checks, self.local_divisor) if self.local_divisor > 1 else checks)
        elif self.redis_up:
            leases = self.leases
            if leases is not None:
                if not leases_tried:
                    leased = self._leased(checks)
                    if leased is not None:
                        return leased
                asked = leases.asks(checks)
            else:
                asked = None
            store = self.redis or self._store()
            try:
                fut = store.admit(checks, asked)
                if asked is not None:  # the lease is settled when Redis answers, even if this caller is gone
                    fut.add_done_callback(functools.partial(self._settle, checks, asked))
                handle = asyncio.get_running_loop().call_later(self.timeout_s, _expire, fut, GRACE_TURNS)
                try:
                    d = await (fut if asked is None else asyncio.shield(fut))
                finally:
                    handle.cancel()
                self.stats["decisions_redis"] += 1
                self._timeouts_in_row = 0
                if d.granted:  # remaining calls as this node sees them: Redis's, plus the units leased to it
                    d = replace(d, remaining=[r + g for r, g in zip(d.remaining, d.granted, strict=False)])
                if d.allowed and self.failure_policy == "local":
                    self.fallback.record(scaled(checks, self.fallback_divisor) if self.fallback_divisor > 1
                                         else checks)
            except Exception as exc:  # any Redis/socket/timeout problem: never fail the request for it
                self._failed(exc)
                d = self._degraded(checks, "timeout" if isinstance(exc, TimeoutError) else "error")
        else:
            d = self._degraded(checks, "down")
        self.stats["admitted" if d.allowed else "rejected"] += 1
        return d

    def _settle(self, checks: Sequence[Check], asked: list[int], fut: asyncio.Future[Decision]) -> None:
        """Redis answered (or failed) a call that asked for leases: keep what it granted. Units granted are
        counted in the fallback shadow now (they are spent in the next moments; leased calls record nothing)."""
        d = None if fut.cancelled() or fut.exception() is not None else fut.result()
        self.leases.settle(checks, asked, d)  # type: ignore[union-attr]
        if d is not None and d.granted and self.failure_policy == "local":
            self.fallback.record(scaled(checks, self.fallback_divisor) if self.fallback_divisor > 1 else checks,
                                 d.granted)

    def _degraded(self, checks: Sequence[Check], reason: str) -> Decision:
        self.stats["redis_fallbacks"] += 1
        self.fallback_reasons[reason] += 1
        self._unwarned += 1
        now = time.monotonic()
        if now - self._last_warn >= WARN_EVERY_S:
            log.warning("throttling: Redis unavailable, %d request(s) decided by the %r failure policy",
                        self._unwarned, self.failure_policy)
            self._last_warn = now
            self._unwarned = 0
        if self.failure_policy == "open":
            return Decision(True, -1, 0, [c[1] for c in checks], "open")
        if self.failure_policy == "closed":
            return Decision(False, 0, 1000, [0 for _ in checks], "closed")
        d = self.fallback.admit(scaled(checks, self.fallback_divisor))
        d.source = "fallback"
        if d.allowed and reason != "timeout" and len(self._gap_checks) < GAP_KEYS_MAX:
            # a timed-out call may have been counted by Redis already: only errors and "down" are unseen
            self.gap.record(checks)
            for c in checks:
                self._gap_checks[c[0]] = c
        return d

    # --- health ----------------------------------------------------------------------------------
    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, TimeoutError):
            self.stats["redis_timeouts"] += 1
            now = time.monotonic()
            if self._timeouts_in_row == 0:
                self._streak_started = now
            self._timeouts_in_row += 1
            if self._timeouts_in_row < TIMEOUTS_TO_DOWN or now - self._streak_started < TIMEOUT_STREAK_S:
                return
        else:
            self.stats["redis_errors"] += 1
        if not self.redis_up:
            return
        self.redis_up = False
        if self.leases is not None:
            self.leases.clear()
        self.stats["redis_down_events"] += 1
        log.warning("throttling: Redis failed (%s: %s); using the %r failure policy until it answers again",
                    type(exc).__name__, exc, self.failure_policy)
        self._last_warn = time.monotonic()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        store = self.redis
        if store is None:
            return
        try:
            await store.reset_connections()  # drop sockets to a dead or restarted server
        except Exception:
            pass
        while True:
            await asyncio.sleep(self.probe_s)
            try:
                async with asyncio.timeout(max(self.timeout_s, 0.2)):
                    if await store.ping():
                        break
            except Exception:
                continue
        await self._replay_gap(store)
        self.redis_up = True
        self._timeouts_in_row = 0
        self.stats["redis_recoveries"] += 1
        log.warning("throttling: Redis is answering again; shared limits resumed")

    async def _replay_gap(self, store: RedisStore) -> None:
        """Add to the shared counters what this node's fallback admitted while Redis was away (a bucket's
        share as it stands now, i.e. already drained; a window's count in the current window)."""
        if not self._gap_checks:
            return
        checks, self._gap_checks = self._gap_checks, {}
        gap, self.gap = self.gap, LocalStore()
        items = [(c, round(gap.used(c))) for c in checks.values()]
        items = [(c, n) for c, n in items if n > 0]
        if not items:
            return
        try:
            async with asyncio.timeout(max(4 * self.timeout_s, 0.5)):
                await store.add_usage(items)
            self.gap_replays += 1
        except Exception as exc:  # the shared counters then only miss this node's share of the gap
            log.warning("throttling: could not add the outage's local usage to Redis (%s: %s)",
                        type(exc).__name__, exc)

    async def close(self) -> None:
        for task in (self._probe, self._warm_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self.redis is not None:
            try:
                await self.redis.close()
            except Exception:
                pass
            self.redis = None
