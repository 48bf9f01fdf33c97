"""breaker plug-in end to end: a real failing echo backend opens, downgrades and recovers the circuit."""

from __future__ import annotations

import asyncio

from tests.support.helpers import http_api, snapshot
from tests.support.plugins_helpers import bind, plugin


def breaker(cond: dict, **extra: object) -> dict:
    return {"breaker_condition": {"time_window": 10, "open_breaker_time": 1, **cond}, "scope": "basic", **extra}


async def test_condition_breaker_opens_rejects_and_recovers(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    content = breaker({"breaker_type": "condition", "breaker_mode": "counter", "unhealthy_condition": "status >= 500",
                       "unhealthy_threshold": 3})
    doc = snapshot([http_api("a", "/a", addr), http_api("other", "/other", addr)],
                   plugins=[plugin("br", "breaker", content)], plugin_bindings=[bind("b", "br", "a")])
    gw = await make_gateway(doc)
    backend.status = 500
    for _ in range(3):
        async with client.get(gw.url + "/a") as r:
            assert r.status == 500  # the backend's own answer, counted as a failure
    assert backend.hits == 3
    async with client.get(gw.url + "/a") as r:
        assert r.status == 503
        body = await r.json()
        assert body["error_code"] == "APIG.0202" and "circuit breaker" in body["error_msg"]
    assert backend.hits == 3  # open: the backend is not called
    async with client.get(gw.url + "/other") as r:
        assert r.status == 500  # another API (no plug-in) is unaffected
    # the open circuit survives a config swap (state keyed by plug-in id, API and environment)
    gw.gw.apply_document(doc)
    async with client.get(gw.url + "/a") as r:
        assert r.status == 503
    backend.status = 200
    await asyncio.sleep(1.1)  # open_breaker_time: one trial goes through, succeeds, closes the circuit
    hits = backend.hits
    async with client.get(gw.url + "/a") as r:
        assert r.status == 200
    for _ in range(3):
        async with client.get(gw.url + "/a") as r:
            assert r.status == 200
    assert backend.hits == hits + 4


async def test_failed_trial_reopens(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    content = breaker({"breaker_type": "condition", "unhealthy_condition": "500,502", "unhealthy_threshold": 1})
    gw = await make_gateway(snapshot([http_api("a", "/a", addr)], plugins=[plugin("br", "breaker", content)],
                                     plugin_bindings=[bind("b", "br", "a")]))
    backend.status = 502
    async with client.get(gw.url + "/a") as r:
        assert r.status == 502
    async with client.get(gw.url + "/a") as r:
        assert r.status == 503
    await asyncio.sleep(1.1)
    async with client.get(gw.url + "/a") as r:
        assert r.status == 502  # the trial reached the backend and failed
    async with client.get(gw.url + "/a") as r:
        assert r.status == 503  # open again
    assert backend.hits == 2


async def test_timeout_breaker_with_mock_downgrade(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    content = breaker({"breaker_type": "timeout", "unhealthy_threshold": 2},
                      downgrade_default={"type": "mock", "mock_info": {"status_code": 200,
                                                                       "result_content": '{"fallback": true}',
                                                                       "headers": [{"key": "X-Fallback",
                                                                                    "value": "1"}]}})
    gw = await make_gateway(snapshot([http_api("s", "/s", addr, timeout=200, retry_count="0")],
                                     plugins=[plugin("br", "breaker", content)],
                                     plugin_bindings=[bind("b", "br", "s")]))
    backend.delay = 0.5
    for _ in range(2):
        async with client.get(gw.url + "/s") as r:
            assert r.status == 504
    async with client.get(gw.url + "/s") as r:
        assert r.status == 200 and r.headers["X-Fallback"] == "1"
        assert await r.json() == {"fallback": True}
    assert backend.hits == 2


async def test_percentage_mode(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    content = breaker({"breaker_type": "condition", "breaker_mode": "percentage",
                       "unhealthy_condition": "status in 500", "min_call_threshold": 4, "unhealthy_percentage": 50})
    gw = await make_gateway(snapshot([http_api("a", "/a", addr)], plugins=[plugin("br", "breaker", content)],
                                     plugin_bindings=[bind("b", "br", "a")]))
    for status in (200, 500, 200):
        backend.status = status
        async with client.get(gw.url + "/a") as r:
            assert r.status == status
    backend.status = 500
    async with client.get(gw.url + "/a") as r:
        assert r.status == 500  # 4 calls, 2 failed = 50 %: opens now
    async with client.get(gw.url + "/a") as r:
        assert r.status == 503
    assert backend.hits == 4
