"""Throttling overhead: requests/s of one gateway process with throttling off, in-process, and Redis.

Usage: ``python benchmarks/throttle_overhead.py [--seconds 5] [--connections 32]
[--redis-mode single|cluster|sentinel]``

One ``python -m gateway run`` process serving a MOCK API (no backend hop, so the numbers show the
gateway's own cost), driven by wrk (1 thread, keep-alive). The throttled runs bind a policy with an
API limit and a per-IP limit far above the offered load (two counters per request, none rejects), so
what is measured is the price of deciding, not of rejecting. Redis is a private local redis-server, or with
``--redis-mode`` a 3-master/3-replica cluster or a sentinel-managed primary.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throttle_common import Deployment, Gateway, mock_api, snapshot, start_wrk, wrk_result


def doc(throttled: bool) -> dict[str, Any]:
    if not throttled:
        return snapshot([mock_api("a1", "/a")])
    return snapshot([mock_api("a1", "/a")],
                    throttles=[{"id": "t1", "name": "big", "api_call_limits": 100_000_000,
                                "ip_call_limits": 100_000_000, "time_interval": 1, "time_unit": "SECOND"}],
                    throttle_bindings=[{"id": "b1", "policy_id": "t1", "publish_id": "p-a1"}])


def measure(name: str, d: dict[str, Any], redis_env: dict[str, str], seconds: float, conns: int) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    gw = Gateway(d, None, {"GATEWAY_THROTTLE_KEY_PREFIX": run, "GATEWAY_DISTRIBUTION_PREFIX": f"gw{run}", **redis_env})
    try:
        start_wrk(gw.url + "/a", 1, conns).communicate(timeout=60)  # warm-up (connections, script load)
        res = wrk_result(start_wrk(gw.url + "/a", seconds, conns))
        stats = gw.throttle_stats()["stats"]
    finally:
        gw.stop()
    print(f"{name:<26} {res['rps']:>9.0f} req/s   mean latency {res['latency_ms']:6.2f} ms   "
          f"non-2xx {res['non2xx']:>5}   fallbacks {stats['redis_fallbacks']}")
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="alternate the three setups; keep each one's best")
    ap.add_argument("--redis-mode", choices=("single", "cluster", "sentinel"), default="single")
    args = ap.parse_args()
    redis = Deployment(args.redis_mode)
    best: dict[str, dict[str, float]] = {}
    try:
        for _ in range(args.rounds):  # alternating evens out the noise of a shared machine
            for name, d, env in (("throttling off", doc(False), {}), ("in-process store", doc(True), {}),
                                 (f"Redis store ({args.redis_mode})", doc(True), redis.env)):
                r = measure(name, d, env, args.seconds, args.connections)
                if name not in best or r["rps"] > best[name]["rps"]:
                    best[name] = r
    finally:
        redis.stop()
    off = best["throttling off"]["rps"]
    print("best of each:")
    for name, r in best.items():
        print(f"  {name:<24} {r['rps']:>9.0f} req/s  mean latency {r['latency_ms']:6.2f} ms  "
              f"{100.0 * r['rps'] / off:5.1f}% of off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
