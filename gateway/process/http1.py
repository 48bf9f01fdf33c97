"""The public HTTP/1.x listener on the llhttp parser (``httptools``): one protocol object per connection.

Role in the pipeline: step 0 (accept) for HTTP/1.0 and HTTP/1.1, the default public listener
(``public_listener = "fast"``; ``"aiohttp"`` selects the previous aiohttp-based one in
:mod:`gateway.process.listener`). Each request becomes an :class:`Http1Request` (the part of aiohttp's
``BaseRequest`` the pipeline reads), goes through ``Gateway.handle`` exactly like a request of the other
listeners, and its response is written back by :class:`Http1Protocol`:

* a small ``web.Response`` (head + bytes body) is serialised by :func:`serialize_response` and sent with one
  ``transport.write``; nothing else of aiohttp's response machinery runs. Complete answers are queued and
  written together at the end of the loop pass (:mod:`gateway.core.writebatch`); any other write to the
  connection, and its close, flushes the queue first, so bytes never overtake each other;
* a streamed response (``StreamResponse.prepare(request)`` by the HTTP relay) writes through
  :class:`Http1Writer`: chunked framing on HTTP/1.1 when the length is unknown, close-delimited on HTTP/1.0,
  and ``await`` on the transport's write buffer (back-pressure);
* request bodies stream into an aiohttp ``StreamReader`` (``request.content``) that pauses reading from the
  socket above its high-water mark (back-pressure toward the caller).

Limits and defences (docs/robustness.md, docs/security.md): request line (``max_line_bytes``), each header
field (``max_header_bytes``), the header count (``max_headers``) and the whole head (line + 4 header fields'
worth) are bounded while the bytes arrive, answered 400 with the gateway's error JSON; llhttp in strict mode
rejects conflicting ``Content-Length`` / ``Transfer-Encoding``, a repeated ``Content-Length``, bad chunk
framing, bare CR/LF and invalid tokens (400, connection closed: the bytes after a framing error are never
interpreted as another request). ``Transfer-Encoding`` other than ``chunked`` is refused (400). A request
head must arrive within ``header_read_timeout_s`` (every request, not only the first); an idle keep-alive
connection is closed after ``keepalive_timeout_s``. Pipelined requests are answered in order, one at a time;
a response is never written before the previous one is complete; reading pauses while ``MAX_PIPELINED`` requests
are queued, and the next answer waits while the client is not reading the previous ones (its socket buffer is
full), so a client that pipelines without reading costs bounded memory. ``Expect: 100-continue`` is answered
``100 Continue`` unless the declared length already exceeds the body limit. HTTP versions other than 1.0/1.1
are answered 505. A response whose head would contain CR or LF inside a header is never sent (500 instead).

Timers are cheap: each connection holds one deadline (header read or keep-alive idle) in an attribute and at
most one timer handle that re-arms itself lazily, so a busy keep-alive connection schedules no timer per request.

No task switch per request: each connection has one handler task, parked between requests. Once every request
of a read is parsed and queued, a request without a body is run from the read callback itself *as that task*
(``asyncio.current_task()`` is the connection's task, so ``asyncio.timeout`` and cancellation work as inside
it): an answer that needs no I/O wait (a MOCK answer, an error, a cached decision) is written before the
callback returns, with no wake-up future and no loop turn. When the pipeline waits on a future (an upstream
call, Redis), the coroutine is resumed from that future's done-callback, again as the connection's task,
which stays parked throughout: a request that waits costs the loop turn its future needs and nothing more
(its answer is then written with the other answers of the loop pass, :mod:`gateway.core.writebatch`). A
cancellation of the task (a timeout inside the pipeline) is delivered where the coroutine waits, as a task
would. Requests with a body, streamed answers and a client that stops reading its answers are left to the
task, which answers the rest of the queue in order. A MOCK answer
is a :class:`gateway.model.answer.PresetAnswer`: its status line and fixed header lines were serialised when
the configuration was compiled (:func:`serialize_preset`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio.tasks import _enter_task, _leave_task
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from email.utils import formatdate
from typing import Any

import httptools
from aiohttp import web
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy, istr
from yarl import URL

from gateway.core.settings import Settings
from gateway.core.writebatch import WriteBatch
from gateway.model.answer import PresetAnswer
from gateway.process.listener import BAD_VERSION_KEY, error_response

log = logging.getLogger("gateway.process.http1")
pipeline_log = logging.getLogger("gateway.pipeline.handle")

Handler = Callable[[Any], Awaitable[web.StreamResponse]]  # called with an Http1Request

_EMPTY_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())
_NO_BODY_METHODS = frozenset({"HEAD"})
# header names looked up on every request, as case-insensitive keys made once (a plain str key is case-folded
# on every lookup: about half the cost of the lookup)
_CONTENT_LENGTH = istr("Content-Length")
_TRANSFER_ENCODING = istr("Transfer-Encoding")
_HOST = istr("Host")
_CONNECTION = istr("Connection")
_PROXY_CONNECTION = istr("Proxy-Connection")  # llhttp reads it as Connection
_BODY_LIMIT = 2 ** 16  # StreamReader low-water mark (high water is twice this)
MAX_PIPELINED = 16  # queued requests on one connection before reading from it pauses
_REASONS: dict[int, str] = {}

# llhttp error names (substrings of the parser's message) -> the caller-safe message we answer with (the same
# texts as the aiohttp listener's)
_PARSER_MESSAGES = (
    ("invalid method", "Invalid HTTP method."),
    ("invalid url", "Invalid request URI."),
    ("version", "Invalid request line."),
)


def _parser_message(exc: BaseException) -> str:
    text = str(exc).lower()
    for needle, message in _PARSER_MESSAGES:
        if needle in text:
            return message
    return "Bad request."


def _reason(status: int) -> str:
    reason = _REASONS.get(status)
    if reason is None:
        from http import HTTPStatus

        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        _REASONS[status] = reason
    return reason


# the usual request methods as str (a dict hit costs less than decoding the parser's bytes each request)
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


class _DateCache:
    """The ``Date`` header value, formatted once per second (as text, and as a whole header line in bytes)."""

    __slots__ = ("line_bytes", "second", "value")

    def __init__(self) -> None:
        self.second = 0
        self.value = ""
        self.line_bytes = b""

    def get(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = formatdate(now, usegmt=True)
            self.line_bytes = f"Date: {self.value}\r\n".encode("ascii")
        return self.value

    def line(self) -> bytes:
        """``Date: ...\\r\\n``."""
        if int(time.time()) != self.second:
            self.get()
        return self.line_bytes


DATE = _DateCache()


class HeaderInjection(ValueError):
    """A response header name or value contains CR or LF: the head is not sent."""


def _head(status_line: str, headers: Any, extra: str = "") -> bytes:
    """``status_line`` + ``name: value`` lines + ``extra`` (the listener's own lines, each ending in CRLF) + the
    blank line, as bytes; refuses CR/LF inside a field."""
    parts = [status_line]
    for k, v in headers.items():
        parts.append(f"{k}: {v}")
    text = "\r\n".join(parts)
    n = len(parts) - 1
    if text.count("\n") != n or text.count("\r") != n:
        raise HeaderInjection("CR or LF inside a response header")
    return f"{text}\r\n{extra}\r\n".encode("utf-8", "surrogateescape")


def serialize_preset(answer: PresetAnswer, version: HttpVersion, keep_alive: bool) -> bytes:
    """A :class:`PresetAnswer` (never for HEAD: the target builds a ``web.Response`` then) -> wire bytes: the
    prepared head, the per-request lines, ``Date``, ``Connection`` when it differs from the version's default,
    the body. The same head :func:`serialize_response` makes of the equivalent ``web.Response``."""
    if version is HttpVersion11 or version == HttpVersion11:
        return b"".join((answer.head11, answer.dynamic.encode("utf-8", "surrogateescape"),
                         DATE.line() if answer.date is None else answer.date,
                         b"\r\n" if keep_alive else b"Connection: close\r\n\r\n", answer.body))
    return b"".join((answer.head10, answer.dynamic.encode("utf-8", "surrogateescape"),
                     DATE.line() if answer.date is None else answer.date,
                     b"Connection: keep-alive\r\n\r\n" if keep_alive else b"\r\n", answer.body))


def serialize_response(resp: web.Response, method: str, version: HttpVersion, keep_alive: bool
                       ) -> tuple[bytes, bool]:
    """A complete ``web.Response`` with a bytes (or no) body -> (wire bytes, keep the connection open).

    Follows aiohttp's own rules, so a response looks the same on either listener: ``Content-Length`` from the
    body (none for 1xx/204, none for 304/HEAD when the body is empty), ``Content-Type`` defaults to
    ``application/octet-stream`` when a body is announced, ``Date``, and ``Connection`` when it differs from
    the version's default. HEAD and bodiless statuses send no body bytes.
    """
    status = resp.status
    headers = resp.headers
    body = resp.body
    blen = len(body) if body else 0  # type: ignore[arg-type]
    must_be_empty = method == "HEAD" or status < 200 or status in (204, 304)
    remove_length = status < 200 or status == 204
    # the lines the listener adds go after the response's own, in this order (the same head aiohttp writes);
    # they are appended as text rather than inserted into the header multidict
    extra = ""
    length = headers.get("Content-Length")
    if length is not None:
        if remove_length:
            del headers["Content-Length"]
            length = None
    elif (blen or (status != 304 and method != "HEAD")) and not remove_length:
        length = str(blen)
        extra = f"Content-Length: {length}\r\n"
    if must_be_empty:
        if "Transfer-Encoding" in headers:
            del headers["Transfer-Encoding"]
    elif length is not None and length != "0" and "Content-Type" not in headers:
        extra += "Content-Type: application/octet-stream\r\n"
    if "Date" not in headers:
        extra += f"Date: {DATE.get()}\r\n"
    if resp.keep_alive is False:
        keep_alive = False
    if "Connection" not in headers:
        if keep_alive:
            if version == HttpVersion10:
                extra += "Connection: keep-alive\r\n"
        elif version == HttpVersion11:
            extra += "Connection: close\r\n"
    reason = resp.reason or _reason(status)
    head = _head(f"HTTP/{version.major}.{version.minor} {status} {reason}", headers, extra)
    if body and not must_be_empty:
        return head + body, keep_alive  # type: ignore[operator]
    return head, keep_alive


class Http1Writer:
    """aiohttp's payload-writer interface over one connection, for streamed responses (``StreamResponse``)."""

    __slots__ = ("_chunked", "_head", "_proto", "buffer_size", "length", "output_size")

    def __init__(self, proto: Http1Protocol) -> None:
        self._proto = proto
        self._chunked = False
        self._head: bytes | None = None
        self.buffer_size = 0
        self.output_size = 0
        self.length: int | None = None

    def enable_chunking(self) -> None:
        self._chunked = True

    @property
    def close_delimited(self) -> bool:
        """Neither chunked nor of known length: the body ends when the connection closes (HTTP/1.0)."""
        return not self._chunked and self.length is None

    def enable_compression(self, encoding: str = "deflate", strategy: Any = None) -> None:
        raise RuntimeError("response compression is not supported by the gateway's listener")

    async def write_headers(self, status_line: str, headers: Any) -> None:
        self._head = _head(status_line, headers)

    def send_headers(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._proto.write(head)

    def set_eof(self) -> None:
        return None

    async def write(self, data: bytes | bytearray | memoryview, *, drain: bool = True, LIMIT: int = 0) -> None:
        if not data:
            return
        self.output_size += len(data)
        raw = bytes(data)
        out = b"%x\r\n%b\r\n" % (len(raw), raw) if self._chunked else raw
        head = self._head
        if head is not None:
            self._head = None
            out = head + out
        self._proto.write(out)
        if drain:
            await self._proto.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        if data:
            await self.write(data, drain=False)
        self.send_headers()
        if self._chunked:
            self._proto.write(b"0\r\n\r\n")
        await self._proto.drain()

    async def drain(self) -> None:
        await self._proto.drain()


class _BodyFlow:
    """What the request body's ``StreamReader`` calls for back-pressure (pause/resume reading the socket)."""

    __slots__ = ("_proto", "_reading_paused")

    def __init__(self, proto: Http1Protocol) -> None:
        self._proto = proto
        self._reading_paused = False

    @property
    def connected(self) -> bool:
        return self._proto.transport is not None

    def pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self._proto.pause("body")

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self._proto.resume("body")


def _split_query(raw: str) -> MultiDictProxy[str]:
    if not raw:
        return _EMPTY_QUERY
    if "%" in raw or "+" in raw:
        return URL.build(query_string=raw, encoded=True).query
    md: MultiDict[str] = MultiDict()
    for part in raw.split("&"):
        if part:
            k, _, v = part.partition("=")
            md.add(k, v)
    return MultiDictProxy(md)


class Http1Request:
    """One parsed request: the subset of aiohttp's ``BaseRequest`` interface the pipeline uses."""

    __slots__ = (
        "_body_flow",
        "_proto",
        "_query",
        "_raw_query",
        "_url",
        "_writer",
        "bad_version",
        "body_exists",
        "content",
        "content_length",
        "headers",
        "keep_alive",
        "method",
        "path",
        "raw_path",
        "remote",
        "scheme",
        "transport",
        "version",
    )

    def __init__(self, method: str, target: str, version: HttpVersion, headers: CIMultiDictProxy[str],
                 keep_alive: bool, proto: Http1Protocol) -> None:
        self.method = method
        self.raw_path = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.transport = proto.transport
        self.remote = proto.peer
        self.scheme = proto.scheme
        self.bad_version = False
        self._proto = proto
        self._writer: Http1Writer | None = None
        self._url: URL | None = None
        self._query: MultiDictProxy[str] | None = None
        self.content: StreamReader = EMPTY_PAYLOAD
        self.body_exists = False
        cl = headers.get(_CONTENT_LENGTH)
        self.content_length = int(cl) if cl is not None and cl.isdigit() else None
        if target.startswith("/"):
            path, _, query = target.partition("?")
            if "#" in query:
                query = query.split("#", 1)[0]
            elif "#" in path:
                path = path.split("#", 1)[0]
            self._raw_query = query
            if "%" in path:
                self._url = URL.build(path=path, query_string=query, encoded=True)
                self.path = self._url.path
            else:
                self.path = path
        else:  # absolute-form, authority-form (CONNECT) or '*': let yarl take it apart
            if method == "CONNECT":
                self._url = URL.build(authority=target, encoded=True)
            else:
                self._url = URL(target, encoded=True)
            self.path = self._url.path
            self._raw_query = self._url.raw_query_string

    # --- the BaseRequest surface -------------------------------------------------------------------
    @property
    def _payload_writer(self) -> Http1Writer:  # what aiohttp's StreamResponse.prepare writes through
        w = self._writer
        if w is None:
            w = self._writer = Http1Writer(self._proto)
        return w

    @property
    def query(self) -> MultiDictProxy[str]:
        q = self._query
        if q is None:
            q = self._query = _split_query(self._raw_query)
        return q

    @property
    def rel_url(self) -> URL:
        u = self._url
        if u is None or u.is_absolute():
            path = self.raw_path.partition("?")[0].partition("#")[0] if u is None else u.raw_path
            u = URL.build(path=path, query_string=self._raw_query, encoded=True)
            if self._url is None:
                self._url = u
        return u

    @property
    def host(self) -> str:
        host = self.headers.get(_HOST)
        if host is not None:
            return host
        import socket

        return socket.getfqdn()

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def cookies(self) -> Any:
        from types import MappingProxyType

        from aiohttp._cookie_helpers import parse_cookie_header

        parsed = parse_cookie_header(self.headers.get("Cookie", ""))
        return MappingProxyType({name: morsel.value for name, morsel in parsed})

    def __contains__(self, key: object) -> bool:  # "BAD_VERSION_KEY in request" (Gateway.handle)
        return self.bad_version and key is BAD_VERSION_KEY

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        return None


class Http1Server:
    """The listener's shared state: settings, the handler, and the open connections (for shutdown)."""

    def __init__(self, handler: Handler, settings: Settings) -> None:
        self.handler = handler
        self.head_timeout = float(settings.header_read_timeout_s)
        self.keepalive_timeout = float(settings.keepalive_timeout_s)
        self.max_line = int(settings.max_line_bytes)
        self.max_field = int(settings.max_header_bytes)
        self.max_headers = int(settings.max_headers)
        self.max_head = self.max_line + 4 * self.max_field
        self.max_body = int(settings.max_body_bytes)
        self.connections: set[Http1Protocol] = set()
        self.closing = False
        self.batch = WriteBatch()  # complete answers of one loop pass, written together (gateway.core.writebatch)

    def __call__(self) -> Http1Protocol:
        return Http1Protocol(self)

    async def shutdown(self, timeout: float) -> None:
        """Stop reading new requests; close idle connections now, busy ones once their response is out."""
        self.closing = True
        for conn in list(self.connections):
            if not conn.busy:
                conn.close()
        end = time.monotonic() + timeout
        while any(c.busy for c in self.connections) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close()


class _HeadTooLarge(Exception):
    pass


class Http1Protocol(asyncio.Protocol):
    """One client connection: parse, queue (pipelining), handle one request at a time, write responses."""

    __slots__ = (
        "_d_cancel",
        "_d_coro",
        "_d_keep",
        "_d_req",
        "_d_wait",
        "_deadline",
        "_drain_first",
        "_drain_waiter",
        "_handoff",
        "_head_bytes",
        "_head_started",
        "_headers",
        "_idle",
        "_in_head",
        "_loop",
        "_max_field",
        "_max_headers",
        "_max_line",
        "_parser",
        "_paused_writing",
        "_pauses",
        "_pending",
        "_queue",
        "_task",
        "_timer",
        "_timer_step",
        "_upgrade",
        "_url",
        "_wakeup",
        "busy",
        "current",
        "current_complete",
        "peer",
        "scheme",
        "server",
        "transport",
    )

    def __init__(self, server: Http1Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""  # the request target so far (llhttp may hand it over in pieces)
        self._headers: list[tuple[str, str]] = []  # the head's fields so far, decoded
        self._max_line = server.max_line
        self._max_field = server.max_field
        self._max_headers = server.max_headers
        self._in_head = False
        self._idle = False  # the deadline is the keep-alive one (no request begun since the last response)
        self._head_bytes = 0
        self._head_started = False  # a head began on an idle connection in this read (its deadline is due)
        self._queue: deque[tuple[Http1Request, bool]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None  # set while the handler task is parked between requests
        self._handoff: Coroutine[Any, Any, bool] | None = None  # what the task finishes of a request begun
        self._pending: _Resume | None = None  # ... and the handler it continues (a cancellation goes there)
        self._drain_first = False  # a response went out while the client was not reading: drain before the next
        # the handler driven outside the task (_answer_now): its coroutine, request, keep-alive, the future it
        # waits on, and a cancellation of the task that reached it after that future was done
        self._d_coro: Coroutine[Any, Any, Any] | None = None
        self._d_req: Http1Request | None = None
        self._d_keep = False
        self._d_wait: asyncio.Future[Any] | None = None
        self._d_cancel = False
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_step = min(server.head_timeout, server.keepalive_timeout)
        self._paused_writing = False
        self._pauses: set[str] = set()  # why reading from the socket is paused (body back-pressure, pipelining)
        self._drain_waiter: asyncio.Future[None] | None = None
        self._upgrade = False
        self.current: Http1Request | None = None  # the request whose body is being received
        self.current_complete = True
        self.busy = False
        self.peer = "0.0.0.0"
        self.scheme = "http"

    # --- connection -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, (tuple, list)) and peer:
            self.peer = str(peer[0])
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.server.connections.add(self)
        self._set_deadline(self.server.head_timeout)
        self._task = self._loop.create_task(self._run())  # parks at once; answers what _answer_now cannot

    def connection_lost(self, exc: BaseException | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        req = self.current
        if req is not None and req.body_exists and not self.current_complete:
            req.content.set_exception(ConnectionResetError("client closed the connection mid-body"))
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_exception(ConnectionResetError("connection lost"))
        w = self._wakeup  # a parked handler task ends (one still answering finishes; its writes go nowhere)
        if w is not None and not w.done():
            self._wakeup = None
            w.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.server.batch.flush()  # the answers queued in this loop pass go out before the close
            self.transport.close()

    def pause(self, reason: str) -> None:
        """Stop reading from the socket for ``reason`` (reading resumes when no reason is left)."""
        if not self._pauses and self.transport is not None:
            try:
                self.transport.pause_reading()
            except (AttributeError, RuntimeError):
                pass
        self._pauses.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and self.transport is not None:
            try:
                self.transport.resume_reading()
            except (AttributeError, RuntimeError):
                pass

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        w = self._drain_waiter
        if w is not None:
            self._drain_waiter = None
            if not w.done():
                w.set_result(None)

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            raise ConnectionResetError("client connection closed")
        self.server.batch.flush()  # after any answer still queued for this connection (gateway.core.writebatch)
        t.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("client connection closed")
        if self._paused_writing:
            w = self._drain_waiter
            if w is None:
                w = self._drain_waiter = self._loop.create_future()
            await w

    # --- deadlines: header read and keep-alive idle ---------------------------------------------------
    def _set_deadline(self, seconds: float | None) -> None:
        if seconds is None:
            self._deadline = None
            return
        now = self._loop.time()
        self._deadline = now + seconds
        if self._timer is None:
            self._timer = self._loop.call_at(min(self._deadline, now + self._timer_step), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.transport is None:
            return
        now = self._loop.time()
        if now >= deadline - 0.001:
            self.close()
            return
        self._timer = self._loop.call_at(min(deadline, now + self._timer_step), self._on_timer)

    # --- parsing ----------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._upgrade:
            return  # after an Upgrade/CONNECT head nothing else on this connection is HTTP we parse
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._on_upgrade()
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadTooLarge):
                self._reject(400, "Request line or header field too long.")
            elif isinstance(cause, _FramingError):
                self._reject(400, _parser_message(cause) if "transfer" not in str(cause) else "Bad request.")
            else:
                self._parse_error(exc)
        else:
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > self.server.max_head:
                    self._reject(400, "Request line or header field too long.")
                elif self._head_started:  # a head began and is not complete: it has header_read_timeout_s
                    self._head_started = False
                    if not self.busy:
                        self._set_deadline(self.server.head_timeout)
        if self._queue and not self.busy:  # answered once every request of this read is parsed and queued
            self._start_next()

    def _on_upgrade(self) -> None:
        """``Upgrade`` / ``CONNECT``: the gateway does not switch protocols. The request is answered like any
        other, then the connection closes; the bytes after its head are never parsed."""
        self._upgrade = True
        if self._queue:
            req, _ = self._queue[-1]
            self._queue[-1] = (req, False)
        cur = self.current
        if cur is not None and cur.body_exists and not self.current_complete:
            cur.content.set_exception(RequestPayloadError("request body after an Upgrade head"))
        self.pause("upgrade")  # for good: nothing after this head is read

    def _parse_error(self, exc: BaseException) -> None:
        req = self.current
        if req is not None and not self.current_complete and req.body_exists:
            # a framing error inside the body of the request being handled: fail that body (400 from the
            # pipeline), and nothing after it on this connection is read
            req.content.set_exception(RequestPayloadError("malformed request body"))
            self._upgrade = True
            return
        log.debug("rejected unparsable request from %s: %r", self.peer, exc)
        self._reject(400, _parser_message(exc))

    def _reject(self, status: int, message: str) -> None:
        """Answer a request the pipeline never saw, then close (after any response still being produced)."""
        self._upgrade = True  # stop parsing
        self._in_head = False
        resp = error_response(status, "APIG.0201", message)
        if self.busy or self._queue:
            self._queue.append((_Rejected(resp), False))  # type: ignore[arg-type]
            return
        self._send_final(resp)

    def _send_final(self, resp: web.Response) -> None:
        t = self.transport
        if t is None:
            return
        try:
            data, _ = serialize_response(resp, "GET", HttpVersion11, False)
            self.server.batch.flush()
            t.write(data)
        finally:
            t.close()

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._url = b""
        self._headers = []
        if self._idle:  # the keep-alive deadline ends; a head still incomplete after this read gets its own
            self._idle = False
            self._head_started = not self.busy

    def on_url(self, url: bytes) -> None:
        if self._url:  # a further piece (the target arrived over several reads: each read brings one at most)
            url = self._url + url
        self._url = url
        if len(url) > self._max_line:
            raise _HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self._max_field:
            raise _HeadTooLarge()
        headers = self._headers
        # names are tokens (llhttp refuses anything else): Latin-1 is their exact, cheaper decoding
        headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))
        if len(headers) > self._max_headers:
            raise _HeadTooLarge()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_started = False
        parser = self._parser
        hdrs: CIMultiDict[str] = CIMultiDict(self._headers)  # (the list is replaced by the next message's)
        tes = hdrs.getall(_TRANSFER_ENCODING, None)
        te = tes[0] if tes else None
        target = self._url.decode("utf-8", "surrogateescape")
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii", "replace")
        if parser.should_keep_alive() and _CONNECTION not in hdrs and _PROXY_CONNECTION not in hdrs:
            # llhttp keeps a request alive without a Connection field only for HTTP/1.1 (it takes 0.9, 1.0, 1.1
            # and 2.0; the others need "keep-alive" in that field): the version string (a format call) is not asked
            bad_version = False
            version = HttpVersion11
            keep_alive = not self.server.closing
        else:
            ver = parser.get_http_version()
            if ver not in ("1.1", "1.0", "2.0"):  # HTTP/0.9 (no version) and the like: not a request line we take
                raise _FramingError("invalid version")
            bad_version = ver == "2.0"  # a plain-text "HTTP/2.0" request line: answered 505 by the pipeline
            version = HttpVersion10 if ver == "1.0" else HttpVersion11
            keep_alive = bool(parser.should_keep_alive()) and not bad_version and not self.server.closing
        if tes is not None and (len(tes) != 1 or tes[0].strip().lower() != "chunked"):  # only one, plain chunked
            raise _FramingError("unsupported transfer-encoding")
        try:
            req = Http1Request(method, target, version, CIMultiDictProxy(hdrs), keep_alive, self)
        except (ValueError, TypeError):
            raise _FramingError("invalid url") from None
        req.bad_version = bad_version
        chunked = te is not None
        if chunked or (req.content_length or 0) > 0:
            flow = _BodyFlow(self)
            req.content = StreamReader(flow, _BODY_LIMIT, loop=self._loop)  # type: ignore[arg-type]
            req.body_exists = True
            self.current_complete = False
            expect = hdrs.get("Expect")
            if expect is not None and expect.lower() == "100-continue" and version == HttpVersion11 \
                    and (req.content_length or 0) <= self.server.max_body and self.transport is not None:
                self.server.batch.flush()
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        else:
            self.current_complete = True
        self.current = req
        self._queue.append((req, keep_alive))
        if len(self._queue) >= MAX_PIPELINED:  # a client that pipelines without reading: stop reading it
            self.pause("pipeline")

    def on_body(self, body: bytes) -> None:
        req = self.current
        if req is not None and req.body_exists:
            req.content.feed_data(body)

    def on_message_complete(self) -> None:
        req = self.current
        self.current_complete = True
        if req is not None and req.body_exists:
            req.content.feed_eof()

    # --- handling ---------------------------------------------------------------------------------------
    def _start_next(self) -> None:
        """Requests are queued and the connection is idle: answer them. Requests without a body are answered
        right here and driven to their end outside the task (see :meth:`_answer_now`); every other request is
        answered by the connection's handler task, in order."""
        self.busy = True
        self._deadline = None  # a connection being answered has no deadline
        task = self._task
        if task is None:
            self._task = self._loop.create_task(self._run())
        elif self._wakeup is not None:  # the task is parked (not running, not about to start)
            self._answer_now(task)  # wakes the task itself when it has something to do
        # else: the task is about to run (just created, or woken): it answers the queue

    def _wake(self) -> None:
        w = self._wakeup
        if w is not None:  # the connection's handler task is parked: wake it (no new task per request)
            self._wakeup = None
            if not w.done():
                w.set_result(None)

    def _answer_now(self, task: asyncio.Task[None], batched: bool = False) -> None:
        """Answer the queued requests without a body from this callback, as the connection's task (it stays
        parked): each handler coroutine is driven by :meth:`_step` here, and, when it waits on a future (an
        upstream answer, Redis), from that future's done-callback (:meth:`_on_ready`), with
        ``asyncio.current_task()`` the connection's task, so ``asyncio.timeout`` and cancellation behave as
        inside it. A request with a body (or a rejection, a streamed answer, a client that does not read) goes
        to the task, which answers the rest of the queue in order."""
        queue = self._queue
        while queue:
            req, keep_alive = queue[0]
            if type(req) is not Http1Request or req.body_exists:
                self._wake()  # a rejection, or a body still arriving: the task answers it
                return
            queue.popleft()
            self._d_req = req
            self._d_keep = keep_alive
            self._d_coro = self.server.handler(req)  # type: ignore[assignment]
            if not self._step(task, None, batched):
                return  # waiting on I/O (the driver goes on), or the task took over
        if not self._go_idle():
            self._wake()  # the parked task ends

    def _step(self, task: asyncio.Task[None], exc: BaseException | None, batched: bool) -> bool:
        """Run the driven handler (``_d_coro``) until it waits or ends, as ``task``; what a task step does.
        True: answered and written, the next queued request may go; False: it waits (its future's done-callback
        resumes it), or the task was woken to carry on. ``batched``: an answer is queued with the loop pass's
        others (after an I/O wait); from the read callback it is written at once (see :meth:`_write_now`)."""
        coro = self._d_coro
        assert coro is not None
        loop = self._loop
        outer = None
        try:
            _enter_task(loop, task)
        except RuntimeError:  # called from inside another task (a test driving the protocol): step aside
            outer = asyncio.current_task(loop)
            assert outer is not None
            _leave_task(loop, outer)
            _enter_task(loop, task)
        keep_alive = self._d_keep
        try:
            try:
                yielded = coro.send(None) if exc is None else coro.throw(exc)
            finally:
                _leave_task(loop, task)
                if outer is not None:
                    _enter_task(loop, outer)
        except StopIteration as stop:
            resp = stop.value
        except asyncio.CancelledError:  # the handler let the task's cancellation through: the task ends with it
            self._d_coro = self._d_req = None
            self._queue.clear()
            self.busy = False
            self.close()
            task.cancel()
            return False
        except Exception:
            resp, keep_alive = self._crashed()
        else:
            if getattr(yielded, "_asyncio_future_blocking", None):  # an asyncio future: await it (as a task)
                yielded._asyncio_future_blocking = False
                self._d_wait = yielded
                yielded.add_done_callback(self._on_ready)
                return False
            # anything else (a bare ``yield``): the task continues the coroutine, then the queue
            req = self._d_req
            self._d_coro = self._d_req = None
            pending = self._pending = _Resume(coro, yielded)
            self._handoff = self._finish(req, keep_alive, pending)  # type: ignore[arg-type]
            self._wake()
            return False
        req = self._d_req
        self._d_coro = self._d_req = None
        keep = self._write_now(req, resp, keep_alive, batched)  # type: ignore[arg-type]
        if keep is None:  # streamed: the task writes it
            self._handoff = self._write_later(req, resp, keep_alive)  # type: ignore[arg-type]
            self._wake()
            return False
        if not keep or self.transport is None:
            self._answered(False)
            self._wake()  # the parked task ends
            return False
        if self._paused_writing:  # the client is not reading its answers: the task waits before the next
            self._drain_first = True
            self._wake()
            return False
        if self._pauses and len(self._queue) < MAX_PIPELINED // 2:
            self.resume("pipeline")
        return True

    def _on_ready(self, fut: asyncio.Future[Any]) -> None:
        """Done-callback of the future the driven handler waits on: its next step (what a task's wake-up does),
        then the rest of the queue."""
        self._d_wait = None
        exc: BaseException | None = None
        if self._d_cancel:  # the task was cancelled after this future was already done
            self._d_cancel = False
            exc = asyncio.CancelledError()
        # else the future's own await returns its result or raises its exception where the handler waits
        task = self._task
        assert task is not None
        if self._step(task, exc, True):
            if self._queue:
                self._answer_now(task, True)
            elif not self._go_idle():
                self._wake()  # the parked task ends

    def _cancel_driven(self) -> None:
        """The connection's task was cancelled while a driven handler waits (``asyncio.timeout`` in the
        handler, ...): what ``Task.cancel`` does, cancel the future it waits on, or throw ``CancelledError``
        at its next step."""
        w = self._d_wait
        if w is None or not w.cancel():
            self._d_cancel = True

    def _answered(self, keep: bool) -> bool:
        """After one response: False (and the connection closed) when nothing more is answered on it."""
        if not keep or self.transport is None:
            self._queue.clear()
            self.busy = False
            self.close()
            return False
        return True

    def _go_idle(self) -> bool:
        """Every queued request is answered: arm the header-read or keep-alive deadline (False: closed)."""
        self.busy = False
        server = self.server
        if server.closing or self.transport is None:
            self.close()
            return False
        if self._in_head:
            seconds = server.head_timeout
        else:
            self._idle = True
            seconds = server.keepalive_timeout
        loop = self._loop  # what _set_deadline does, inline (once per answered request)
        now = loop.time()
        self._deadline = deadline = now + seconds
        if self._timer is None:
            self._timer = loop.call_at(min(deadline, now + self._timer_step), self._on_timer)
        return True

    async def _run(self) -> None:
        """The connection's handler task: finishes a response begun by :meth:`_answer_now`, answers queued
        requests in order, then parks until the next ones."""
        try:
            while True:
                if self._d_coro is not None:  # a handler is driven outside the task: stay parked for it
                    pass  # (until it ends: current_task() must stay a live task for its timeouts)
                elif self.busy:
                    after_answer = self._drain_first
                    self._drain_first = False
                    h = self._handoff
                    if h is not None:
                        self._handoff = self._pending = None
                        if not self._answered(await h):
                            return
                        after_answer = True
                    while True:
                        if after_answer and self._paused_writing:  # the client is not reading: wait for it
                            try:
                                await self.drain()
                            except ConnectionError:
                                self._queue.clear()
                                self.busy = False
                                return
                        if len(self._queue) < MAX_PIPELINED // 2:
                            self.resume("pipeline")
                        if not self._queue:
                            break
                        req, keep_alive = self._queue.popleft()
                        if isinstance(req, _Rejected):
                            self._send_final(req.response)
                            self.busy = False
                            return
                        if not self._answered(await self._respond(req, keep_alive)):
                            return
                        after_answer = True
                    if not self._go_idle():
                        return
                    if self.transport is None or self.transport.is_closing():
                        return
                elif self.transport is None or self.transport.is_closing():
                    return
                w = self._wakeup = self._loop.create_future()
                try:
                    await w
                except asyncio.CancelledError:
                    if self._task is not None and not self._task.cancelling():
                        # a cancellation already withdrawn: an asyncio.timeout of a driven handler expired in the
                        # loop pass its awaited answer arrived in, the handler then ended normally and the timeout
                        # uncancelled on exit. Meant for nobody now: not the connection, not the next handler.
                        continue
                    if self._d_coro is not None:  # meant for the handler driven outside the task
                        self._cancel_driven()
                        continue
                    if self._pending is None:  # nothing of a handler to deliver it to
                        if self._handoff is not None:
                            self._handoff.close()
                            self._handoff = None
                            self.close()
                        raise
                    self._pending.cancel()  # meant for the handler started outside the task: it gets it there
        finally:
            self._task = None
            self._wakeup = None

    async def _respond(self, req: Http1Request, keep_alive: bool) -> bool:
        """Run the pipeline for ``req`` and write its response; returns whether the connection stays open."""
        try:
            resp = await self.server.handler(req)
        except Exception:
            resp, keep_alive = self._crashed()
        keep = self._write_now(req, resp, keep_alive)
        return keep if keep is not None else await self._write_later(req, resp, keep_alive)

    async def _finish(self, req: Http1Request, keep_alive: bool, pending: _Resume) -> bool:
        """The task's half of a request :meth:`_answer_now` began: the rest of the pipeline, then the write."""
        try:
            resp = await pending
        except Exception:
            resp, keep_alive = self._crashed()
        keep = self._write_now(req, resp, keep_alive)
        return keep if keep is not None else await self._write_later(req, resp, keep_alive)

    def _crashed(self) -> tuple[web.Response, bool]:
        pipeline_log.exception("unhandled error outside the pipeline from %s", self.peer)
        return error_response(500, "APIG.0601", "Internal server error."), False

    def _write_now(self, req: Http1Request, resp: Any, keep_alive: bool, batched: bool = True) -> bool | None:
        """Write a complete response (preset, or a ``web.Response`` with a bytes body) at once; returns whether
        the connection stays open, or None when the response is streamed (:meth:`_write_later`).

        ``batched``: queued with the loop pass's other answers (:mod:`gateway.core.writebatch`), as the
        connection's task does after an I/O wait. The read callback's answers (MOCK, errors) go out at once:
        there the client overlaps with the gateway's next reads, and a batch measured slower."""
        if req is self.current and not self.current_complete:
            keep_alive = False  # the rest of an unread body is still coming: do not parse it as a request
        t = self.transport
        if t is None:
            return False
        if type(resp) is PresetAnswer:  # prepared at config-load time, or a relayed answer (gateway.model.answer)
            if keep_alive and req.version is HttpVersion11:  # the usual case of serialize_preset, inline
                date = resp.date
                data = b"".join((resp.head11, resp.dynamic.encode("utf-8", "surrogateescape"),
                                 DATE.line() if date is None else date, b"\r\n", resp.body))
            else:
                data = serialize_preset(resp, req.version, keep_alive)
        elif not resp.prepared and isinstance(resp, web.Response) and \
                (resp.body is None or isinstance(resp.body, bytes)) and not resp.chunked and not resp.compression:
            try:
                data, keep_alive = serialize_response(resp, req.method, req.version, keep_alive)
            except HeaderInjection:
                self._injected(req, resp)
                return False
        else:
            return None
        if batched:
            self.server.batch.write(self._loop, t, data)
        else:
            self.server.batch.flush()
            t.write(data)
        return keep_alive

    async def _write_later(self, req: Http1Request, resp: web.StreamResponse, keep_alive: bool) -> bool:
        """Finish a streamed response (the relay wrote its head and body) or stream one through aiohttp."""
        if req is self.current and not self.current_complete:
            keep_alive = False
        try:
            if resp.prepared:  # streamed by the relay (head and body already written)
                await resp.write_eof()
                return keep_alive and resp.keep_alive is not False and self.transport is not None \
                    and not req._payload_writer.close_delimited
            await resp.prepare(req)  # type: ignore[arg-type]
            await resp.write_eof()
            return keep_alive and resp.keep_alive is not False and not req._payload_writer.close_delimited
        except HeaderInjection:
            self._injected(req, resp)
            return False
        except ConnectionError:
            return False

    def _injected(self, req: Http1Request, resp: web.StreamResponse) -> None:
        pipeline_log.error("response to %s %s dropped: CR/LF inside a response header", req.method, req.path)
        if not resp.prepared and self.transport is not None:
            data, _ = serialize_response(error_response(500, "APIG.0601", "Internal server error."),
                                         req.method, req.version, False)
            self.server.batch.flush()
            self.transport.write(data)


class _Resume:
    """Awaitable: continue a coroutine that :meth:`Http1Protocol._answer_now` started outside the task, from
    inside the task. ``yielded`` is what the coroutine's first step gave up (a future it waits on)."""

    __slots__ = ("_cancel", "_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded
        self._cancel = False

    def cancel(self) -> None:
        """The task was cancelled before it resumed the coroutine: cancel what it waits on, and raise
        ``CancelledError`` where it waits (what the task would have done)."""
        self._cancel = True

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        yielded = self._yielded
        if self._cancel:
            if isinstance(yielded, asyncio.Future):
                yielded.cancel()
            try:
                yielded = coro.throw(asyncio.CancelledError())
            except StopIteration as stop:
                return stop.value
        while True:
            try:
                value = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # delivered to the coroutine, as a task would
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration as stop:
                    return stop.value


class _Rejected:
    __slots__ = ("response",)

    def __init__(self, response: web.Response) -> None:
        self.response = response


class _FramingError(Exception):
    pass

