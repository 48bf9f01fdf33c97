"""A small pooled HTTP/1.1 client on raw asyncio protocols, for the backend hot path.

Role in the pipeline: step 17 (forward). :class:`gateway.backends.http.HttpTarget` sends the backend
request through :class:`H1Client` (or aiohttp's client when ``upstream_client = "aiohttp"``). Why our
own: aiohttp's general-purpose client spends ~170 µs per request on this machine (tracing, cookie and
redirect machinery, per-request timers and objects); a proxy needs none of it. This client writes the
request head (+ a bytes body) in one ``transport.write`` (queued with the other writes of the loop pass,
:mod:`gateway.core.writebatch`), parses the response head with one
``find``/``split`` and frames the body (Content-Length, chunked, close-delimited, none) itself.

Semantics:
* Pools per (scheme, host, port, TLS context) with keep-alive, a per-host connection limit and idle
  expiry; pools live in :class:`gateway.model.services.Services` and survive config swaps.
* A request sent on a *reused* idle connection that the server had already closed (EOF/reset before any
  response byte) is resent once on a fresh connection when its body can be replayed: the standard
  keep-alive race fix, not a spec retry.
* Response bodies are read incrementally with back-pressure (reading pauses above 256 KiB buffered).
* Timeouts are the caller's: :meth:`H1Client.request` takes one timeout for connect + send + response head,
  and each body read takes a timeout of its own (or the caller wraps the call in ``asyncio.timeout``, as for a
  streamed request body). A deadline costs no timer per request: each connection holds at most one
  ``call_at`` handle that re-arms itself lazily (a busy keep-alive connection with a 5 s timeout schedules one
  timer per 5 s) and fails the pending read with ``TimeoutError`` when it passes.
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
from collections.abc import AsyncIterator, Sequence
from time import monotonic
from typing import Any

from multidict import CIMultiDict

from gateway.core.writebatch import WriteBatch

HIGH_WATER = 256 * 1024
MAX_HEAD = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Connection-level fields (RFC 9110 §7.6.1): never relayed by a proxy
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
})
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
# what a relaying proxy leaves out of the answer it passes on (it frames the body itself)
RELAY_DROP = HOP_BY_HOP | {"content-length"}
_VERSION_RX = re.compile(r"HTTP/[0-9]\.[0-9]")
_STATUS_RX = re.compile(r"[1-5][0-9][0-9]")
_TOKEN_RX = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DIGITS_RX = re.compile(r"[0-9]{1,18}")
# A well-formed final response head in one pattern (status line, then token-named header lines with the colon
# right after the name; no bare CR/LF, no NUL, no folding): the common case is checked by one C call and split
# without per-line checks. Anything else (interim 1xx answers, "Name : value" included) takes the line-by-line
# path below, which decides and explains.
_FAST_HEAD_RX = re.compile(r"HTTP/[0-9]\.[0-9] [2-5][0-9][0-9](?: [^\r\n\x00]*)?"
                           r"(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n\x00]*)*")
_HEX_RX = re.compile(rb"[0-9A-Fa-f]{1,15}")
# the framing fields of a head that passed _FAST_HEAD_RX, found by one C call (value without surrounding blanks)
_FRAMING_RX = re.compile(r"\r\n(?i:(connection|content-length|transfer-encoding)):[ \t]*([^\r]*)")
# Content-Length, Connection and Transfer-Encoding values of a header block (None: no such field)
Framing = tuple[tuple[str, ...] | None, tuple[str, ...] | None, tuple[str, ...] | None]
# how a head frames its body: (mode: none|length|chunked|close, keep the connection, length, names Connection lists)
Frame = tuple[str, bool, int | None, frozenset[str] | None]
# Heads seen recently that passed the strict pattern -> (status, reason, version, header block, framing). A backend
# answers with the same head again and again (its Date changes once a second): the pattern check, the status line
# slicing and the framing search run once per distinct head text. Bounded; emptied when full.
_HEADS: dict[str, tuple[int, str, str, str, Framing, Frame]] = {}
_HEADS_MAX = 512


def _block_framing(block: str) -> Framing:
    """The framing fields' values in a header block that passed the strict pattern (found by one C call)."""
    cls: tuple[str, ...] | None = None
    conns: tuple[str, ...] | None = None
    tes: tuple[str, ...] | None = None
    for name, value in _FRAMING_RX.findall(block):
        low = name.lower()
        value = value.rstrip(" \t")
        if low == "content-length":
            cls = (value,) if cls is None else (*cls, value)
        elif low == "connection":
            conns = (value,) if conns is None else (*conns, value)
        else:
            tes = (value,) if tes is None else (*tes, value)
    return cls, conns, tes


def _take(buf: bytearray, n: int) -> bytes:
    """The first ``n`` bytes of ``buf`` as bytes (one copy, not two as ``bytes(buf[:n])``), removed from it."""
    with memoryview(buf) as view:
        data = bytes(view[:n])
    del buf[:n]
    return data


def _frame(status: int, version: str, framing: tuple[Sequence[str] | None, Sequence[str] | None,
                                                     Sequence[str] | None], head_request: bool) -> Frame:
    """The body framing of a response from its Content-Length, Connection and Transfer-Encoding values."""
    cls, conns, tes = framing
    te = ",".join(tes).lower() if tes else ""
    if cls is None:
        cl = None
    elif len(cls) == 1 and _DIGITS_RX.fullmatch(cls[0]) is not None:
        cl = int(cls[0])  # the common case: one plain value
    else:
        cl = content_length(cls)
    conn_hdr = ",".join(conns).lower() if conns else ""
    named = None
    if conn_hdr and conn_hdr not in ("keep-alive", "close"):
        named = frozenset(t.strip() for t in conn_hdr.split(","))
    keep = ("close" not in conn_hdr) and (version == "1.1" or "keep-alive" in conn_hdr)
    length: int | None = None
    if head_request or status in _NO_BODY_STATUS or 100 <= status < 200:
        mode = "none"
        length = cl if head_request else None
    elif te:
        if cl is not None:
            keep = False  # both framings: Transfer-Encoding wins, the connection is not reused
        if te.rsplit(",", 1)[-1].strip() == "chunked":
            mode = "chunked"
        else:  # chunked is not the final coding: the body ends when the connection does
            mode = "close"
            keep = False
    elif cl is not None:
        mode = "length"
        length = cl
    else:
        mode = "close"
        keep = False
    return mode, keep, length, named


def content_length(values: Sequence[str]) -> int | None:
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
    __slots__ = ("_drain", "buf", "closed", "deadline", "eof", "exc", "key", "last_used", "loop", "paused", "pool",
                 "reused", "timer", "timer_at", "transport", "waiter")

    def __init__(self, key: tuple[Any, ...], pool: _Pool | None = None) -> None:
        self.key = key
        self.pool = pool  # the pool it belongs to (None: looked up by key)
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
        self.loop = asyncio.get_running_loop()
        self.deadline: float | None = None  # of the pending read (loop time)
        self.timer: asyncio.TimerHandle | None = None  # at most one, re-armed lazily (see wait)
        self.timer_at = 0.0

    # --- protocol callbacks ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if len(buf) > HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        w = self.waiter  # (_wake, inline)
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

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
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    # --- helpers used by the client ---
    def wait(self, deadline: float | None = None) -> asyncio.Future[None]:
        """A future resolved when more data, EOF or a connection loss arrives; it fails with ``TimeoutError`` once
        ``deadline`` (loop time; None: no limit) passes.

        No timer per call: the connection's one timer stays armed while it fires no later than ``deadline``;
        when it fires early (the deadline moved on since it was armed) it re-arms for the current one.
        """
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        w = self.waiter = self.loop.create_future()
        self.deadline = deadline
        if deadline is not None and (self.timer is None or self.timer_at > deadline):
            self._arm(deadline)
        return w

    def _arm(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = when
        self.timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        w = self.waiter
        deadline = self.deadline
        if w is None or w.done() or deadline is None:
            return  # nothing pending: the next wait arms a new timer
        if self.loop.time() >= deadline:
            self.waiter = None
            w.set_exception(TimeoutError())
        else:
            self._arm(deadline)

    async def drain(self, deadline: float | None = None) -> None:
        d = self._drain
        if d is not None and not d.done():
            if deadline is None:
                await d
            else:
                async with asyncio.timeout_at(deadline):
                    await d

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class UpstreamResponse:
    """Status, header fields and an incremental body reader for one backend response."""

    __slots__ = ("_block", "_client", "_conn", "_done", "_fields", "_headers", "_keep", "_mode", "_named",
                 "_relayed", "_remaining", "block", "chunked", "content_length", "reason", "status", "version")

    def __init__(self, client: H1Client, conn: _Conn, status: int, reason: str, version: str,
                 fields: list[tuple[str, str]] | None, head_request: bool, block: str | None = None,
                 framing: Framing | None = None, frame: Frame | None = None) -> None:
        """``fields`` as parsed; or None and ``block``: the header lines of a head that passed the strict
        one-pattern check, as received (``"\\r\\nName: value"`` per field; the fields are split on first use),
        with its ``framing`` values and how they ``frame`` the body (both found when not given)."""
        self._client = client
        self._conn = conn
        self.status = status
        self.reason = reason
        self.version = version
        self._fields = fields
        self._block = block
        self._headers: CIMultiDict[str] | None = None
        self._relayed: list[tuple[str, str]] | None = None
        if frame is None:
            if fields is None:
                assert block is not None
                frame = _frame(status, version, framing if framing is not None else _block_framing(block),
                               head_request)
            else:
                found: dict[str, list[str]] = {}
                relayed: list[tuple[str, str]] = []  # the fields not in RELAY_DROP, found in the same pass
                self._relayed = relayed
                for field in fields:  # one pass: the framing fields, and the fields a relay passes on
                    low = field[0].lower()
                    if low in RELAY_DROP:
                        if low in _FRAMING:
                            found.setdefault(low, []).append(field[1])
                    else:
                        relayed.append(field)
                frame = _frame(status, version, (found.get("content-length"), found.get("connection"),
                                                 found.get("transfer-encoding")), head_request)
        mode, keep, length, named = frame
        self._mode = mode
        self._keep = keep
        self.content_length = length
        # fields named by Connection (beyond the usual keep-alive/close) are hop-by-hop too (RFC 9110 §7.6.1)
        self._named = named
        # the header block as received, for a relay that passes it on (None: the fields it names must be left
        # out, the relay works on split fields)
        self.block = block if named is None else None
        self.chunked = mode == "chunked"
        self._remaining = length or 0
        self._done = False
        if mode == "none" or (mode == "length" and not length):
            self._finish()

    @property
    def fields(self) -> list[tuple[str, str]]:
        """(name, value) in arrival order, values without surrounding whitespace (split on first use)."""
        fields = self._fields
        if fields is None:
            lines = (self._block or "").split("\r\n")
            fields = self._fields = []
            for i in range(1, len(lines)):  # lines[0]: the empty text before the first field's CRLF
                name, _, value = lines[i].partition(":")
                fields.append((name, value.strip(" \t")))
        return fields

    @property
    def headers(self) -> CIMultiDict[str]:
        """All header fields as a case-insensitive multidict (built on first use)."""
        if self._headers is None:
            self._headers = CIMultiDict(self.fields)
        return self._headers

    def end_to_end(self, drop: frozenset[str] = HOP_BY_HOP) -> list[tuple[str, str]]:
        """The fields a proxy relays: all but ``drop`` (lower-case names) and those named by ``Connection``.

        With :data:`RELAY_DROP` itself (what the HTTP relay passes) the list was made while parsing; it is the
        caller's to keep, not to modify.
        """
        named = self._named
        if drop is RELAY_DROP:
            relayed = self._relayed
            if relayed is None:
                relayed = self._relayed = [f for f in self.fields if f[0].lower() not in RELAY_DROP]
            if named is None:
                return relayed
            return [(k, v) for k, v in relayed if k.lower() not in named]
        if named is None:
            return [(k, v) for k, v in self.fields if k.lower() not in drop]
        return [(k, v) for k, v in self.fields if k.lower() not in drop and k.lower() not in named]

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
        """The whole body when it is already buffered (the common small answer), else None: a Content-Length
        body, or a chunked one up to its last chunk (decoded; trailers dropped as by :meth:`iter_chunks`)."""
        if self._done:
            return None
        mode = self._mode
        if mode == "length":
            buf = self._conn.buf
            n = self._remaining
            have = len(buf)
            if have < n:
                return None
            if have == n:
                body = bytes(buf)
                buf.clear()
            else:
                body = _take(buf, n)
            self._remaining = 0
            self._done = True  # (_finish, inline)
            conn = self._conn
            if self._keep and not buf and not conn.closed and not conn.eof:
                self._client._release(conn)
            else:
                self._client._discard(conn)
            return body
        if mode == "chunked":
            return self._take_chunked()
        return None

    def _take_chunked(self) -> bytes | None:
        """The decoded chunked body if all of it is buffered and well framed; None otherwise (nothing consumed:
        :meth:`iter_chunks` then reads it, waiting where needed and reporting any framing error)."""
        buf = self._conn.buf
        parts: list[bytes] = []
        pos = 0
        with memoryview(buf) as view:
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                size_text = bytes(view[pos:eol]).split(b";", 1)[0].rstrip(b" \t")
                if _HEX_RX.fullmatch(size_text) is None:
                    return None
                size = int(size_text, 16)
                start = eol + 2
                if size == 0:  # the last chunk, then trailer lines up to an empty one
                    if buf[start:start + 2] == b"\r\n":
                        end = start + 2
                    else:
                        end = buf.find(b"\r\n\r\n", start)
                        if end < 0:
                            return None
                        end += 4
                    break
                stop = start + size
                if len(buf) < stop + 2 or buf[stop:stop + 2] != b"\r\n":
                    return None
                parts.append(bytes(view[start:stop]))
                pos = stop + 2
        del buf[:end]
        self._finish()
        return b"".join(parts)

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
                    await conn.wait(None if timeout is None else conn.loop.time() + timeout)
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
                await conn.wait(None if timeout is None else conn.loop.time() + timeout)
                continue
            buf = conn.buf
            if len(buf) <= n:  # all of it belongs to this body: one copy, no shifting
                chunk = bytes(buf)
                buf.clear()
            else:
                chunk = _take(buf, n)
            n -= len(chunk)
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
            await conn.wait(None if timeout is None else conn.loop.time() + timeout)

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
    __slots__ = ("active", "closed", "idle", "waiters")

    def __init__(self) -> None:
        self.idle: deque[_Conn] = deque()
        self.active = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False  # the client was closed: connections given back are closed


_NO_TLS = 0  # the pool key's TLS part for plain connections (no id() call per request)


class H1Client:
    """Keep-alive connection pools and the request/response exchange."""

    def __init__(self, per_host: int = 256, keepalive_s: float = 30.0, ca_file: str | None = None) -> None:
        self.per_host = per_host
        self.keepalive_s = keepalive_s
        self._pools: dict[tuple[Any, ...], _Pool] = {}
        self._default_ssl: ssl_mod.SSLContext | None = None
        self._ca_file = ca_file
        # complete requests are written at the end of the loop pass, together (one connection carries one request
        # at a time, so nothing else is ever written to a connection with a queued request)
        self._batch = WriteBatch()

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
                lambda: _Conn(key, pool), host, port, ssl=ctx, server_hostname=host if ctx is not None else None)
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
        pool = conn.pool
        if pool is None:
            pool = self._pools.get(conn.key)
        if pool is None or pool.closed:
            conn.close()
            return
        conn.last_used = time.monotonic()
        pool.idle.append(conn)
        if pool.waiters:
            self._notify(pool)

    def _discard(self, conn: _Conn) -> None:
        conn.close()
        pool = self._pools.get(conn.key)
        if pool is not None:
            pool.active -= 1
            self._notify(pool)

    async def request(self, scheme: str, host: str, port: int, method: str, target: str,
                      headers: CIMultiDict[str] | str, body: bytes | AsyncIterator[bytes] | None,
                      ssl: Any = None, timeout: float | None = None) -> UpstreamResponse:
        """Send one request and return its response head (the body is read from the returned object).

        ``headers``: a multidict, or the header lines already serialised (each ending in CRLF, no CR/LF inside,
        ``Host`` included, no framing field: the client adds ``Content-Length`` or chunked framing).
        ``timeout`` (seconds) bounds waiting for a connection, the send and the response head together; when it
        passes, ``TimeoutError``. None: no bound here (the caller may wrap the call in ``asyncio.timeout``).
        One coroutine frame from the send to the parsed head (the head is parsed by plain methods).
        """
        ctx = self._ssl(scheme, ssl) if scheme == "https" else None
        key = (scheme, host, port, _NO_TLS if ctx is None else id(ctx))
        deadline: float | None = None
        conn: _Conn | None
        for fresh_try in (False, True):
            pool = self._pools.get(key)
            if pool is not None and pool.idle:  # (the common case of _idle, inline)
                conn = pool.idle.pop()
                if conn.closed or conn.eof or conn.buf or monotonic() - conn.last_used > self.keepalive_s:
                    conn.close()
                    pool.active -= 1
                    conn = self._idle(key)
                else:
                    conn.reused = True
            else:
                conn = None
            if conn is None:
                if timeout is not None and deadline is None:
                    deadline = asyncio.get_running_loop().time() + timeout
                async with asyncio.timeout_at(deadline):
                    conn = await self._acquire(key, host, port, ctx)
            elif timeout is not None and deadline is None:
                # the connection's loop: asyncio.get_running_loop() costs a getpid() system call per use
                deadline = conn.loop.time() + timeout
            sent_on_reused = conn.reused
            try:
                if self._write_head(conn, method, target, headers, body):
                    assert body is not None and not isinstance(body, bytes)
                    await self._send_stream(conn, body, type(headers) is str or "Content-Length" not in headers)
                else:
                    drain = conn._drain
                    if drain is not None and not drain.done():
                        await conn.drain(deadline)
                got_any = False
                while True:  # (the loop of _read_head, inline: a coroutine frame less per request)
                    buf = conn.buf
                    idx = buf.find(b"\r\n\r\n")
                    if idx >= 0:
                        resp = self._parse_head(conn, idx, method == "HEAD")
                        if resp is not None:
                            return resp
                        got_any = True  # an interim answer was skipped
                        continue
                    if conn.eof or len(buf) > MAX_HEAD:
                        self._no_head_yet(conn, got_any)  # raises
                    if buf:
                        got_any = True
                    await conn.wait(deadline)
            except TimeoutError:  # (an OSError: before the clause below)
                self._discard(conn)
                raise
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

    def _write_head(self, conn: _Conn, method: str, target: str, headers: CIMultiDict[str] | str,
                    body: bytes | AsyncIterator[bytes] | None) -> bool:
        """Write the request head (and a bytes body); True when a streamed body must follow (:meth:`_send_stream`)."""
        transport = conn.transport
        if transport is None or conn.closed:
            raise _StaleConnection("connection closed before sending")
        if type(headers) is str:  # serialised by the caller: only the framing is added here
            # a complete request is sent with the other writes of this loop pass (gateway.core.writebatch)
            if isinstance(body, bytes):
                if body or method in _BODY_METHODS:
                    data = f"{method} {target} HTTP/1.1\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode(
                        "latin-1", "replace")
                    if len(body) < 65536:
                        self._batch.write(conn.loop, transport, data + body)
                    else:
                        transport.write(data)
                        transport.write(body)
                    return False
                self._batch.write(conn.loop, transport,
                                  f"{method} {target} HTTP/1.1\r\n{headers}\r\n".encode("latin-1", "replace"))
                return False
            if body is None:
                self._batch.write(conn.loop, transport,
                                  f"{method} {target} HTTP/1.1\r\n{headers}\r\n".encode("latin-1", "replace"))
                return False
            transport.write(f"{method} {target} HTTP/1.1\r\n{headers}Transfer-Encoding: chunked\r\n\r\n".encode(
                "latin-1", "replace"))
            return True
        assert not isinstance(headers, str)
        try:
            fields = list(map(": ".join, headers.items()))  # C-level iteration: half the cost of an f-string loop
        except TypeError:  # a non-str value
            fields = [f"{k}: {v}" for k, v in headers.items()]
        is_bytes = isinstance(body, bytes)
        if "Content-Length" not in headers:
            if is_bytes:
                if body or method in _BODY_METHODS:
                    fields.append(f"Content-Length: {len(body)}")  # type: ignore[arg-type]
            elif body is not None:
                fields.append("Transfer-Encoding: chunked")
        text = "\r\n".join(fields)
        n = len(fields) - 1
        if text.count("\r") != n or text.count("\n") != n:  # a CR or LF inside a field: never a second line
            text = "\r\n".join(f.replace("\r", " ").replace("\n", " ") for f in fields)
        head = (f"{method} {target} HTTP/1.1\r\n{text}\r\n\r\n" if fields else f"{method} {target} HTTP/1.1\r\n\r\n"
                ).encode("latin-1", "replace")
        if is_bytes:  # a complete request: sent with the other writes of this loop pass (gateway.core.writebatch)
            if not body:
                self._batch.write(conn.loop, transport, head)
            elif len(body) < 65536:  # type: ignore[arg-type]
                self._batch.write(conn.loop, transport, head + body)  # type: ignore[operator]
            else:
                transport.write(head)
                transport.write(body)  # type: ignore[arg-type]
            return False
        transport.write(head)
        return body is not None

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

    async def _read_head(self, conn: _Conn, head_request: bool, deadline: float | None = None) -> UpstreamResponse:
        """The response head on ``conn`` (skipping interim answers), waiting for it up to ``deadline``."""
        got_any = False
        while True:
            idx = conn.buf.find(b"\r\n\r\n")
            if idx >= 0:
                resp = self._parse_head(conn, idx, head_request)
                if resp is not None:
                    return resp
                got_any = True
                continue
            if self._no_head_yet(conn, got_any):
                got_any = True
            await conn.wait(deadline)

    @staticmethod
    def _no_head_yet(conn: _Conn, got_any: bool) -> bool:
        """No complete head buffered: raise when none can come (too large, EOF); else whether bytes arrived."""
        buf = conn.buf
        if len(buf) > MAX_HEAD:
            raise UpstreamError("response head too large")
        if conn.eof:
            if not got_any and not buf and conn.reused:
                raise _StaleConnection("idle connection closed by the backend")
            raise UpstreamError("backend closed the connection before answering")
        return bool(buf)

    def _parse_head(self, conn: _Conn, idx: int, head_request: bool) -> UpstreamResponse | None:
        """The head ending at ``idx`` in the buffer (consumed): the response, or None for an interim answer."""
        buf = conn.buf
        if idx > MAX_HEAD:
            raise UpstreamError("response head too large")
        text = str(buf[:idx], "latin-1")
        del buf[:idx + 4]
        seen = _HEADS.get(text)
        if seen is None and _FAST_HEAD_RX.fullmatch(text) is not None:
            # the usual answer: the status line sliced, the header block kept as received (split on demand)
            eol = text.find("\r\n")
            block = "" if eol < 0 else text[eol:]
            status = int(text[9:12])
            framing = _block_framing(block)
            seen = (status, text[13:] if eol < 0 else text[13:eol], text[5:8], block, framing,
                    _frame(status, text[5:8], framing, False))  # (raises for conflicting lengths: not kept)
            if len(_HEADS) >= _HEADS_MAX:
                _HEADS.clear()
            _HEADS[text] = seen
        if seen is not None:
            return UpstreamResponse(self, conn, seen[0], seen[1], seen[2], None, head_request, seen[3], seen[4],
                                    None if head_request else seen[5])
        crlf = text.count("\r\n")
        if text.count("\r") != crlf or text.count("\n") != crlf or "\x00" in text:
            # a bare CR/LF or NUL would smuggle a header line into the caller's response
            raise UpstreamError("malformed response head from backend (bare CR/LF or NUL)")
        lines = text.split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not _VERSION_RX.fullmatch(status_line[0]) \
                or not _STATUS_RX.fullmatch(status_line[1]):
            raise UpstreamError("malformed status line from backend")
        status = int(status_line[1])
        if 100 <= status < 200:
            if status == 101:  # the gateway never asks for an upgrade
                raise UpstreamError("unexpected 101 Switching Protocols from backend")
            return None  # interim response (100 Continue, 103 Early Hints): skip
        fields = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            name = name.rstrip(" \t")
            if not sep or not _TOKEN_RX.fullmatch(name):
                # no colon, an empty or non-token name, or obsolete line folding (a leading space)
                raise UpstreamError("malformed header line from backend")
            fields.append((name, value.strip(" \t")))
        version = status_line[0][5:]
        reason = status_line[2] if len(status_line) > 2 else ""
        return UpstreamResponse(self, conn, status, reason, version, fields, head_request)

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.closed = True
            while pool.idle:
                pool.idle.pop().close()
        self._pools.clear()


class _StaleConnection(ConnectionError):
    """A reused keep-alive connection turned out to be closed by the backend."""
