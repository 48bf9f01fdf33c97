"""Helpers for the Redis Cluster / Sentinel tests: gateway settings per mode, a recording load generator,
a TCP forwarder that plays "Redis unreachable" for a node's seeds, and the failover scenario both modes share."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.helpers import GROUP_HOST, mock_api, snapshot
from tests.support.throttle_helpers import binding, policy


def ha_settings(mode: str, nodes: str, **extra: Any) -> dict[str, Any]:
    """Gateway overrides for ``mode`` (cluster | sentinel) with private key and distribution prefixes."""
    run = uuid.uuid4().hex[:8]
    out: dict[str, Any] = {"redis_mode": mode, "redis_nodes": [n for n in nodes.split(",") if n],
                           "throttle_key_prefix": f"k{run}", "distribution_prefix": f"gw{run}",
                           "throttle_redis_probe_ms": 100, "access_log": False}
    if mode == "sentinel":
        out["redis_sentinel_master"] = "gwmaster"
    out.update(extra)
    return out


def limited_doc(limit: int, unit: str = "SECOND", content: str = "ok", version: str = "v1") -> dict[str, Any]:
    doc = snapshot([mock_api("a1", "/a", content)], throttles=[policy("t1", limit, unit=unit)],
                   throttle_bindings=[binding("t1", "a1")])
    doc["version"] = version
    return doc


@dataclass
class Recorder:
    """(monotonic time, status) of every answer; status -1 for a client-side error."""

    events: list[tuple[float, int]] = field(default_factory=list)

    def statuses(self, start: float = 0.0, end: float = float("inf")) -> Counter[int]:
        return Counter(s for t, s in self.events if start <= t < end)


@contextlib.asynccontextmanager
async def load(urls: list[str], concurrency: int = 6) -> AsyncIterator[Recorder]:
    """Clients sending requests back to back, round-robin over ``urls``, until the block ends."""
    rec = Recorder()
    stop = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST},
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def worker(i: int) -> None:
            n = i
            while not stop.is_set():
                url = urls[n % len(urls)]
                n += 1
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        rec.events.append((time.monotonic(), resp.status))
                except (aiohttp.ClientError, TimeoutError):
                    rec.events.append((time.monotonic(), -1))

        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        try:
            yield rec
        finally:
            stop.set()
            await asyncio.gather(*tasks)


class TcpForwarder:
    """127.0.0.1:<port> -> 127.0.0.1:<target>, refusing connections until :meth:`start` (a seed that is down)."""

    def __init__(self, target: int, port: int) -> None:
        self.target = target
        self.port = port
        self.server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        for t in (asyncio.create_task(pipe(reader, up_w)), asyncio.create_task(pipe(up_r, writer))):
            self._pipes.add(t)
            t.add_done_callback(self._pipes.discard)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for t in list(self._pipes):
            t.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


async def wait_until(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll ``cond`` (sync or async) until truthy; returns the monotonic time it became true. The deadline is at
    least 15 s (a correctness bound on a busy machine, not a latency claim)."""
    timeout = max(timeout, 15.0)
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = cond()
        if isinstance(last, Awaitable):
            last = await last
        if last:
            return time.monotonic()
        await asyncio.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s (last {last!r})")


@dataclass
class FailoverReport:
    limit: int
    t_kill: float
    t_promoted: float
    t_recovered: float
    t_end: float
    recorder: Recorder
    push_ms: float

    def admitted(self, start: float, end: float) -> int:
        return self.recorder.statuses(start, end)[200]

    def summary(self, mode: str) -> str:
        gap = self.t_recovered - self.t_kill
        adm = self.admitted(self.t_kill, self.t_recovered)
        total = self.recorder.statuses()
        return (f"\n{mode} failover: promotion {self.t_promoted - self.t_kill:.2f} s after the kill, shared limits "
                f"back {self.t_recovered - self.t_promoted:.2f} s after the promotion; {adm} admitted in the "
                f"{gap:.2f} s gap at a limit of {self.limit}/s (exact: {self.limit * gap:.0f}); "
                f"answers {dict(total)}; push after failover served by every node in {self.push_ms:.0f} ms")


async def run_failover(gws: list[Any], limit: int, kill: Callable[[], Any], wait_promoted: Callable[[], Any],
                       push: Callable[[], Awaitable[None]], served: Callable[[], Awaitable[bool]]) -> FailoverReport:
    """Clients hammer every gateway; ``kill`` a Redis node, ``wait_promoted`` (blocking, run in a thread);
    then wait until every gateway decides through Redis again, ``push`` a snapshot and wait until ``served``."""
    svcs = [g.gw.services.extras["throttle"] for g in gws]
    async with load([g.url + "/a" for g in gws]) as rec:
        await wait_until(lambda: len(rec.events) > 50, 10, "traffic flowing")
        await asyncio.sleep(0.5)  # steady state before the kill
        t_kill = time.monotonic()
        await asyncio.to_thread(kill)
        await asyncio.to_thread(wait_promoted)
        t_promoted = time.monotonic()
        base = [s.stats["decisions_redis"] for s in svcs]
        # "through Redis again": every gateway up and deciding new requests in Redis
        t_recovered = await wait_until(
            lambda: all(s.redis_up and s.stats["decisions_redis"] > b + 5 for s, b in zip(svcs, base, strict=True)),
            15, "shared limits through Redis again")
        await asyncio.sleep(0.5)
        t_push = time.monotonic()
        await push()
        await wait_until(served, 10, "the pushed snapshot served by every node")
        push_ms = (time.monotonic() - t_push) * 1000
        t_end = time.monotonic()
    return FailoverReport(limit, t_kill, t_promoted, t_recovered, t_end, rec, push_ms)


async def warmed(gws: list[Any], timeout: float = 10.0) -> None:
    """Wait until each gateway's throttling service has connected and loaded its script (it does so in the
    background after the first config swap), so a test that counts Redis decisions is not disturbed by a
    first call that missed its deadline on a busy machine."""
    for g in gws:
        svc = g.gw.services.extras["throttle"]
        await wait_until(lambda svc=svc: svc._warm_task is not None and svc._warm_task.done(), timeout, "warm-up")
