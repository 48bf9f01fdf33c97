"""Throttling accuracy across real gateway processes sharing one Redis (issue 5 acceptance run).

Usage: ``python benchmarks/throttle_accuracy.py [--processes 4] [--seconds 10] [--rate 100] [--deadline-ms 50]
[--redis-mode single|cluster|sentinel] [--failover]``

Starts a private Redis and N ``python -m gateway run`` processes (default 50 ms Redis deadline,
``local`` failure policy), then drives every process at once with wrk (well above the limit) for each
scenario: one API limit, a per-IP limit (two client IPs via X-Forwarded-For from a trusted proxy), and
a type-2 policy shared by two APIs. Accepted = 2xx responses; expected = rate x seconds + rate (the
token bucket's initial burst). Also prints each process's fallback count from ``GET /v1/throttling``.

``--redis-mode`` picks the deployment: one redis-server (``single``), a 3-master/3-replica Redis Cluster
(``cluster``) or 1 primary + 1 replica + 3 sentinels (``sentinel``), the same real topologies the tests use
(tests/support/redis_topologies.py). ``--failover`` (cluster or sentinel) runs only the API-limit
scenario and, 40 % into it, kills the master that owns the throttling slot (cluster) or the primary
(sentinel); it reports the time to promotion, the time until every gateway decides through Redis again,
and the calls admitted above the exact count (the over-admission of the gap).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throttle_common import RELEASE, Deployment, Gateway, mock_api, snapshot, start_wrk, wrk_result


def policy(pid: str, api: int, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "name": f"policy_{pid}", "api_call_limits": api, "time_interval": 1,
            "time_unit": "SECOND", **extra}


DEADLINE_MS = [50]
VERBOSE = [False]


class Failover(threading.Thread):
    """At ``at`` seconds: fail the master over, then poll the gateways until all decide through Redis again."""

    def __init__(self, dep: Deployment, key: str, at: float, gws: list[Gateway]) -> None:
        super().__init__(daemon=True)
        self.dep, self.key, self.at, self.gws = dep, key, at, gws
        self.t_kill = self.t_promoted = self.t_recovered = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            time.sleep(self.at)
            self.t_kill, self.t_promoted = self.dep.fail_over(self.key)
            base = [g.throttle_stats()["stats"]["decisions_redis"] for g in self.gws]
            end = time.monotonic() + 30
            while time.monotonic() < end:
                infos = [g.throttle_stats() for g in self.gws]
                if all(i["redis_up"] and i["stats"]["decisions_redis"] > b for i, b in zip(infos, base, strict=True)):
                    self.t_recovered = time.monotonic()
                    return
                time.sleep(0.02)
        except BaseException as exc:  # reported by the caller
            self.error = exc


def run_scenario(name: str, doc: dict[str, Any], dep: Deployment, procs: int, seconds: float,
                 targets: list[tuple[str, dict[str, str]]], groups: list[list[int]], rate: int,
                 failover: bool = False) -> bool:
    # own key and distribution prefixes: the gateways of one scenario must not adopt the cluster
    # snapshot another scenario stored in the same Redis (gateway.process.distribution)
    run = uuid.uuid4().hex[:8]
    env = {"GATEWAY_THROTTLE_KEY_PREFIX": run, "GATEWAY_DISTRIBUTION_PREFIX": f"gw{run}",
           "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32", "GATEWAY_THROTTLE_REDIS_PROBE_MS": "100",
           "GATEWAY_THROTTLE_NODES": str(procs), "GATEWAY_THROTTLE_REDIS_TIMEOUT_MS": str(DEADLINE_MS[0]),
           **dep.env}
    gws = [Gateway(doc, None, env) for _ in range(procs)]
    fo: Failover | None = None
    try:
        runs = []
        for i, (path, headers) in enumerate(targets):
            gw = gws[i % procs]
            runs.append(start_wrk(gw.url + path, seconds, connections=8, headers=headers))
        if failover:
            fo = Failover(dep, f"{run}:t:{{t1:a1:{RELEASE}}}:b:api", seconds * 0.4, gws)
            fo.start()
        results = [wrk_result(r) for r in runs]
        if fo is not None:
            fo.join(35)
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
    leased = sum(s.get("decisions_leased", 0) for s in stats)
    errors = sum(r["non2xx"] for r in results) - sum(s["rejected"] for s in stats)
    print(f"{'':<28} decisions via Redis {redis}, from token leases {leased}, Redis timeouts {timeouts}, "
          f"fallbacks {fallbacks}, non-2xx other than 429: {max(0, errors)}")
    if fo is not None:
        if fo.error is not None or not fo.t_recovered:
            print(f"{'':<28} failover did not complete: {fo.error!r}")
            return False
        accepted = sum(results[i]["total"] - results[i]["non2xx"] for i in groups[0])
        secs = max(results[i]["seconds"] for i in groups[0])
        extra = accepted - rate * secs - rate
        gap = fo.t_recovered - fo.t_kill
        print(f"{'':<28} failover: promoted {fo.t_promoted - fo.t_kill:.2f} s after the kill, every gateway on "
              f"Redis again {fo.t_recovered - fo.t_promoted:.2f} s after the promotion (gap {gap:.2f} s); "
              f"admitted above the exact count: {extra:+.0f} ({extra / (rate * gap) * 100:+.0f} % of the "
              f"gap's budget of {rate * gap:.0f})")
        dep.heal()
        return fo.t_recovered - fo.t_promoted < 5.0
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--verbose", action="store_true", help="per wrk run and per gateway figures")
    ap.add_argument("--deadline-ms", type=int, default=50, help="throttle_redis_timeout_ms of the gateways")
    ap.add_argument("--redis-mode", choices=("single", "cluster", "sentinel"), default="single",
                    help="one redis-server, a 3-master/3-replica cluster, or 1 primary + 1 replica + 3 sentinels")
    ap.add_argument("--failover", action="store_true",
                    help="API-limit scenario only, with a failover of the throttling master 40 %% into the run")
    args = ap.parse_args()
    if args.failover and args.redis_mode == "single":
        ap.error("--failover needs --redis-mode cluster or sentinel")
    DEADLINE_MS[0] = args.deadline_ms
    VERBOSE[0] = args.verbose
    n, secs, rate = args.processes, args.seconds, args.rate
    dep = Deployment(args.redis_mode)
    print(f"redis mode {args.redis_mode}, {n} gateway processes, limit {rate}/s, {secs:g} s per scenario")
    ok = True
    try:
        one = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", rate)],
                       throttle_bindings=[{"id": "b1", "policy_id": "t1", "publish_id": "p-a1"}])
        ok &= run_scenario("api limit" + (" + failover" if args.failover else ""), one, dep, n, secs,
                           [("/a", {})] * n, [list(range(n))], rate, failover=args.failover)
        if args.failover:
            return 0 if ok else 1
        ip = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", 100000, ip_call_limits=rate)],
                      throttle_bindings=[{"id": "b1", "policy_id": "t1", "publish_id": "p-a1"}])
        targets = [("/a", {"X-Forwarded-For": f"10.0.0.{1 + i % 2}"}) for i in range(n)]
        groups = [[i for i in range(n) if i % 2 == k] for k in range(2)]
        ok &= run_scenario("per-IP limit (2 IPs)", ip, dep, n, secs, targets, groups, rate)
        shared = snapshot([mock_api("a1", "/a"), mock_api("a2", "/b")], throttles=[policy("t1", rate, type=2)],
                          throttle_bindings=[{"id": "b1", "policy_id": "t1", "publish_id": "p-a1"},
                                             {"id": "b2", "policy_id": "t1", "publish_id": "p-a2"}])
        targets = [("/a" if i % 2 == 0 else "/b", {}) for i in range(n)]
        ok &= run_scenario("type-2 shared over 2 APIs", shared, dep, n, secs, targets, [list(range(n))], rate)
    finally:
        dep.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
