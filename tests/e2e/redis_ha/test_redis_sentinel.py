"""Throttling and config distribution behind a real Sentinel set (redis_mode=sentinel): 1 primary, 1 replica,
3 sentinels."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from gateway.lib.redis_conn import RedisTarget, make_client, parse_nodes
from gateway.lib.redis_conn import close as close_client
from gateway.process.distribution import RedisDistributor, store_snapshot
from tests.support.helpers import GROUP_HOST
from tests.support.redis_ha_helpers import ha_settings, limited_doc, run_failover, wait_until, warmed
from tests.support.redis_topologies import MASTER, RedisSentinelTopology


def target(topo: RedisSentinelTopology) -> RedisTarget:
    return RedisTarget(mode="sentinel", nodes=parse_nodes(topo.nodes), master=MASTER)


async def test_exact_limit_and_push_through_the_primary(sentinel: RedisSentinelTopology, make_gateway: Any) -> None:
    opts = ha_settings("sentinel", sentinel.nodes, throttle_redis_timeout_ms=2000)  # exactness, not latency
    g1, g2 = [await make_gateway(limited_doc(5, unit="HOUR", content="one"), **opts) for _ in range(2)]
    await warmed([g1, g2])  # connected, slot map read, script loaded: no first-call deadline miss
    dists = [RedisDistributor(g.gw, target(sentinel), opts["distribution_prefix"]) for g in (g1, g2)]
    admin = make_client(target(sentinel), socket_timeout=2, connect_timeout=2)
    try:
        for d in dists:
            await d.start()
        statuses = []
        async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
            for i in range(10):
                async with s.get((g1, g2)[i % 2].url + "/a") as resp:
                    statuses.append(resp.status)
            assert statuses == [200] * 5 + [429] * 5
            t0 = time.monotonic()
            await store_snapshot(admin, limited_doc(5, unit="HOUR", content="two", version="v2"), "v2",
                                 opts["distribution_prefix"])
            await wait_until(lambda: all(g.gw.runtime.version == "v2" for g in (g1, g2)), 2.0, "v2 on both nodes")
            print(f"\nsentinel push -> 2 nodes serving it: {(time.monotonic() - t0) * 1000:.0f} ms")
        for g in (g1, g2):
            st = g.gw.services.extras["throttle_stats"]
            assert st["decisions_redis"] == 5 and st["redis_fallbacks"] == 0
    finally:
        for d in dists:
            await d.close()
        await close_client(admin)


async def test_failover_of_the_primary_under_load(sentinel: RedisSentinelTopology, make_gateway: Any) -> None:
    """Kill the primary while clients run: no 5xx, the local fallback decides during the gap, shared limits
    resume within 5 s of the promotion, and distribution follows the promoted replica."""
    limit = 40
    opts = ha_settings("sentinel", sentinel.nodes, throttle_nodes=2)
    gws = [await make_gateway(limited_doc(limit, content="one"), **opts) for _ in range(2)]
    dists = []
    admin = make_client(target(sentinel), socket_timeout=2, connect_timeout=2, retries=1)
    try:
        for g in gws:
            d = RedisDistributor(g.gw, target(sentinel), opts["distribution_prefix"])
            await d.start()
            dists.append(d)
        old = sentinel.primary()

        async def push() -> None:
            await store_snapshot(admin, limited_doc(limit, content="two", version="v2"), "v2",
                                 opts["distribution_prefix"])

        async def served() -> bool:
            return all(g.gw.runtime.version == "v2" for g in gws)

        report = await run_failover(gws, limit, lambda: sentinel.kill(old), lambda: sentinel.wait_promoted(old),
                                    push, served)
        print(report.summary("sentinel"))
        statuses = report.recorder.statuses()
        assert set(statuses) <= {200, 429}, statuses  # no 5xx, no failed connection
        assert report.t_recovered - report.t_promoted < 5.0
        assert report.push_ms < 5000  # the subscriber followed the new primary (not the 15 s safety poll)
        gap = report.t_recovered - report.t_kill
        assert report.admitted(report.t_kill, report.t_recovered) <= 2 * limit * gap + 2 * limit
        assert sum(g.gw.services.extras["throttle_stats"]["redis_fallbacks"] for g in gws) > 0
        # the promoted replica's script cache was empty: NOSCRIPT was answered by loading the scripts again
        assert sum(g.gw.services.extras["throttle"].redis.script_loads for g in gws) >= 1
    finally:
        for d in dists:
            await d.close()
        await close_client(admin)


async def test_planned_failover_under_load(sentinel: RedisSentinelTopology, make_gateway: Any) -> None:
    """SENTINEL FAILOVER while clients run: the old primary answers READONLY, the gateways reconnect to the
    promoted replica; no 5xx, shared limits within 5 s of the promotion, distribution follows."""
    limit = 40
    opts = ha_settings("sentinel", sentinel.nodes, throttle_nodes=2)
    gws = [await make_gateway(limited_doc(limit, content="one"), **opts) for _ in range(2)]
    dists = []
    admin = make_client(target(sentinel), socket_timeout=2, connect_timeout=2, retries=1)
    try:
        for g in gws:
            d = RedisDistributor(g.gw, target(sentinel), opts["distribution_prefix"])
            await d.start()
            dists.append(d)

        async def push() -> None:
            await store_snapshot(admin, limited_doc(limit, content="two", version="v2"), "v2",
                                 opts["distribution_prefix"])

        async def served() -> bool:
            return all(g.gw.runtime.version == "v2" for g in gws)

        report = await run_failover(gws, limit, lambda: None, sentinel.graceful_failover, push, served)
        print(report.summary("sentinel (planned)"))
        statuses = report.recorder.statuses()
        assert set(statuses) <= {200, 429}, statuses
        assert report.t_recovered - report.t_promoted < 5.0
        assert report.push_ms < 5000  # the subscriber followed the new primary (not the 15 s safety poll)
        gap = report.t_recovered - report.t_kill
        assert report.admitted(report.t_kill, report.t_recovered) <= 2 * limit * gap + 2 * limit
    finally:
        for d in dists:
            await d.close()
        await close_client(admin)
