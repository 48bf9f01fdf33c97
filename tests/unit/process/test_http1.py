"""The llhttp public listener (gateway.process.http1): response serialisation, request parsing, framing
defences, pipelining, bodies and timeouts, driven through the protocol object with an in-memory transport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11
from yarl import URL

from gateway.core.settings import Settings
from gateway.process.http1 import HeaderInjection, Http1Protocol, Http1Server, _split_query, serialize_response


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.paused = False

    def write(self, data: Any) -> None:
        assert not self.closed
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default


async def echo_handler(request: Any) -> web.Response:
    body = await request.content.read() if request.body_exists else b""
    text = f"{request.method} {request.path} {sorted(request.query.items())} {body.decode()}"
    return web.Response(body=text.encode(), headers={"X-Path": request.raw_path})


def connect(handler: Any = echo_handler, **settings: Any) -> tuple[Http1Protocol, FakeTransport]:
    server = Http1Server(handler, Settings(**settings))
    proto = server()
    transport = FakeTransport()
    proto.connection_made(transport)
    return proto, transport


async def until(cond: Any, timeout: float = 15.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < end, "condition not met in time"
        await asyncio.sleep(0.005)


# --- serialisation --------------------------------------------------------------------------------------

def test_serialize_small_response_in_one_buffer() -> None:
    resp = web.Response(status=200, body=b'{"a":1}', headers={"Content-Type": "application/json", "Server": "x"})
    data, keep = serialize_response(resp, "GET", HttpVersion11, True)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK" and body == b'{"a":1}' and keep
    assert "Content-Length: 7" in lines and "Server: x" in lines and any(h.startswith("Date: ") for h in lines)
    assert not any(h.startswith("Connection") for h in lines)


def test_serialize_follows_the_bodiless_rules() -> None:
    data, _ = serialize_response(web.Response(status=200, body=b"abc"), "HEAD", HttpVersion11, True)
    assert data.endswith(b"\r\n\r\n") and b"Content-Length: 3" in data and b"abc" not in data
    data, _ = serialize_response(web.Response(status=204, body=b""), "GET", HttpVersion11, True)
    assert b"Content-Length" not in data and b"Content-Type" not in data
    data, _ = serialize_response(web.Response(status=304), "GET", HttpVersion11, True)
    assert b"Content-Length" not in data
    data, _ = serialize_response(web.Response(status=200, body=b"x"), "GET", HttpVersion11, True)
    assert b"Content-Type: application/octet-stream" in data


def test_serialize_connection_header_per_version() -> None:
    data, keep = serialize_response(web.Response(body=b"x"), "GET", HttpVersion10, True)
    assert data.startswith(b"HTTP/1.0 200 OK") and b"Connection: keep-alive" in data and keep
    data, keep = serialize_response(web.Response(body=b"x"), "GET", HttpVersion11, False)
    assert b"Connection: close" in data and not keep
    resp = web.Response(body=b"x")
    resp.force_close()
    data, keep = serialize_response(resp, "GET", HttpVersion11, True)
    assert b"Connection: close" in data and not keep


def test_serialize_refuses_header_injection() -> None:
    for name, value in (("X-A", "a\r\nSet-Cookie: evil=1"), ("X-A", "a\nb"), ("X-A", "a\rb")):
        resp = web.Response(body=b"x")
        resp.headers[name] = value
        with pytest.raises(HeaderInjection):
            serialize_response(resp, "GET", HttpVersion11, True)


@pytest.mark.parametrize("raw", ["a=1&b=2", "a", "a&a", "=1", "&&&", "a=1;b=2", "a==b", "k=v&", "x=1&x=2&y",
                                 "+=+", "a=%20", "%3D=%26", "a=b+c"])
def test_query_fast_path_matches_yarl(raw: str) -> None:
    assert list(_split_query(raw).items()) == list(URL.build(path="/", query_string=raw, encoded=True).query.items())


# --- requests through the protocol -----------------------------------------------------------------------

async def test_the_aiohttp_listener_stays_selectable() -> None:
    from gateway.process.server import Gateway

    gw = Gateway(Settings(listen="127.0.0.1:0", admin_listen="", public_listener="aiohttp"))
    await gw.start()
    try:
        assert gw.http1 is None and gw.public_port
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.public_port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 503")  # no snapshot loaded yet
        writer.close()
    finally:
        await gw.stop()


async def test_request_fields_and_keep_alive() -> None:
    proto, t = connect()
    proto.data_received(b"GET /a%20b/c?x=1&x=2&y=%41 HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(lambda: t.out.endswith(b"]  ") or (b"\r\n\r\n" in t.out and not proto.busy))
    head, _, body = bytes(t.out).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == b"GET /a b/c [('x', '1'), ('x', '2'), ('y', 'A')] "
    assert b"X-Path: /a%20b/c?x=1&x=2&y=%41" in head
    assert not t.closed


async def test_pipelined_requests_are_answered_in_order() -> None:
    order: list[str] = []

    async def slow_first(request: Any) -> web.Response:
        if request.path == "/1":
            await asyncio.sleep(0.05)
        order.append(request.path)
        return web.Response(body=request.path.encode())

    proto, t = connect(slow_first)
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                        b"GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    await until(lambda: t.closed)
    assert order == ["/1", "/2", "/3"]
    out = bytes(t.out)
    assert out.index(b"\r\n\r\n/1") < out.index(b"\r\n\r\n/2") < out.index(b"\r\n\r\n/3")
    assert out.count(b"HTTP/1.1 200") == 3


async def test_pipelining_without_reading_is_bounded() -> None:
    from gateway.process.http1 import MAX_PIPELINED

    release = asyncio.Event()

    async def blocked(request: Any) -> web.Response:
        await release.wait()
        return web.Response(body=b"x")

    proto, t = connect(blocked)
    one = b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n"
    proto.data_received(one * (MAX_PIPELINED + 4))
    assert t.paused  # queued requests past the bound stop the socket reads
    release.set()
    await until(lambda: not t.paused)
    await until(lambda: t.out.count(b"HTTP/1.1 200") == MAX_PIPELINED + 4)
    # a client that does not read its answers: the next answer waits for the transport to drain
    release.clear()
    proto.pause_writing()
    proto.data_received(one * 2)
    release.set()
    await asyncio.sleep(0.05)
    assert t.out.count(b"HTTP/1.1 200") == MAX_PIPELINED + 5
    proto.resume_writing()
    await until(lambda: t.out.count(b"HTTP/1.1 200") == MAX_PIPELINED + 6)


async def test_http_1_0_closes_unless_keep_alive() -> None:
    proto, t = connect()
    proto.data_received(b"GET /x HTTP/1.0\r\n\r\n")
    await until(lambda: t.closed)
    assert t.out.startswith(b"HTTP/1.0 200 OK")
    proto, t = connect()
    proto.data_received(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    await until(lambda: b"\r\n\r\n" in t.out and not proto.busy)
    assert b"Connection: keep-alive" in t.out and not t.closed


@pytest.mark.parametrize("line, fields, version, bad, keep", [
    (b"HTTP/1.1", b"", (1, 1), False, True),
    (b"HTTP/1.1", b"Connection: close\r\n", (1, 1), False, False),
    (b"HTTP/1.1", b"Connection: keep-alive\r\n", (1, 1), False, True),
    (b"HTTP/1.0", b"Connection: keep-alive\r\n", (1, 0), False, True),
    (b"HTTP/1.0", b"Proxy-Connection: keep-alive\r\n", (1, 0), False, True),
    (b"HTTP/1.0", b"", (1, 0), False, False),
    (b"HTTP/2.0", b"Connection: keep-alive\r\n", (1, 1), True, False),
    (b"HTTP/2.0", b"Proxy-Connection: keep-alive\r\n", (1, 1), True, False),
])
async def test_version_and_keep_alive_of_a_request(line: bytes, fields: bytes, version: tuple[int, int], bad: bool,
                                                  keep: bool) -> None:
    """The version is taken without asking llhttp for its text when only HTTP/1.1 can be kept alive."""
    seen: list[Any] = []

    async def handler(request: Any) -> web.Response:
        seen.append((tuple(request.version), request.bad_version, request.keep_alive))
        return web.Response(body=b"v")

    proto, t = connect(handler)
    proto.data_received(b"GET /x " + line + b"\r\nHost: h\r\n" + fields + b"\r\n")
    await until(lambda: bool(seen) and b"\r\n\r\n" in t.out)
    assert seen == [(version, bad, keep)]


@pytest.mark.parametrize("raw", [
    b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
    b"GET /x HTTP/1.1\nHost: h\n\n",
    b"G ET /x HTTP/1.1\r\n\r\n",
    b"GET /x\r\n\r\n",
])
async def test_smuggling_shapes_are_refused_and_the_connection_closed(raw: bytes) -> None:
    proto, t = connect()
    proto.data_received(raw + b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(lambda: t.closed)
    out = bytes(t.out)
    assert out.startswith(b"HTTP/1.1 400 ") and b'"error_code":"APIG.0201"' in out
    assert b"/smuggled" not in out and out.count(b"HTTP/1.1") == 1


async def test_head_limits() -> None:
    proto, t = connect(max_header_bytes=100, max_line_bytes=200, max_headers=5)
    proto.data_received(b"GET /x HTTP/1.1\r\nX-Big: " + b"b" * 200 + b"\r\n\r\n")
    await until(lambda: t.closed)
    assert t.out.startswith(b"HTTP/1.1 400") and b"too long" in t.out
    proto, t = connect(max_header_bytes=100, max_line_bytes=200, max_headers=5)
    proto.data_received(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n")
    await until(lambda: t.closed)
    assert t.out.startswith(b"HTTP/1.1 400")
    proto, t = connect(max_header_bytes=100, max_line_bytes=200, max_headers=5)
    proto.data_received(b"GET /x HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(6)) + b"\r\n")
    await until(lambda: t.closed)
    assert t.out.startswith(b"HTTP/1.1 400")
    # a header that never ends is bounded while it arrives, not when it completes
    proto, t = connect(max_header_bytes=100, max_line_bytes=200, max_headers=5)
    proto.data_received(b"GET /x HTTP/1.1\r\nX-Endless: ")
    for _ in range(20):
        if t.closed:
            break
        proto.data_received(b"z" * 100)
    assert t.closed and t.out.startswith(b"HTTP/1.1 400")


async def test_a_request_target_in_pieces_is_joined_and_bounded() -> None:
    proto, t = connect(max_line_bytes=200)
    for piece in (b"GET /pie", b"ces/of/a", b"/target?q=1", b" HTTP/1.1\r\nHost: h\r\n\r\n"):
        proto.data_received(piece)
    await until(lambda: b"HTTP/1.1 200" in t.out)
    assert b"GET /pieces/of/a/target [('q', '1')]" in t.out and not t.closed
    proto, t = connect(max_line_bytes=200)
    proto.data_received(b"GET /")
    for _ in range(3):  # no single piece is too long; together they are
        proto.data_received(b"a" * 90)
    await until(lambda: t.closed)
    assert t.out.startswith(b"HTTP/1.1 400") and b"too long" in t.out


async def test_chunked_request_body_and_expect_continue() -> None:
    proto, t = connect()
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
    await until(lambda: t.out.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"))
    proto.data_received(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    await until(lambda: b"hello world" in t.out)
    assert not t.closed


async def test_expect_continue_not_sent_for_a_body_over_the_limit() -> None:
    proto, t = connect(max_body_bytes=10)
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
    await asyncio.sleep(0.05)
    assert b"100 Continue" not in t.out


async def test_bad_chunk_framing_fails_the_body_and_closes() -> None:
    seen: list[str] = []

    async def reader(request: Any) -> web.Response:
        try:
            await request.content.read()
        except Exception as exc:
            seen.append(type(exc).__name__)
            return web.Response(status=400, body=b"bad body")
        return web.Response(body=b"ok")

    proto, t = connect(reader)
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                        b"GET /smuggled HTTP/1.1\r\n\r\n")
    await until(lambda: t.closed)
    assert seen == ["RequestPayloadError"] and t.out.startswith(b"HTTP/1.1 400") and b"smuggled" not in t.out


async def test_request_body_back_pressure_pauses_reading() -> None:
    release = asyncio.Event()

    async def lazy(request: Any) -> web.Response:
        await release.wait()
        body = await request.content.read()
        return web.Response(body=str(len(body)).encode())

    proto, t = connect(lazy)
    size = 1 << 20
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
    sent = 0
    while sent < size and not t.paused:
        proto.data_received(b"x" * 65536)
        sent += 65536
    assert t.paused and sent < size  # the unread body stopped the socket reads
    release.set()
    await until(lambda: not t.paused)
    while sent < size:
        proto.data_received(b"x" * 65536)
        sent += 65536
    await until(lambda: t.out.endswith(b"1048576"))


async def test_unread_body_closes_after_the_response() -> None:
    async def ignore(request: Any) -> web.Response:
        return web.Response(status=413, body=b"too big")

    proto, t = connect(ignore)
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\npartial")
    await until(lambda: t.closed)
    assert t.out.startswith(b"HTTP/1.1 413")


async def test_upgrade_is_answered_then_closed() -> None:
    proto, t = connect()
    proto.data_received(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                        b"\x81\x05hello")
    await until(lambda: t.closed)
    assert t.out.startswith(b"HTTP/1.1 200") and t.out.count(b"HTTP/1.1") == 1


async def test_http_2_request_line_is_marked_for_505() -> None:
    from gateway.process.listener import BAD_VERSION_KEY

    seen: list[bool] = []

    async def handler(request: Any) -> web.Response:
        seen.append(BAD_VERSION_KEY in request)
        return web.Response(status=505, body=b"v")

    proto, t = connect(handler)
    proto.data_received(b"GET /x HTTP/2.0\r\nHost: h\r\n\r\n")
    await until(lambda: t.closed)
    assert seen == [True] and t.out.startswith(b"HTTP/1.1 505")


async def test_header_read_timeout_and_keep_alive_timeout() -> None:
    proto, t = connect(header_read_timeout_s=0.1, keepalive_timeout_s=0.3)
    proto.data_received(b"GET /x HTTP/1.1\r\n")  # never completes
    await until(lambda: t.closed, timeout=2)
    assert t.out == b""
    proto, t = connect(header_read_timeout_s=0.2, keepalive_timeout_s=0.3)
    loop = asyncio.get_running_loop()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(lambda: b"\r\n\r\n" in t.out and not proto.busy)
    idle_from = loop.time()
    await until(lambda: t.closed, timeout=2)
    assert loop.time() - idle_from >= 0.25  # the keep-alive timeout, not the shorter header timeout


async def test_streamed_response_is_chunked_with_back_pressure() -> None:
    async def stream(request: Any) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        for part in (b"one", b"two"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    proto, t = connect(stream)
    proto.data_received(b"GET /s HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(lambda: t.out.endswith(b"0\r\n\r\n"))
    head, _, body = bytes(t.out).partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and body == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"
    proto.pause_writing()
    drained = asyncio.ensure_future(proto.drain())
    await asyncio.sleep(0.01)
    assert not drained.done()
    proto.resume_writing()
    await asyncio.wait_for(drained, 1)


async def test_streamed_response_to_http_1_0_is_close_delimited() -> None:
    async def stream(request: Any) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        await resp.write(b"data")
        await resp.write_eof()
        return resp

    proto, t = connect(stream)
    proto.data_received(b"GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    await until(lambda: t.closed)
    head, _, body = bytes(t.out).partition(b"\r\n\r\n")
    assert b"chunked" not in head and body == b"data"
