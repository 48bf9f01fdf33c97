"""CPU cost of the policies of the full-pipeline API, per stage, in process (no sockets, no load generator).

Usage: ``python benchmarks/policies_cpu.py [--calls 20000] [--redis-url redis://127.0.0.1:6379/0]``

Compiles the benchmark snapshot of ``benchmarks/run.py`` (APP signature + IP ACL permit + throttling with
api/app/ip limits + validated path/query parameters + 4 mapped backend parameters) and runs, on one event
loop, what the gateway does for one call between parsing it and writing to the backend: routing, every
endpoint stage, backend selection and the backend request. The request is pre-signed once, like the wrk
runs. Figures are CPU microseconds per call (``time.process_time``), so a busy machine changes them far
less than it changes requests per second: use this to compare two versions of the policy code; use
``benchmarks/run.py`` for the end-to-end comparison with nginx.

With ``--redis-url`` the throttling stage uses the Redis store (token leases included: the limits are
large); the calls run one after the other, so each Redis round trip is waited for in full.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy  # noqa: E402

from benchmarks.run import FULL_PATH, gateway_snapshot, signed_full_headers  # noqa: E402
from gateway.compiler import build_runtime  # noqa: E402
from gateway.core.settings import load_settings  # noqa: E402
from gateway.model.context import RequestContext  # noqa: E402
from gateway.model.services import Services  # noqa: E402
from gateway.pipeline.handle import build_backend_request  # noqa: E402


class BenchRequest:
    """The parts of the listener's request object the pipeline reads (the query parsed on first read, like the
    listener: the parameter stage reads a plain query from its raw text, so the full pipeline never parses it)."""

    def __init__(self, target: str, headers: CIMultiDictProxy[str]) -> None:
        self.method = "GET"
        self.raw_path = target
        self.path, _, self._raw_query = target.partition("?")
        self._query: MultiDictProxy[str] | None = None
        self.headers = headers
        self.host = headers.get("Host")
        self.content_length = None
        self.body_exists = False
        self.scheme = "http"
        self.remote = "127.0.0.1"

    @property
    def query(self) -> MultiDictProxy[str]:
        q = self._query
        if q is None:
            md: MultiDict[str] = MultiDict()
            for part in self._raw_query.split("&"):
                if part:
                    k, _, v = part.partition("=")
                    md.add(k, v)
            q = self._query = MultiDictProxy(md)
        return q


async def measure(calls: int, redis_url: str | None) -> None:
    # a generous Redis deadline: the first call connects and loads the script
    settings = {"redis_url": redis_url, "throttle_redis_timeout_ms": 2000} if redis_url else {}
    services = Services(load_settings(settings, environ={}))
    runtime = build_runtime(gateway_snapshot(9), services)  # the backend is never called
    hdrs: CIMultiDict[str] = CIMultiDict({"Host": "bench.local"})
    for line in signed_full_headers():
        name, _, value = line.partition(": ")
        hdrs.add(name, value)
    headers = CIMultiDictProxy(hdrs)

    def context() -> RequestContext:
        return RequestContext(BenchRequest(FULL_PATH, headers), "0" * 32, runtime, "127.0.0.1",  # type: ignore[arg-type]
                              1 << 20)

    async def one() -> Any:
        ctx = context()
        ep = runtime.route(ctx)
        for _name, stage in ep.stages:
            waiting = stage(ctx)  # as the pipeline does: None from a plain-function stage
            if waiting is not None:
                await waiting
        plan = ep.select_backend(ctx)
        for _name, stage in plan.stages:
            waiting = stage(ctx)
            if waiting is not None:
                await waiting
        return build_backend_request(ctx, ep, plan.method, plan.mapping, plan.uri)

    breq = await one()
    print(f"backend request: {breq.method} {breq.path}?{breq.query_string()} ({len(breq.headers)} headers)")
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(calls):
            await one()
        best = min(best, (time.process_time() - t0) / calls * 1e6)
    print(f"route + stages + backend request: {best:.2f} us/call (best of 3 x {calls})")

    ctx = context()
    ep = runtime.route(ctx)
    parts: dict[str, float] = {}
    t0 = time.process_time()
    for _ in range(calls):
        runtime.route(ctx)
    parts["route"] = time.process_time() - t0
    for name, stage in ep.stages:  # each stage on one routed context, after the stages before it
        t0 = time.process_time()
        for _ in range(calls):
            waiting = stage(ctx)
            if waiting is not None:
                await waiting
        parts[name] = time.process_time() - t0
    plan = ep.select_backend(ctx)
    t0 = time.process_time()
    for _ in range(calls):
        build_backend_request(ctx, ep, plan.method, plan.mapping, plan.uri)
    parts["build_backend_request"] = time.process_time() - t0
    print("per step (us/call): " + "  ".join(f"{k} {v / calls * 1e6:.2f}" for k, v in parts.items()))
    stats = services.extras.get("throttle_stats")
    if stats:
        print(f"throttling decisions: {dict((k, v) for k, v in stats.items() if k.startswith('decisions'))}")
    for close in services.close_hooks:
        await close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--redis-url", default=None)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(measure(args.calls, args.redis_url))
    except ImportError:
        asyncio.run(measure(args.calls, args.redis_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
