"""End to end through real sockets: real echo backends, the real gateway, a real client."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from tests.support.helpers import RELEASE, http_api, mock_api, snapshot


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_env_variables_per_stage(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    api = http_api("a1", "/greet", "#host#", backend_uri="/#prefix#/greet")
    api["backend_params"] = [{"name": "X-Env", "location": "HEADER", "origin": "CONSTANT", "value": "#label#"}]
    doc = snapshot([api], envs=["TEST"], publish_in=["env-test"])
    doc["env_variables"] = [
        {"id": f"v{i}", "group_id": "g1", "env_id": env, "variable_name": name, "variable_value": value}
        for i, (env, name, value) in enumerate([
            (RELEASE, "host", addr), ("env-test", "host", addr),
            (RELEASE, "prefix", "prod"), ("env-test", "prefix", "staging"),
            (RELEASE, "label", "release-label"), ("env-test", "label", "test-label"),
        ])
    ]
    gw = await make_gateway(doc)
    async with client.get(gw.url + "/greet") as r:
        body = await r.json()
        assert r.status == 200
        assert body["path"] == "/prod/greet" and body["headers"]["X-Env"] == "release-label"
    async with client.get(gw.url + "/greet", headers={"X-Stage": "test"}) as r:
        body = await r.json()
        assert body["path"] == "/staging/greet" and body["headers"]["X-Env"] == "test-label"
    async with client.get(gw.url + "/greet", headers={"X-Stage": "NOPE"}) as r:
        assert r.status == 404 and (await r.json())["error_code"] == "APIG.0101"


async def test_parameter_validation_and_mapping(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    api = http_api("a1", "/orders/{oid}", addr, backend_uri="/v2/items/{item}")
    api["req_params"] = [
        {"name": "oid", "location": "PATH", "type": "NUMBER", "required": 1, "valid_enable": 1,
         "min_num": 1, "max_num": 100},
        {"name": "color", "location": "QUERY", "type": "STRING", "required": 2, "default_value": "red",
         "valid_enable": 1, "enumerations": "red,green"},
        {"name": "X-Tenant", "location": "HEADER", "type": "STRING", "required": 1, "valid_enable": 1,
         "min_size": 2, "max_size": 5},
        {"name": "secret", "location": "QUERY", "type": "STRING", "required": 2, "pass_through": 2},
    ]
    api["backend_params"] = [
        {"name": "item", "location": "PATH", "origin": "REQUEST", "value": "oid"},
        {"name": "tenant", "location": "QUERY", "origin": "REQUEST", "value": "X-Tenant"},
        {"name": "X-Const", "location": "HEADER", "origin": "CONSTANT", "value": "c1"},
        {"name": "X-Api", "location": "HEADER", "origin": "SYSTEM", "value": "$context.apiId"},
        {"name": "X-Req", "location": "HEADER", "origin": "SYSTEM", "value": "$context.requestId"},
        {"name": "X-Ip", "location": "HEADER", "origin": "SYSTEM", "value": "$context.sourceIp"},
        {"name": "X-Stage-Name", "location": "HEADER", "origin": "SYSTEM", "value": "$context.stage"},
    ]
    gw = await make_gateway(snapshot([api]))
    async with client.get(gw.url + "/orders/7?keep=1&secret=s", headers={"X-Tenant": "acme"}) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
        rid = r.headers["X-Request-Id"]
    assert body["path"] == "/v2/items/7"
    q = dict(body["query"])
    assert q == {"keep": "1", "color": "red", "tenant": "acme"} or q == {"keep": "1", "tenant": "acme"}
    assert "secret" not in q  # pass_through: 2
    h = body["headers"]
    assert "X-Tenant" not in h  # moved to the query
    assert h["X-Const"] == "c1" and h["X-Api"] == "a1" and h["X-Req"] == rid and h["X-Ip"] == "127.0.0.1"
    assert h["X-Stage-Name"] == "RELEASE"

    cases = [
        ("/orders/0", {"X-Tenant": "acme"}, "oid"),
        ("/orders/abc", {"X-Tenant": "acme"}, "oid"),
        ("/orders/5?color=blue", {"X-Tenant": "acme"}, "color"),
        ("/orders/5", {}, "X-Tenant"),
        ("/orders/5", {"X-Tenant": "toolongvalue"}, "X-Tenant"),
    ]
    for path, headers, name in cases:
        async with client.get(gw.url + path, headers=headers) as r:
            body = await r.json()
            assert r.status == 400, path
            assert body["error_code"] == "APIG.0201" and name in body["error_msg"], body
    assert backend.hits == 1


async def test_retries_follow_the_spec(make_gateway, client) -> None:
    # a port that accepts connections and resets them: every attempt fails before a response
    hits = {"n": 0}

    async def reset_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits["n"] += 1
        await reader.read(1024)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.close()

    server = await asyncio.start_server(reset_handler, "127.0.0.1", 0)
    addr = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    apis = [
        http_api("get", "/get", addr),
        http_api("post", "/post", addr, method="POST"),
        http_api("put3", "/put3", addr, method="PUT", retry_count="3"),
        http_api("get0", "/get0", addr, retry_count="0"),
    ]
    gw = await make_gateway(snapshot(apis))
    expected = {"/get": ("GET", 2), "/post": ("POST", 1), "/put3": ("PUT", 4), "/get0": ("GET", 1)}
    try:
        for path, (method, attempts) in expected.items():
            hits["n"] = 0
            async with client.request(method, gw.url + path, data=b"payload" if method != "GET" else None) as r:
                body = await r.json()
                assert r.status == 502 and body["error_code"] == "APIG.0202", (path, body)
            assert hits["n"] == attempts, (path, hits["n"])
    finally:
        server.close()
        await server.wait_closed()


async def test_retry_succeeds_on_second_attempt(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    backend.delay = 0.5
    gw = await make_gateway(snapshot([http_api("a", "/slow", addr, timeout=200, retry_count="1")]))
    async with client.get(gw.url + "/slow") as r:
        assert r.status == 504
        assert (await r.json())["error_code"] == "APIG.0203"
    assert backend.hits == 2  # timed out twice: first try + one retry


async def test_backend_refused_and_timeout(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    backend.delay = 1.0
    apis = [http_api("dead", "/dead", f"127.0.0.1:{closed_port()}", retry_count="0"),
            http_api("slow", "/slow", addr, timeout=100, retry_count="0")]
    gw = await make_gateway(snapshot(apis))
    async with client.get(gw.url + "/dead") as r:
        assert r.status == 502 and (await r.json())["error_code"] == "APIG.0202"
    async with client.get(gw.url + "/slow") as r:
        assert r.status == 504 and (await r.json())["error_code"] == "APIG.0203"


async def test_backend_errors_are_answers_not_retried(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    backend.status = 503
    gw = await make_gateway(snapshot([http_api("a", "/x", addr)]))
    async with client.get(gw.url + "/x") as r:
        assert r.status == 503 and r.headers["X-Backend"] == "echo"
    assert backend.hits == 1


async def test_mock_backend_and_swa(make_gateway, client) -> None:
    api = mock_api("m", "/m", '{"ok": true}')
    api["mock_info"]["status_code"] = 201
    api["mock_info"]["headers"] = [{"key": "X-Mock", "value": "yes"}]
    txt = mock_api("t", "/files", "plain text", match_mode="SWA", method="ANY")
    gw = await make_gateway(snapshot([api, txt]))
    async with client.get(gw.url + "/m") as r:
        assert r.status == 201 and r.headers["X-Mock"] == "yes"
        assert r.headers["Content-Type"] == "application/json" and await r.json() == {"ok": True}
    async with client.delete(gw.url + "/files/a/b.txt") as r:
        assert r.status == 200 and await r.text() == "plain text"
        assert r.headers["Content-Type"] == "application/json"  # the vendor example: even for plain text


async def test_swa_forwards_the_rest_of_the_path(make_gateway, echo_backend, client) -> None:
    _, addr = echo_backend
    gw = await make_gateway(snapshot([http_api("p", "/shop", addr, backend_uri="/internal/shop",
                                               match_mode="SWA", method="ANY", backend_method="ANY")]))
    async with client.post(gw.url + "/shop/cart/items?x=1", data=b"hello") as r:
        body = await r.json()
    assert body["method"] == "POST" and body["path"] == "/internal/shop/cart/items"
    assert body["query"] == [["x", "1"]] and body["body"] == "hello"


async def test_headers_forwarding_and_hop_by_hop(make_gateway, echo_backend, client) -> None:
    _, addr = echo_backend
    gw = await make_gateway(snapshot([http_api("h", "/h", addr)]))
    headers = {"X-Custom": "v", "Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1",
               "X-Forwarded-For": "203.0.113.9", "Proxy-Authorization": "secret"}
    async with client.get(gw.url + "/h", headers=headers) as r:
        h = (await r.json())["headers"]
    assert h["X-Custom"] == "v"
    assert "X-Drop-Me" not in h and "Proxy-Authorization" not in h
    assert h["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert h["X-Real-IP"] == "127.0.0.1" and h["X-Forwarded-Proto"] == "http"
    assert h["Host"] == addr


async def test_large_bodies_stream_both_ways(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    apis = [http_api("big", "/big/{n}", addr),
            http_api("up", "/upload", addr, method="POST")]
    gw = await make_gateway(snapshot(apis))
    size = 5 * 1024 * 1024
    async with client.get(gw.url + f"/big/{size}") as r:
        data = await r.read()
    assert r.status == 200 and len(data) == size
    payload = b"y" * (3 * 1024 * 1024)
    async with client.post(gw.url + "/upload", data=payload) as r:
        body = await r.json()
    assert len(body["body"]) == len(payload)


async def test_body_limit(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(snapshot([http_api("up", "/upload", addr, method="POST", retry_count="0")]),
                            max_body_bytes=1024)
    async with client.post(gw.url + "/upload", data=b"z" * 2048) as r:
        assert r.status == 413
        assert (await r.json())["error_code"] == "APIG.0201"
    assert backend.hits == 0

    async def chunked():  # no Content-Length: the limit is enforced while streaming
        for _ in range(8):
            yield b"z" * 512

    async with client.post(gw.url + "/upload", data=chunked()) as r:
        assert r.status == 413
    async with client.post(gw.url + "/upload", data=b"z" * 1000) as r:
        assert r.status == 200


async def test_cors_preflight_and_headers(make_gateway, client) -> None:
    api = mock_api("c", "/c", "x", method="POST", cors=True)
    gw = await make_gateway(snapshot([api, mock_api("n", "/n", "x")]))
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "X-Extra"}
    async with client.options(gw.url + "/c", headers=pre) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "X-Extra" in r.headers["Access-Control-Allow-Headers"]
    async with client.post(gw.url + "/c", headers={"Origin": "https://app.example"}) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    async with client.options(gw.url + "/n", headers={**pre, "Access-Control-Request-Method": "GET"}) as r:
        assert r.status == 404  # no CORS on that API: OPTIONS is not defined


@pytest.mark.parametrize("custom", [False, True])
async def test_error_types_status_and_body(make_gateway, client, custom: bool) -> None:
    apis = [http_api("dead", "/dead", f"127.0.0.1:{closed_port()}", retry_count="0"),
            mock_api("p", "/p/{n}", "x", req_params=[
                {"name": "n", "location": "PATH", "type": "NUMBER", "valid_enable": 1}])]
    doc = snapshot(apis)
    if custom:
        doc["responses"] = [{"id": "r1", "name": "custom", "responses": {
            "NOT_FOUND": {"status": 410, "body": '{"code":"$context.error.code","msg":"$context.error.message",'
                                                 '"type":"$context.error.type","id":"$context.requestId"}',
                          "headers": [{"key": "X-Why", "value": "gone"}]},
            "BACKEND_UNAVAILABLE": {"body": "plain: $context.error.code"},
        }}]
        doc["groups"][0]["response_id"] = "r1"
    gw = await make_gateway(doc)
    async with client.get(gw.url + "/missing") as r:
        body = await r.json()
        if custom:
            assert r.status == 410 and r.headers["X-Why"] == "gone"
            assert body == {"code": "APIG.0101", "msg": body["msg"], "type": "NOT_FOUND",
                            "id": r.headers["X-Request-Id"]}
        else:
            assert r.status == 404
            assert set(body) == {"error_code", "error_msg", "request_id"}
            assert body["request_id"] == r.headers["X-Request-Id"] and len(body["request_id"]) == 32
    async with client.get(gw.url + "/dead") as r:
        if custom:
            assert r.status == 502 and await r.text() == "plain: APIG.0202"
        else:
            assert r.status == 502 and (await r.json())["error_code"] == "APIG.0202"
    async with client.get(gw.url + "/p/x") as r:
        assert r.status == 400 and (await r.json())["error_code"] == "APIG.0201"
    async with client.post(gw.url + "/p/1") as r:
        assert (r.status == 404 and (await r.json())["error_msg"] == "The API does not exist.") or custom


async def test_unknown_host_with_several_groups(make_gateway, client) -> None:
    doc = snapshot([mock_api("a", "/a", "group one")])
    doc["groups"].append({"id": "g2", "name": "group_two", "sl_domain": "two.test"})
    two = mock_api("b", "/a", "group two")
    two["group_id"] = "g2"
    doc["apis"].append(two)
    doc["publishes"].append({"publish_id": "pb", "api_id": "b", "env_id": RELEASE})
    gw = await make_gateway(doc)
    async with client.get(gw.url + "/a") as r:
        assert await r.text() == "group one"
    async with client.get(gw.url + "/a", headers={"Host": "two.test:8080"}) as r:
        assert await r.text() == "group two"
    async with aiohttp.ClientSession() as plain, plain.get(gw.url + "/a", headers={"Host": "other.example"}) as r:
        assert r.status == 404 and (await r.json())["error_code"] == "APIG.0101"
    gw2 = await make_gateway(doc, default_group="g2")
    async with aiohttp.ClientSession() as plain, plain.get(gw2.url + "/a", headers={"Host": "other.example"}) as r:
        assert await r.text() == "group two"


async def test_health_and_readiness(make_gateway) -> None:
    gw = await make_gateway(None)
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.admin_url + "/healthz") as r:
            assert r.status == 200
        async with s.get(gw.admin_url + "/readyz") as r:
            assert r.status == 503
        async with s.get(gw.url + "/anything") as r:
            assert r.status == 503 and (await r.json())["error_code"] == "APIG.0606"
    gw.gw.apply_document(snapshot([mock_api("a", "/a")]))
    async with aiohttp.ClientSession() as s, s.get(gw.admin_url + "/readyz") as r:
        assert r.status == 200 and (await r.json())["counts"]["publishes"] == 1


async def test_request_head_limits(make_gateway, client) -> None:
    gw = await make_gateway(snapshot([mock_api("a", "/a")]), header_read_timeout_s=0.3, max_header_bytes=1024)
    async with client.get(gw.url + "/a", headers={"X-Big": "b" * 4096}) as r:
        assert r.status == 400  # oversize header: rejected by the parser, nothing reaches the pipeline
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gw.public_port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=3)  # closed by the header-read timeout
    assert data == b""
    writer.close()


def test_cli_set_overrides_any_setting() -> None:
    from gateway.cli import _overrides, build_parser

    args = build_parser().parse_args(["run", "--set", "max_backend_timeout_ms=1500", "--set", "access-log=false",
                                      "--set", "trusted_proxies=10.0.0.0/8,127.0.0.1/32"])
    out = _overrides(args)
    assert out["max_backend_timeout_ms"] == 1500 and out["access_log"] is False
    assert out["trusted_proxies"] == ["10.0.0.0/8", "127.0.0.1/32"]
    for bad in ("nope=1", "max_backend_timeout_ms=soon", "no-equals-sign"):
        with pytest.raises(ValueError, match="--set"):
            _overrides(build_parser().parse_args(["run", "--set", bad]))
