"""Custom authorizers end to end: real gateway, real echo backend, in-process and HTTP authorizer functions."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from gateway.compiler import build_runtime
from gateway.core.errors import SnapshotError
from gateway.core.settings import load_settings
from gateway.model.services import Services
from tests.support import functions_helpers as fh
from tests.support.functions_helpers import (
    authorizer_record,
    func_api,
    function,
    urn,
)
from tests.support.helpers import http_api, mock_api, snapshot


@pytest.fixture(autouse=True)
def _reset() -> None:
    fh.reset()

AUTH_URN = urn("authorizer")
BACKEND_AUTH_URN = urn("backend_authorizer")
USER_PARAMS = [
    {"name": "X-User", "location": "HEADER", "origin": "SYSTEM", "value": "$context.authorizer.frontend.user"},
    {"name": "X-Level", "location": "HEADER", "origin": "SYSTEM", "value": "$context.authorizer.frontend.level"},
    {"name": "X-Admin", "location": "HEADER", "origin": "SYSTEM", "value": "$context.authorizer.frontend.admin"},
    {"name": "X-Data", "location": "HEADER", "origin": "SYSTEM", "value": "$context.authorizer.frontend.data"},
]


def secured(backend: str, auth: dict[str, Any], *, uri: str = "/secure", **extra: Any) -> dict[str, Any]:
    api = http_api("sec", uri, backend, auth_type="AUTHORIZER", authorizer_id=auth["id"],
                   backend_params=USER_PARAMS, **extra)
    return snapshot([api], functions=[function(AUTH_URN, "authorizer"), function(BACKEND_AUTH_URN,
                                                                                 "backend_authorizer")],
                    authorizers=[auth])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_allow_context_reaches_backend(make_gateway, client, echo_backend) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN, user_data="ud-1")))
    async with client.get(f"{gw.url}/secure?x=1", headers=bearer("good")) as r:
        assert r.status == 200
        seen = await r.json()
    h = seen["headers"]
    assert h["X-User"] == "alice-good" and h["X-Level"] == "3" and h["X-Admin"] == "true" and h["X-Data"] == "ud-1"
    event = fh.EVENTS[-1]
    assert event["user_data"] == "ud-1"
    assert event["headers"]["authorization"] == "Bearer good"
    assert event["queryStringParameters"] == {"x": "1"}
    assert event["httpMethod"] == "GET" and event["path"] == "/secure"
    assert event["requestContext"]["apiId"] == "sec"
    assert "body" not in event  # need_body is off


async def test_deny_is_authorizer_failure(make_gateway, client, echo_backend) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN)))
    async with client.get(f"{gw.url}/secure", headers=bearer("bad")) as r:
        assert r.status == 500
        err = await r.json()
    assert err["error_code"] == "APIG.0305"
    assert err["error_msg"] == "Incorrect authentication information: frontend authorizer"
    assert backend.hits == 0


async def test_deny_status_can_be_remapped_by_group_response(make_gateway, client, echo_backend) -> None:
    _backend, addr = echo_backend
    doc = secured(addr, authorizer_record("az", AUTH_URN))
    doc["responses"] = [{"id": "r1", "name": "resp", "responses": {"AUTHORIZER_FAILURE": {"status": 403}}}]
    doc["groups"][0]["response_id"] = "r1"
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/secure", headers=bearer("bad")) as r:
        assert r.status == 403


async def test_identity_sources(make_gateway, client, echo_backend) -> None:
    _backend, addr = echo_backend
    auth = authorizer_record("az", AUTH_URN, identities=[
        {"name": "Authorization", "location": "HEADER", "validation": r"Bearer [a-z]+"},
        {"name": "tenant", "location": "QUERY"},
    ])
    gw = await make_gateway(secured(addr, auth))
    cases = [({}, "?tenant=t1", "Authorization is missing"),
             (bearer("good"), "", "tenant is missing"),
             (bearer("BAD-1"), "?tenant=t1", "Authorization is invalid"),
             ({"authorization": ""}, "?tenant=t1", "Authorization is missing")]
    for headers, qs, words in cases:
        async with client.get(f"{gw.url}/secure{qs}", headers=headers) as r:
            assert r.status == 401
            err = await r.json()
            assert err["error_code"] == "APIG.0305" and words in err["error_msg"]
    assert sum(fh.CALLS.values()) == 0  # the function is never called for identity failures
    async with client.get(f"{gw.url}/secure?tenant=t1", headers={"authorization": "Bearer good"}) as r:
        assert r.status == 200


@pytest.mark.parametrize(("token", "words"), [
    ("boom", "call failed: function raised ValueError"),
    ("status", "answered statusCode 403"),
    ("junk", "answer body is not JSON"),
    ("nested", "context value of a must be"),
    ("slow", "did not answer within 100 ms"),
])
async def test_function_problems_are_conf_failures(make_gateway, client, echo_backend, token: str,
                                                   words: str) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN, timeout=100)))
    async with client.get(f"{gw.url}/secure", headers=bearer(token)) as r:
        assert r.status == 500
        err = await r.json()
    assert err["error_code"] == "APIG.0601"
    assert err["error_msg"].startswith("Internal server error: frontend authorizer") and words in err["error_msg"]
    assert "crashed" not in err["error_msg"]
    assert backend.hits == 0


async def test_retry_count_retries_failures(make_gateway, client, echo_backend) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN, retry_count=2)))
    async with client.get(f"{gw.url}/secure", headers=bearer("boom")) as r:
        assert r.status == 500
    assert fh.CALLS["auth:boom"] == 3


async def test_cache_by_identity_values(make_gateway, client, echo_backend) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN, ttl=60)))
    for _ in range(3):
        async with client.get(f"{gw.url}/secure", headers=bearer("good1")) as r:
            assert r.status == 200
            assert (await r.json())["headers"]["X-User"] == "alice-good1"
    async with client.get(f"{gw.url}/secure", headers=bearer("good2")) as r:
        assert (await r.json())["headers"]["X-User"] == "alice-good2"
    for _ in range(2):  # deny decisions are cached too
        async with client.get(f"{gw.url}/secure", headers=bearer("bad")) as r:
            assert r.status == 500
    assert fh.CALLS["auth:good1"] == 1 and fh.CALLS["auth:good2"] == 1 and fh.CALLS["auth:bad"] == 1
    for _ in range(2):  # errors are not cached
        async with client.get(f"{gw.url}/secure", headers=bearer("boom")) as r:
            assert r.status == 500
    assert fh.CALLS["auth:boom"] == 2


async def test_cache_expires_and_ttl_zero_never_caches(make_gateway, client, echo_backend) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN, ttl=0)))
    for _ in range(3):
        async with client.get(f"{gw.url}/secure", headers=bearer("good")) as r:
            assert r.status == 200
    assert fh.CALLS["auth:good"] == 3
    # a new snapshot with ttl 1: cached, then expired (the changed authorizer does not reuse old entries)
    gw.gw.apply_document(secured(addr, authorizer_record("az", AUTH_URN, ttl=1)))
    for _ in range(2):
        async with client.get(f"{gw.url}/secure", headers=bearer("good")) as r:
            assert r.status == 200
    assert fh.CALLS["auth:good"] == 4
    await asyncio.sleep(1.1)
    async with client.get(f"{gw.url}/secure", headers=bearer("good")) as r:
        assert r.status == 200
    assert fh.CALLS["auth:good"] == 5


async def test_concurrent_misses_share_one_call(make_gateway, client, echo_backend) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN, ttl=60)))

    async def one() -> str:
        async with client.get(f"{gw.url}/secure", headers=bearer("slow")) as r:
            assert r.status == 200
            return str((await r.json())["headers"]["X-User"])

    users = await asyncio.gather(*(one() for _ in range(5)))
    assert users == ["slowpoke"] * 5
    assert fh.CALLS["auth:slow"] == 1


async def test_need_body(make_gateway, client, echo_backend) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN, need_body=True), method="POST"))
    async with client.post(f"{gw.url}/secure", headers=bearer("good"), data=b"the body") as r:
        assert r.status == 200
        assert (await r.json())["body"] == "the body"  # the backend still gets the body
    event = fh.EVENTS[-1]
    assert event["isBase64Encoded"] is True
    import base64
    assert base64.b64decode(event["body"]) == b"the body"


async def test_http_endpoint_authorizer(make_gateway, client, echo_backend, fn_server) -> None:
    _backend, addr = echo_backend
    ep, base = fn_server
    url = base + "/authorize"
    ep.answer = {"statusCode": 200, "body": json.dumps({"status": "allow", "context": {"user": "remote"}})}
    doc = secured(addr, authorizer_record("az", urn("remote_auth")))
    doc["functions"].append(function(urn("remote_auth"), url=url))
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/secure", headers=bearer("whatever")) as r:
        assert r.status == 200 and (await r.json())["headers"]["X-User"] == "remote"
    assert ep.events[-1]["headers"]["authorization"] == "Bearer whatever"
    ep.status = 503
    async with client.get(f"{gw.url}/secure", headers=bearer("whatever")) as r:
        assert r.status == 500
        assert "function endpoint answered HTTP 503" in (await r.json())["error_msg"]


async def test_frontend_context_reaches_function_backend(make_gateway, client) -> None:
    api = func_api("fsec", "/fn", urn("echo"), auth_type="AUTHORIZER", authorizer_id="az",
                   backend_params=USER_PARAMS[:1])
    doc = snapshot([api], functions=[function(AUTH_URN, "authorizer"), function(urn("echo"), "echo")],
                   authorizers=[authorizer_record("az", AUTH_URN)])
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/fn", headers=bearer("good")) as r:
        assert r.status == 200
        assert (await r.json())["headers"]["x-user"] == "alice-good"


async def test_backend_authorizer(make_gateway, client, echo_backend) -> None:
    backend, addr = echo_backend
    params = [{"name": "X-Backend-Token", "location": "HEADER", "origin": "SYSTEM",
               "value": "$context.authorizer.backend.token"}]
    api = http_api("b1", "/b", addr, backend_params=params)
    api["backend_api"]["authorizer_id"] = "baz"
    mock = mock_api("m1", "/m", '{"ok": true}')
    mock["mock_info"]["authorizer_id"] = "baz"
    doc = snapshot([api, mock], functions=[function(BACKEND_AUTH_URN, "backend_authorizer")],
                   authorizers=[authorizer_record("baz", BACKEND_AUTH_URN, kind="BACKEND", identities=[],
                                                  user_data="secret-ud")])
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/b") as r:
        assert r.status == 200
        assert (await r.json())["headers"]["X-Backend-Token"] == "backend-secret-ud"
    async with client.get(f"{gw.url}/b", headers={"X-Deny": "1"}) as r:
        assert r.status == 500
        assert (await r.json())["error_msg"] == "Incorrect authentication information: backend authorizer"
    assert backend.hits == 1
    async with client.get(f"{gw.url}/m") as r:
        assert r.status == 200
    async with client.get(f"{gw.url}/m", headers={"X-Deny": "1"}) as r:
        assert r.status == 500
    assert fh.CALLS["backend_auth"] == 4


async def test_cached_decisions_under_load(make_gateway, client, echo_backend) -> None:
    """A cached decision costs no function call: 200 requests hit the function once."""
    _backend, addr = echo_backend
    gw = await make_gateway(secured(addr, authorizer_record("az", AUTH_URN, ttl=60)))
    t0 = time.perf_counter()
    for _ in range(200):
        async with client.get(f"{gw.url}/secure", headers=bearer("good")) as r:
            assert r.status == 200
            await r.read()
    elapsed = time.perf_counter() - t0
    assert fh.CALLS["auth:good"] == 1
    assert elapsed < 10


def problems_of(doc: dict[str, Any]) -> str:
    with pytest.raises(SnapshotError) as info:
        build_runtime(doc, Services(load_settings({}, environ={})))
    return "\n".join(info.value.problems)


def test_config_problems() -> None:
    auths = [
        authorizer_record("front", AUTH_URN),
        authorizer_record("back", AUTH_URN, kind="BACKEND", identities=[]),
        authorizer_record("ghost_fn", urn("nowhere")),
        authorizer_record("cached", AUTH_URN, ttl=30, identities=[]),
        authorizer_record("badrx", AUTH_URN, identities=[{"name": "a", "location": "HEADER", "validation": "(["}]),
        authorizer_record("dup", AUTH_URN, identities=[{"name": "A", "location": "HEADER"},
                                                        {"name": "a", "location": "HEADER"}]),
        authorizer_record("badtype", AUTH_URN, kind="SIDEWAYS", ttl=99999),
    ]
    a0 = mock_api("a0", "/a0", auth_type="AUTHORIZER", authorizer_id="back")
    a1 = mock_api("a1", "/a1", auth_type="AUTHORIZER", authorizer_id="missing")
    a2 = mock_api("a2", "/a2")
    a2["mock_info"]["authorizer_id"] = "front"
    a3 = mock_api("a3", "/a3", backend_params=[USER_PARAMS[0]])
    doc = snapshot([a0, a1, a2, a3], functions=[function(AUTH_URN, "authorizer")], authorizers=auths)
    text = problems_of(doc)
    assert "apis[0].authorizer_id: authorizer 'back' is a BACKEND authorizer; FRONTEND is required here" in text
    assert "apis[1].authorizer_id: unknown authorizer 'missing'" in text
    assert "apis[2].mock_info.authorizer_id: authorizer 'front' is a FRONTEND authorizer; BACKEND is required" in text
    assert "apis[3].backend_params[0].value: $context.authorizer.frontend.* needs auth_type AUTHORIZER" in text
    assert f"authorizers[2].authorizer_uri: unknown function '{urn('nowhere')}'" in text
    assert "authorizers[3].identities: at least one identity source is required when ttl > 0" in text
    assert "authorizers[4].identities[0].validation: invalid regular expression" in text
    assert "authorizers[5].identities[1]: duplicate identity source HEADER 'a'" in text
    assert "authorizers[6].type: must be one of FRONTEND, BACKEND" in text
    assert "authorizers[6].ttl: must be 0..3600" in text
