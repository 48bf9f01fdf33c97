"""Latency headers on every kind of response: HTTP relay, MOCK, errors, CORS preflight; the three modes."""

from __future__ import annotations

import socket

from tests.support.helpers import http_api, mock_api, snapshot


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def doc(addr: str) -> dict:
    return snapshot([
        mock_api("m1", "/mock", cors=True),
        http_api("h1", "/echo", addr),
        http_api("dead", "/dead", f"127.0.0.1:{closed_port()}", retry_count="0"),
    ])


async def test_latency_headers_on_success_and_errors(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(doc(addr))
    backend.delay = 0.15
    async with client.get(gw.url + "/echo") as r:
        assert r.status == 200
        upstream = int(r.headers["X-Apig-Upstream-Latency"])
        latency = int(r.headers["X-Apig-Latency"])
        assert 150 <= upstream <= latency < 5000
        assert len(r.headers["X-Request-Id"]) == 32
    backend.delay = 0.0
    async with client.get(gw.url + "/mock") as r:
        assert r.status == 200
        assert 0 <= int(r.headers["X-Apig-Latency"]) < 1000
        assert "X-Apig-Upstream-Latency" not in r.headers  # no backend call (vendor: not for MOCK)
    for path, status in (("/dead", 502), ("/nothing-here", 404)):
        async with client.get(gw.url + path) as r:
            assert r.status == status
            assert int(r.headers["X-Apig-Latency"]) >= 0
            assert "X-Apig-Upstream-Latency" not in r.headers
            assert r.headers["X-Request-Id"] == (await r.json())["request_id"]
    async with client.options(gw.url + "/mock", headers={"Origin": "https://a.example",
                                                         "Access-Control-Request-Method": "GET"}) as r:
        assert r.status == 200
        assert "X-Apig-Latency" in r.headers
        assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_latency_headers_modes(make_gateway, echo_backend, client) -> None:
    _, addr = echo_backend
    debug = await make_gateway(doc(addr), latency_headers="debug")
    off = await make_gateway(doc(addr), latency_headers="off")
    async with client.get(debug.url + "/echo") as r:
        assert "X-Apig-Latency" not in r.headers and "X-Apig-Upstream-Latency" not in r.headers
    async with client.get(debug.url + "/echo", headers={"X-Apig-Mode": "debug"}) as r:
        assert "X-Apig-Latency" in r.headers and "X-Apig-Upstream-Latency" in r.headers
    async with client.get(debug.url + "/nothing", headers={"X-Apig-Mode": "DEBUG"}) as r:
        assert r.status == 404 and "X-Apig-Latency" in r.headers
    for path in ("/echo", "/mock", "/nothing"):
        async with client.get(off.url + path, headers={"X-Apig-Mode": "debug"}) as r:
            assert "X-Apig-Latency" not in r.headers and "X-Request-Id" in r.headers
