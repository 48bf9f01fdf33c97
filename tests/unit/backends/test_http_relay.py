"""The HTTP relay's request-side helpers: a body that has all arrived, and the forwarded header set."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.backends.http import _arrived_body, forwarded_headers
from gateway.core.errors import GatewayError


def reader(*pieces: bytes, eof: bool = True) -> StreamReader:
    r = StreamReader(BaseProtocol(asyncio.get_running_loop()), 2 ** 16, loop=asyncio.get_running_loop())
    for piece in pieces:
        r.feed_data(piece)
    if eof:
        r.feed_eof()
    return r


def ctx(max_body: int = 1024, **headers: str) -> Any:
    h = CIMultiDictProxy(CIMultiDict((k.replace("_", "-"), v) for k, v in headers.items()))
    return SimpleNamespace(max_body=max_body, body=None, extras={}, headers=h, peer_ip="10.0.0.9",
                           client_ip="10.0.0.9", host="api.example", request=SimpleNamespace(scheme="https",
                                                                                              host="api.example"))


async def test_an_arrived_body_is_taken_whole_within_the_limit() -> None:
    c = ctx()
    assert _arrived_body(c, reader(b"hello ", b"world")) == b"hello world" and c.body == b"hello world"
    c = ctx(max_body=4)
    with pytest.raises(GatewayError) as err:
        _arrived_body(c, reader(b"hello"))
    assert err.value.status == 413 and c.extras == {"body_too_large": True}


async def test_a_broken_body_is_the_callers_fault() -> None:
    r = reader(b"par", eof=False)
    r.feed_eof()
    r.set_exception(RequestPayloadError("Not enough data for satisfy content length header."))
    c = ctx()
    with pytest.raises(GatewayError) as err:
        _arrived_body(c, r)
    assert err.value.status == 400 and c.extras == {"bad_body": True} and c.body is None


async def test_forwarded_headers_drop_hop_by_hop_and_spoofed_fields() -> None:
    c = ctx(Accept="*/*", Connection="keep-alive, X-Hop", X_Hop="1", X_Forwarded_For="1.2.3.4",
            X_Real_IP="6.6.6.6", X_Forwarded_Proto="gopher", Content_Length="5", Keep_Alive="timeout=5",
            X_Custom="kept")
    out = forwarded_headers(c, frozenset({"x-custom"}))
    assert list(out.items()) == [("Accept", "*/*"), ("X-Forwarded-For", "1.2.3.4, 10.0.0.9"),
                                 ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "api.example"),
                                 ("X-Real-IP", "10.0.0.9")]
