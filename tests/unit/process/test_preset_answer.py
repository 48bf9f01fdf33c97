"""Preset answers (gateway.model.answer) on the HTTP/1 listener: a MOCK answer's head prepared at config-load
time, serialised by ``serialize_preset`` into the same head the ``web.Response`` path makes, and the cases
that keep the ``web.Response`` path (HEAD, reserved or colliding headers, CR/LF, bodiless statuses)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.backends.mock import MockTarget
from gateway.core.settings import LATENCY_OFF
from gateway.model.answer import PresetAnswer, dynamic_lines, preset_head
from gateway.model.context import RequestContext
from gateway.process.http1 import serialize_preset, serialize_response


def make_ctx(method: str = "GET", preset_ok: bool = True, latency: int = LATENCY_OFF) -> RequestContext:
    request = SimpleNamespace(method=method, path="/m", query={}, headers=CIMultiDictProxy(CIMultiDict()))
    ctx = RequestContext(request, "rid-1", None, "127.0.0.1", 1024)  # type: ignore[arg-type]
    ctx.preset_ok = preset_ok
    ctx.latency_mode = latency
    return ctx


def invoke(target: MockTarget, ctx: RequestContext) -> Any:
    return asyncio.run(target.invoke(ctx, None, None))  # type: ignore[arg-type]


def parse(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = [line.split(": ", 1) for line in lines[1:]]
    assert len({k.lower() for k, _ in fields}) == len(fields)  # no header twice
    return lines[0], {k.lower(): v for k, v in fields}, body


MOCK = {"result_content": '{"ok":true}', "status_code": 201,
        "headers": [{"key": "X-Mock", "value": "1"}, {"key": "content-type", "value": "text/plain"}]}


@pytest.mark.parametrize("version", [HttpVersion11, HttpVersion10])
@pytest.mark.parametrize("keep_alive", [True, False])
def test_preset_wire_matches_the_web_response_path(version: Any, keep_alive: bool) -> None:
    target = MockTarget(MOCK)
    fast = invoke(target, make_ctx())
    slow = invoke(target, make_ctx(preset_ok=False))
    assert isinstance(fast, PresetAnswer) and isinstance(slow, web.Response)
    fast_line, fast_headers, fast_body = parse(serialize_preset(fast, version, keep_alive))
    slow_line, slow_headers, slow_body = parse(serialize_response(slow, "GET", version, keep_alive)[0])
    assert fast_line == slow_line == f"HTTP/{version.major}.{version.minor} 201 Created"
    # each serialiser stamps its own Date: the two may fall on either side of a second boundary
    fast_date, slow_date = fast_headers.pop("date"), slow_headers.pop("date")
    assert fast_date.endswith(" GMT") and slow_date.endswith(" GMT")
    for name in ("x-apig-latency", "x-apig-upstream-latency"):  # whole milliseconds, measured per answer
        assert (name in fast_headers) == (name in slow_headers)
        fast_headers.pop(name, None), slow_headers.pop(name, None)
    assert fast_headers == slow_headers and fast_body == slow_body == b'{"ok":true}'
    assert fast_headers["content-type"] == "text/plain" and fast_headers["server"] == "api-gateway"
    assert fast_headers["x-request-id"] == "rid-1" and fast_headers["content-length"] == "11"


def test_latency_header_is_per_request() -> None:
    from gateway.core.settings import LATENCY_ALWAYS

    answer = invoke(MockTarget(MOCK), make_ctx(latency=LATENCY_ALWAYS))
    assert "X-Apig-Latency: " in answer.dynamic


def test_head_and_hooks_and_collisions_take_the_web_response_path() -> None:
    target = MockTarget(MOCK)
    assert isinstance(invoke(target, make_ctx(method="HEAD")), web.Response)
    ctx = make_ctx()
    ctx.response_headers["X-Mock"] = "from a stage"  # collides with a configured line: the multidict decides
    resp = invoke(target, ctx)
    assert isinstance(resp, web.Response) and resp.headers["X-Mock"] == "from a stage"
    ctx = make_ctx()
    ctx.response_headers["X-Origin"] = "a\r\nSet-Cookie: x=1"  # CR/LF: refused by the listener's serialiser
    assert isinstance(invoke(target, ctx), web.Response)
    ctx = make_ctx()
    ctx.endpoint = SimpleNamespace(response_hooks=(lambda c, r: None,))  # type: ignore[assignment]
    assert isinstance(invoke(target, ctx), web.Response)


@pytest.mark.parametrize("status, headers", [
    (204, ()), (304, ()), (101, ()),
    (200, (("Date", "x"),)), (200, (("Connection", "close"),)), (200, (("Server", "me"),)),
    (200, (("X-Request-Id", "x"),)), (200, (("X-A", "b\r\nX-B: c"),)),
])
def test_answers_that_cannot_be_preset(status: int, headers: Any) -> None:
    assert preset_head(status, headers, b"x") is None


def test_dynamic_lines() -> None:
    head = preset_head(200, (("Content-Type", "a/b"),), b"x")
    assert head is not None
    ctx = make_ctx()
    ctx.response_headers["Access-Control-Allow-Origin"] = "https://a.example"
    assert dynamic_lines(ctx, head.names) == ("Server: api-gateway\r\nAccess-Control-Allow-Origin: https://a.example"
                                              "\r\nX-Request-Id: rid-1\r\n")
    ctx.response_headers["content-type"] = "x/y"
    assert dynamic_lines(ctx, head.names) is None


@pytest.mark.parametrize("req_line, extra, version, keep", [
    (b"GET /p HTTP/1.1", b"", HttpVersion11, True),
    (b"GET /p HTTP/1.1", b"Connection: close\r\n", HttpVersion11, False),
    (b"GET /p HTTP/1.0", b"Connection: keep-alive\r\n", HttpVersion10, True),
    (b"GET /p HTTP/1.0", b"", HttpVersion10, False),
])
async def test_the_listener_writes_a_preset_answer_as_serialize_preset_does(
        req_line: bytes, extra: bytes, version: Any, keep: bool) -> None:
    from gateway.process.http1 import DATE
    from tests.unit.process.test_http1 import connect, until

    answer = PresetAnswer(200, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n",
                          b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n",
                          "Server: api-gateway\r\n", b"ok")

    async def handler(request: Any) -> PresetAnswer:
        return answer

    proto, t = connect(handler)
    await until(lambda: proto._wakeup is not None)
    proto.data_received(req_line + b"\r\nHost: h\r\n" + extra + b"\r\n")
    await until(lambda: t.out.endswith(b"ok"))
    import re

    def undated(data: bytes) -> bytes:  # the Date line may cross a second between the two
        return re.sub(rb"Date: [^\r]*\r\n", b"Date: -\r\n", data)

    assert b"Date: " in t.out and DATE.line().startswith(b"Date: ")
    assert undated(bytes(t.out)) == undated(serialize_preset(answer, version, keep))
    assert t.closed is not keep
