"""A small pooled HTTP/1.1 client on raw asyncio protocols, for the backend hot path.

Role in the pipeline: step 17 (forward). :class:`gateway.backends.http.HttpTarget` sends the backend
request through :class:`H1Client` (or aiohttp's client when ``upstream_client = "aiohttp"``). Why our
own: aiohttp's general-purpose client spends ~170 µs per request on this machine (tracing, cookie and
redirect machinery, per-request timers and objects); a proxy needs none of it. This client writes the
request head (+ a bytes body) in one ``transport.write``, parses the response head with one
``find``/``split`` and frames the body (Content-Length, chunked, close-delimited, none) itself.

Semantics:
* Pools per (scheme, host, port, TLS context) with keep-alive, a per-host connection limit and idle
  expiry; pools live in :class:`gateway.model.services.Services` and survive config swaps.
* A request sent on a *reused* idle connection that the server had already closed (EOF/reset before any
  response byte) is resent once on a fresh connection when its body can be replayed: the standard
  keep-alive race fix, not a spec retry.
* Response bodies are read incrementally with back-pressure (reading pauses above 256 KiB buffered).
* Timeouts are the caller's: it wraps connect+head in one deadline and each body read in another.
* Strict parsing (RFC 9112; a proxy must not relay what it cannot frame): a status line is
  ``HTTP/x.y SP 3DIGIT [SP reason]`` with a code 100-599; header names are tokens; obsolete line folding, bare
  CR/LF and NUL are refused; ``Content-Length`` is digits only and every copy must agree; a head larger than
  :data:`MAX_HEAD` is refused however it arrives; chunk sizes are hex digits only. Anything else raises
  :class:`UpstreamError` (the caller answers 502). With both ``Transfer-Encoding`` and ``Content-Length`` the
  former frames the body and the connection is not reused (§6.3: a possible smuggling attempt).
"""

from __future__ import annotations

import asyncio
import re
import ssl as ssl_mod
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from multidict import CIMultiDict

HIGH_WATER = 256 * 1024
MAX_HEAD = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
_VERSION_RX = re.compile(r"HTTP/[0-9]\.[0-9]")
_STATUS_RX = re.compile(r"[1-5][0-9][0-9]")
_TOKEN_RX = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DIGITS_RX = re.compile(r"[0-9]{1,18}")
# A well-formed final response head in one pattern (status line, then token-named header lines; no bare CR/LF,
# no NUL, no folding): the common case is checked by one C call and split without per-line checks. Anything
# else (interim 1xx answers included) takes the line-by-line path below, which decides and explains.
_FAST_HEAD_RX = re.compile(rb"HTTP/[0-9]\.[0-9] [2-5][0-9][0-9](?: [^\r\n\x00]*)?"
                           rb"(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]*:[^\r\n\x00]*)*")
_HEX_RX = re.compile(rb"[0-9A-Fa-f]{1,15}")


def content_length(values: list[str]) -> int | None:
    """The one ``Content-Length`` of a response (every copy, comma-separated or repeated, must agree)."""
    if not values:
        return None
    seen = {part.strip() for value in values for part in value.split(",")}
    if len(seen) != 1:
        raise UpstreamError("conflicting Content-Length values from backend")
    value = seen.pop()
    if not _DIGITS_RX.fullmatch(value):
        raise UpstreamError("invalid Content-Length from backend")
    return int(value)


class UpstreamError(Exception):
    """The backend could not be reached or broke the protocol (mapped to BACKEND_UNAVAILABLE)."""


class _Conn(asyncio.Protocol):
    __slots__ = ("_drain", "buf", "closed", "eof", "exc", "key", "last_used", "paused", "reused", "transport",
                 "waiter")

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self.eof = False
        self.closed = False
        self.exc: BaseException | None = None
        self.paused = False
        self.reused = False
        self.last_used = time.monotonic()

    # --- protocol callbacks ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.eof = True
        self.exc = exc
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("connection lost while writing"))

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    # --- helpers used by the client ---
    async def wait_data(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            await self._drain

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """Status, headers and an incremental body reader for one backend response."""

    __slots__ = ("_client", "_conn", "_done", "_keep", "_mode", "_remaining", "content_length", "headers", "reason",
                 "status", "version")

    def __init__(self, client: H1Client, conn: _Conn, status: int, reason: str, version: str,
                 headers: CIMultiDict[str], head_request: bool) -> None:
        self._client = client
        self._conn = conn
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        tes = headers.getall("Transfer-Encoding", None)
        te = ",".join(tes).lower() if tes else ""
        cls = headers.getall("Content-Length", None)
        if cls is None:
            cl = None
        elif len(cls) == 1 and _DIGITS_RX.fullmatch(cls[0]) is not None:
            cl = int(cls[0])  # the common case: one plain value
        else:
            cl = content_length(cls)
        conn_hdr = headers.get("Connection", "").lower()
        self._keep = ("close" not in conn_hdr) and (version == "1.1" or "keep-alive" in conn_hdr)
        self.content_length: int | None = None
        if head_request or status in _NO_BODY_STATUS or 100 <= status < 200:
            self._mode = "none"
            self.content_length = cl if head_request else None
        elif te:
            if cl is not None:
                self._keep = False  # both framings: Transfer-Encoding wins, the connection is not reused
            if te.rsplit(",", 1)[-1].strip() == "chunked":
                self._mode = "chunked"
            else:  # chunked is not the final coding: the body ends when the connection does
                self._mode = "close"
                self._keep = False
        elif cl is not None:
            self._mode = "length"
            self.content_length = cl
        else:
            self._mode = "close"
            self._keep = False
        self._remaining = self.content_length or 0
        self._done = self._mode == "none" or (self._mode == "length" and self._remaining == 0)
        if self._done:
            self._finish()

    @property
    def chunked(self) -> bool:
        return self._mode == "chunked"

    def _finish(self) -> None:
        self._done = True
        conn = self._conn
        if self._keep and not conn.closed and not conn.eof and not conn.buf:
            self._client._release(conn)
        else:
            self._client._discard(conn)

    def release(self) -> None:
        """Give the connection back (or close it if the body was not fully read)."""
        if not self._done:
            self._done = True
            self._client._discard(self._conn)

    def take_buffered(self) -> bytes | None:
        """The whole Content-Length body when it is already buffered (the common small answer), else None."""
        conn = self._conn
        if self._mode == "length" and not self._done and len(conn.buf) >= self._remaining:
            n = self._remaining
            if len(conn.buf) == n:
                body = bytes(conn.buf)
                conn.buf.clear()
            else:
                body = bytes(conn.buf[:n])
                del conn.buf[:n]
            self._remaining = 0
            self._finish()
            return body
        return None

    async def read(self, timeout: float | None = None) -> bytes:
        body = self.take_buffered()  # the whole (small) body is already here: one slice, no iterator
        if body is not None:
            return body
        parts = [chunk async for chunk in self.iter_chunks(timeout)]
        return b"".join(parts)

    async def iter_chunks(self, timeout: float | None = None) -> AsyncIterator[bytes]:
        conn = self._conn
        if self._done:
            return
        try:
            if self._mode == "length":
                async for chunk in self._exactly(self._remaining, timeout):
                    yield chunk
                self._remaining = 0
            elif self._mode == "close":
                while True:
                    if conn.buf:
                        chunk = bytes(conn.buf)
                        conn.buf.clear()
                        yield chunk
                        continue
                    if conn.eof:
                        break
                    async with asyncio.timeout(timeout):
                        await conn.wait_data()
            else:
                async for chunk in self._chunked(timeout):
                    yield chunk
        except BaseException:
            self._done = True
            self._client._discard(conn)
            raise
        self._finish()

    async def _exactly(self, n: int, timeout: float | None) -> AsyncIterator[bytes]:
        """Yield exactly ``n`` body bytes as they arrive."""
        conn = self._conn
        while n > 0:
            if not conn.buf:
                if conn.eof:
                    raise UpstreamError("backend closed the connection mid-body")
                async with asyncio.timeout(timeout):
                    await conn.wait_data()
                continue
            take = min(n, len(conn.buf))
            chunk = bytes(conn.buf[:take])
            del conn.buf[:take]
            n -= take
            yield chunk

    async def _line(self, timeout: float | None) -> bytes:
        conn = self._conn
        while True:
            idx = conn.buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(conn.buf[:idx])
                del conn.buf[:idx + 2]
                return line
            if conn.eof:
                raise UpstreamError("backend closed the connection mid-body")
            if len(conn.buf) > MAX_HEAD:
                raise UpstreamError("chunk header too long")
            async with asyncio.timeout(timeout):
                await conn.wait_data()

    async def _chunked(self, timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            size_line = await self._line(timeout)
            size_text = size_line.split(b";", 1)[0].rstrip(b" \t")
            if not _HEX_RX.fullmatch(size_text):
                raise UpstreamError("invalid chunk size from backend")
            size = int(size_text, 16)
            if size == 0:
                while await self._line(timeout):  # trailers up to the empty line
                    pass
                return
            async for chunk in self._exactly(size, timeout):
                yield chunk
            if await self._line(timeout):
                raise UpstreamError("missing CRLF after chunk")


class _Pool:
    __slots__ = ("active", "idle", "waiters")

    def __init__(self) -> None:
        self.idle: deque[_Conn] = deque()
        self.active = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class H1Client:
    """Keep-alive connection pools and the request/response exchange."""

    def __init__(self, per_host: int = 256, keepalive_s: float = 30.0, ca_file: str | None = None) -> None:
        self.per_host = per_host
        self.keepalive_s = keepalive_s
        self._pools: dict[tuple[Any, ...], _Pool] = {}
        self._default_ssl: ssl_mod.SSLContext | None = None
        self._ca_file = ca_file

    def _ssl(self, scheme: str, ssl: Any) -> ssl_mod.SSLContext | None:
        if scheme != "https":
            return None
        if isinstance(ssl, ssl_mod.SSLContext):
            return ssl
        if self._default_ssl is None:
            self._default_ssl = ssl_mod.create_default_context(cafile=self._ca_file)
        return self._default_ssl

    def _idle(self, key: tuple[Any, ...]) -> _Conn | None:
        """A usable idle keep-alive connection of ``key``'s pool, without a coroutine (the common case)."""
        pool = self._pools.get(key)
        if pool is None or not pool.idle:
            return None
        now = time.monotonic()
        while pool.idle:
            conn = pool.idle.pop()
            if conn.closed or conn.eof or conn.buf or now - conn.last_used > self.keepalive_s:
                conn.close()
                pool.active -= 1
                continue
            conn.reused = True
            return conn
        return None

    async def _acquire(self, key: tuple[Any, ...], host: str, port: int,
                       ctx: ssl_mod.SSLContext | None) -> _Conn:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool()
        conn = self._idle(key)
        if conn is not None:
            return conn
        while pool.active >= self.per_host:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            pool.waiters.append(fut)
            await fut
            if pool.idle:
                conn = pool.idle.pop()
                if not (conn.closed or conn.eof or conn.buf):
                    conn.reused = True
                    return conn
                conn.close()
                pool.active -= 1
        pool.active += 1
        try:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(
                lambda: _Conn(key), host, port, ssl=ctx, server_hostname=host if ctx is not None else None)
        except BaseException:
            pool.active -= 1
            self._notify(pool)
            raise
        return conn

    def _notify(self, pool: _Pool) -> None:
        while pool.waiters:
            w = pool.waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _release(self, conn: _Conn) -> None:
        pool = self._pools.get(conn.key)
        if pool is None:
            conn.close()
            return
        conn.last_used = time.monotonic()
        pool.idle.append(conn)
        self._notify(pool)

    def _discard(self, conn: _Conn) -> None:
        conn.close()
        pool = self._pools.get(conn.key)
        if pool is not None:
            pool.active -= 1
            self._notify(pool)

    async def request(self, scheme: str, host: str, port: int, method: str, target: str,
                      headers: CIMultiDict[str], body: bytes | AsyncIterator[bytes] | None,
                      ssl: Any = None) -> UpstreamResponse:
        ctx = self._ssl(scheme, ssl)
        key = (scheme, host, port, id(ctx))
        for fresh_try in (False, True):
            conn = self._idle(key) or await self._acquire(key, host, port, ctx)
            sent_on_reused = conn.reused
            try:
                if self._write_head(conn, method, target, headers, body):
                    assert body is not None and not isinstance(body, bytes)
                    await self._send_stream(conn, body, "Content-Length" not in headers)
                else:
                    drain = conn._drain
                    if drain is not None and not drain.done():
                        await drain
                return await self._read_head(conn, method == "HEAD")
            except (ConnectionError, UpstreamError, OSError) as exc:
                self._discard(conn)
                replayable = body is None or isinstance(body, bytes)
                if sent_on_reused and not fresh_try and replayable and isinstance(exc, _StaleConnection):
                    continue
                if isinstance(exc, UpstreamError):
                    raise
                raise UpstreamError(f"{type(exc).__name__}: {exc}") from None
            except BaseException:
                self._discard(conn)
                raise
        raise UpstreamError("unreachable")  # pragma: no cover

    def _write_head(self, conn: _Conn, method: str, target: str, headers: CIMultiDict[str],
                    body: bytes | AsyncIterator[bytes] | None) -> bool:
        """Write the request head (and a bytes body); True when a streamed body must follow (:meth:`_send_stream`)."""
        transport = conn.transport
        if transport is None or conn.closed:
            raise _StaleConnection("connection closed before sending")
        lines = [f"{method} {target} HTTP/1.1"]
        streaming = body is not None and not isinstance(body, bytes)
        has_length = "Content-Length" in headers
        for k, v in headers.items():
            if "\r" in v or "\n" in v:
                v = v.replace("\r", " ").replace("\n", " ")
            lines.append(f"{k}: {v}")
        if isinstance(body, bytes):
            if not has_length and (body or method in ("POST", "PUT", "PATCH")):
                lines.append(f"Content-Length: {len(body)}")
        elif streaming and not has_length:
            lines.append("Transfer-Encoding: chunked")
        lines.append("\r\n")
        head = "\r\n".join(lines).encode("latin-1", "replace")
        if isinstance(body, bytes):
            transport.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                transport.write(body)
            return False
        transport.write(head)
        return streaming

    async def _send_stream(self, conn: _Conn, body: AsyncIterator[bytes], chunked: bool) -> None:
        """Stream a request body after its head, honouring the transport's back-pressure."""
        transport = conn.transport
        assert transport is not None
        async for chunk in body:
            if conn.closed:
                raise ConnectionResetError("backend closed the connection while receiving the body")
            if not chunk:
                continue
            if chunked:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            await conn.drain()
        if chunked:
            transport.write(b"0\r\n\r\n")
        await conn.drain()

    async def _read_head(self, conn: _Conn, head_request: bool) -> UpstreamResponse:
        got_any = False
        while True:
            idx = conn.buf.find(b"\r\n\r\n")
            if idx < 0:
                if conn.buf:
                    got_any = True
                if len(conn.buf) > MAX_HEAD:
                    raise UpstreamError("response head too large")
                if conn.eof:
                    if not got_any and conn.reused:
                        raise _StaleConnection("idle connection closed by the backend")
                    raise UpstreamError("backend closed the connection before answering")
                await conn.wait_data()
                continue
            if idx > MAX_HEAD:
                raise UpstreamError("response head too large")
            raw = bytes(conn.buf[:idx])
            del conn.buf[:idx + 4]
            if _FAST_HEAD_RX.fullmatch(raw) is not None:
                lines = raw.decode("latin-1").split("\r\n")
                first = lines[0]
                fast: CIMultiDict[str] = CIMultiDict(
                    [(n.rstrip(" \t"), v.strip(" \t")) for n, _, v in (line.partition(":") for line in lines[1:])])
                return UpstreamResponse(self, conn, int(first[9:12]), first[13:], first[5:8], fast, head_request)
            crlf = raw.count(b"\r\n")
            if raw.count(b"\r") != crlf or raw.count(b"\n") != crlf or b"\x00" in raw:
                # a bare CR/LF or NUL would smuggle a header line into the caller's response
                raise UpstreamError("malformed response head from backend (bare CR/LF or NUL)")
            lines = raw.decode("latin-1").split("\r\n")
            status_line = lines[0].split(" ", 2)
            if len(status_line) < 2 or not _VERSION_RX.fullmatch(status_line[0]) \
                    or not _STATUS_RX.fullmatch(status_line[1]):
                raise UpstreamError("malformed status line from backend")
            status = int(status_line[1])
            if 100 <= status < 200:
                if status == 101:  # the gateway never asks for an upgrade
                    raise UpstreamError("unexpected 101 Switching Protocols from backend")
                got_any = True
                continue  # interim response (100 Continue, 103 Early Hints): skip
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not _TOKEN_RX.fullmatch(name.rstrip(" \t")):
                    # no colon, an empty or non-token name, or obsolete line folding (a leading space)
                    raise UpstreamError("malformed header line from backend")
                headers.add(name.rstrip(" \t"), value.strip(" \t"))
            version = status_line[0][5:]
            reason = status_line[2] if len(status_line) > 2 else ""
            return UpstreamResponse(self, conn, status, reason, version, headers, head_request)

    async def close(self) -> None:
        for pool in self._pools.values():
            while pool.idle:
                pool.idle.pop().close()
        self._pools.clear()


class _StaleConnection(ConnectionError):
    """A reused keep-alive connection turned out to be closed by the backend."""
