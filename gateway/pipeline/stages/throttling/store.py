"""Counter stores: the check/decision types and the in-process store.

Role in the pipeline: the throttling stage (order 70) turns a request into a list of :data:`Check`
tuples (one per applicable limit) and asks a store to *admit* them: every check is evaluated first, and
only if all pass is one unit taken from each (all-or-nothing, so a request rejected by one limit never
consumes another). This module holds the in-process store used when no Redis is configured and as the
fallback when Redis is unreachable; :mod:`gateway.pipeline.stages.throttling.redis_store` runs the same algorithm
server-side in Redis.

Two algorithms (docs/throttling.md explains the choice):

* ``BUCKET`` — token bucket, capacity ``limit``, refilled continuously at ``limit / period``. Used for
  throttling policies with SECOND / MINUTE / HOUR units: no double burst at window edges, and an exact
  long-run rate of ``limit`` per ``period`` (plus one initial burst of ``limit``). The state stored is
  the *used* level (``limit - tokens``, draining at ``limit / period``), so a config push that changes
  ``limit`` applies at once: raising 3 -> 5 after 2 calls leaves 3 calls, not 1.
* ``WINDOW`` — a counter per calendar window of length ``period``, aligned to ``anchor``
  (``0`` = the Unix epoch, i.e. UTC midnight for days; ``-1`` = the first call; else an epoch-ms instant).
  Used for DAY throttles and credential quotas whose budget must reset at a known instant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

BUCKET = 0
WINDOW = 1
ANCHOR_EPOCH = 0
ANCHOR_FIRST_CALL = -1

# (key, limit, period_ms, mode, anchor_ms)
Check = tuple[str, int, int, int, int]


def _bucket_level(st: list[float] | None, now: float, limit: float, period: float) -> float:
    """Used level of a token bucket (drains at ``limit`` per ``period``) at time ``now`` (ms)."""
    if st is None:
        return 0.0
    used = st[0] - (now - st[1]) * limit / period
    return used if used > 0.0 else 0.0


def _window(st: list[float] | None, now: float, period: float, anchor: float) -> tuple[float, float, float, float]:
    """(count in the current window, window index, anchor, window end) of a calendar window counter.
    A negative ``anchor`` means "anchored at the first call" (kept in the state)."""
    a = float(anchor)
    if a < 0:
        a = st[2] if st is not None else now
    if now < a:
        idx, end = -1.0, a
    else:
        idx = float((now - a) // period)
        end = a + (idx + 1) * period
    count = st[0] if st is not None and st[1] == idx and st[2] == a else 0.0
    return count, idx, a, end


@dataclass(slots=True)
class Decision:
    allowed: bool
    failed: int  # index of the first check that was exhausted, -1 when allowed
    retry_ms: int  # when allowed: 0; else ms until the failed check admits one call again
    remaining: list[int]  # per check: calls left after this one (allowed) or now (rejected)
    source: str = "local"  # "local" | "redis" | "lease" | "fallback" | "open" | "closed"
    granted: list[int] | None = None  # Redis store: units leased to this node per check (when asked)


def scaled(checks: Sequence[Check], divisor: int) -> list[Check]:
    """The checks with every limit divided by ``divisor`` (at least 1): a node's share of a cluster limit."""
    return [(k, max(1, lim // divisor), p, m, a) for (k, lim, p, m, a) in checks]


class LocalStore:
    """Exact counters for one process. Not thread-safe by design: the event loop is the critical section
    (``admit`` never awaits, so check-then-commit is atomic)."""

    SWEEP_EVERY_S = 10.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # key -> [value, stamp, anchor_ms, expires_at_ms]; value = used level (bucket) or count (window),
        # stamp = last refill time (bucket) or window index (window)
        self._state: dict[str, list[float]] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._state)

    def admit(self, checks: Sequence[Check]) -> Decision:
        remaining = self.take(checks)
        if remaining is not None:
            return Decision(True, -1, 0, remaining)
        return self._admit_exact(checks, self._clock() * 1000.0)

    def take(self, checks: Sequence[Check]) -> list[int] | None:
        """The usual case of :meth:`admit`: when every check is a token bucket that admits the call, take one
        unit from each and return the calls left per check; else None, having taken nothing (then
        :meth:`admit` decides: a refusal, a window counter).

        Each bucket is taken in place as it is checked; a bucket that refuses undoes what this call took.
        Undoing is exact: a bucket's state (level at ``now``, ``now``) drains to the same levels as the state it
        replaced, and a bucket made here and undone is at level 0 (the same as no entry)."""
        now = self._clock() * 1000.0
        if now >= self._next_sweep:
            self._sweep(now)
        state = self._state
        remaining: list[int] = []  # one entry per check taken so far
        for key, limit, period, mode, _anchor in checks:
            if mode == BUCKET:
                st = state.get(key)
                if st is None:
                    if limit >= 1:
                        state[key] = [1.0, now, 0.0, now + period]
                        remaining.append(limit - 1)
                        continue
                else:
                    used = st[0] - (now - st[1]) * limit / period
                    if used < 0.0:
                        used = 0.0
                    free = limit - used
                    if free >= 1.0:
                        st[0] = used + 1.0
                        st[1] = now
                        st[3] = now + period
                        remaining.append(int(free) - 1)
                        continue
            for taken in checks[:len(remaining)]:
                state[taken[0]][0] -= 1.0
            return None
        return remaining

    def admit_exact(self, checks: Sequence[Check]) -> Decision:
        """:meth:`admit` after :meth:`take` answered None (the same decision, without trying take again)."""
        now = self._clock() * 1000.0
        if now >= self._next_sweep:
            self._sweep(now)
        return self._admit_exact(checks, now)

    def _admit_exact(self, checks: Sequence[Check], now: float) -> Decision:
        """Check every limit first, then take one unit from each only if all pass (window counters, refusals)."""
        state = self._state
        failed = -1
        retry = 0.0
        remaining: list[int] = []  # tentative: after this call for passing checks, now for failing ones
        writes: list[tuple[int, str, list[float]]] = []
        for i, (key, limit, period, mode, anchor) in enumerate(checks):
            st = state.get(key)
            if mode == BUCKET:
                if st is None:  # _bucket_level, inlined (the hot path of every in-process decision)
                    used = 0.0
                else:
                    used = st[0] - (now - st[1]) * limit / period
                    if used < 0.0:
                        used = 0.0
                free = limit - used
                if free < 1.0:
                    remaining.append(0 if free <= 0.0 else int(free))
                    if failed < 0:
                        failed, retry = i, (1.0 - free) * period / limit
                    continue
                remaining.append(int(free) - 1)
                writes.append((i, key, [used + 1.0, now, 0.0, now + period]))
            else:
                count, idx, a, end = _window(st, now, period, anchor)
                if count >= limit:
                    remaining.append(0)
                    if failed < 0:
                        failed, retry = i, end - now
                    continue
                remaining.append(int(limit - count) - 1)
                # keep a first-call anchor one period past the window end so the next window lines up
                writes.append((i, key, [count + 1.0, idx, a, end + period]))
        if failed >= 0:
            for i, _key, _st in writes:  # nothing is consumed: report what is left now
                remaining[i] += 1
            return Decision(False, failed, max(1, math.ceil(retry)), remaining)
        for _i, key, st in writes:
            state[key] = st
        return Decision(True, -1, 0, remaining)

    def record(self, checks: Sequence[Check], units: Sequence[int] | None = None) -> None:
        """Count one call (or ``units[i]`` on check ``i``) on every check without deciding (capped at each
        limit). Used to shadow the Redis decisions of this node in the fallback store, so a fallback starts
        from this node's recent usage instead of full buckets."""
        now = self._clock() * 1000.0
        state = self._state
        for i, (key, limit, period, mode, anchor) in enumerate(checks):
            add = 1.0 if units is None else float(units[i])
            if add <= 0.0:
                continue
            st = state.get(key)
            if mode == BUCKET:
                used = _bucket_level(st, now, limit, period)
                state[key] = [min(float(limit), used + add), now, 0.0, now + period]
            else:
                count, idx, a, end = _window(st, now, period, anchor)
                state[key] = [min(float(limit), count + add), idx, a, end + period]

    def used(self, check: Check) -> float:
        """Units in use on ``check`` now: the bucket's level, or the count of the current window."""
        key, limit, period, mode, anchor = check
        st = self._state.get(key)
        now = self._clock() * 1000.0
        if mode == BUCKET:
            return _bucket_level(st, now, limit, period)
        return _window(st, now, period, anchor)[0]

    def _sweep(self, now: float) -> None:
        """Drop counters that have expired (a full bucket or an ended window is the same as no entry)."""
        self._next_sweep = now + self.SWEEP_EVERY_S * 1000.0
        dead = [k for k, st in self._state.items() if st[3] <= now]
        for k in dead:
            del self._state[k]
