"""A node that starts while Redis is unreachable serves its local config and connects when Redis comes back,
in every mode. "Unreachable" is a TCP forwarder in front of the node's only address (the instance, a
cluster node, or the only sentinel it knows) that refuses connections until it is started."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from gateway.lib.redis_conn import RedisTarget, make_client, parse_nodes
from gateway.lib.redis_conn import close as close_client
from gateway.process.distribution import RedisDistributor, store_snapshot
from tests.conftest import free_port
from tests.support.helpers import GROUP_HOST
from tests.support.redis_ha_helpers import TcpForwarder, ha_settings, limited_doc, wait_until
from tests.support.redis_topologies import MASTER


@pytest.mark.parametrize("mode", ["single", "cluster", "sentinel"])
async def test_start_without_redis_then_connect(mode: str, request: pytest.FixtureRequest,
                                                make_gateway: Any) -> None:
    master = MASTER if mode == "sentinel" else ""
    if mode == "single":
        url = request.getfixturevalue("redis_url")
        real = RedisTarget(mode="single", url=url)
        fwd = TcpForwarder(int(url.rsplit(":", 1)[1].split("/")[0]), free_port())
        opts = ha_settings("single", "", redis_url=f"redis://127.0.0.1:{fwd.port}/0")
        seen = RedisTarget(mode="single", url=opts["redis_url"])
    else:
        topo = request.getfixturevalue(mode)
        fwd = TcpForwarder(parse_nodes(topo.nodes)[0][1], free_port())
        opts = ha_settings(mode, f"127.0.0.1:{fwd.port}")
        real = RedisTarget(mode=mode, nodes=parse_nodes(topo.nodes), master=master)
        seen = RedisTarget(mode=mode, nodes=(("127.0.0.1", fwd.port),), master=master)
    admin = make_client(real, socket_timeout=2, connect_timeout=2, retries=1)
    g = await make_gateway(limited_doc(1000, content="local", version="v1"), **opts)
    dist = RedisDistributor(g.gw, seen, opts["distribution_prefix"])
    svc = g.gw.services.extras["throttle"]
    try:
        await dist.start(initial_timeout_s=1.0)  # returns: Redis unreachable, the local file serves
        async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
            async with s.get(g.url + "/a") as resp:
                assert resp.status == 200 and await resp.text() == "local"
            assert not svc.redis_up and svc.stats["redis_fallbacks"] == 1
            # meanwhile the cluster moved on
            await store_snapshot(admin, limited_doc(1000, content="shared", version="v2"), "v2",
                                 opts["distribution_prefix"])
            await fwd.start()  # Redis reachable
            await wait_until(lambda: g.gw.runtime.version == "v2", 10, "the cluster snapshot loaded")
            await wait_until(lambda: svc.redis_up, 10, "throttling back on Redis")
            async with s.get(g.url + "/a") as resp:
                assert resp.status == 200 and await resp.text() == "shared"
            assert svc.stats["decisions_redis"] >= 1
    finally:
        await dist.close()
        await close_client(admin)
        await fwd.stop()


async def test_snapshot_stored_by_a_previous_build_is_adopted(redis_url: str, make_gateway: Any) -> None:
    """Builds before the hash-tagged keys stored ``gw:snapshot:current``; a node that finds no pointer in
    the new layout adopts that snapshot (moving it to ``{gw}:snapshot:*``) instead of seeding its own."""
    from redis.asyncio import Redis

    from gateway.process.distribution import make_payload
    from gateway.process.transport import keys

    prefix = f"gw{uuid.uuid4().hex[:8]}"
    sid, body = make_payload(limited_doc(1000, content="old build"), "v7")
    r = Redis.from_url(redis_url)
    g = await make_gateway(limited_doc(1000, content="local file", version="v1"), access_log=False)
    dist = RedisDistributor(g.gw, RedisTarget(mode="single", url=redis_url), prefix)
    try:
        await r.set(f"{prefix}:snapshot:current", sid)
        await r.set(f"{prefix}:snapshot:{sid}", body)
        await dist.start()
        assert g.gw.runtime.version == "v7"
        assert (await r.get(keys(prefix)[0])) == sid.encode()
        async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s, s.get(g.url + "/a") as resp:
            assert await resp.text() == "old build"
    finally:
        await dist.close()
        await r.aclose()
