"""MOCK answers on the HTTP/1 listener over real sockets: the head prepared at config-load time plus the
per-request lines, answered from the read callback; pipelining order, HTTP/1.0 keep-alive, HEAD, CORS headers
added by a stage, and the same header set as the aiohttp listener gives."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.helpers import GROUP_HOST, mock_api, snapshot

MOCK = mock_api("m1", "/mock", '{"ok":true}', method="ANY", mock_info={
    "result_content": '{"ok":true}', "status_code": 201,
    "headers": [{"key": "X-Mock", "value": "one"}, {"key": "Content-Type", "value": "text/plain"}]})
CORS = mock_api("m2", "/cors", "c", cors=True)


async def exchange(port: int, data: bytes, answers: int, head: bool = False
                   ) -> list[tuple[str, dict[str, str], bytes]]:
    """Send ``data`` on one connection, read ``answers`` responses (Content-Length framed; none: HEAD)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = []
    try:
        for _ in range(answers):
            text = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
            lines = text.rstrip("\r\n").split("\r\n")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(": ")
                assert k.lower() not in headers, f"{k} twice"
                headers[k.lower()] = v
            n = 0 if head else int(headers.get("content-length", "0"))
            out.append((lines[0], headers, await reader.readexactly(n) if n else b""))
    finally:
        writer.close()
    return out


def get(path: str, version: str = "1.1", extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: {GROUP_HOST}\r\n{extra}\r\n".encode()


async def test_mock_answers_pipelined_in_order_with_every_header(make_gateway: Any) -> None:
    gw = await make_gateway(snapshot([MOCK, CORS]))
    port = gw.gw.public_port
    data = get("/mock") + get("/cors", extra="Origin: https://a.example\r\n") + get("/mock?x=1") + get("/nothing")
    answers = await exchange(port, data, 4)
    (l1, h1, b1), (l2, h2, b2), (l3, h3, b3), (l4, h4, _) = answers
    assert h4["x-request-id"] not in (h1["x-request-id"], h2["x-request-id"], h3["x-request-id"])
    assert l1 == l3 == "HTTP/1.1 201 Created" and b1 == b3 == b'{"ok":true}'
    assert h1["content-type"] == "text/plain" and h1["x-mock"] == "one" and h1["content-length"] == "11"
    assert h1["server"] == "api-gateway" and len(h1["x-request-id"]) == 32 and "date" in h1
    assert "x-apig-latency" in h1 and "connection" not in h1
    assert h1["x-request-id"] != h3["x-request-id"]
    assert l2 == "HTTP/1.1 200 OK" and b2 == b"c" and h2["access-control-allow-origin"] == "*"
    assert l4.startswith("HTTP/1.1 404")


async def test_http_1_0_keep_alive_close_and_head(make_gateway: Any) -> None:
    gw = await make_gateway(snapshot([MOCK]))
    port = gw.gw.public_port
    answers = await exchange(port, get("/mock", "1.0", "Connection: keep-alive\r\n") + get("/mock", "1.0"), 2)
    assert [a[0] for a in answers] == ["HTTP/1.0 201 Created"] * 2
    assert answers[0][1]["connection"] == "keep-alive" and "connection" not in answers[1][1]
    closing = await exchange(port, get("/mock", extra="Connection: close\r\n"), 1)
    assert closing[0][1]["connection"] == "close" and closing[0][2] == b'{"ok":true}'
    head = await exchange(port, get("/mock", method="HEAD") + get("/mock", method="HEAD"), 2, head=True)
    assert head[1][0] == "HTTP/1.1 201 Created" and head[1][1]["content-length"] == "11"
    assert head[0][0] == "HTTP/1.1 201 Created" and head[0][1]["content-length"] == "11" and head[0][2] == b""


async def test_same_headers_as_the_aiohttp_listener(make_gateway: Any) -> None:
    fast = await make_gateway(snapshot([MOCK]))
    old = await make_gateway(snapshot([MOCK]), public_listener="aiohttp")
    (fl, fh, fb), = await exchange(fast.gw.public_port, get("/mock"), 1)
    (ol, oh, ob), = await exchange(old.gw.public_port, get("/mock"), 1)
    per_request = {"date", "x-request-id", "x-apig-latency"}
    assert fl == ol and fb == ob
    def fixed(h: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in h.items() if k not in per_request}

    assert fixed(fh) == fixed(oh)
    assert set(fh) == set(oh)
