"""The backend gets what the caller sent: raw query and path encoding, underscore header names, request id.

A raw-socket client sends request targets exactly (no client-side URL normalisation) and a raw-socket backend
(tests/support/raw_backend.py) records exactly what the gateway forwarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.helpers import GROUP_HOST, http_api, snapshot
from tests.support.raw_backend import RawBackend


@pytest.fixture(params=["fast", "aiohttp"])
def make_gateway(request: pytest.FixtureRequest, make_gateway: Any) -> Any:
    """Every test here runs with both upstream clients (the default one and aiohttp's)."""

    async def factory(doc: dict[str, Any] | None = None, **overrides: Any) -> Any:
        return await make_gateway(doc, upstream_client=request.param, **overrides)

    return factory


@pytest.fixture
async def raw_backend() -> AsyncIterator[tuple[RawBackend, str]]:
    backend = RawBackend()
    addr = await backend.start()
    yield backend, addr
    await backend.close()


async def send_chunked(port: int, chunks: str) -> bytes:
    """POST /p with a chunked body written in one piece (``chunks``: the framed body); the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /p HTTP/1.1\r\nHost: {GROUP_HOST}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                 f"{chunks}".encode())
    async with asyncio.timeout(20):
        answer = await reader.read(-1)
    writer.close()
    return answer


async def send(port: int, target: str, headers: list[tuple[str, str]] | None = None, method: str = "GET",
               body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request written byte for byte; returns (status, lower-case headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {GROUP_HOST}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    async with asyncio.timeout(20):
        data = await reader.read(-1)
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    out = {}
    for line in head_lines[1:]:
        k, _, v = line.partition(":")
        out[k.strip().lower()] = v.strip()
    return int(head_lines[0].split(" ")[1]), out, rest


async def test_unmapped_query_is_forwarded_byte_exact(make_gateway, raw_backend) -> None:
    backend, addr = raw_backend
    api = http_api("a1", "/q", addr)
    gw = await make_gateway(snapshot([api]))
    port = gw.gw.public_port
    for query in ("q=a+b", "flag", "b=2&a=1&b=1", "x=%2B%20&y=%7e&flag&z=", "a=1&&b=2"):
        status, _, _ = await send(port, f"/q?{query}")
        assert status == 200
        assert backend.requests[-1].target == f"/q?{query}", query
    status, _, _ = await send(port, "/q")
    assert status == 200 and backend.requests[-1].target == "/q"
    # absolute-form request target (what a client talking to a proxy sends): same result
    status, _, _ = await send(port, f"http://{GROUP_HOST}/q?q=a+b&flag")
    assert status == 200 and backend.requests[-1].target == "/q?q=a+b&flag"


async def test_mapped_query_params_leave_the_rest_untouched(make_gateway, raw_backend) -> None:
    backend, addr = raw_backend
    api = http_api("a1", "/q", addr)
    api["req_params"] = [{"name": "tenant", "location": "QUERY", "type": "STRING"},
                         {"name": "hidden", "location": "QUERY", "type": "STRING", "pass_through": 2}]
    api["backend_params"] = [{"name": "t", "location": "QUERY", "origin": "REQUEST", "value": "tenant"},
                             {"name": "X-Const", "location": "HEADER", "origin": "CONSTANT", "value": "c"}]
    gw = await make_gateway(snapshot([api]))
    status, _, _ = await send(gw.gw.public_port, "/q?q=a+b&tenant=acme+corp&flag&hidden=1&q=%2F")
    assert status == 200
    # unmapped ones verbatim and in order; the mapped one re-encoded at the end; pass_through 2 removed
    assert backend.requests[-1].target == "/q?q=a+b&flag&q=%2F&t=acme%20corp"


async def test_swa_suffix_and_passthrough_path_keep_their_encoding(make_gateway, raw_backend) -> None:
    backend, addr = raw_backend
    swa = http_api("a1", "/files", addr, backend_uri="/store", match_mode="SWA")
    same = http_api("a2", "/docs", addr, match_mode="SWA")
    gw = await make_gateway(snapshot([swa, same]))
    port = gw.gw.public_port
    cases = [
        ("/files/a%2Fb", "/store/a%2Fb"),  # one segment stays one segment
        ("/files/x/a%2Fb/c%20d", "/store/x/a%2Fb/c%20d"),
        ("/files/a%2fb?x=1", "/store/a%2fb?x=1"),
        ("/files/plain/path", "/store/plain/path"),
        ("/docs/a%2Fb", "/docs/a%2Fb"),
    ]
    for sent, expected in cases:
        status, _, _ = await send(port, sent)
        assert status == 200, sent
        assert backend.requests[-1].target == expected, sent
    # dot segments are still removed before routing (security): then the decoded path is re-encoded
    status, _, _ = await send(port, "/files/x/../a%2Fb")
    assert status == 200 and backend.requests[-1].target == "/store/a/b"
    # %2F..%2F decodes to a dot segment: never forwarded raw
    status, _, _ = await send(port, "/files/q/a%2F..%2Fb")
    assert status == 200 and ".." not in backend.requests[-1].target


async def test_underscore_spellings_of_framing_headers_are_dropped(make_gateway, raw_backend) -> None:
    backend, addr = raw_backend
    gw = await make_gateway(snapshot([http_api("a1", "/h", addr, method="POST")]))
    status, _, _ = await send(gw.gw.public_port, "/h", method="POST", body=b"hello", headers=[
        ("Transfer_Encoding", "chunked"), ("Content_Length", "99"), ("X_Forwarded_For", "6.6.6.6"),
        ("X_Real_IP", "6.6.6.6"), ("Connection_", "x"), ("X_Custom_Name", "kept"), ("X_Request_Id", "spoof"),
    ])
    assert status == 200
    req = backend.requests[-1]
    names = [n.lower() for n in req.names()]
    for gone in ("transfer_encoding", "content_length", "x_forwarded_for", "x_real_ip", "x_request_id"):
        assert gone not in names
    assert req.header("X_Custom_Name") == ["kept"] and req.header("Connection_") == ["x"]
    assert req.header("Content-Length") == ["5"] and req.body == b"hello"
    assert req.header("X-Forwarded-For") == ["127.0.0.1"] and req.header("X-Real-IP") == ["127.0.0.1"]


async def test_backend_gets_the_gateway_request_id(make_gateway, raw_backend) -> None:
    backend, addr = raw_backend
    gw = await make_gateway(snapshot([http_api("a1", "/r", addr)]))
    status, headers, _ = await send(gw.gw.public_port, "/r")
    assert status == 200 and backend.requests[-1].header("X-Request-Id") == [headers["x-request-id"]]
    # a caller-supplied id is replaced: gateway log, backend log and the caller's response share one id
    status, headers, _ = await send(gw.gw.public_port, "/r", headers=[("X-Request-Id", "caller-chosen")])
    assert status == 200
    assert backend.requests[-1].header("X-Request-Id") == [headers["x-request-id"]]
    assert headers["x-request-id"] != "caller-chosen" and len(headers["x-request-id"]) == 32


async def test_default_values_reach_the_backend(make_gateway, raw_backend) -> None:
    backend, addr = raw_backend
    api = http_api("a1", "/d", addr)
    api["req_params"] = [
        {"name": "color", "location": "QUERY", "type": "STRING", "default_value": "red"},
        {"name": "X-Tier", "location": "HEADER", "type": "STRING", "default_value": "gold"},
        {"name": "size", "location": "QUERY", "type": "STRING", "default_value": "L"},
        {"name": "quiet", "location": "QUERY", "type": "STRING", "default_value": "1", "pass_through": 2},
    ]
    api["backend_params"] = [{"name": "sz", "location": "QUERY", "origin": "REQUEST", "value": "size"}]
    gw = await make_gateway(snapshot([api]))
    status, _, _ = await send(gw.gw.public_port, "/d?x=1")
    assert status == 200
    req = backend.requests[-1]
    assert req.query == "x=1&sz=L&color=red"
    assert req.header("X-Tier") == ["gold"]
    # sent by the caller: their value, untouched, no default added
    status, _, _ = await send(gw.gw.public_port, "/d?color=blue", headers=[("X-Tier", "tin")])
    req = backend.requests[-1]
    assert req.query == "color=blue&sz=L" and req.header("X-Tier") == ["tin"]


async def test_a_body_that_has_all_arrived_goes_out_with_its_length(make_gateway, raw_backend) -> None:
    """A caller body complete when the backend request starts (the usual small POST) is sent as bytes with a
    Content-Length, whatever its framing from the caller; one over the body limit is still refused."""
    backend, addr = raw_backend
    gw = await make_gateway(snapshot([http_api("a1", "/p", addr, method="POST", retry_count="0")]),
                            max_body_bytes=1024)
    port = gw.gw.public_port
    status, _, _ = await send(port, "/p", method="POST", body=b'{"a":1}')
    assert status == 200
    req = backend.requests[-1]
    assert req.header("Content-Length") == ["7"] and not req.header("Transfer-Encoding") and req.body == b'{"a":1}'
    # chunked from the caller, complete in one write: re-framed with its length
    answer = await send_chunked(port, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    req = backend.requests[-1]
    assert req.header("Content-Length") == ["11"] and not req.header("Transfer-Encoding")
    assert req.body == b"hello world"
    # complete but over the limit (chunked, so no declared length to refuse it early): 413, never forwarded
    before = len(backend.requests)
    answer = await send_chunked(port, f"7d0\r\n{'z' * 2000}\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and len(backend.requests) == before


async def test_a_chunked_answer_that_has_all_arrived_is_relayed_whole(make_gateway, raw_backend, request) -> None:
    fast = request.node.callspec.params["make_gateway"] == "fast"
    backend, addr = raw_backend
    backend.answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"7\r\n{\"a\":1}\r\n0\r\nX-Trailer: t\r\n\r\n")
    gw = await make_gateway(snapshot([http_api("a1", "/c", addr)]))
    for _ in range(2):  # a fresh and a reused backend connection
        status, headers, body = await send(gw.gw.public_port, "/c")
        assert status == 200 and headers["content-type"] == "application/json"
        if fast:  # the built-in client: taken whole, sent with its length
            assert headers["content-length"] == "7" and "transfer-encoding" not in headers and body == b'{"a":1}'
        else:  # aiohttp's client: streamed on, chunked
            assert headers["transfer-encoding"] == "chunked" and b'{"a":1}' in body
        assert b"X-Trailer" not in body
