"""Active health checks of VPC channel members, owned by the long-lived services.

Role in the pipeline: background work beside the request path. One :class:`HealthManager` lives in
``services.extras["channels"]`` (created by the first compile that meets a channel). It

* hands out the shared :class:`MemberState` of each ``(channel id, host, port)`` to compiled upstreams;
* after every config swap (``services.swap_hooks``) reconciles one asyncio task per checked member with the
  new runtime: starts checks for new members, restarts those whose check config changed, stops those that
  were removed, and forgets the state of members no longer in any channel;
* starts its tasks lazily inside the running loop (a swap may happen before the loop runs: the first
  member selection then starts them), and stops everything on ``services.close_hooks``.

A check is a TCP connect, or an HTTP(S) ``GET``/``HEAD`` of ``path`` whose status must be in ``http_code``,
bounded by ``timeout``, repeated every ``time_interval`` seconds; ``threshold_abnormal`` consecutive
failures mark a member unhealthy, ``threshold_normal`` consecutive successes bring it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from gateway.backends.channels.state import HealthSpec, MemberKey, MemberState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gateway.model.services import Services

# (member key, active health check or None, the member's state), as the active runtime's upstreams hold them
Member = tuple[MemberKey, "HealthSpec | None", MemberState]

SwapHook = Callable[[Any], None]

log = logging.getLogger("gateway.backends.channels")
EXTRAS_KEY = "channels"


class HealthManager:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.states: dict[MemberKey, MemberState] = {}
        self.wanted: dict[MemberKey, tuple[HealthSpec, MemberState]] = {}  # checks the active runtime needs
        self.tasks: dict[MemberKey, tuple[HealthSpec, MemberState, asyncio.Task[None]]] = {}
        self._pending = False
        self._session: aiohttp.ClientSession | None = None
        services.close_hooks.append(self.close)

    # --- compile time (may run in a worker thread: no loop access here) ---------------------------
    def state_for(self, key: MemberKey) -> MemberState:
        state = self.states.get(key)
        if state is None:
            state = self.states.setdefault(key, MemberState(key))
        return state

    # --- swaps ------------------------------------------------------------------------------------
    def reconcile(self, members: Iterable[Member]) -> None:
        """After a swap: the members of the new runtime's channel upstreams (the swap hook that
        :mod:`gateway.backends.channels.upstream` installs computes them) become the checked set.

        The member states the new runtime's upstreams hold are authoritative (a compile running in a
        worker thread may have created some of them while an older swap was being reconciled).
        """
        wanted: dict[MemberKey, tuple[HealthSpec, MemberState]] = {}
        states: dict[MemberKey, MemberState] = {}
        for key, health, state in members:
            states[key] = state
            if health is not None:
                wanted[key] = (health, state)
        for key, state in states.items():
            if key not in wanted:
                # no active check any more: a member marked down by old checks must not stay down
                state.healthy = True
                state.ok_streak = state.fail_streak = 0
        self.states = states
        self.wanted = wanted
        self._pending = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not in the loop (start-up load): the first member selection starts the tasks
        self._apply()

    def ensure_started(self) -> None:
        """Called on member selection (inside the loop): apply a reconcile that happened outside it."""
        if self._pending:
            self._apply()

    def _apply(self) -> None:
        self._pending = False
        for key, (spec, state, task) in list(self.tasks.items()):
            want = self.wanted.get(key)
            if want is None or want[0] != spec or want[1] is not state:
                task.cancel()
                del self.tasks[key]
        loop = asyncio.get_running_loop()
        for key, (spec, state) in self.wanted.items():
            if key not in self.tasks:
                task = loop.create_task(self._run(state, spec), name=f"health-check {key}")
                self.tasks[key] = (spec, state, task)

    # --- the checks -------------------------------------------------------------------------------
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0, ssl=False),
                auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            )
        return self._session

    async def probe(self, spec: HealthSpec) -> bool:
        try:
            async with asyncio.timeout(spec.timeout_s):
                if spec.protocol == "TCP":
                    _reader, writer = await asyncio.open_connection(spec.host, spec.port)
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                    return True
                scheme = spec.protocol.lower()
                host = f"[{spec.host}]" if ":" in spec.host else spec.host
                url = f"{scheme}://{host}:{spec.port}{spec.path}"
                headers = {"User-Agent": "apig-gateway-health-check"}
                async with self._http().request(spec.method, url, headers=headers, allow_redirects=False) as resp:
                    return resp.status in spec.codes
        except (TimeoutError, OSError, aiohttp.ClientError):
            return False

    async def _run(self, state: MemberState, spec: HealthSpec) -> None:
        while True:
            started = time.monotonic()
            try:
                ok = await self.probe(spec)
            except asyncio.CancelledError:
                raise
            except Exception:  # a checker bug must not kill the loop or the member
                log.exception("health check of %s failed unexpectedly", state.key)
                ok = False
            was = state.healthy
            state.record_check(ok, spec.rise, spec.fall)
            if was != state.healthy:
                log.warning("channel %s member %s:%s is now %s", state.key[0], state.key[1], state.key[2],
                            "healthy" if state.healthy else "unhealthy")
            await asyncio.sleep(max(0.0, spec.interval_s - (time.monotonic() - started)))

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for key, state in sorted(self.states.items()):
            row = state.snapshot(now)
            row["active_check"] = key in self.wanted
            out.append(row)
        return out

    async def close(self) -> None:
        tasks = [t for _spec, _state, t in self.tasks.values()]
        self.tasks.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._pending = bool(self.wanted)  # a restarted gateway (same services) starts them again


def manager_for(services: Services, on_swap: Callable[[HealthManager], SwapHook]) -> HealthManager:
    """The process's manager; created on first use, with ``on_swap(manager)`` installed as a swap hook."""
    manager: HealthManager | None = services.extras.get(EXTRAS_KEY)
    if manager is None:
        manager = HealthManager(services)
        services.extras[EXTRAS_KEY] = manager
        services.swap_hooks.append(on_swap(manager))
    return manager
