"""The pooled HTTP/1.1 upstream client against real (raw asyncio) servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from multidict import CIMultiDict

from gateway.lib.h1client import _NO_TLS, HOP_BY_HOP, RELAY_DROP, H1Client, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    body = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            body = await reader.readexactly(int(line.split(b":")[1]))
    if b"transfer-encoding: chunked" in head.lower():
        while True:
            size = int((await reader.readline()).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    return head, body


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def hdrs(**kw: str) -> CIMultiDict[str]:
    h: CIMultiDict[str] = CIMultiDict(Host="backend")
    for k, v in kw.items():
        h[k.replace("_", "-")] = v
    return h


async def test_content_length_chunked_and_keepalive_reuse() -> None:
    connections = {"n": 0}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections["n"] += 1
        while True:
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            if head.startswith(b"GET /chunked"):
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                             b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
            else:
                payload = b"echo:" + body
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%b" % (len(payload), payload))
            await writer.drain()
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    try:
        r = await client.request("http", "127.0.0.1", port, "POST", "/x", hdrs(), b"abc")
        assert (r.status, r.reason, await r.read()) == (201, "Created", b"echo:abc")
        r = await client.request("http", "127.0.0.1", port, "GET", "/chunked", hdrs(), None)
        assert r.chunked and r.headers["X-A"] == "1" and await r.read() == b"hello world"

        async def gen():
            yield b"part1-"
            yield b"part2"

        r = await client.request("http", "127.0.0.1", port, "PUT", "/s", hdrs(), gen())
        assert await r.read() == b"echo:part1-part2"
        assert connections["n"] == 1  # all three reused one keep-alive connection
    finally:
        await client.close()
        server.close()


async def test_close_delimited_head_204_and_interim_responses() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        if head.startswith(b"GET /close"):
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
            await writer.drain()
            writer.close()
            return
        if head.startswith(b"HEAD"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        elif head.startswith(b"GET /nocontent"):
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    try:
        r = await client.request("http", "127.0.0.1", port, "GET", "/close", hdrs(), None)
        assert await r.read() == b"until the end"
        r = await client.request("http", "127.0.0.1", port, "HEAD", "/h", hdrs(), None)
        assert r.status == 200 and r.content_length == 1000 and await r.read() == b""
        r = await client.request("http", "127.0.0.1", port, "GET", "/nocontent", hdrs(), None)
        assert r.status == 204 and await r.read() == b""
        r = await client.request("http", "127.0.0.1", port, "GET", "/interim", hdrs(), None)
        assert r.status == 200 and await r.read() == b"ok"
    finally:
        await client.close()
        server.close()


@pytest.mark.parametrize("pause", [0.05, 0.0])
@pytest.mark.parametrize("lines", [False, True])
async def test_stale_keepalive_connection_is_replaced_transparently(pause: float, lines: bool) -> None:
    served = {"n": 0}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        served["n"] += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # closes the keep-alive connection right after answering (no Connection: close)

    server, port = await serve(handler)
    client = H1Client()
    try:
        for _ in range(3):  # (the head as a mapping, or as lines serialised by the caller: a batched write)
            headers: Any = "Host: backend\r\n" if lines else hdrs()
            r = await client.request("http", "127.0.0.1", port, "GET", "/", headers, None)
            assert await r.read() == b"ok"
            # with a pause the close arrives while the connection is idle in the pool; without, it may arrive
            # after the connection was taken again and the request written: then it is resent on a fresh one
            await asyncio.sleep(pause)
        assert served["n"] == 3
    finally:
        await client.close()
        server.close()


async def test_protocol_errors_and_pool_limit() -> None:
    active = {"now": 0, "max": 0}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        if head.startswith(b"GET /garbage"):
            writer.write(b"NOT HTTP\r\n\r\n")
        elif head.startswith(b"GET /truncated"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
            writer.close()
            return
        else:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
            await asyncio.sleep(0.05)
            active["now"] -= 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await serve(handler)
    client = H1Client(per_host=2)
    try:
        with pytest.raises(UpstreamError):
            await client.request("http", "127.0.0.1", port, "GET", "/garbage", hdrs(), None)
        r = await client.request("http", "127.0.0.1", port, "GET", "/truncated", hdrs(), None)
        with pytest.raises(UpstreamError):
            await r.read()

        async def one() -> int:
            resp = await client.request("http", "127.0.0.1", port, "GET", "/slow", hdrs(), None)
            await resp.read()
            return resp.status

        assert await asyncio.gather(*(one() for _ in range(6))) == [200] * 6
        assert active["max"] <= 2
    finally:
        await client.close()
        server.close()


@pytest.mark.parametrize("size", [b"+2", b"-2", b"0x2", b"2_0", b" 2", b"\xb2", b""])
async def test_chunk_sizes_are_hex_digits_only(size: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nok\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    try:
        resp = await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None)
        with pytest.raises(UpstreamError):
            await resp.read(5.0)
    finally:
        await client.close()
        server.close()


async def test_deadline_bounds_the_head_and_each_body_read_without_a_timer_per_request() -> None:
    """The client's own deadline: ``TimeoutError`` when it passes (head or body), one lazily re-armed timer per
    connection rather than one per request, and a timed-out connection is never reused."""
    stall = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            if head.startswith(b"GET /silent"):
                await stall.wait()  # never answers while the test runs
                break
            if head.startswith(b"GET /partial"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                await writer.drain()
                await stall.wait()
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    loop = asyncio.get_running_loop()
    try:
        r = await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None, timeout=30.0)
        conn = r._conn
        assert await r.read() == b"ok"
        timer, first_deadline = conn.timer, conn.timer_at
        assert timer is not None and loop.time() < first_deadline <= loop.time() + 30.0
        for _ in range(20):  # later (larger) deadlines keep the armed timer: no timer per request
            r = await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None, timeout=30.0)
            assert r._conn is conn and await r.read() == b"ok"
        assert conn.timer is timer and conn.timer_at == first_deadline

        started = loop.time()
        with pytest.raises(TimeoutError):
            await client.request("http", "127.0.0.1", port, "GET", "/silent", hdrs(), None, timeout=0.3)
        assert 0.25 <= loop.time() - started < 5.0
        assert conn.closed  # the earlier deadline re-armed the timer; the connection was discarded

        r = await client.request("http", "127.0.0.1", port, "GET", "/partial", hdrs(), None, timeout=30.0)
        with pytest.raises(TimeoutError):
            await r.read(0.3)
        assert r._conn.closed
        pool = next(iter(client._pools.values()))
        assert pool.active == 0 and not pool.idle
    finally:
        stall.set()
        await client.close()
        server.close()


async def test_request_head_is_one_write_and_cr_lf_in_a_field_never_makes_a_second_line() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        seen.append(head + body)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    try:
        r = await client.request("http", "127.0.0.1", port, "POST", "/p?q=1", hdrs(X_A="1\r\nX-Injected: yes"), b"hi")
        assert r.status == 200
        assert seen[0] == (b"POST /p?q=1 HTTP/1.1\r\nHost: backend\r\nX-A: 1  X-Injected: yes\r\n"
                           b"Content-Length: 2\r\n\r\nhi")
    finally:
        await client.close()
        server.close()


async def test_fields_end_to_end_and_lenient_but_legal_heads() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
        b"Server: s\r\nContent-Length: 2\r\nX-Multi: a\r\nx-multi: b\r\n\r\nok",
        b"HTTP/1.1 201\r\nX-Sp : v\r\nX-Empty:\r\nX-Ws:  padded \t\r\nContent-Length: 1\r\n\r\nk",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    try:
        r = await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None)
        assert r.content_length == 2 and await r.read() == b"ok"
        assert r.end_to_end() == [("Server", "s"), ("Content-Length", "2"), ("X-Multi", "a"), ("x-multi", "b")]
        assert r.end_to_end(HOP_BY_HOP | {"content-length"}) == [("Server", "s"), ("X-Multi", "a"), ("x-multi", "b")]
        assert r.end_to_end(RELAY_DROP) == [("Server", "s"), ("X-Multi", "a"), ("x-multi", "b")]  # made while parsing
        assert r.headers.getall("X-MULTI") == ["a", "b"] and r.headers["x-hop"] == "1"
        assert r.block is None  # Connection names X-Hop: a relay must work on the split fields
        r = await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None)
        assert (r.status, r.reason, await r.read()) == (201, "", b"k")
        assert r.fields == [("X-Sp", "v"), ("X-Empty", ""), ("X-Ws", "padded"), ("Content-Length", "1")]
    finally:
        await client.close()
        server.close()


async def test_timeout_covers_waiting_for_a_pool_slot() -> None:
    stall = asyncio.Event()
    arrived = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.set()
        await stall.wait()
        writer.close()

    server, port = await serve(handler)
    client = H1Client(per_host=1)
    try:
        holder = asyncio.ensure_future(client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None,
                                                      timeout=60.0))
        await asyncio.wait_for(arrived.wait(), 30)  # the only connection is busy
        with pytest.raises(TimeoutError):
            await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None, timeout=0.2)
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        assert next(iter(client._pools.values())).active == 0
    finally:
        stall.set()
        await client.close()
        server.close()


async def test_a_chunked_body_already_buffered_is_taken_at_once() -> None:
    more = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # complete, with an extension and trailers
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # complete, no trailers
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # the last chunk comes later
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await more.wait()
        writer.write(b"3\r\ndef\r\n0\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # a bad chunk size: left to the streamed read, which reports it
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\nok\r\n0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0)
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    try:
        async def head(path: str) -> Any:
            r = await client.request("http", "127.0.0.1", port, "GET", path, hdrs(), None, timeout=30.0)
            for _ in range(3000):  # let the rest of the answer arrive (it was written with the head)
                if r._conn.buf.endswith(b"\r\n\r\n") or r._conn.buf.endswith(b"abc\r\n"):
                    break
                await asyncio.sleep(0.01)
            return r

        r = await head("/a")
        conn = r._conn
        assert r.chunked and r.take_buffered() == b"hello world" and not conn.buf
        r = await head("/b")
        assert r._conn is conn and r.take_buffered() == b"ok"  # the connection went back to the pool
        r = await head("/c")
        assert r.take_buffered() is None and bytes(r._conn.buf) == b"3\r\nabc\r\n"  # nothing consumed
        more.set()
        assert await r.read(30.0) == b"abcdef"
        r = await head("/d")
        assert r.take_buffered() is None
        with pytest.raises(UpstreamError):
            await r.read(30.0)
    finally:
        more.set()
        await client.close()
        server.close()


async def test_a_repeated_head_is_checked_once_and_each_response_keeps_its_own_fields() -> None:
    from gateway.lib import h1client

    good = b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
    bad = b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in (good, good, bad):
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    try:
        first = await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None)
        assert await first.read() == b"ok"
        assert good[:-6].decode("latin-1") in h1client._HEADS  # the head text, without its blank line
        second = await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None)
        assert (second.status, second.reason, second.content_length, await second.read()) == (200, "OK", 2, b"ok")
        assert second.block is first.block  # one parse for both
        first.fields.append(("X-Mine", "1"))  # each response splits its own fields
        assert second.fields == [("Server", "s"), ("Content-Length", "2"), ("Connection", "keep-alive")]
        with pytest.raises(UpstreamError):  # a different head text: checked again (conflicting lengths)
            await client.request("http", "127.0.0.1", port, "GET", "/", hdrs(), None)
    finally:
        await client.close()
        server.close()


async def test_request_head_lines_serialised_by_the_caller_get_the_framing_added() -> None:
    heads: list[bytes] = []
    bodies: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(4):
            head, body = await read_request(reader)
            heads.append(head)
            bodies.append(body)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
        writer.close()

    async def stream() -> Any:
        yield b"ab"
        yield b"c"

    server, port = await serve(handler)
    client = H1Client()
    lines = "X-A: 1\r\nHost: backend\r\n"
    try:
        for method, body in (("GET", None), ("POST", b""), ("PUT", b"data"), ("POST", stream())):
            r = await client.request("http", "127.0.0.1", port, method, "/p?q=1", lines, body)
            assert r.status == 204
            r.release()
        assert heads[0] == b"GET /p?q=1 HTTP/1.1\r\nX-A: 1\r\nHost: backend\r\n\r\n"
        assert heads[1] == b"POST /p?q=1 HTTP/1.1\r\nX-A: 1\r\nHost: backend\r\nContent-Length: 0\r\n\r\n"
        assert heads[2].endswith(b"Host: backend\r\nContent-Length: 4\r\n\r\n") and bodies[2] == b"data"
        assert heads[3].endswith(b"Host: backend\r\nTransfer-Encoding: chunked\r\n\r\n") and bodies[3] == b"abc"
    finally:
        await client.close()
        server.close()


async def test_a_remembered_head_still_frames_a_head_request_without_a_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for body in (b"hello", b"", b"world"):  # GET, HEAD (the same head text, no body), GET
            await read_request(reader)
            writer.write(head + body)
            await writer.drain()
        writer.close()

    server, port = await serve(handler)
    client = H1Client()
    try:
        for method, body in (("GET", b"hello"), ("HEAD", b""), ("GET", b"world")):
            r = await client.request("http", "127.0.0.1", port, method, "/", hdrs(), None)
            assert (r.status, r.content_length, await r.read()) == (200, 5, body)
        assert client._pools[("http", "127.0.0.1", port, _NO_TLS)].active == 1  # one connection for all three
    finally:
        await client.close()
        server.close()
