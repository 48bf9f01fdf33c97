"""The per-request lines of a preset answer with stage headers (the rate-limit ones): one %-format per list of
header names, the same lines the field-by-field serialisation gives, and None whenever a line could not be made
safely (a name the answer owns, CR/LF in a name or value)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.core.settings import LATENCY_ALWAYS, LATENCY_OFF
from gateway.model.answer import dynamic_lines
from gateway.model.context import RequestContext

OWNED = frozenset({"connection", "content-length", "date", "transfer-encoding"})


def make_ctx(latency: int) -> RequestContext:
    request = SimpleNamespace(method="GET", path="/m", query={}, headers=CIMultiDictProxy(CIMultiDict()))
    ctx = RequestContext(request, "rid-1", None, "127.0.0.1", 1024)  # type: ignore[arg-type]
    ctx.latency_mode = latency
    return ctx


def expected(headers: dict[str, object]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "X-Request-Id: rid-1\r\n"


def test_stage_headers_rendered_like_each_field() -> None:
    for headers in ({"Server": "api-gateway", "X-Apig-RateLimit-api": "remain:9,limit:10,time:1 second"},
                    {"X-A": "1"},  # a stage removed Server
                    {"Server": "s", "X-Pct%s": "100%", "X-N": 7}):  # a % in a name, a non-str value
        for _ in range(2):  # made, then from the remembered format
            ctx = make_ctx(LATENCY_OFF)
            ctx.response_headers.clear()
            ctx.response_headers.update(headers)
            assert dynamic_lines(ctx, OWNED) == expected(headers)
    ctx = make_ctx(LATENCY_ALWAYS)
    ctx.response_headers["X-Apig-RateLimit-ip"] = "remain:1,limit:2,time:1 minute"
    ctx.backend_ms = 3.7
    text = dynamic_lines(ctx, OWNED)
    assert text is not None
    assert re.fullmatch(r"Server: api-gateway\r\nX-Apig-RateLimit-ip: remain:1,limit:2,time:1 minute\r\n"
                        r"X-Request-Id: rid-1\r\nX-Apig-Latency: \d+\r\nX-Apig-Upstream-Latency: 3\r\n", text)
    ctx.backend_ms = None
    text = dynamic_lines(ctx, OWNED)
    assert text is not None and not text.endswith("X-Request-Id: rid-1\r\n")
    assert "X-Apig-Upstream-Latency" not in text and "X-Apig-Latency: " in text


def test_no_lines_when_unsafe() -> None:
    for headers in ({"X-A": "v\r\nInjected: 1"}, {"X-A": "v\n"}, {"X-A": 1, "X-B": "a\rb"},
                    {"Content-Length": "5"}, {"date": "x"}, {"X-A\r\nB": "v"}):
        for _ in range(2):
            ctx = make_ctx(LATENCY_OFF)
            ctx.response_headers.update(headers)
            assert dynamic_lines(ctx, OWNED) is None, headers
