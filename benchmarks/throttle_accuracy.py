"""Throttling accuracy across real gateway processes sharing one Redis (issue 5 acceptance run).

Usage: ``python benchmarks/throttle_accuracy.py [--processes 4] [--seconds 10] [--rate 100] [--deadline-ms 50]``

Starts a private redis-server and N ``python -m gateway run`` processes (default 50 ms Redis deadline,
``local`` failure policy), then drives every process at once with wrk (well above the limit) for each
scenario: one API limit, a per-IP limit (two client IPs via X-Forwarded-For from a trusted proxy), and
a type-2 policy shared by two APIs. Accepted = 2xx responses; expected = rate x seconds + rate (the
token bucket's initial burst). Also prints each process's fallback count from ``GET /v1/throttling``.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throttle_common import Gateway, Redis, mock_api, snapshot, start_wrk, wrk_result


def policy(pid: str, api: int, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "name": f"policy_{pid}", "api_call_limits": api, "time_interval": 1,
            "time_unit": "SECOND", **extra}


DEADLINE_MS = [50]
VERBOSE = [False]


def run_scenario(name: str, doc: dict[str, Any], redis_url: str, procs: int, seconds: float,
                 targets: list[tuple[str, dict[str, str]]], groups: list[list[int]], rate: int) -> bool:
    # own key and distribution prefixes: the gateways of one scenario must not adopt the cluster
    # snapshot another scenario stored in the same Redis (gateway.process.distribution)
    run = uuid.uuid4().hex[:8]
    env = {"GATEWAY_THROTTLE_KEY_PREFIX": run, "GATEWAY_DISTRIBUTION_PREFIX": f"gw{run}",
           "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32",
           "GATEWAY_THROTTLE_NODES": str(procs), "GATEWAY_THROTTLE_REDIS_TIMEOUT_MS": str(DEADLINE_MS[0])}
    gws = [Gateway(doc, redis_url, env) for _ in range(procs)]
    try:
        runs = []
        for i, (path, headers) in enumerate(targets):
            gw = gws[i % procs]
            runs.append(start_wrk(gw.url + path, seconds, connections=8, headers=headers))
        results = [wrk_result(r) for r in runs]
        stats = [g.throttle_stats()["stats"] for g in gws]
        if VERBOSE[0]:
            for i, res in enumerate(results):
                print(f"    wrk {i} -> gateway {i % procs} {targets[i]}: {res}")
            for i, st in enumerate(stats):
                print(f"    gateway {i}: {st}")
    finally:
        for g in gws:
            g.stop()
    ok = True
    for members in groups:  # each group of wrk runs shares one budget
        accepted = sum(results[i]["total"] - results[i]["non2xx"] for i in members)
        sent = sum(results[i]["total"] for i in members)
        secs = max(results[i]["seconds"] for i in members)
        expected = rate * secs
        ratio = (accepted - rate) / expected
        good = 0.98 <= ratio <= 1.02
        ok = ok and good
        print(f"{name:<28} sent {sent:>7}  accepted {accepted:>5}  expected {expected + rate:>7.0f} "
              f"(rate x {secs:.2f}s + burst {rate})  ratio {ratio:.4f}  {'OK' if good else 'OUT OF RANGE'}")
    fallbacks = sum(s["redis_fallbacks"] for s in stats)
    timeouts = sum(s["redis_timeouts"] for s in stats)
    redis = sum(s["decisions_redis"] for s in stats)
    print(f"{'':<28} decisions via Redis {redis}, Redis timeouts {timeouts}, fallbacks {fallbacks}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--verbose", action="store_true", help="per wrk run and per gateway figures")
    ap.add_argument("--deadline-ms", type=int, default=50, help="throttle_redis_timeout_ms of the gateways")
    args = ap.parse_args()
    DEADLINE_MS[0] = args.deadline_ms
    VERBOSE[0] = args.verbose
    n, secs, rate = args.processes, args.seconds, args.rate
    redis = Redis()
    ok = True
    try:
        one = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", rate)],
                       throttle_bindings=[{"id": "b1", "policy_id": "t1", "publish_id": "p-a1"}])
        ok &= run_scenario("api limit", one, redis.url, n, secs, [("/a", {})] * n, [list(range(n))], rate)
        ip = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", 100000, ip_call_limits=rate)],
                      throttle_bindings=[{"id": "b1", "policy_id": "t1", "publish_id": "p-a1"}])
        targets = [("/a", {"X-Forwarded-For": f"10.0.0.{1 + i % 2}"}) for i in range(n)]
        groups = [[i for i in range(n) if i % 2 == k] for k in range(2)]
        ok &= run_scenario("per-IP limit (2 IPs)", ip, redis.url, n, secs, targets, groups, rate)
        shared = snapshot([mock_api("a1", "/a"), mock_api("a2", "/b")], throttles=[policy("t1", rate, type=2)],
                          throttle_bindings=[{"id": "b1", "policy_id": "t1", "publish_id": "p-a1"},
                                             {"id": "b2", "policy_id": "t1", "publish_id": "p-a2"}])
        targets = [("/a" if i % 2 == 0 else "/b", {}) for i in range(n)]
        ok &= run_scenario("type-2 shared over 2 APIs", shared, redis.url, n, secs, targets, [list(range(n))], rate)
    finally:
        redis.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
