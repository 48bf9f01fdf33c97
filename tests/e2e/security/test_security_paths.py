"""Security regressions on the request path: dot segments, request splitting, header injection, host choice.

Every request is written byte-for-byte on a raw socket (no client-side normalisation) to the real gateway,
which forwards to a real echo backend; the assertions read what the backend actually received.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.core.errors import GatewayError
from gateway.core.urlpath import encode_path, normalize
from gateway.model.plan import UriTemplate
from tests.support.helpers import GROUP_HOST, http_api, snapshot


async def raw_get(port: int, target: bytes, extra: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: " + GROUP_HOST.encode() + b"\r\n" + extra
                 + b"Connection: close\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data


def _apis(addr: str) -> list[dict[str, Any]]:
    return [
        http_api("p1", "/front/{id}/x", addr, backend_uri="/api/{id}/detail"),
        http_api("p2", "/swa", addr, backend_uri="/base", match_mode="SWA"),
        http_api("p3", "/q", addr, backend_uri="/qq",
                 req_params=[{"name": "v", "location": "QUERY", "type": "STRING"}],
                 backend_params=[{"origin": "REQUEST", "name": "X-Mapped", "location": "HEADER", "value": "v"}]),
        http_api("p4", "/q2", addr, backend_uri="/qq/{seg}/end",
                 req_params=[{"name": "v", "location": "QUERY", "type": "STRING"}],
                 backend_params=[{"origin": "REQUEST", "name": "seg", "location": "PATH", "value": "v"}]),
    ]


@pytest.fixture
async def gw_and_backend(make_gateway, echo_backend):  # type: ignore[no-untyped-def]
    backend, addr = echo_backend
    gw = await make_gateway(snapshot(_apis(addr)))
    return gw, backend


@pytest.mark.parametrize("target", [b"/front/../x", b"/front/%2E%2E/x", b"/front/%2e%2e/x", b"/front/.%2E/x",
                                    b"/front/./x"])
async def test_dot_segment_param_never_reaches_the_backend_path(gw_and_backend, target: bytes) -> None:
    gw, backend = gw_and_backend
    status, _ = await raw_get(gw.gw.public_port, target)
    # normalised before routing: /front/../x is /x (no API) and /front/./x is /front/x (no API)
    assert status == 404
    assert backend.requests == []


@pytest.mark.parametrize("target", [b"/swa/../../etc/passwd", b"/swa/%2E%2E/%2e%2e/etc", b"/../swa/x"])
async def test_path_climbing_above_root_is_refused(gw_and_backend, target: bytes) -> None:
    gw, backend = gw_and_backend
    status, data = await raw_get(gw.gw.public_port, target)
    assert status == 400
    assert b"APIG.0201" in data
    assert backend.requests == []


async def test_swa_suffix_dot_segments_stay_inside_the_prefix(gw_and_backend) -> None:
    gw, backend = gw_and_backend
    status, _ = await raw_get(gw.gw.public_port, b"/swa/a/b/../c")
    assert status == 200
    assert backend.requests[-1]["raw_path"] == "/base/a/c"
    # an encoded traversal that leaves the SWA prefix no longer matches it
    status, _ = await raw_get(gw.gw.public_port, b"/swa/a%2F..%2F..%2Fz")
    assert status == 404
    assert len(backend.requests) == 1


async def test_swa_suffix_cannot_split_the_backend_request(gw_and_backend) -> None:
    gw, backend = gw_and_backend
    status, _ = await raw_get(gw.gw.public_port, b"/swa/x%0d%0aX-Evil:%201%0d%0aY:")
    # the echo backend's own router does not match a path with a line break: what matters is that it
    # saw ONE request whose path carries the encoded bytes and no X-Evil header line
    assert status in (200, 404)
    status, _ = await raw_get(gw.gw.public_port, b"/swa/a%20b%3Fq=1%23f")
    assert status == 200
    rec = backend.requests[-1]
    assert rec["raw_path"] == "/base/a%20b%3Fq=1%23f"
    assert rec["query"] == []
    assert all(k.lower() != "x-evil" for r in backend.requests for k in r["headers"])


async def test_swa_suffix_with_authority_like_text_keeps_the_configured_host(gw_and_backend) -> None:
    gw, backend = gw_and_backend
    for target in (b"/swa//evil.example/x", b"/swa/@evil.example/x", b"http://evil.example/swa/y"):
        status, _ = await raw_get(gw.gw.public_port, target, b"X-Forwarded-Host: evil.example\r\n")
        assert status == 200
    paths = [r["raw_path"] for r in backend.requests]
    assert paths == ["/base//evil.example/x", "/base/@evil.example/x", "/base/y"]
    for rec in backend.requests:  # the backend Host is the configured url_domain, never caller text
        assert rec["headers"]["Host"].startswith("127.0.0.1:")


async def test_mapped_query_value_cannot_inject_backend_headers_or_path(gw_and_backend) -> None:
    gw, backend = gw_and_backend
    status, _ = await raw_get(gw.gw.public_port, b"/q?v=a%0d%0aX-Evil:%201")
    assert status == 200
    rec = backend.requests[-1]
    assert rec["headers"]["X-Mapped"] == "a  X-Evil: 1"
    assert "X-Evil" not in rec["headers"]
    status, _ = await raw_get(gw.gw.public_port, b"/q2?v=a%20b%3Fc%23d")
    assert status == 200
    assert backend.requests[-1]["raw_path"] == "/qq/a%20b%3Fc%23d/end"
    assert backend.requests[-1]["query"] == []
    status, _ = await raw_get(gw.gw.public_port, b"/q2?v=..")
    assert status == 200
    assert backend.requests[-1]["raw_path"] == "/qq/%2E%2E/end"
    status, _ = await raw_get(gw.gw.public_port, b"/q2?v=%2E%2F..%2F")
    assert backend.requests[-1]["raw_path"] == "/qq/.%2F..%2F/end"


async def test_mapped_header_with_line_break_through_aiohttp_client(make_gateway, echo_backend) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(snapshot(_apis(addr)), upstream_client="aiohttp")
    status, _ = await raw_get(gw.gw.public_port, b"/q?v=a%0d%0aX-Evil:%201")
    assert status == 200  # not a 500 from the client's header check
    assert backend.requests[-1]["headers"]["X-Mapped"] == "a  X-Evil: 1"
    status, _ = await raw_get(gw.gw.public_port, b"/swa/x%0d%0aX-Evil:%201")
    assert status in (200, 404)
    assert all("X-Evil" not in r["headers"] for r in backend.requests)


def test_normalize_unit() -> None:
    assert normalize("/a/b") == "/a/b"
    assert normalize("/a/./b") == "/a/b"
    assert normalize("/a/b/..") == "/a/"
    assert normalize("/a/.") == "/a/"
    assert normalize("/a/.well-known/x") == "/a/.well-known/x"
    assert normalize("/a/..b/c") == "/a/..b/c"
    with pytest.raises(GatewayError):
        normalize("/a/../../b")
    assert encode_path("/a b/c?d#e\r\n") == "/a%20b/c%3Fd%23e%0D%0A"
    assert UriTemplate.parse("/x/{p}").render({"p": ".."}, {}) == "/x/%2E%2E"
    assert UriTemplate.parse("/x/{p}").render({"p": "a/../b"}, {}) == "/x/a%2F..%2Fb"


async def test_set_resp_headers_system_value_with_line_break_is_neutralised(make_gateway) -> None:
    """``$context.reqPath`` is decoded caller text: a %0D%0A in it must not split the response head."""
    from tests.support.helpers import mock_api
    from tests.support.plugins_helpers import bind, plugin

    content = {"response_headers": [{"name": "X-Path", "value": "$context.reqPath",
                                     "value_type": "system_parameter", "action": "add"}]}
    doc = snapshot([mock_api("m", "/m", match_mode="SWA")], plugins=[plugin("h", "set_resp_headers", content)],
                   plugin_bindings=[bind("b1", "h", "m")])
    gw = await make_gateway(doc)
    status, data = await raw_get(gw.gw.public_port, b"/m/a%0d%0aSet-Cookie:%20evil=1")
    assert status == 200
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nSet-Cookie" not in head
    assert b"X-Path: /m/a  Set-Cookie: evil=1" in head


@pytest.mark.parametrize("upstream", ["fast", "aiohttp"])
async def test_backend_header_with_bare_line_break_is_a_502(make_gateway, upstream: str) -> None:
    """A backend head with a bare LF/CR inside a header value must not reach (or break) the caller's head."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: evil=1\r\nX-B: b\rInjected: 1\r\n"
                     b"Content-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        gw = await make_gateway(snapshot([http_api("a", "/a", f"127.0.0.1:{port}", retry_count="0")]),
                                upstream_client=upstream)
        status, data = await raw_get(gw.gw.public_port, b"/a")
        assert status == 502
        assert b"APIG.0202" in data
        assert b"evil" not in data and b"Injected" not in data
    finally:
        server.close()


def test_configured_response_headers_with_line_breaks_are_rejected_at_load() -> None:
    from gateway.compiler import validate
    from gateway.core.errors import SnapshotError
    from tests.support.helpers import mock_api

    api = mock_api("m", "/m")
    api["mock_info"]["headers"] = [{"key": "X-Ok", "value": "a\r\nSet-Cookie: evil=1"},
                                   {"key": "Bad Name", "value": "v"}]
    doc = snapshot([api], responses=[{"id": "r1", "name": "resp", "group_id": "g1", "responses": {
        "DEFAULT_4XX": {"status": 400, "body": "x", "headers": [{"key": "X-H", "value": "v\nInjected: 1"}]}}}])
    with pytest.raises(SnapshotError) as exc:
        validate(doc)
    problems = exc.value.problems
    assert any(p.startswith("apis[0].mock_info.headers[0].value: does not match") for p in problems), problems
    assert any(p.startswith("apis[0].mock_info.headers[1].key: does not match") for p in problems), problems
    assert any(".headers[0].value: does not match" in p and p.startswith("responses[0]") for p in problems), problems
