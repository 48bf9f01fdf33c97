"""Ordinary APIs over HTTP/2 (ALPN h2 on the HTTPS listener): MOCK, HTTP, FUNCTION, stages, group responses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support import functions_helpers as fh
from tests.support.auth_helpers import app, auth_api, grant, signed_headers
from tests.support.functions_helpers import func_api, function, urn
from tests.support.h2_helpers import h1_client, h2_client, tls_files
from tests.support.helpers import RELEASE, http_api, mock_api, snapshot
from tests.support.throttle_helpers import binding, policy
from tests.support.tls_helpers import TestCA


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
async def h2gw(make_gateway, echo_backend, fn_server, ca, tmp_path) -> Any:
    fh.reset()
    backend, addr = echo_backend
    _ep, _fn_url = fn_server
    apis = [
        mock_api("m1", "/mock", '{"ok": true}'),
        http_api("h1", "/echo", addr, method="ANY", backend_uri="/echo"),
        http_api("h2", "/big/{n}", addr, backend_uri="/big/{n}"),
        func_api("f1", "/fn", urn("echo")),
        mock_api("acl", "/denied", "never", method="GET"),
    ]
    doc = snapshot(apis, functions=[function(urn("echo"), "echo")])
    doc["acls"] = [{"id": "x", "acl_name": "acl_x", "acl_type": "DENY", "entity_type": "IP", "acl_value": "127.0.0.1"}]
    doc["acl_bindings"] = [{"id": "b1", "acl_id": "x", "publish_id": f"p-acl-{RELEASE}"}]
    cert, key = tls_files(ca, str(tmp_path))
    gw = await make_gateway(doc, https_listen="127.0.0.1:0", tls_cert_file=cert, tls_key_file=key)
    return gw, backend


async def test_mock_http_function_over_h2(h2gw, ca) -> None:
    gw, _backend = h2gw
    async with h2_client(ca, gw.gw.https_port) as c:
        r = await c.get("/mock")
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert r.headers["server"] == "api-gateway" and len(r.headers["x-request-id"]) == 32
        assert "connection" not in r.headers and "transfer-encoding" not in r.headers
        r = await c.post("/echo?q=1", content=b"hello h2", headers={"X-Custom": "v"})
        assert r.http_version == "HTTP/2" and r.status_code == 200
        seen = r.json()
        assert seen["body"] == "hello h2" and seen["method"] == "POST" and seen["query"] == [["q", "1"]]
        sent = {k.lower(): v for k, v in seen["headers"].items()}  # h2 header names arrive lower-case
        assert sent["x-custom"] == "v" and sent["x-forwarded-proto"] == "https"
        assert r.headers["x-backend"] == "echo"  # HTTP/1.1 towards the backend, relayed unchanged
        r = await c.post("/fn", content=b'{"a": 1}', headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["httpMethod"] == "POST"


async def test_errors_use_group_responses_over_h2(h2gw, ca) -> None:
    gw, _ = h2gw
    async with h2_client(ca, gw.gw.https_port) as c:
        r = await c.get("/nope")
        assert r.http_version == "HTTP/2"
        assert r.status_code == 404 and r.json()["error_code"] == "APIG.0101"
        r = await c.get("/denied")
        assert r.status_code == 403 and r.json()["error_code"] == "APIG.0402"
        r = await c.post("/echo", content=b"x" * 64, headers={"Content-Length": str(20 * 1024 * 1024)})
        assert r.status_code == 413


async def test_large_bodies_both_ways_and_multiplexing(h2gw, ca) -> None:
    gw, backend = h2gw
    payload = bytes(range(256)) * 12000  # ~3 MB: many windows' worth, flow control both ways
    async with h2_client(ca, gw.gw.https_port) as c:
        r = await c.post("/echo", content=payload)
        assert r.status_code == 200 and len(r.json()["body"].encode("utf-8", "surrogateescape")) > 0
        assert backend.requests[-1]["body"] == payload.decode("utf-8", "replace")
        r = await c.get("/big/5000000")
        assert r.status_code == 200 and len(r.content) == 5_000_000
        results = await asyncio.gather(*(c.get("/mock") for _ in range(50)), c.get("/big/1000000"))
        assert all(x.status_code == 200 and x.http_version == "HTTP/2" for x in results)
        assert len(results[-1].content) == 1_000_000


async def test_same_answers_over_h1_and_h2(h2gw, ca) -> None:
    gw, _ = h2gw
    async with h2_client(ca, gw.gw.https_port) as c2, h1_client(ca, gw.gw.https_port) as c1:
        for path in ("/mock", "/nope", "/denied", "/echo"):
            r1, r2 = await c1.get(path), await c2.get(path)
            assert r1.http_version == "HTTP/1.1" and r2.http_version == "HTTP/2"
            assert r1.status_code == r2.status_code
            if path != "/echo":
                body1, body2 = r1.json(), r2.json()
                body1.pop("request_id", None)
                body2.pop("request_id", None)
                assert body1 == body2, path


async def test_app_signature_throttling_and_cors_over_h2(make_gateway, echo_backend, ca, tmp_path) -> None:
    _backend, addr = echo_backend
    apis = [auth_api("a1", "/signed", addr, method="POST"),
            mock_api("t1", "/limited", '{"ok": 1}'),
            mock_api("c1", "/cors", '{"ok": 1}', cors=True)]
    doc = snapshot(apis, apps=[app("app1")], app_auths=[grant("app1", "a1")],
                   throttles=[policy("p1", 2, unit="HOUR")], throttle_bindings=[binding("p1", "t1")])
    cert, key = tls_files(ca, str(tmp_path))
    gw = await make_gateway(doc, https_listen="127.0.0.1:0", tls_cert_file=cert, tls_key_file=key)
    async with h2_client(ca, gw.gw.https_port) as c:
        body = b'{"n": 1}'
        r = await c.post("/signed?x=1", content=body, headers=signed_headers("POST", "/signed?x=1", body))
        assert r.http_version == "HTTP/2" and r.status_code == 200, r.text
        sent = {k.lower(): v for k, v in r.json()["headers"].items()}
        assert sent["x-ctx-app-id"] == "app1"
        r = await c.post("/signed?x=1", content=body)
        assert r.status_code == 401 and r.json()["error_code"] == "APIG.0303"  # no credentials
        codes = [(await c.get("/limited")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = await c.options("/cors", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
