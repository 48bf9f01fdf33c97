"""Security regressions: the body limit on every buffered path (chunked bodies without Content-Length),
and the head-read bound of a keep-alive connection's later requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.functions_helpers import authorizer_record, func_api, function, urn
from tests.support.helpers import RELEASE, http_api, mock_api, snapshot

LIMIT = 1024


async def _chunked(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 256):
        yield b"z" * 256


def _doc(addr: str) -> dict[str, Any]:
    auth_urn, fn_urn = urn("authorizer"), urn("echo")
    apis = [
        http_api("signed", "/signed", addr, method="POST", retry_count="0"),  # hmac signing buffers the body
        http_api("retry", "/retry", addr, method="POST", retry_count="2"),  # retries buffer the body
        func_api("fn", "/fn", fn_urn),  # the function event carries the body
        http_api("az", "/az", addr, method="POST", auth_type="AUTHORIZER", authorizer_id="az1"),  # need_body
    ]
    return snapshot(
        apis,
        signs=[{"id": "s1", "name": "sign_one", "sign_type": "hmac", "sign_key": "gw_sign_key1",
                "sign_secret": "Gw-secret_0123456789"}],
        sign_bindings=[{"id": "b1", "sign_id": "s1", "publish_id": f"p-signed-{RELEASE}"}],
        functions=[function(fn_urn, "echo"), function(auth_urn, "authorizer")],
        authorizers=[authorizer_record("az1", auth_urn, need_body=True)],
    )


@pytest.mark.parametrize("path", ["/signed", "/retry", "/fn", "/az"])
async def test_buffered_paths_enforce_the_body_limit_on_chunked_bodies(make_gateway, echo_backend, client,
                                                                       path: str) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr), max_body_bytes=LIMIT)
    async with client.post(gw.url + path, data=_chunked(4 * LIMIT),
                           headers={"Authorization": "Bearer good-1"}) as r:
        assert r.status == 413, await r.text()
        assert (await r.json())["error_code"] == "APIG.0201"
    async with client.post(gw.url + path, data=b"z" * (4 * LIMIT), headers={"Authorization": "Bearer good-1"}) as r:
        assert r.status == 413  # declared length: refused before reading
    assert backend.hits == 0
    async with client.post(gw.url + path, data=_chunked(LIMIT // 2), headers={"Authorization": "Bearer good-1"}) as r:
        assert r.status == 200, await r.text()


async def test_slow_head_on_a_kept_alive_connection_is_bounded(make_gateway) -> None:
    gw = await make_gateway(snapshot([mock_api("a", "/a")]), header_read_timeout_s=0.5, keepalive_timeout_s=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gw.public_port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"mock"), 3)
    assert first.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    writer.write(b"GET /a HTTP/1.1\r\n")  # the second head trickles in, one header line every 0.3 s
    closed = False
    for _ in range(20):
        await asyncio.sleep(0.3)
        if reader.at_eof():
            closed = True
            break
        try:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
        except ConnectionError:
            closed = True
            break
    assert closed
    assert time.monotonic() - started < 5.5  # before the trickle would have finished its 20 lines
    writer.close()
