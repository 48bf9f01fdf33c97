"""Redis outages: the gateway keeps answering per ``throttle_redis_failure`` and recovers by itself.

Each test starts its own redis-server (not the session one) so it can stop, freeze and restart it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port
from tests.support.helpers import mock_api, snapshot
from tests.support.redis_ha_helpers import warmed
from tests.support.throttle_helpers import binding, get, hammer, policy


class RedisProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is required"
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    r = RedisProcess()
    r.start()
    yield r
    r.stop()


def stats(gw: Any) -> dict[str, int]:
    result: dict[str, int] = gw.gw.services.extras["throttle_stats"]
    return result


async def wait_recovered(gws: list[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(g.gw.services.extras["throttle"].redis_up for g in gws):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not reconnect to Redis")


async def test_local_fallback_divides_limit_and_exact_limits_resume(
        make_gateway: Any, client: aiohttp.ClientSession, own_redis: RedisProcess) -> None:
    doc = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", 4, unit="HOUR")],
                   throttle_bindings=[binding("t1", "a1")])
    opts = {"redis_url": own_redis.url, "throttle_nodes": 2, "throttle_redis_probe_ms": 100,
            "throttle_key_prefix": uuid.uuid4().hex[:8]}
    g1, g2 = await make_gateway(doc, **opts), await make_gateway(doc, **opts)
    assert [(await get(client, g.url + "/a"))[0] for g in (g1, g2)] == [200, 200]
    own_redis.stop()
    # Redis is gone: each of the 2 nodes admits its share (4 // 2) from its in-process fallback store,
    # which has shadowed the node's Redis-admitted calls (1 each), so 1 call is left per node
    for g in (g1, g2):
        assert [(await get(client, g.url + "/a"))[0] for _ in range(3)] == [200, 429, 429]
        st = stats(g)
        assert st["redis_down_events"] == 1 and st["redis_fallbacks"] == 3 and st["redis_errors"] >= 1
        reasons = g.gw.services.extras["throttle_fallbacks"]  # what gateway.observe.metrics exports
        assert reasons["error"] == 1 and reasons["down"] == 2 and reasons["timeout"] == 0
    async with client.get(g1.admin_url + "/metrics") as resp:
        text = await resp.text()
    assert 'apig_throttle_fallbacks_total{reason="down"} 2.0' in text
    own_redis.start()  # a fresh, empty Redis on the same port
    await wait_recovered([g1, g2])
    # exact again, and the 2 calls the fallbacks admitted during the outage were added to the (empty) Redis
    # on recovery: 4 - 2 = 2 left across both nodes
    for g in (g1, g2):
        assert g.gw.services.extras["throttle"].gap_replays == 1
    statuses = [(await get(client, (g1, g2)[i % 2].url + "/a"))[0] for i in range(6)]
    assert statuses == [200, 200, 429, 429, 429, 429]
    assert stats(g1)["redis_recoveries"] == 1


async def test_no_5xx_when_redis_dies_under_load(make_gateway: Any, own_redis: RedisProcess) -> None:
    doc = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", 30)], throttle_bindings=[binding("t1", "a1")])
    opts = {"redis_url": own_redis.url, "throttle_nodes": 2, "throttle_redis_probe_ms": 100,
            "throttle_key_prefix": uuid.uuid4().hex[:8]}
    gws = [await make_gateway(doc, **opts) for _ in range(2)]
    urls = [g.url + "/a" for g in gws]

    async def outage() -> None:
        await asyncio.sleep(1.0)
        own_redis.stop()
        await asyncio.sleep(1.0)
        own_redis.start()

    (counts, _), _ = await asyncio.gather(hammer(urls, 3.5, 8), outage())
    assert set(counts) <= {200, 429}, counts
    assert counts[200] > 0 and counts[429] > 0
    await wait_recovered(gws)
    assert all(stats(g)["redis_fallbacks"] > 0 for g in gws)


@pytest.mark.parametrize("policy_name", ["open", "closed"])
async def test_open_and_closed_policies(make_gateway: Any, client: aiohttp.ClientSession, own_redis: RedisProcess,
                                        policy_name: str) -> None:
    doc = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", 1, unit="HOUR")],
                   throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, redis_url=own_redis.url, throttle_redis_failure=policy_name,
                            throttle_key_prefix=uuid.uuid4().hex[:8])
    await warmed([gw])  # a cold first call past the 50 ms deadline on a busy machine would be "closed" (429)
    assert (await get(client, gw.url + "/a"))[0] == 200
    own_redis.stop()
    results = [await get(client, gw.url + "/a") for _ in range(3)]
    if policy_name == "open":
        assert [r[0] for r in results] == [200, 200, 200]
    else:
        assert [r[0] for r in results] == [429, 429, 429]
        _, headers, body = results[0]
        assert body["error_code"] == "APIG.0308"
        assert body["error_msg"] == "The throttling threshold has been reached: throttling store unavailable"
        assert headers["Retry-After"] == "1"
    assert stats(gw)["redis_fallbacks"] == 3


async def test_hung_redis_never_holds_a_request_past_the_deadline(
        make_gateway: Any, client: aiohttp.ClientSession, own_redis: RedisProcess) -> None:
    doc = snapshot([mock_api("a1", "/a")], throttles=[policy("t1", 100, unit="HOUR")],
                   throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, redis_url=own_redis.url, throttle_redis_timeout_ms=50, throttle_redis_probe_ms=100,
                            throttle_key_prefix=uuid.uuid4().hex[:8])
    await warmed([gw])
    assert (await get(client, gw.url + "/a"))[0] == 200
    # counted from here: on a busy machine the call above may itself have missed the 50 ms deadline
    before = dict(stats(gw))
    own_redis.freeze()  # accepts nothing, answers nothing: the worst kind of slow
    try:
        took = []
        while stats(gw)["redis_down_events"] == 0 and len(took) < 20:
            t0 = time.perf_counter()
            status, _, _ = await get(client, gw.url + "/a")
            took.append(time.perf_counter() - t0)
            assert status == 200  # decided by the local fallback
        st = stats(gw)
        assert st["redis_down_events"] == 1, st  # persistent timeouts (>= 3 over >= 200 ms) mark it down
        assert st["redis_timeouts"] - before["redis_timeouts"] == len(took), (st, before)
        assert st["redis_fallbacks"] - before["redis_fallbacks"] == len(took), (st, before)
        # 50 ms deadline: far below "forever" (Redis is frozen), with slack for a busy 2-core machine
        assert max(took) < 2.0, took
        timeouts = st["redis_timeouts"]
        for _ in range(3):  # marked down: Redis is not even asked (no timeout, no waiting)
            t0 = time.perf_counter()
            assert (await get(client, gw.url + "/a"))[0] == 200
            assert time.perf_counter() - t0 < 2.0
        assert stats(gw)["redis_timeouts"] == timeouts
    finally:
        own_redis.thaw()
    await wait_recovered([gw])
    assert (await get(client, gw.url + "/a"))[0] == 200
    assert stats(gw)["decisions_redis"] >= 2
