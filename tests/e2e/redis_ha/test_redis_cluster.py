"""Throttling and config distribution on a real 3-master/3-replica Redis Cluster (redis_mode=cluster)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from gateway.lib.redis_conn import RedisTarget, parse_nodes
from gateway.lib.redis_conn import make_client as make_redis_client
from gateway.pipeline.stages.throttling.redis_store import RedisStore, make_client
from gateway.pipeline.stages.throttling.store import WINDOW
from gateway.process.distribution import RedisDistributor, current_snapshot, store_snapshot
from tests.conftest import free_port
from tests.support.cluster_helpers import GatewayProcess, get_json, wait_for, write_doc
from tests.support.helpers import GROUP_HOST, RELEASE
from tests.support.redis_ha_helpers import ha_settings, limited_doc, run_failover, wait_until, warmed
from tests.support.redis_topologies import RedisClusterTopology

DAY = 86_400_000


def target(topo: RedisClusterTopology) -> RedisTarget:
    return RedisTarget(mode="cluster", nodes=parse_nodes(topo.nodes))


async def test_split_request_is_all_or_nothing_across_slots(cluster: RedisClusterTopology) -> None:
    """Checks in two slots (on two masters): a request one slot rejects takes nothing from the other."""
    run = uuid.uuid4().hex[:8]
    a, b = f"t{run}:{{a{run}}}:w", f"t{run}:{{b{run}}}:w"
    # find two tags that live on different masters, so the request really spans two nodes
    n = 0
    while cluster.owner_of_key(a) == cluster.owner_of_key(b):
        n += 1
        b = f"t{run}:{{b{run}-{n}}}:w"
    store = RedisStore(make_client(target(cluster), 2.0))
    assert store.cluster
    try:
        checks = [(a, 1, DAY, WINDOW, 0), (b, 5, DAY, WINDOW, 0)]
        first = await store.admit(checks)
        assert first.allowed and first.remaining == [0, 4] and first.source == "redis"
        second = await store.admit(checks)  # a is exhausted: rejected as a whole, b's unit is given back
        assert not second.allowed and second.failed == 0 and second.remaining == [0, 4]
        assert store.split_requests == 2
        r = store.client
        assert isinstance(r, RedisCluster)

        async def b_refunded() -> bool:
            return int(await r.hget(b, "v") or 0) == 1  # type: ignore[misc,unused-ignore]

        await wait_until(b_refunded, 5, "the refund of b")
        # b alone still has its 4 remaining units
        only_b = await store.admit([(b, 5, DAY, WINDOW, 0)])
        assert only_b.allowed and only_b.remaining == [3]
    finally:
        await store.close()


async def test_exact_limit_across_two_gateways(cluster: RedisClusterTopology, make_gateway: Any) -> None:
    opts = ha_settings("cluster", cluster.nodes, throttle_redis_timeout_ms=2000)  # exactness, not latency
    doc = limited_doc(5, unit="HOUR")
    g1, g2 = await make_gateway(doc, **opts), await make_gateway(doc, **opts)
    await warmed([g1, g2])  # connected, slot map read, script loaded: no first-call deadline miss
    statuses = []
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
        for i in range(10):
            async with s.get((g1, g2)[i % 2].url + "/a") as resp:
                statuses.append(resp.status)
    assert statuses == [200] * 5 + [429] * 5
    for g in (g1, g2):
        st = g.gw.services.extras["throttle_stats"]
        assert st["decisions_redis"] == 5 and st["redis_fallbacks"] == 0, st


async def test_failover_of_the_throttling_master_under_load(cluster: RedisClusterTopology, make_gateway: Any) -> None:
    """Kill the master that owns the throttling slot while clients run: no 5xx, the local fallback decides
    during the gap, shared limits resume within 5 s of the promotion, distribution follows the new master."""
    limit = 40
    opts = ha_settings("cluster", cluster.nodes, throttle_nodes=2)
    gws = [await make_gateway(limited_doc(limit, content="one"), **opts) for _ in range(2)]
    dists = []
    admin = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in parse_nodes(cluster.nodes)])
    try:
        for g in gws:
            d = RedisDistributor(g.gw, target(cluster), opts["distribution_prefix"])
            await d.start()
            dists.append(d)
        async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
            async with s.get(gws[0].url + "/a") as resp:
                assert resp.status == 200
            key = f"{opts['throttle_key_prefix']}:t:{{t1:a1:{RELEASE}}}:b:api"
            owner = cluster.owner_of_key(key)
            slot = key_slot(b"t1:a1:" + RELEASE.encode())

            async def push() -> None:
                await store_snapshot(admin, limited_doc(limit, content="two", version="v2"), "v2",
                                     opts["distribution_prefix"])

            async def served() -> bool:
                for g in gws:
                    async with s.get(g.url + "/a") as resp:
                        if resp.status == 200 and (await resp.text()) != "two":
                            return False
                return all(g.gw.runtime.version == "v2" for g in gws)

            report = await run_failover(gws, limit, lambda: cluster.kill(owner),
                                        lambda: cluster.wait_promoted(slot, owner), push, served)
        print(report.summary("cluster"))
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
        await admin.aclose()


async def test_push_reaches_every_node_through_the_cluster(cluster: RedisClusterTopology, tmp_path: Path) -> None:
    """Two real gateway processes configured by the contract's names (GATEWAY_REDIS_MODE / --redis-mode,
    GATEWAY_REDIS_NODES): a snapshot stored in the cluster, and an admin PUT on one node, reach both."""
    prefix = f"gw{uuid.uuid4().hex[:8]}"
    conf = tmp_path / "a.json"
    write_doc(conf, limited_doc(1000, content="one", version="v1"))
    env = {"GATEWAY_REDIS_NODES": cluster.nodes, "GATEWAY_DISTRIBUTION_PREFIX": prefix}
    ports = [(free_port(), free_port()) for _ in range(2)]
    base = ["--no-access-log"]
    a = GatewayProcess(["--listen", f"127.0.0.1:{ports[0][0]}", "--admin-listen", f"127.0.0.1:{ports[0][1]}",
                        "--config", str(conf), *base], env={**env, "GATEWAY_REDIS_MODE": "cluster"})
    b = GatewayProcess(["--listen", f"127.0.0.1:{ports[1][0]}", "--admin-listen", f"127.0.0.1:{ports[1][1]}",
                        "--redis-mode", "cluster", *base], env=env)
    admin = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in parse_nodes(cluster.nodes)])
    try:
        async with aiohttp.ClientSession() as s:
            async def answers(expected: str) -> bool:
                for port, _ in ports:
                    status, body = await get_json(s, f"http://127.0.0.1:{port}/a")
                    if status != 200 or body != expected:
                        return False
                return True

            # A seeds the cluster with its file; B (no file) loads it at start
            await wait_for(lambda: answers("one"), 20)
            assert (await current_snapshot(admin, prefix) or {}).get("version") == "v1"
            t0 = time.monotonic()
            await store_snapshot(admin, limited_doc(1000, content="two", version="v2"), "v2", prefix)
            await wait_for(lambda: answers("two"), 2.0, 0.01)
            print(f"\ncluster push -> 2 nodes serving it: {(time.monotonic() - t0) * 1000:.0f} ms")
            t0 = time.monotonic()
            async with s.put(f"http://127.0.0.1:{ports[1][1]}/v1/snapshot",
                             json=limited_doc(1000, content="three", version="v3")) as resp:
                assert resp.status == 200, await resp.text()
            await wait_for(lambda: answers("three"), 2.0, 0.01)
            print(f"admin PUT on node B -> both nodes serving it: {(time.monotonic() - t0) * 1000:.0f} ms")
            async with s.get(f"http://127.0.0.1:{ports[0][1]}/v1/throttling") as resp:
                info = await resp.json()
            assert info["store"] == "redis" and info["redis_mode"] == "cluster"
    finally:
        assert a.stop() == 0 and b.stop() == 0
        await admin.aclose()


async def test_planned_failover_is_followed_through_moved(cluster: RedisClusterTopology, make_gateway: Any) -> None:
    """CLUSTER FAILOVER moves the throttling slot to the replica with no lost write: the gateways' next calls
    reach the old master, get MOVED, and redis-py follows it to the new one. Limits stay exact throughout."""
    opts = ha_settings("cluster", cluster.nodes, throttle_redis_timeout_ms=2000)  # exactness, not latency
    doc = limited_doc(6, unit="HOUR")
    g1, g2 = await make_gateway(doc, **opts), await make_gateway(doc, **opts)
    await warmed([g1, g2])
    dists = [RedisDistributor(g.gw, target(cluster), opts["distribution_prefix"]) for g in (g1, g2)]
    for d in dists:
        await d.start()
    # fail over the distribution slot too: the shard subscription must follow it
    dist_slot = key_slot(opts["distribution_prefix"].encode())
    key = f"{opts['throttle_key_prefix']}:t:{{t1:a1:{RELEASE}}}:b:api"
    slot = key_slot(f"t1:a1:{RELEASE}".encode())
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
        async def call(g: Any) -> int:
            async with s.get(g.url + "/a") as resp:
                return resp.status

        try:
            before = [await call(g) for g in (g1, g2, g1)]
            old, new = await asyncio.to_thread(cluster.graceful_failover, slot)
            assert cluster.owner_of_key(key) == new != old
            after = [await call(g) for g in (g2, g1, g2, g1, g2)]
            if cluster.owner(dist_slot) != new:
                await asyncio.to_thread(cluster.graceful_failover, dist_slot)
            admin = make_redis_client(target(cluster), socket_timeout=2, connect_timeout=2, retries=2)
            try:
                t0 = time.monotonic()
                await store_snapshot(admin, limited_doc(6, unit="HOUR", content="two", version="v2"), "v2",
                                     opts["distribution_prefix"])
                await wait_until(lambda: all(g.gw.runtime.version == "v2" for g in (g1, g2)), 5, "v2 everywhere")
                push_ms = (time.monotonic() - t0) * 1000
                assert push_ms < 5000  # the shard subscription followed the slot (not the 15 s safety poll)
                print(f"\npush after a planned failover -> both nodes: {push_ms:.0f} ms")
            finally:
                await admin.aclose()
        finally:
            for d in dists:
                await d.close()
    assert before + after == [200] * 6 + [429] * 2
    for g in (g1, g2):
        st = g.gw.services.extras["throttle_stats"]
        assert st["redis_fallbacks"] == 0 and st["redis_errors"] == 0, st
