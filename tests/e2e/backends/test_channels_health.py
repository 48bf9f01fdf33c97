"""VPC channels: active health checks, passive ejection, killing a member under load, config swaps."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.support.channels_helpers import NamedBackend, channel, channel_api, start_backends, tcp_check
from tests.support.helpers import snapshot


@pytest.fixture
async def backends() -> AsyncIterator[list[NamedBackend]]:
    started = await start_backends("a", "b", "c")
    yield started
    for b in started:
        await b.stop()


async def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def load(client: aiohttp.ClientSession, url: str, seconds: float, workers: int,
               during: Callable[[], Awaitable[None]] | None = None) -> tuple[Counter[str], list[str]]:
    """Closed-loop load: returns (member name counts, error descriptions)."""
    seen: Counter[str] = Counter()
    errors: list[str] = []
    stop = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop:
            try:
                async with client.get(url) as r:
                    if r.status == 200:
                        seen[(await r.json())["name"]] += 1
                    else:
                        errors.append(f"{r.status} {await r.text()}")
            except aiohttp.ClientError as exc:
                errors.append(repr(exc))

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    if during is not None:
        await during()
    await asyncio.gather(*tasks)
    return seen, errors


async def test_kill_member_under_load_then_health_check_brings_it_back(
        make_gateway: Any, client: aiohttp.ClientSession, backends: list[NamedBackend]) -> None:
    b = backends[1]
    doc = snapshot([channel_api("a1", "/load", "ch1")],
                   vpc_channels=[channel("ch1", backends, health=tcp_check(interval=2, timeout=1))])
    gw = await make_gateway(doc)
    manager = gw.gw.services.extras["channels"]

    async def kill_b() -> None:
        await asyncio.sleep(0.8)
        await b.stop()

    seen, errors = await load(client, gw.url + "/load", 2.5, 6, kill_b)
    total = sum(seen.values()) + len(errors)
    hits_while_down = b.hits
    print(f"\nkill-member load: {total} requests, {len(errors)} errors, per member {dict(seen)}, "
          f"retries moved to healthy members")
    assert errors == []  # GET retries once, on another member; the dead one is ejected at its first failure
    assert seen["a"] > 0 and seen["c"] > 0
    state = manager.states[("ch1", "127.0.0.1", b.port)]
    assert not state.usable(time.monotonic())
    # b comes back: the TCP health check (interval 2 s, threshold_normal 1) readmits it
    await b.start()
    waited = await wait_for(lambda: state.usable(time.monotonic()), timeout=20)
    print(f"member readmitted {waited:.2f} s after restart")
    seen2, errors2 = await load(client, gw.url + "/load", 0.5, 3)
    assert errors2 == []
    assert b.hits > hits_while_down and seen2["b"] > 0


async def test_http_health_check_codes(make_gateway: Any, client: aiohttp.ClientSession,
                                       backends: list[NamedBackend]) -> None:
    a, b, _ = backends
    health = {"protocol": "HTTP", "path": "/health", "method": "GET", "http_code": "200-204,299",
              "threshold_normal": 1, "threshold_abnormal": 1, "time_interval": 2, "timeout": 1}
    gw = await make_gateway(snapshot([channel_api("a1", "/hc", "ch1")],
                                     vpc_channels=[channel("ch1", [a, b], health=health)]))
    async with client.get(gw.url + "/hc") as r:  # the first selection starts the checkers
        assert r.status == 200
    await wait_for(lambda: a.health_hits > 0 and b.health_hits > 0)
    a.health_status = 503  # a still answers requests, but its health endpoint says no
    manager = gw.gw.services.extras["channels"]
    state_a = manager.states[("ch1", "127.0.0.1", a.port)]
    await wait_for(lambda: not state_a.healthy, timeout=20)
    before = a.hits
    for _ in range(10):
        async with client.get(gw.url + "/hc") as r:
            assert (await r.json())["name"] == "b"
    assert a.hits == before
    a.health_status = 299  # in "200-204,299"
    await wait_for(lambda: state_a.healthy, timeout=20)
    async with client.get(gw.url + "/hc") as r1, client.get(gw.url + "/hc") as r2:
        assert {(await r1.json())["name"], (await r2.json())["name"]} == {"a", "b"}


async def test_passive_ejection_without_health_config(make_gateway: Any, client: aiohttp.ClientSession,
                                                      backends: list[NamedBackend]) -> None:
    a, b, _ = backends
    gw = await make_gateway(snapshot([channel_api("a1", "/p", "ch1")], vpc_channels=[channel("ch1", [a, b])]),
                            channel_eject_s=1.0)
    await a.stop()
    for _ in range(6):
        async with client.get(gw.url + "/p") as r:
            assert r.status == 200
            assert (await r.json())["name"] == "b"
    await a.start()
    await asyncio.sleep(1.1)  # the ejection expires; a is tried again and succeeds
    got = Counter()
    for _ in range(6):
        async with client.get(gw.url + "/p") as r:
            got[(await r.json())["name"]] += 1
    assert got == {"a": 3, "b": 3}


async def test_swap_keeps_in_flight_requests_and_member_state(make_gateway: Any, client: aiohttp.ClientSession,
                                                              backends: list[NamedBackend]) -> None:
    a, b, c = backends
    check = tcp_check(interval=2, timeout=1)
    doc1 = snapshot([channel_api("a1", "/s", "ch1", timeout=10000)],
                    vpc_channels=[channel("ch1", [a, b], health=check)])
    gw = await make_gateway(doc1)
    manager = gw.gw.services.extras["channels"]
    async with client.get(gw.url + "/s") as r:
        assert r.status == 200
    await wait_for(lambda: len(manager.tasks) == 2)
    state_b = manager.states[("ch1", "127.0.0.1", b.port)]
    task_b = manager.tasks[("ch1", "127.0.0.1", b.port)][2]
    inflight = [asyncio.create_task(client.get(gw.url + "/s?delay=3.0")) for _ in range(4)]
    await wait_for(lambda: a.inflight + b.inflight == 4)
    assert a.inflight == 2 and b.inflight == 2
    # push: a removed, c added, b kept
    gw.gw.apply_document(snapshot([channel_api("a1", "/s", "ch1", timeout=10000)],
                                  vpc_channels=[channel("ch1", [b, c], health=check)]))
    for t in inflight:
        resp = await t
        assert resp.status == 200  # requests already at a finish there
        resp.release()
    assert manager.states[("ch1", "127.0.0.1", b.port)] is state_b
    assert ("ch1", "127.0.0.1", a.port) not in manager.states
    assert set(manager.tasks) == {("ch1", "127.0.0.1", b.port), ("ch1", "127.0.0.1", c.port)}
    assert manager.tasks[("ch1", "127.0.0.1", b.port)][2] is task_b  # unchanged check keeps running
    assert state_b.active == 0  # in-flight counts released on the kept state
    before_a = a.hits
    got = Counter()
    for _ in range(6):
        async with client.get(gw.url + "/s") as r:
            got[(await r.json())["name"]] += 1
    assert got == {"b": 3, "c": 3} and a.hits == before_a


async def test_repeated_swaps_under_load_drop_nothing(make_gateway: Any, client: aiohttp.ClientSession,
                                                      backends: list[NamedBackend]) -> None:
    a, b, c = backends
    check = tcp_check(interval=2, timeout=1)
    sets = [[a, b], [b, c], [a, c], [a, b, c]]

    def doc(i: int) -> dict[str, Any]:
        return snapshot([channel_api("a1", "/sw", "ch1")],
                        vpc_channels=[channel("ch1", sets[i % len(sets)], health=check, strategy=1 + i % 4)])

    gw = await make_gateway(doc(0))

    async def swaps() -> None:
        for i in range(1, 9):
            await asyncio.sleep(0.2)
            gw.gw.apply_document(doc(i))

    seen, errors = await load(client, gw.url + "/sw", 2.0, 4, swaps)
    assert errors == []
    assert set(seen) == {"a", "b", "c"}


async def test_health_state_survives_swap_and_tasks_stop_on_close(
        make_gateway: Any, client: aiohttp.ClientSession, backends: list[NamedBackend]) -> None:
    a, b, _ = backends
    health = {"protocol": "HTTP", "path": "/health", "http_code": "200", "threshold_normal": 1,
              "threshold_abnormal": 1, "time_interval": 2, "timeout": 1}
    b.health_status = 500
    gw = await make_gateway(snapshot([channel_api("a1", "/k", "ch1")],
                                     vpc_channels=[channel("ch1", [a, b], health=health)]))
    async with client.get(gw.url + "/k") as r:
        assert r.status == 200
    manager = gw.gw.services.extras["channels"]
    state_b = manager.states[("ch1", "127.0.0.1", b.port)]
    await wait_for(lambda: not state_b.healthy)
    # a push that changes an unrelated API keeps b's verdict (no flap back to healthy)
    gw.gw.apply_document(snapshot([channel_api("a1", "/k", "ch1"), channel_api("a2", "/k2", "ch1")],
                                  vpc_channels=[channel("ch1", [a, b], health=health)]))
    assert not manager.states[("ch1", "127.0.0.1", b.port)].healthy
    for _ in range(4):
        async with client.get(gw.url + "/k2") as r:
            assert (await r.json())["name"] == "a"
    # removing the health config readmits b at once (nothing checks it any more)
    gw.gw.apply_document(snapshot([channel_api("a1", "/k", "ch1")], vpc_channels=[channel("ch1", [a, b])]))
    assert manager.states[("ch1", "127.0.0.1", b.port)].healthy
    assert manager.tasks == {}
    gw.gw.apply_document(snapshot([channel_api("a1", "/k", "ch1")],
                                  vpc_channels=[channel("ch1", [a, b], health=health)]))
    tasks = [t for _s, _st, t in manager.tasks.values()]
    assert len(tasks) == 2
    await gw.gw.stop()
    assert all(t.done() for t in tasks) and manager.tasks == {}


async def test_admin_channel_health_route(make_gateway: Any, client: aiohttp.ClientSession,
                                          backends: list[NamedBackend]) -> None:
    a, b, _ = backends
    gw = await make_gateway(snapshot([channel_api("a1", "/ad", "ch1")],
                                     vpc_channels=[channel("ch1", [a, b], health=tcp_check())]))
    await b.stop()
    for _ in range(2):
        async with client.get(gw.url + "/ad") as r:
            assert r.status == 200
    async with aiohttp.ClientSession() as admin, admin.get(gw.admin_url + "/v1/channels/health") as r:
        rows = {row["port"]: row for row in (await r.json())["members"]}
    assert rows[a.port]["healthy"] is True and rows[a.port]["active_check"] is True
    assert rows[b.port]["healthy"] is False and rows[b.port]["ejections"] >= 1


async def test_checks_start_lazily_when_loaded_outside_the_loop(
        make_gateway: Any, client: aiohttp.ClientSession, backends: list[NamedBackend]) -> None:
    a, b, _ = backends
    gw = await make_gateway()
    doc = snapshot([channel_api("a1", "/lazy", "ch1")], vpc_channels=[channel("ch1", [a, b], health=tcp_check())])
    await asyncio.to_thread(gw.gw.apply_document, doc)  # like `gateway run --config`: no running loop there
    manager = gw.gw.services.extras["channels"]
    assert manager.tasks == {}
    async with client.get(gw.url + "/lazy") as r:
        assert r.status == 200
    assert len(manager.tasks) == 2
