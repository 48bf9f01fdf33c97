"""A small complete backend answer on the HTTP/1 listener (gateway.model.answer.relayed_answer): its head is
serialised by the relay directly, and the wire head equals the one the ``web.Response`` path makes (up to the
order of differently named fields); HEAD, response hooks, bodiless statuses and other listeners keep the
``web.Response`` path."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.backends.http import HttpTarget
from gateway.core.settings import LATENCY_ALWAYS, LATENCY_OFF
from gateway.model.answer import PresetAnswer
from gateway.model.context import RequestContext
from gateway.process.http1 import serialize_preset, serialize_response


def make_ctx(method: str = "GET", preset_ok: bool = True, latency: int = LATENCY_OFF) -> RequestContext:
    request = SimpleNamespace(method=method, path="/h", query={}, headers=CIMultiDictProxy(CIMultiDict()))
    ctx = RequestContext(request, "rid-1", None, "127.0.0.1", 1024)  # type: ignore[arg-type]
    ctx.preset_ok = preset_ok
    ctx.latency_mode = latency
    ctx.backend_ms = 3.0
    return ctx


def upstream(status: int = 200, reason: str = "OK", fields: Any = (), block: str | None = None) -> Any:
    fields = list(fields)
    return SimpleNamespace(status=status, reason=reason, content_length=None, end_to_end=lambda drop: fields,
                           block=block)


def block_of(fields: Any) -> str:
    """The header block of a head the upstream client passed whole, with the framing fields a relay cuts."""
    hop = [("Connection", "keep-alive"), ("content-length", "17"), ("Keep-Alive", "timeout=5")]
    return "".join(f"\r\n{k}: {v}" for k, v in [*hop[:1], *fields, *hop[1:]])


def small(ctx: RequestContext, up: Any, body: bytes) -> Any:
    target = HttpTarget.__new__(HttpTarget)
    return target._small_response(ctx, up, body)


def parse(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    fields = [line.split(": ", 1) for line in lines[1:]]
    assert len({k.lower() for k, _ in fields}) == len(fields)  # no header twice
    return lines[0], {k.lower(): v for k, v in fields}, body


NGINX = [("Server", "nginx/1.22.1"), ("Date", "Mon, 30 Nov 2026 22:24:29 GMT"), ("Content-Type", "application/json"),
         ("X-Request-Id", "caller-chosen"), ("X-B", "caf\xe9")]


@pytest.mark.parametrize("version", [HttpVersion11, HttpVersion10])
@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("fields, reason", [(NGINX, "OK"), ([("X-A", "1")], ""), ([], "Fine")])
@pytest.mark.parametrize("from_block", [False, True])
def test_relayed_wire_matches_the_web_response_path(version: Any, keep_alive: bool, fields: Any, reason: str,
                                                    from_block: bool) -> None:
    body = b'{"hello":"world"}'
    fast = small(make_ctx(), upstream(200, reason, fields, block_of(fields) if from_block else None), body)
    slow = small(make_ctx(preset_ok=False), upstream(200, reason, fields), body)
    assert isinstance(fast, PresetAnswer) and isinstance(slow, web.Response)
    fast_line, fast_headers, fast_body = parse(serialize_preset(fast, version, keep_alive))
    slow_line, slow_headers, slow_body = parse(serialize_response(slow, "GET", version, keep_alive)[0])
    assert "date" in fast_headers and "date" in slow_headers
    if fields is not NGINX:  # each serialiser stamps its own Date: they may fall on either side of a second
        fast_headers.pop("date"), slow_headers.pop("date")
    for name in ("x-apig-latency", "x-apig-upstream-latency"):  # whole milliseconds, measured per answer
        assert (name in fast_headers) == (name in slow_headers)
        fast_headers.pop(name, None), slow_headers.pop(name, None)
    assert fast_line == slow_line and fast_headers == slow_headers and fast_body == slow_body == body
    assert fast_headers["server"] == "api-gateway" and fast_headers["x-request-id"] == "rid-1"
    assert fast_headers["content-length"] == str(len(body))
    if fields is NGINX:  # the backend's own Date and Content-Type pass; no second Date
        assert fast_headers["date"] == "Mon, 30 Nov 2026 22:24:29 GMT"
        assert fast_headers["content-type"] == "application/json"
    else:
        assert fast_headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("from_block", [False, True])
def test_stage_headers_and_latency_replace_backend_fields(from_block: bool) -> None:
    ctx = make_ctx(latency=LATENCY_ALWAYS)
    ctx.response_headers["X-Apig-RateLimit-Remaining"] = "9"
    fields = [("x-apig-ratelimit-remaining", "from backend"), ("X-Keep", "1")]
    answer = small(ctx, upstream(201, "Created", fields, block_of(fields) if from_block else None), b"x")
    assert isinstance(answer, PresetAnswer)
    line, headers, _ = parse(serialize_preset(answer, HttpVersion11, True))
    assert line == "HTTP/1.1 201 Created" and headers["x-apig-ratelimit-remaining"] == "9"
    assert headers["x-keep"] == "1" and headers["x-apig-upstream-latency"] == "3" and "x-apig-latency" in headers


def test_cases_that_keep_the_web_response_path() -> None:
    assert isinstance(small(make_ctx(method="HEAD"), upstream(), b""), web.Response)
    assert isinstance(small(make_ctx(preset_ok=False), upstream(), b"x"), web.Response)  # HTTP/2, gRPC listener
    for status in (204, 304):
        assert isinstance(small(make_ctx(), upstream(status, ""), b""), web.Response)
    ctx = make_ctx()
    ctx.endpoint = SimpleNamespace(response_hooks=(lambda c, r: None,))  # type: ignore[assignment]
    assert isinstance(small(ctx, upstream(), b"x"), web.Response)  # set_resp_headers, CORS Vary
    ctx = make_ctx()
    ctx.response_headers["X-Origin"] = "a\r\nSet-Cookie: x=1"  # CR/LF: refused by the listener's serialiser
    assert isinstance(small(ctx, upstream(), b"x"), web.Response)
    ctx = make_ctx()
    ctx.response_headers["Date"] = "x"  # a line the listener owns
    assert isinstance(small(ctx, upstream(), b"x"), web.Response)
    assert isinstance(small(make_ctx(), upstream(fields=[("X-Apig-Latency", "1")]), b"x"), web.Response)


def test_block_answer_cuts_framing_and_replaced_fields_whatever_their_case() -> None:
    block = ("\r\nSERVER: nginx\r\nx-request-id: theirs\r\ncontent-type: text/plain\r\nTransfer-Encoding: chunked"
             "\r\nTE: trailers\r\nX-Te: kept\r\nDate: Mon, 30 Nov 2026 22:24:29 GMT\r\nUpgrade: h2c")
    answer = small(make_ctx(), upstream(200, "OK", [("ignored", "x")], block), b"hi")
    assert isinstance(answer, PresetAnswer)
    line, headers, body = parse(serialize_preset(answer, HttpVersion10, True))
    assert line == "HTTP/1.0 200 OK" and body == b"hi"
    assert headers == {"content-type": "text/plain", "x-te": "kept", "date": "Mon, 30 Nov 2026 22:24:29 GMT",
                       "content-length": "2", "server": "api-gateway", "x-request-id": "rid-1",
                       "connection": "keep-alive"}


def test_block_answer_falls_back_to_the_web_response() -> None:
    fields = [("X-A", "1")]
    ctx = make_ctx()
    ctx.response_headers["Content-Type"] = "text/html"  # a stage's Content-Type replaces the backend's
    answer = small(ctx, upstream(200, "OK", fields, "\r\nContent-Type: a/b" + block_of(fields)), b"x")
    assert isinstance(answer, PresetAnswer)
    _, headers, _ = parse(serialize_preset(answer, HttpVersion11, True))
    assert headers["content-type"] == "text/html" and headers["x-a"] == "1"
    ctx = make_ctx()
    ctx.response_headers["X-Bad"] = "a\r\nSet-Cookie: x=1"
    assert isinstance(small(ctx, upstream(200, "OK", fields, block_of(fields)), b"x"), web.Response)
    assert isinstance(small(make_ctx(method="HEAD"), upstream(block=block_of(fields)), b""), web.Response)
    latency = [("x-apig-latency", "5")]
    assert isinstance(small(make_ctx(), upstream(fields=latency, block=block_of(latency)), b"x"), web.Response)


def test_block_heads_are_reused_per_head_body_length_and_stage_headers() -> None:
    block = "\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 2"
    a = small(make_ctx(), upstream(200, "OK", [], block), b"hi")
    b = small(make_ctx(), upstream(200, "OK", [], block), b"hey")
    assert a.head11 is not b.head11 and b"Content-Length: 3\r\n" in b.head11
    again = small(make_ctx(), upstream(200, "OK", [], block), b"hi")
    assert again.head11 is a.head11 and again.dynamic == a.dynamic  # one cut for both
    ctx = make_ctx()
    ctx.response_headers["Content-Type"] = "text/html"
    c = small(ctx, upstream(200, "OK", [], block), b"hi")
    assert b"text/plain" in a.head11 and b"text/plain" not in c.head11 and "Content-Type: text/html" in c.dynamic
    assert parse(serialize_preset(c, HttpVersion11, True))[1]["content-type"] == "text/html"
