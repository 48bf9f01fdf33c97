"""Versioned deltas between nodes through a real redis-server: a v2 change travels as a delta, a node that
missed deltas (a gap) catches up from the whole snapshot, and a rejected change reaches no node."""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
import orjson

from gateway.process.distribution import FULL_EVERY_S, FULL_KEY, RedisDistributor
from tests.support.admin_helpers import V2, call
from tests.support.bigdoc import RELEASE, big_document, group_host, make_api, probe_path
from tests.support.cluster_helpers import wait_for

N = 400
N_GROUPS = 4


async def _node(make_gateway: Any, redis_url: str, prefix: str) -> tuple[Any, RedisDistributor]:
    rg = await make_gateway(big_document(N, version="start"), access_log=False)
    dist = RedisDistributor(rg.gw, redis_url, prefix)
    await dist.start()
    return rg, dist


async def _body(s: aiohttp.ClientSession, rg: Any, i: int) -> str:
    async with s.get(rg.url + probe_path(i), headers={"Host": group_host(i % N_GROUPS)}) as r:
        return f"{r.status} {(await r.read()).decode()}"


async def _edit_and_publish(s: aiohttp.ClientSession, rg: Any, i: int, content: str) -> str:
    body = make_api(i, N_GROUPS, content=content)
    body.pop("id")
    status, res, _ = await call(s, rg.admin_url, "PUT", f"{V2}/apis/a{i}", json=body)
    assert status == 200, res
    status, res, headers = await call(s, rg.admin_url, "POST", f"{V2}/apis/action",
                                      json={"action": "online", "api_id": f"a{i}", "env_id": RELEASE})
    assert status == 201, res
    return str(headers["ETag"]).strip('"')


async def test_changes_travel_as_deltas_and_a_gap_loads_the_whole_snapshot(make_gateway: Any, redis_url: str) -> None:
    prefix = f"d{uuid.uuid4().hex[:8]}"
    a, da = await _node(make_gateway, redis_url, prefix)
    b, db = await _node(make_gateway, redis_url, prefix)
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: da.local is not None and db.local == da.local, 10)
            b_full_compiles = b.gw.services.reloads
            version = await _edit_and_publish(s, a, 8, "delta-1")
            await wait_for(lambda: _is(_body(s, b, 8), "200 delta-1"), 10)
            assert b.gw.runtime.version == version
            assert da.deltas_sent >= 2  # the draft and the publication, each a delta
            # node B applied them incrementally (no whole-document compile)
            assert b.gw.services.extras.get("incremental_compiles", 0) >= 2
            assert b.gw.services.reloads > b_full_compiles
            # both nodes export the same document
            _, exp_a, _ = await call(s, a.admin_url, "GET", "/v1/snapshot")
            _, exp_b, _ = await call(s, b.admin_url, "GET", "/v1/snapshot")
            assert orjson.dumps(exp_a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(exp_b, option=orjson.OPT_SORT_KEYS)

            # a rejected change changes nothing on either node
            bad = make_api(12, N_GROUPS)
            bad.pop("id")
            bad["req_method"] = "BREW"
            status, _, _ = await call(s, a.admin_url, "PUT", f"{V2}/apis/a12", json=bad)
            assert status == 400
            assert a.gw.runtime.version == version and b.gw.runtime.version == version

            # a gap: B stops following, A makes changes, one delta of the chain expires; B catches up
            await db.close()
            await _edit_and_publish(s, a, 16, "gap-1")
            last = await _edit_and_publish(s, a, 20, "gap-2")
            first_gap_delta = None
            sid = da.local
            chain = []
            while sid is not None and sid != db.local:
                raw = await da.transport.fetch(sid)
                if raw is None:
                    break
                p = orjson.loads(raw)
                if "delta" not in p:
                    break
                chain.append(sid)
                sid = p["base"]
            first_gap_delta = chain[-1]  # the oldest delta B never saw
            await da.redis.delete(da.transport.payload_key(first_gap_delta))
            await wait_for(lambda: _full_is(da, da.local), 10)  # the whole snapshot for catch-up is stored
            db2 = RedisDistributor(b.gw, redis_url, prefix)
            db2.local = db.local
            await db2.start()
            try:
                await wait_for(lambda: b.gw.runtime.version == last, 10)
                assert db2.gaps >= 1
                assert await _body(s, b, 16) == "200 gap-1" and await _body(s, b, 20) == "200 gap-2"
            finally:
                await db2.close()
    finally:
        await da.close()
        await db.close()


async def _is(coro: Any, expected: str) -> bool:
    return bool(await coro == expected)


async def _full_is(d: RedisDistributor, sid: str | None) -> bool:
    raw = await d.transport.fetch(FULL_KEY)
    return raw is not None and orjson.loads(raw).get("id") == sid


async def test_concurrent_changes_never_replay_this_nodes_own_deltas(make_gateway: Any, redis_url: str) -> None:
    """Many admin changes in flight at once: the announcement of this node's own delta must not be taken for
    another node's snapshot (replayed on a document that moved on, it would activate an older version and make
    the next change fail its version check). Every change succeeds, A activates nothing from the cluster, and
    both nodes end on A's last version."""
    import asyncio

    prefix = f"c{uuid.uuid4().hex[:8]}"
    a, da = await _node(make_gateway, redis_url, prefix)
    b, db = await _node(make_gateway, redis_url, prefix)
    sources: list[str] = []
    a.gw.activate_hooks.append(lambda _doc, _rt, source: sources.append(source))
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: da.local is not None and db.local == da.local, 10)
            sem = asyncio.Semaphore(8)

            async def one(k: int) -> int:
                i = 4 * (k % 40)
                async with sem:
                    if k % 2 == 0:
                        body = make_api(i, N_GROUPS, content=f"c{k}")
                        body.pop("id")
                        status, _, _ = await call(s, a.admin_url, "PUT", f"{V2}/apis/a{i}", json=body)
                    else:
                        status, _, _ = await call(s, a.admin_url, "POST", f"{V2}/apis/action",
                                                  json={"action": "online", "api_id": f"a{i}", "env_id": RELEASE})
                    return int(status)

            done = asyncio.Event()

            async def follow() -> None:  # A's follower reading the pointer while A's own pushes are under way
                while not done.is_set():
                    await da.sync()
                    await asyncio.sleep(0)

            follower = asyncio.create_task(follow())
            try:
                statuses = await asyncio.gather(*(one(k) for k in range(120)))
            finally:
                done.set()
                await follower
            assert all(st < 300 for st in statuses), statuses
            assert "cluster" not in sources  # A never re-applied its own deltas
            await wait_for(lambda: b.gw.runtime.version == a.gw.runtime.version, 10)
            _, exp_a, _ = await call(s, a.admin_url, "GET", "/v1/snapshot")
            _, exp_b, _ = await call(s, b.admin_url, "GET", "/v1/snapshot")
            assert orjson.dumps(exp_a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(exp_b, option=orjson.OPT_SORT_KEYS)
    finally:
        await da.close()
        await db.close()


async def test_the_whole_document_is_rewritten_at_most_once_per_interval(make_gateway: Any, redis_url: str) -> None:
    """Under a steady stream of changes the whole document kept for catch-up is written at most once per
    FULL_EVERY_S (each write serialises the whole snapshot), not again as soon as the previous write ended."""
    prefix = f"f{uuid.uuid4().hex[:8]}"
    a, da = await _node(make_gateway, redis_url, prefix)
    full_writes: list[float] = []
    real_set = da.redis.set

    async def counting_set(key: Any, *args: Any, **kwargs: Any) -> Any:
        if str(key).endswith(FULL_KEY):
            full_writes.append(time.monotonic())
        return await real_set(key, *args, **kwargs)

    da.redis.set = counting_set  # type: ignore[method-assign]
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: da.local is not None, 10)
            t0 = time.monotonic()
            k = 0
            while time.monotonic() - t0 < 3 * FULL_EVERY_S:
                body = make_api(4, N_GROUPS, content=f"f{k}")
                body.pop("id")
                status, _, _ = await call(s, a.admin_url, "PUT", f"{V2}/apis/a4", json=body)
                assert status == 200
                k += 1
            elapsed = time.monotonic() - t0
            assert k >= 10
            assert len(full_writes) <= elapsed / FULL_EVERY_S + 1, (len(full_writes), elapsed)
            await wait_for(lambda: _full_is(da, da.local), 10)  # the last state still gets written
    finally:
        await da.close()
