"""Token leases against a real Redis: the script grants units only from what the bucket has, every leased unit
is counted in the shared counter, and a small limit shared by two gateways is still never exceeded."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
from redis.asyncio import Redis

from gateway.pipeline.stages.throttling.redis_store import RedisStore, make_client
from gateway.pipeline.stages.throttling.store import BUCKET
from tests.support.helpers import mock_api, snapshot
from tests.support.throttle_helpers import binding, get, policy

HOUR = 3_600_000
INPROC = {"throttle_redis_timeout_ms": 3000}  # a busy 2-core machine: scheduling lag is not Redis failing


def prefix() -> str:
    return f"l{uuid.uuid4().hex[:8]}"


async def test_script_grants_only_what_the_bucket_has(redis_url: str) -> None:
    store = RedisStore(make_client(redis_url, 2.0))
    r = Redis.from_url(redis_url)
    key = f"{prefix()}:t:{{p}}:b:api"
    try:
        first = await store.admit([(key, 1000, HOUR, BUCKET, 0)], [5])
        assert first.allowed and first.granted == [5] and first.remaining == [994]
        assert float(await r.hget(key, "v") or 0) == 6.0  # the call and its five leased units
        plain = await store.admit([(key, 1000, HOUR, BUCKET, 0)])
        assert plain.allowed and plain.granted is None and plain.remaining == [993]
        small = f"{prefix()}:t:{{p}}:b:api"
        d = await store.admit([(small, 5, HOUR, BUCKET, 0)], [8])
        assert d.allowed and d.granted == [4] and d.remaining == [0]  # 5 units: the call + the 4 left
        rejected = await store.admit([(small, 5, HOUR, BUCKET, 0)], [8])
        assert not rejected.allowed and rejected.granted is None  # nothing is leased beyond the limit
    finally:
        await store.close()
        await r.aclose()


async def test_leased_calls_are_counted_in_redis(make_gateway: Any, client: aiohttp.ClientSession,
                                                 redis_url: str) -> None:
    limit = 60_000  # per hour: leases of 256 units; the bucket drains ~17 units/s
    doc = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", limit, ip=limit, unit="HOUR")],
                   throttle_bindings=[binding("t1", "a1")])
    p = prefix()
    gw = await make_gateway(doc, redis_url=redis_url, throttle_key_prefix=p, **INPROC)
    started = time.monotonic()
    statuses: list[int] = []
    for _ in range(10):
        statuses += [s for s, _h, _b in await asyncio.gather(*(get(client, gw.url + "/a") for _ in range(30)))]
    elapsed = time.monotonic() - started
    assert statuses == [200] * 300
    stats = gw.gw.services.extras["throttle_stats"]
    assert stats["decisions_leased"] > 200 and stats["redis_fallbacks"] == 0, stats
    assert stats["decisions_leased"] + stats["decisions_redis"] == 300, stats
    r = Redis.from_url(redis_url)
    try:
        used = float(await r.hget(f"{p}:t:{{t1:a1:DEFAULT_ENVIRONMENT_RELEASE_ID}}:b:api", "v") or 0)
    finally:
        await r.aclose()
    drained = limit / 3600 * (time.monotonic() - started + 1)
    assert used >= 300 - drained, (used, elapsed)  # every admitted call's unit was taken from Redis


async def test_small_shared_limit_is_never_exceeded(make_gateway: Any, client: aiohttp.ClientSession,
                                                    redis_url: str) -> None:
    limit = 1200  # per hour, two nodes: leases of 3 units each
    doc = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", limit, unit="HOUR")],
                   throttle_bindings=[binding("t1", "a1")])
    p = prefix()
    gws = [await make_gateway(doc, redis_url=redis_url, throttle_key_prefix=p, throttle_nodes=2, **INPROC)
           for _ in range(2)]
    started = time.monotonic()
    accepted = 0
    for i in range(0, 1300, 20):
        results = await asyncio.gather(*(get(client, gws[(i + j) % 2].url + "/a") for j in range(20)))
        assert {s for s, _h, _b in results} <= {200, 429}
        accepted += sum(1 for s, _h, _b in results if s == 200)
    refilled = limit / 3600 * (time.monotonic() - started + 1)
    assert limit - 2 * 3 <= accepted <= limit + refilled, accepted  # leases unspent at most 2 nodes x 3
    for g in gws:
        stats = g.gw.services.extras["throttle_stats"]
        assert stats["decisions_leased"] > 0 and stats["redis_fallbacks"] == 0, stats


async def test_lease_granted_to_a_call_whose_caller_went_away_is_kept(redis_url: str) -> None:
    from gateway.core.settings import load_settings
    from gateway.model.services import Services
    from gateway.pipeline.stages.throttling.service import ThrottleService

    svc = ThrottleService.of(Services(load_settings({"redis_url": redis_url, "throttle_redis_timeout_ms": 3000},
                                                    environ={})))
    assert svc.leases is not None
    checks = [(f"{prefix()}:t:{{p}}:b:api", 1_000_000, HOUR, BUCKET, 0)]
    try:
        task = asyncio.create_task(svc.admit(checks))
        await asyncio.sleep(0)  # one loop turn: the call is queued for the next script call
        task.cancel()  # the client disconnected while its call was asking for a lease
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(svc.leases) == 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert len(svc.leases) == 1 and not svc.leases._asking  # the grant was kept, the ask settled
        d = svc.decide_now(checks)
        assert d is not None and d.source == "lease"
        assert task.cancelled()
        exact = await svc.admit([(f"{prefix()}:t:{{p}}:b:api", 1_000_000, HOUR, BUCKET, 0)], leases_tried=True)
        # a Redis decision that leased units reports them as remaining for this node (Redis's count + lease)
        assert exact.source == "redis" and exact.granted == [256] and exact.remaining == [1_000_000 - 1]
    finally:
        await svc.close()
