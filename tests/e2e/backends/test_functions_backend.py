"""FUNCTION backends end to end: real gateway, real client, in-process handlers and a real HTTP endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest

from gateway.backends.invokers import base_urn, candidate_urns
from gateway.compiler import build_runtime
from gateway.core.errors import SnapshotError
from gateway.core.settings import load_settings
from gateway.model.services import Services
from tests.support import functions_helpers as fh
from tests.support.functions_helpers import (
    func_api,
    function,
    urn,
)
from tests.support.helpers import snapshot


@pytest.fixture(autouse=True)
def _reset() -> None:
    fh.reset()


def doc_with(apis: list[dict[str, Any]], functions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return snapshot(apis, functions=functions, **extra)


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(SnapshotError) as info:
        build_runtime(doc, Services(load_settings({}, environ={})))
    return info.value.problems


async def test_sync_event_shape_and_response(make_gateway, client) -> None:
    doc = doc_with([func_api("f1", "/fn/items/{id}", urn("echo"))], [function(urn("echo"), "echo")])
    gw = await make_gateway(doc)
    body = b'{"hello": "world"}'
    async with client.post(f"{gw.url}/fn/items/42?a=1&a=2&b=x%20y", data=body,
                           headers={"X-Custom": "one", "Content-Type": "application/json"}) as r:
        assert r.status == 200
        assert r.headers["X-Fn"] == "echo"
        assert r.headers["Content-Type"] == "application/json"
        rid = r.headers["X-Request-Id"]
        assert int(r.headers["X-Remaining"]) > 0  # the handler's context knows its deadline
        event = await r.json()
    assert event["httpMethod"] == "POST"
    assert event["path"] == "/fn/items/42"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"a": "1", "b": "x y"}
    assert event["headers"]["x-custom"] == "one"
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["host"] == "api.test.local"
    assert event["headers"]["x-request-id"] == rid
    assert all(k == k.lower() for k in event["headers"])
    assert event["isBase64Encoded"] is True  # the vendor's default
    assert base64.b64decode(event["body"]) == body
    assert event["requestContext"] == {"apiId": "f1", "requestId": rid, "stage": "RELEASE", "sourceIp": "127.0.0.1"}
    assert "user_data" not in event


async def test_body_not_base64_when_switched_off(make_gateway, client) -> None:
    doc = doc_with([func_api("f1", "/fn", urn("echo"), is_send_fg_body_base64=False)], [function(urn("echo"), "echo")])
    gw = await make_gateway(doc)
    async with client.put(f"{gw.url}/fn", data="plain text ü".encode()) as r:
        event = await r.json()
    assert event["isBase64Encoded"] is False
    assert event["body"] == "plain text ü"
    # bytes that are not UTF-8 cannot travel as a JSON string: they are sent as Base64 and flagged
    async with client.put(f"{gw.url}/fn", data=b"\xff\xfe\x00") as r:
        event = await r.json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"


async def test_async_handler_status_and_multi_headers(make_gateway, client) -> None:
    doc = doc_with([func_api("f1", "/fn", urn("aecho"), method="GET")], [function(urn("aecho"), "aecho")])
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/fn") as r:
        assert r.status == 201
        assert r.headers.getall("X-Multi") == ["a", "b"]
        assert r.headers["Content-Type"] == "application/json"  # sniffed: the body is JSON
        event = await r.json()
    assert event["body"] == "" and event["httpMethod"] == "GET"
    assert fh.CALLS["aecho"] == 1


async def test_result_shapes(make_gateway, client) -> None:
    doc = doc_with([func_api("f1", "/fn", urn("shaped"))], [function(urn("shaped"), "shaped")])
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/fn?shape=binary") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
        assert await r.read() == b"\x89PNG\x00\xff"
    async with client.get(f"{gw.url}/fn?shape=text") as r:
        assert r.status == 418 and r.headers["Content-Type"].startswith("text/plain")
        assert await r.text() == "short and stout"
    for shape, words in (("string", "got str"), ("nostatus", "statusCode"), ("badb64", "Base64"),
                         ("bodyobj", "body must be a string")):
        async with client.get(f"{gw.url}/fn?shape={shape}") as r:
            assert r.status == 500, shape
            err = await r.json()
            assert err["error_code"] == "APIG.0601"
            assert "invalid function response" in err["error_msg"] and words in err["error_msg"]
            assert r.headers["X-Request-Id"] == err["request_id"]


async def test_function_error_is_backend_unavailable_without_details(make_gateway, client) -> None:
    doc = doc_with([func_api("f1", "/fn", urn("shaped"))], [function(urn("shaped"), "shaped")])
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/fn?shape=raise") as r:
        assert r.status == 502
        err = await r.json()
    assert err["error_code"] == "APIG.0202"
    assert "function raised RuntimeError" in err["error_msg"]
    assert "hunter2" not in json.dumps(err)


@pytest.mark.parametrize("handler", ["sleepy", "asleepy"])
async def test_timeout(make_gateway, client, handler: str) -> None:
    doc = doc_with([func_api("f1", "/fn", urn(handler), timeout=200)], [function(urn(handler), handler)])
    gw = await make_gateway(doc)
    t0 = time.monotonic()
    async with client.get(f"{gw.url}/fn?s=2.0") as r:
        assert r.status == 504
        err = await r.json()
    assert time.monotonic() - t0 < 1.8  # answered at the 200 ms deadline, not after the 2 s call
    assert err["error_code"] == "APIG.0203" and "200 ms" in err["error_msg"]


async def test_function_record_timeout_bounds_the_call(make_gateway, client) -> None:
    doc = doc_with([func_api("f1", "/fn", urn("asleepy"), timeout=5000)],
                   [function(urn("asleepy"), "asleepy", timeout=150)])
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/fn?s=0.6") as r:
        assert r.status == 504
        assert "150 ms" in (await r.json())["error_msg"]


async def test_async_invocation_answers_at_once(make_gateway, client) -> None:
    doc = doc_with([func_api("f1", "/fn", urn("asleepy"), invocation_type="async")],
                   [function(urn("asleepy"), "asleepy")])
    gw = await make_gateway(doc)
    t0 = time.monotonic()
    async with client.post(f"{gw.url}/fn?s=2.0", data=b"payload") as r:
        assert r.status == 202
        assert await r.json() == {"request_id": r.headers["X-Request-Id"]}
    assert time.monotonic() - t0 < 1.8  # at once, not after the 2 s call
    for _ in range(1000):  # the call runs in the background (up to 20 s on a busy machine)
        if fh.CALLS["asleepy"]:
            break
        await asyncio.sleep(0.02)
    assert fh.CALLS["asleepy"] == 1
    assert base64.b64decode(fh.EVENTS[0]["body"]) == b"payload"


async def test_async_invocations_are_bounded(make_gateway, client) -> None:
    doc = doc_with([func_api("f1", "/fn", urn("asleepy"), invocation_type="async")],
                   [function(urn("asleepy"), "asleepy")])
    gw = await make_gateway(doc, function_max_pending_async=2)
    statuses = []
    for _ in range(3):
        async with client.get(f"{gw.url}/fn?s=0.5") as r:
            statuses.append(r.status)
            if r.status != 202:
                assert (await r.json())["error_code"] == "APIG.0202"
    assert statuses == [202, 202, 502]


async def test_http_function_endpoint(make_gateway, client, fn_server) -> None:
    ep, base = fn_server
    url = base + "/invoke"
    doc = doc_with([func_api("f1", "/fn", urn("remote"), timeout=300)], [function(urn("remote"), url=url)])
    gw = await make_gateway(doc)
    async with client.delete(f"{gw.url}/fn?q=1", headers={"X-Thing": "t"}) as r:
        assert r.status == 200 and r.headers["X-Fn"] == "http"
        assert await r.json() == {"via": "http", "method": "DELETE", "path": "/fn"}
        rid = r.headers["X-Request-Id"]
    event = ep.events[-1]
    assert event["headers"]["x-thing"] == "t" and event["queryStringParameters"] == {"q": "1"}
    assert ep.request_headers[-1]["X-Request-Id"] == rid
    assert ep.request_headers[-1]["X-Function-Urn"] == urn("remote")

    ep.status = 500
    async with client.get(f"{gw.url}/fn") as r:
        assert r.status == 502 and "HTTP 500" in (await r.json())["error_msg"]
    ep.status, ep.raw = 200, b"<html>"
    async with client.get(f"{gw.url}/fn") as r:
        assert r.status == 502 and "not JSON" in (await r.json())["error_msg"]
    ep.raw, ep.answer = None, "bare string"
    async with client.get(f"{gw.url}/fn") as r:
        assert r.status == 500 and (await r.json())["error_code"] == "APIG.0601"
    ep.answer, ep.delay = None, 0.6
    async with client.get(f"{gw.url}/fn") as r:
        assert r.status == 504 and (await r.json())["error_code"] == "APIG.0203"


async def test_http_function_endpoint_down(make_gateway, client) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/x"
    doc = doc_with([func_api("f1", "/fn", urn("remote"))], [function(urn("remote"), url=url)])
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/fn") as r:
        assert r.status == 502
        assert "unreachable" in (await r.json())["error_msg"]


async def test_urn_matching_version_and_alias(make_gateway, client) -> None:
    base = urn("multi")
    fns = [function(base, "base_fn"), function(f"{base}:v1", "version_one")]
    apis = [
        func_api("a1", "/exact", base),
        func_api("a2", "/version", base, func_extra={"version": "v1"}),
        func_api("a3", "/unknown-version", base, func_extra={"version": "v9"}),  # falls back to the base URN
        func_api("a4", "/alias", base, func_extra={"version": "v9", "alias_urn": f"{base}:v1"}),  # alias wins
        func_api("a5", "/qualified", f"{base}:prod"),  # qualified URN -> base
    ]
    gw = await make_gateway(doc_with(apis, fns))
    want = {"/exact": "base_fn", "/version": "version_one", "/unknown-version": "base_fn", "/alias": "version_one",
            "/qualified": "base_fn"}
    for path, name in want.items():
        async with client.get(f"{gw.url}{path}") as r:
            assert r.status == 200, path
            assert (await r.json())["function"] == name, path


def test_urn_candidates() -> None:
    base = urn("f")
    assert base_urn(base) is None
    assert base_urn(base + ":latest") == base
    assert base_urn("local:echo") is None and base_urn("local:echo:v2") == "local:echo"
    assert candidate_urns(base, "v1", base + ":prod") == [base + ":prod", base + ":v1", base]


async def test_policy_function_backend(make_gateway, client) -> None:
    """policy_functions plans go through the same target builder."""
    policy = {"name": "post_to_aecho", "effect_mode": "ANY", "function_urn": urn("aecho"),
              "invocation_type": "sync", "timeout": 2000,
              "conditions": [{"condition_origin": "system", "sys_param_name": "req_method",
                              "condition_type": "exact", "condition_value": "POST"}]}
    api = func_api("f1", "/fn", urn("echo"), policy_functions=[policy])
    gw = await make_gateway(doc_with([api], [function(urn("echo"), "echo"), function(urn("aecho"), "aecho")]))
    async with client.get(f"{gw.url}/fn") as r:
        assert r.status == 200 and r.headers["X-Fn"] == "echo"
    async with client.post(f"{gw.url}/fn", data=b"x") as r:
        assert r.status == 201 and r.headers["X-Fn"] == "aecho"


def test_config_problems() -> None:
    fns = [
        {"function_urn": "u:both", "entry": f"{fh.PKG}:echo", "url": "http://x/"},
        {"function_urn": "u:none"},
        {"function_urn": "u:missing", "entry": "no_such_module_xyz:handler"},
        {"function_urn": "u:noattr", "entry": f"{fh.PKG}:nope"},
        {"function_urn": "u:notcallable", "entry": f"{fh.PKG}:PKG"},
    ]
    apis = [func_api("f1", "/fn", urn("ghost")),
            func_api("f2", "/fn2", urn("echo"), func_extra={"timeout": 0})]
    problems = problems_of(doc_with(apis, [*fns, function(urn("echo"), "echo")]))
    text = "\n".join(problems)
    assert "functions[0]: exactly one of entry or url is required" in text
    assert "functions[1]: exactly one of entry or url is required" in text
    assert "functions[2].entry: cannot import module 'no_such_module_xyz'" in text
    assert f"functions[3].entry: module '{fh.PKG}' has no attribute 'nope'" in text
    assert "functions[4].entry:" in text and "is not callable" in text
    assert f"apis[0].func_info.function_urn: unknown function '{urn('ghost')}'" in text
    assert "apis[1].func_info.timeout: must be 1..600000" in text
