"""Multi-node distribution through a real redis-server, with real gateway subprocesses."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from gateway.process.distribution import current_snapshot, keys, payload_key, store_snapshot
from tests.conftest import free_port, wait_port
from tests.support.cluster_helpers import GatewayProcess, get_json, ready_version, wait_for, write_doc
from tests.support.helpers import mock_api, snapshot


def mock_doc(content: str, version: str) -> dict[str, Any]:
    doc = snapshot([mock_api("m", "/m", content)])
    doc["version"] = version
    return doc


class Node:
    def __init__(self, redis_url: str, prefix: str, config: Path | None = None) -> None:
        self.port, self.admin = free_port(), free_port()
        args = ["--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
                "--redis-url", redis_url, "--no-access-log"]
        if config is not None:
            args += ["--config", str(config)]
        self.gp = GatewayProcess(args, env={"GATEWAY_DISTRIBUTION_PREFIX": prefix})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/m"

    async def version(self, s: aiohttp.ClientSession) -> str | None:
        return await ready_version(s, f"http://127.0.0.1:{self.admin}")

    async def answer(self, s: aiohttp.ClientSession) -> Any:
        return (await get_json(s, self.url))[1]


async def _all_answer(s: aiohttp.ClientSession, nodes: list[Node], expected: str) -> bool:
    answers = [await n.answer(s) for n in nodes]
    return all(a == expected for a in answers)


async def test_push_reaches_every_node(redis_url: str, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    conf = tmp_path / "a.json"
    write_doc(conf, mock_doc("one", "v1"))
    r = Redis.from_url(redis_url)
    a = Node(redis_url, prefix, conf)  # seeds Redis with its file
    b: Node | None = None
    try:
        async with aiohttp.ClientSession() as s:
            assert await wait_for(lambda: a.version(s), 15) == "v1"
            pointer, _ = keys(prefix)
            assert (await current_snapshot(r, prefix) or {}).get("version") == "v1"
            b = Node(redis_url, prefix)  # no config file: loads the cluster snapshot at start
            assert await wait_for(lambda: b.version(s), 15) == "v1"
            nodes = [a, b]
            assert await _all_answer(s, nodes, "one")

            # a push stored from another process reaches both within a second
            t0 = time.monotonic()
            await store_snapshot(r, mock_doc("two", "v2"), "v2", prefix)
            await wait_for(lambda: _all_answer(s, nodes, "two"), 1.0, 0.02)
            print(f"\nredis push -> 2 nodes serving it: {(time.monotonic() - t0) * 1000:.0f} ms")

            # a push accepted by node A (SIGHUP reload of its file runs the push hook) reaches node B
            write_doc(conf, mock_doc("three", "v3"))
            a.gp.signal(signal.SIGHUP)
            await wait_for(lambda: _all_answer(s, nodes, "three"), 2.0, 0.02)
            cur = await current_snapshot(r, prefix)
            assert cur is not None and cur["version"] == "v3"
            old = payload_key(prefix, (await r.get(pointer)).decode())
            assert await r.ttl(old) == -1  # the current payload never expires

            # a snapshot the nodes reject: they log it and keep serving v3
            bad = mock_doc("four", "v4")
            bad["apis"][0]["req_method"] = "BREW"
            await store_snapshot(r, bad, "v4", prefix)
            await wait_for(lambda: "cluster snapshot v4 rejected: apis[0].req_method" in b.gp.log_text(), 3)
            assert await _all_answer(s, nodes, "three")
            assert await a.version(s) == "v3" and await b.version(s) == "v3"

            # ... and converge again on the next good one
            await store_snapshot(r, mock_doc("five", "v5"), "v5", prefix)
            await wait_for(lambda: _all_answer(s, nodes, "five"), 1.0, 0.02)

            # the control-plane path: PUT /v1/snapshot on node B's admin API reaches node A within a second
            t0 = time.monotonic()
            async with s.put(f"http://127.0.0.1:{b.admin}/v1/snapshot", json=mock_doc("six", "v6")) as resp:
                assert resp.status == 200, await resp.text()
            await wait_for(lambda: _all_answer(s, nodes, "six"), 1.0, 0.02)
            print(f"admin PUT on node B -> both nodes serving it: {(time.monotonic() - t0) * 1000:.0f} ms")
            # and a rejected PUT changes nothing anywhere
            bad_put = mock_doc("seven", "v7")
            bad_put["apis"][0]["req_method"] = "BREW"
            async with s.put(f"http://127.0.0.1:{a.admin}/v1/snapshot", json=bad_put) as resp:
                assert resp.status == 400
            assert await _all_answer(s, nodes, "six")
            assert (await current_snapshot(r, prefix) or {}).get("version") == "v6"
    finally:
        assert a.gp.stop() == 0
        if b is not None:
            assert b.gp.stop() == 0
        await r.aclose()


async def test_store_is_atomic_and_idempotent(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    r = Redis.from_url(redis_url)
    pubsub = r.pubsub()
    try:
        pointer, channel = keys(prefix)
        await pubsub.subscribe(channel)
        sid1, res1 = await store_snapshot(r, mock_doc("one", "v1"), "v1", prefix)
        sid1b, res1b = await store_snapshot(r, mock_doc("one", "v1"), "v1", prefix)
        assert (res1, sid1b, res1b) == (1, sid1, 0)  # the same snapshot again is not re-announced
        sid2, res2 = await store_snapshot(r, mock_doc("two", "v1"), "v1", prefix)  # same version, new content
        assert res2 == 1 and sid2 != sid1
        assert (await r.get(pointer)).decode() == sid2
        assert 0 < await r.ttl(payload_key(prefix, sid1)) <= 86400  # the old one is kept for a rollback window
        assert orjson.loads(await r.get(payload_key(prefix, sid2)))["doc"]["apis"][0]["mock_info"] == {
            "result_content": "two"}
        _, refused = await store_snapshot(r, mock_doc("x", "vx"), "vx", prefix, mode="absent")
        assert refused == -1
        _, refused = await store_snapshot(r, mock_doc("x", "vx"), "vx", prefix, mode="cas", expected=sid1)
        assert refused == -1
        announced = []
        end = time.monotonic() + 20  # a generous deadline: the loop ends as soon as both arrived
        while len(announced) < 2 and time.monotonic() < end:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg:
                announced.append(msg["data"].decode())
        assert announced == [sid1, sid2]
    finally:
        await pubsub.aclose()
        await r.aclose()


@pytest.fixture
def own_redis() -> Iterator[tuple[str, Any, Any]]:
    """A redis-server this test may stop and restart on the same port: (url, start, stop)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required"
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        if not wait_port(port):
            raise AssertionError("redis-server did not start")

    def stop() -> None:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    start()
    yield f"redis://127.0.0.1:{port}/0", start, stop
    stop()


async def test_redis_outage_keeps_serving_and_catches_up(own_redis: tuple[str, Any, Any], tmp_path: Path) -> None:
    url, start_redis, stop_redis = own_redis
    prefix = "gw"
    conf = tmp_path / "a.json"
    write_doc(conf, mock_doc("one", "v1"))
    a = Node(url, prefix, conf)
    b = Node(url, prefix)
    nodes = [a, b]
    try:
        async with aiohttp.ClientSession() as s:
            for n in nodes:
                assert await wait_for(lambda n=n: n.version(s), 15) == "v1"
            stop_redis()  # Redis dies (and loses everything: no persistence); stop() waits for the process to exit
            assert await _all_answer(s, nodes, "one")  # both keep serving their last good snapshot
            # node A accepts a push while Redis is down: active there, pending for the cluster
            write_doc(conf, mock_doc("two", "v2"))
            a.gp.signal(signal.SIGHUP)
            await wait_for(lambda: _eq(a.answer(s), "two"), 20)
            assert await b.answer(s) == "one"
            t0 = time.monotonic()
            start_redis()
            # on reconnect A stores its pending push (Redis is empty) and B catches up
            await wait_for(lambda: _all_answer(s, nodes, "two"), 45, 0.05)
            print(f"\nredis restart -> both nodes on the pending push after {time.monotonic() - t0:.1f} s")
            try:  # both nodes noticed the outage (logged when their subscription broke)
                await wait_for(lambda: "lost Redis" in a.gp.log_text() and "lost Redis" in b.gp.log_text(), 30)
            except AssertionError:
                raise AssertionError(f"'lost Redis' missing: node A log tail {a.gp.log_text()[-1200:]!r}; "
                                     f"node B log tail {b.gp.log_text()[-1200:]!r}") from None
            r = Redis.from_url(url)
            try:
                assert (await current_snapshot(r, prefix) or {}).get("version") == "v2"
                await store_snapshot(r, mock_doc("three", "v3"), "v3", prefix)
                t0 = time.monotonic()
                await wait_for(lambda: _all_answer(s, nodes, "three"), 15, 0.02)
                print(f"stored snapshot -> served by both nodes after {time.monotonic() - t0:.2f} s")
            finally:
                await r.aclose()
    finally:
        assert a.gp.stop() == 0
        assert b.gp.stop() == 0


async def test_node_started_while_redis_down_serves_file_then_catches_up(own_redis: tuple[str, Any, Any],
                                                                         tmp_path: Path) -> None:
    url, start_redis, stop_redis = own_redis
    r = Redis.from_url(url)
    await store_snapshot(r, mock_doc("cluster", "c1"), "c1", "gw")
    await r.aclose()
    stop_redis()
    conf = tmp_path / "a.json"
    write_doc(conf, mock_doc("file", "f1"))
    a = Node(url, "gw", conf)
    try:
        async with aiohttp.ClientSession() as s:
            assert await wait_for(lambda: a.version(s), 20) == "f1"
            assert await a.answer(s) == "file"
            start_redis()  # came back empty: the node seeds it with its snapshot
            r = Redis.from_url(url)
            try:
                await wait_for(lambda: _version_in_redis(r), 45)
                assert await _version_in_redis(r) == "f1"
                await store_snapshot(r, mock_doc("cluster2", "c2"), "c2", "gw")
                await wait_for(lambda: _eq(a.answer(s), "cluster2"), 15, 0.02)
            finally:
                await r.aclose()
    finally:
        assert a.gp.stop() == 0


async def _version_in_redis(r: Redis) -> str | None:
    try:
        cur = await current_snapshot(r, "gw")
    except Exception:
        return None
    return str(cur["version"]) if cur else None


async def _eq(coro: Any, expected: Any) -> bool:
    return bool(await coro == expected)


async def test_100_pushes_across_two_nodes_under_traffic(redis_url: str) -> None:
    """100 snapshots stored in Redis while a client streams requests at two real gateway processes:
    no request fails, and each node's answers only move forward through the pushed versions."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    r = Redis.from_url(redis_url)
    await store_snapshot(r, mock_doc("m0", "v0"), "v0", prefix)
    nodes = [Node(redis_url, prefix), Node(redis_url, prefix)]
    pushes = 100
    stats = {"requests": 0, "failed": 0, "backwards": 0, "unknown": 0}
    try:
        async with aiohttp.ClientSession() as s:
            for n in nodes:
                assert await wait_for(lambda n=n: n.version(s), 15) == "v0"
            done = asyncio.Event()

            async def stream(node: Node) -> None:
                last = 0
                while not done.is_set():
                    status, body = await get_json(s, node.url)
                    stats["requests"] += 1
                    if status != 200 or not isinstance(body, str) or not body.startswith("m"):
                        stats["failed"] += 1
                        continue
                    got = int(body[1:])
                    if got < last:
                        stats["backwards"] += 1
                    if got > pushes:
                        stats["unknown"] += 1
                    last = got

            clients = [asyncio.create_task(stream(n)) for n in nodes]
            t0 = time.monotonic()
            for i in range(1, pushes + 1):
                await store_snapshot(r, mock_doc(f"m{i}", f"v{i}"), f"v{i}", prefix)
                await asyncio.sleep(0.02)
            await wait_for(lambda: _all_answer(s, nodes, f"m{pushes}"), 2.0, 0.02)
            elapsed = time.monotonic() - t0
            done.set()
            await asyncio.gather(*clients)
        print(f"\nredis 100-push: {pushes} pushes in {elapsed:.2f} s to 2 nodes, {stats['requests']} requests, "
              f"{stats['failed']} failed, {stats['backwards']} went backwards, {stats['unknown']} unknown")
        assert stats["requests"] > 100
        assert stats == {"requests": stats["requests"], "failed": 0, "backwards": 0, "unknown": 0}
    finally:
        for n in nodes:
            assert n.gp.stop() == 0
        await r.aclose()
