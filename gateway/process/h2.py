"""HTTP/2 on the public listener: one :class:`H2Connection` per connection that negotiated ``h2``.

Role in the pipeline: step 0 (accept) for HTTP/2, the twin of :mod:`gateway.process.listener` for HTTP/1.1.
The ``h2`` library (sans-IO) does the framing, HPACK and the stream state machine; this module owns the
I/O, the limits and the defences, and turns every stream into an ordinary aiohttp ``BaseRequest`` whose
payload writer speaks HTTP/2 (:class:`H2StreamWriter`). The request then goes through the very same
``Gateway.handle`` as an HTTP/1.1 request: routing, every stage, every backend kind and group responses
are shared, not copied. A backend that writes trailers (gRPC) sets :attr:`H2StreamWriter.trailers`.

Protocol duties and defences (docs/http2-grpc.md):

* Flow control both ways. Inbound: a stream's DATA is acknowledged (WINDOW_UPDATE) only while the
  request body buffer is below its high-water mark, so a slow consumer (backend) stalls the sender.
  Outbound: a writer waits for the peer's window, and for the transport when the socket buffer is full.
* ``SETTINGS_MAX_CONCURRENT_STREAMS`` (``h2_max_concurrent_streams``); a stream beyond the number of
  handlers still running (reset streams included) is refused with ``REFUSED_STREAM``.
* Header-list size (``SETTINGS_MAX_HEADER_LIST_SIZE`` = ``h2_max_header_list_bytes``; HPACK bombs end the
  connection) and the header count (``max_headers``, answered 431 on that stream).
* Graceful shutdown: ``GOAWAY`` with the last stream id; streams in flight finish (bounded by
  ``shutdown_timeout_s``), new ones are refused.
* Header-read timeout (the first request head must arrive within ``header_read_timeout_s``) and idle
  timeout (``keepalive_timeout_s`` with no stream open).
* Floods cost the attacker the connection (``GOAWAY ENHANCE_YOUR_CALM``), never our memory: client
  stream resets (rapid reset, CVE-2023-44487), SETTINGS and PING frames are counted per 10-second window
  (``h2_max_resets``, ``h2_max_control_frames``); CONTINUATION floods are bounded by the ``h2`` frame
  buffer and the header-list size; a response stalled on a zero window longer than ``h2_stall_timeout_s``
  closes the connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from hpack import NeverIndexedHeaderTuple
from hyperframe.frame import GoAwayFrame
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.core.settings import Settings
from gateway.process.http1 import DATE
from gateway.process.listener import error_response

log = logging.getLogger("gateway.process.h2")

HttpVersion20 = HttpVersion(2, 0)
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
# connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); aiohttp may add some of them
_CONN_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
# response headers whose value is different in every response
_UNIQUE_HEADERS = frozenset({"x-request-id", "date", "x-apig-latency", "x-apig-upstream-latency", "content-length"})
_WINDOW_S = 10.0  # flood counters are per this many seconds
_BODY_BUFFER = 256 * 1024  # per-stream request body buffer (low water; high water is twice this)
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _ServerH2(h2.connection.H2Connection):
    """h2's server connection, except that a stream beyond ``SETTINGS_MAX_CONCURRENT_STREAMS`` is refused on its
    own (``REFUSED_STREAM``, RFC 9113 §5.1.2) instead of failing the whole connection: its header block is still
    decoded, which keeps the HPACK state of the connection in step, and :class:`H2Connection` resets it."""

    over_limit: set[int]

    def _receive_headers_frame(self, frame: Any) -> Any:
        limit = self.local_settings.max_concurrent_streams
        if frame.stream_id in self.streams or self.open_inbound_streams < limit:
            return super()._receive_headers_frame(frame)
        self.over_limit.add(frame.stream_id)
        key = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
        saved = self.local_settings._settings[key]
        self.local_settings._settings[key] = collections.deque([2**31 - 1])
        try:
            return super()._receive_headers_frame(frame)
        finally:
            self.local_settings._settings[key] = saved


def plain_literals(conn: h2.connection.H2Connection) -> None:
    """Encode header literals without Huffman coding: hpack's pure-Python Huffman encoder is the most expensive
    step of sending a header block, for a few bytes saved per field (repeated fields are indexed anyway)."""
    encode = conn.encoder.encode
    conn.encoder.encode = lambda headers, huffman=True: encode(headers, huffman=False)  # type: ignore[method-assign]


class H2Limits:
    """The HTTP/2 knobs, read once from :class:`Settings`."""

    __slots__ = (
        "control_frames",
        "head_timeout",
        "header_list",
        "idle_timeout",
        "max_body",
        "max_headers",
        "max_streams",
        "resets",
        "shutdown_timeout",
        "stall_timeout",
        "window",
    )

    def __init__(self, s: Settings) -> None:
        self.max_streams = s.h2_max_concurrent_streams
        self.header_list = s.h2_max_header_list_bytes
        self.max_headers = s.max_headers
        self.window = s.h2_initial_window_bytes
        self.head_timeout = s.header_read_timeout_s
        self.idle_timeout = s.keepalive_timeout_s
        self.resets = s.h2_max_resets
        self.control_frames = s.h2_max_control_frames
        self.stall_timeout = s.h2_stall_timeout_s
        self.shutdown_timeout = s.shutdown_timeout_s
        self.max_body = s.max_body_bytes


class H2Server:
    """Protocol factory and registry of live HTTP/2 connections (for graceful shutdown and metrics)."""

    def __init__(self, handler: Handler, settings: Settings) -> None:
        self.handler = handler
        self.limits = H2Limits(settings)
        self.connections: set[H2Connection] = set()
        self.closing = False
        self.flood_closes = 0  # connections closed for a flood or a stall

    def __call__(self) -> H2Connection:
        return H2Connection(self)

    async def shutdown(self, timeout: float) -> None:
        """GOAWAY on every connection, let streams in flight finish (up to ``timeout``), then close."""
        self.closing = True
        for conn in list(self.connections):
            conn.goaway()
        end = time.monotonic() + timeout
        while any(c.tasks for c in self.connections) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.close()


class AlpnDispatch(asyncio.Protocol):
    """Hands a TLS connection to the HTTP/2 protocol when ALPN chose ``h2``, else to the HTTP/1.1 one."""

    def __init__(self, h1: Callable[[], asyncio.BaseProtocol], h2server: H2Server) -> None:
        self._h1 = h1
        self._h2 = h2server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sslobj = transport.get_extra_info("ssl_object")
        chosen = sslobj.selected_alpn_protocol() if sslobj is not None else None
        proto = self._h2() if chosen == "h2" else self._h1()
        transport.set_protocol(proto)
        proto.connection_made(transport)


class PrefaceSniffer(asyncio.Protocol):
    """Plain listener with prior-knowledge ``h2c``: the HTTP/2 preface selects HTTP/2, anything else HTTP/1."""

    def __init__(self, h1: Callable[[], asyncio.BaseProtocol], h2server: H2Server) -> None:
        self._h1 = h1
        self._h2 = h2server
        self._buf = b""
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        n = min(len(self._buf), len(_PREFACE))
        if self._buf[:n] == _PREFACE[:n] and n < len(_PREFACE):
            return  # could still be the preface: wait for more
        proto: Any = self._h2() if self._buf.startswith(_PREFACE) else self._h1()
        assert self._transport is not None
        self._transport.set_protocol(proto)
        proto.connection_made(self._transport)
        proto.data_received(self._buf)
        self._buf = b""

    def connection_lost(self, exc: BaseException | None) -> None:
        self._transport = None


class _StreamTransport:
    """What ``request.transport`` is for an HTTP/2 stream: the connection's transport, except that closing it
    resets this stream only (a backend failing mid-body cuts its stream, not its neighbours)."""

    __slots__ = ("_conn", "_sid")

    def __init__(self, conn: H2Connection, sid: int) -> None:
        self._conn = conn
        self._sid = sid

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        t = self._conn.transport
        return t.get_extra_info(name, default) if t is not None else default

    def is_closing(self) -> bool:
        return self._conn.transport is None or self._sid not in self._conn.streams

    def close(self) -> None:
        self._conn.reset(self._sid, h2.errors.ErrorCodes.INTERNAL_ERROR)


class _StreamProtocol:
    """The ``protocol`` a ``BaseRequest`` and its body ``StreamReader`` talk to, for one stream."""

    __slots__ = ("_conn", "_sid", "max_field_size", "max_headers", "peername", "sockname", "ssl_context",
                 "transport")

    def __init__(self, conn: H2Connection, sid: int) -> None:
        self._conn = conn
        self._sid = sid
        t = conn.transport
        self.transport = _StreamTransport(conn, sid)
        self.ssl_context = t.get_extra_info("sslcontext") if t is not None else None
        self.peername = conn.peername
        self.sockname = t.get_extra_info("sockname") if t is not None else None
        self.max_field_size = 8190
        self.max_headers = conn.limits.max_headers

    @property
    def connected(self) -> bool:
        return self._conn.transport is not None

    def pause_reading(self) -> None:
        """The body buffer is full: stop acknowledging DATA (the peer's window runs out)."""

    def resume_reading(self, resume_parser: bool = True) -> None:
        self._conn.ack_pending(self._sid)


class _Stream:
    __slots__ = ("ended", "pending_ack", "reader", "response_started", "sid", "window_waiter")

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.reader: StreamReader | None = None
        self.pending_ack = 0
        self.window_waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.ended = False  # our side sent END_STREAM


class HeaderInjection(ValueError):
    """A response header value with CR, LF or NUL: never sent (the stream is reset instead)."""


def head_fields(status: str, headers: CIMultiDict[str]) -> list[Any]:
    """A response head as HTTP/2 fields: lower-case names, connection-specific fields dropped, values that
    differ in every response kept out of the HPACK table (they would only crowd it out)."""
    head: list[Any] = [(":status", status)]
    for k, v in headers.items():
        name = k.lower()
        if name in _UNIQUE_HEADERS:
            head.append(NeverIndexedHeaderTuple(name, v))
        elif name not in _CONN_HEADERS:
            head.append((name, v))
    values = "".join(v for _k, v in headers.items())
    if "\r" in values or "\n" in values or "\0" in values:  # h2's own outbound check is off (cost)
        raise HeaderInjection("CR, LF or NUL inside a response header")
    return head


def complete_head(resp: web.Response, method: str) -> tuple[list[Any], bytes]:
    """(fields, body to send) of a complete ``web.Response``, by aiohttp's rules (as the HTTP/1.1 listener):
    ``content-length`` from the body (none for 1xx/204), a default content type when a body is announced,
    ``date``; HEAD and bodiless statuses send no body."""
    status = resp.status
    headers = resp.headers
    body = resp.body if isinstance(resp.body, bytes) else b""
    must_be_empty = method == "HEAD" or status < 200 or status in (204, 304)
    remove_length = status < 200 or status == 204
    if "Content-Length" in headers:
        if remove_length:
            del headers["Content-Length"]
    elif (body or (status != 304 and method != "HEAD")) and not remove_length:
        headers["Content-Length"] = str(len(body))
    if not must_be_empty and headers.get("Content-Length", "0") != "0" and "Content-Type" not in headers:
        headers["Content-Type"] = "application/octet-stream"
    if "Date" not in headers:
        headers["Date"] = DATE.get()
    return head_fields(str(status), headers), b"" if must_be_empty else body


class H2StreamWriter(AbstractStreamWriter):
    """aiohttp's payload-writer interface on one HTTP/2 stream (status line -> ``:status``; chunking and
    connection headers dropped; ``trailers`` sent as a final HEADERS frame)."""

    def __init__(self, conn: H2Connection, stream: _Stream, method: str) -> None:
        self._conn = conn
        self._stream = stream
        self._head: list[tuple[str, str]] | None = None
        self._head_only = method == "HEAD"
        self.trailers: list[tuple[str, str]] | None = None
        self.buffer_size = 0
        self.output_size = 0
        self.length = None

    def enable_chunking(self) -> None:
        return None

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        return None  # the gateway never compresses (bodies pass through untouched)

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        self._head = head_fields(status_line.split(" ", 2)[1], headers)

    def send_headers(self, end: bool = False) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._conn.send_headers(self._stream, head, end)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self.send_headers()
        if chunk and not self._head_only:
            self.output_size += len(chunk)
            await self._conn.send_data(self._stream, bytes(chunk))

    async def write_eof(self, chunk: bytes = b"") -> None:
        if chunk and not self._head_only:
            self.send_headers()
            self.output_size += len(chunk)
            await self._conn.send_data(self._stream, bytes(chunk), end=not self.trailers)
            if not self.trailers:
                return
        if self._head is not None and not self.trailers:
            self.send_headers(end=True)
            return
        self.send_headers()
        if self.trailers:
            self._conn.send_headers(self._stream, self.trailers, True)
        else:
            self._conn.end_stream(self._stream)

    async def drain(self) -> None:
        await self._conn.drain()


class H2Connection(asyncio.Protocol):
    """One HTTP/2 server connection."""

    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.peername: Any = None
        # inbound headers are validated (RFC 9113 §8.2); outbound ones are built lower-case and clean by
        # H2StreamWriter, so h2's second check of every outgoing field is skipped (it is most of its cost)
        self.h2 = _ServerH2(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8", validate_inbound_headers=True,
            validate_outbound_headers=False, normalize_outbound_headers=False))
        self.h2.over_limit = set()
        plain_literals(self.h2)
        self.streams: dict[int, _Stream] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._loop = asyncio.get_event_loop()
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._got_request = False
        self._last_activity = time.monotonic()
        self._window_start = time.monotonic()
        self._resets = 0
        self._control = 0
        self._goaway_sent = False
        self._last_sid = 0
        self._closing = False
        self._flush_scheduled = False

    # --- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        self.peername = transport.get_extra_info("peername")
        self.server.connections.add(self)
        lim = self.limits
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: lim.max_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: lim.header_list,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: lim.window,
        })
        self.h2.initiate_connection()
        if lim.window > 65535:
            self.h2.increment_flow_control_window(min(lim.window * 4, 2**31 - 1) - 65535)
        self.h2.decoder.max_header_list_size = lim.header_list  # before the peer acknowledges our SETTINGS
        self._flush()
        self._timer = self._loop.call_later(lim.head_timeout, self._on_timer)
        if self.server.closing:
            self.goaway()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transport = None
        self.server.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream in self.streams.values():
            if stream.reader is not None:
                stream.reader.set_exception(ConnectionResetError("connection lost"))
            if stream.window_waiter is not None and not stream.window_waiter.done():
                stream.window_waiter.set_exception(ConnectionResetError("connection lost"))
        for task in self.tasks.values():
            task.cancel()
        self._wake_drain(ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain(None)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_activity = time.monotonic()
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.DenialOfServiceError:
            self._abort(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "oversized header block or CONTINUATION flood")
            return
        except h2.exceptions.ProtocolError as exc:
            log.debug("HTTP/2 protocol error from %s: %s", self.peername, exc)
            self._flush()  # h2 queued the GOAWAY
            self.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._on_request(event)
            elif isinstance(event, h2.events.DataReceived):
                self._on_data(event)
            elif isinstance(event, h2.events.StreamEnded):
                self._on_end(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._on_reset(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated):
                self._on_window(event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._count_control()
                self._on_window(0)
            elif isinstance(event, h2.events.PingReceived):
                self._count_control()
            elif isinstance(event, h2.events.TrailersReceived):
                self._on_end(event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.close()
                return
            if self._closing:
                return
        self._flush()

    # --- limits and timers ------------------------------------------------------------------------
    def _window(self) -> None:
        now = time.monotonic()
        if now - self._window_start > _WINDOW_S:
            self._window_start = now
            self._resets = 0
            self._control = 0

    def _count_control(self) -> None:
        self._window()
        self._control += 1
        if self._control > self.limits.control_frames:
            self._abort(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "SETTINGS/PING flood")

    def _on_timer(self) -> None:
        self._timer = None
        if self.transport is None:
            return
        lim = self.limits
        now = time.monotonic()
        if not self._got_request:
            log.debug("HTTP/2 connection from %s sent no request head in time", self.peername)
            self._abort(h2.errors.ErrorCodes.NO_ERROR, None)
            return
        if not self.tasks and not self.streams and now - self._last_activity >= lim.idle_timeout:
            self._abort(h2.errors.ErrorCodes.NO_ERROR, None)
            return
        wait = max(0.5, lim.idle_timeout - (now - self._last_activity))
        self._timer = self._loop.call_later(wait, self._on_timer)

    def _abort(self, code: h2.errors.ErrorCodes, why: str | None) -> None:
        if self._closing:
            return
        if why:
            self.server.flood_closes += 1
            log.info("closing HTTP/2 connection from %s: %s", self.peername, why)
        try:
            self.h2.close_connection(error_code=code, last_stream_id=self._last_sid)
        except h2.exceptions.ProtocolError:
            pass
        self._flush()
        self.close()

    def close(self) -> None:
        self._closing = True
        if self.transport is not None:
            self._flush_now()
            self.transport.close()

    def goaway(self) -> None:
        """Graceful shutdown: no new streams; the ones in flight finish."""
        if self._goaway_sent or self.transport is None:
            return
        self._goaway_sent = True
        # written past h2's state machine, which would refuse to finish the streams in flight after a GOAWAY
        self._flush_now()
        frame = GoAwayFrame(0)
        frame.last_stream_id = self._last_sid
        frame.error_code = h2.errors.ErrorCodes.NO_ERROR
        assert self.transport is not None
        self.transport.write(frame.serialize())
        if not self.tasks:
            self.close()

    # --- inbound ----------------------------------------------------------------------------------
    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if self._goaway_sent:
            self._refuse(sid)
            return
        over = sid in self.h2.over_limit
        if over:
            self.h2.over_limit.discard(sid)
        if over or len(self.tasks) >= self.limits.max_streams:
            # handlers still running count (a stream the client reset does not free its slot before its handler
            # ends), and so does a client ignoring the advertised limit; each refusal counts as a reset, so that
            # opening streams only to have them refused is the same flood as resetting them
            self._refuse(sid)
            self._window()
            self._resets += 1
            if self._resets > self.limits.resets:
                self._abort(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "refused-stream flood")
            return
        self._got_request = True
        self._last_sid = max(self._last_sid, sid)
        stream = _Stream(sid)
        self.streams[sid] = stream
        ended = event.stream_ended is not None
        headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in event.headers or []]
        if not ended:
            stream.reader = StreamReader(_StreamProtocol(self, sid), _BODY_BUFFER, loop=self._loop)  # type: ignore[arg-type]
        task = self._loop.create_task(self._serve(stream, headers, ended))
        self.tasks[sid] = task

    def _on_data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        stream = self.streams.get(sid)
        size = event.flow_controlled_length
        if stream is None or stream.reader is None or stream.reader.is_eof():
            self._ack(sid, size)  # nobody reads it: give the window back at once
            return
        reader = stream.reader
        if event.data:
            reader.feed_data(event.data)
        if reader._size <= reader._high_water:  # below the mark: the peer may send more now
            self._ack(sid, size)
        else:
            stream.pending_ack += size

    def _ack(self, sid: int, size: int) -> None:
        if size > 0:  # h2 credits the connection window even when the stream is gone meanwhile
            try:
                self.h2.acknowledge_received_data(size, sid)
            except h2.exceptions.ProtocolError:
                pass

    def ack_pending(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is not None and stream.pending_ack and self.transport is not None:
            size, stream.pending_ack = stream.pending_ack, 0
            self._ack(sid, size)
            self._flush()

    def _on_end(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is not None and stream.reader is not None and not stream.reader.is_eof():
            stream.reader.feed_eof()

    def _on_reset(self, sid: int) -> None:
        self._window()
        stream = self.streams.pop(sid, None)
        task = self.tasks.get(sid)
        if stream is not None:
            self._resets += 1
            if stream.reader is not None and not stream.reader.is_eof():
                stream.reader.set_exception(ConnectionResetError("stream reset by the client"))
            if stream.window_waiter is not None and not stream.window_waiter.done():
                stream.window_waiter.set_exception(ConnectionResetError("stream reset"))
        if task is not None:
            task.cancel()
        if self._resets > self.limits.resets:
            self._abort(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "stream reset flood (rapid reset)")

    def _on_window(self, sid: int) -> None:
        targets = self.streams.values() if sid == 0 else [s for s in [self.streams.get(sid)] if s is not None]
        for stream in targets:
            w = stream.window_waiter
            if w is not None and not w.done():
                w.set_result(None)

    def _refuse(self, sid: int) -> None:
        try:
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        except h2.exceptions.ProtocolError:
            pass

    # --- outbound ---------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write what h2 queued, once per event-loop turn: the frames of many streams (and a response's
        HEADERS + DATA + END_STREAM) leave in one TLS record and one syscall instead of one each."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("connection closed")
        if not self._paused:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(fut)
        await fut

    def _wake_drain(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

    def send_headers(self, stream: _Stream, headers: list[tuple[str, str]], end: bool) -> None:
        if stream.sid not in self.streams or self.transport is None:
            raise ConnectionResetError("stream closed")
        stream.response_started = True
        try:
            self.h2.send_headers(stream.sid, headers, end_stream=end)
        except h2.exceptions.ProtocolError as exc:
            raise ConnectionResetError(f"stream closed: {exc}") from None
        if end:
            stream.ended = True
        self._flush()

    def end_stream(self, stream: _Stream) -> None:
        if stream.sid not in self.streams or self.transport is None or stream.ended:
            return
        try:
            self.h2.end_stream(stream.sid)
        except h2.exceptions.ProtocolError:
            return
        stream.ended = True
        self._flush()

    async def send_data(self, stream: _Stream, data: bytes, end: bool = False) -> None:
        sid = stream.sid
        pos = 0
        total = len(data)
        unflushed = 0
        while pos < total:
            if sid not in self.streams or self.transport is None:
                raise ConnectionResetError("stream closed")
            window = self.h2.local_flow_control_window(sid)
            if window <= 0:
                if unflushed:
                    self._flush_now()
                    unflushed = 0
                await self._wait_window(stream)
                continue
            n = min(window, self.h2.max_outbound_frame_size, total - pos)
            last = end and pos + n >= total
            try:
                self.h2.send_data(sid, data[pos:pos + n], end_stream=last)
            except h2.exceptions.ProtocolError as exc:
                raise ConnectionResetError(f"stream closed: {exc}") from None
            if last:
                stream.ended = True
            pos += n
            unflushed += n
            if unflushed >= 65536:  # large bodies: hand them to the socket as they go, and feel its back-pressure
                self._flush_now()
                unflushed = 0
                if self._paused:
                    await self.drain()
        self._flush()
        if self._paused:
            await self.drain()

    async def _wait_window(self, stream: _Stream) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        stream.window_waiter = fut
        try:
            await asyncio.wait_for(fut, self.limits.stall_timeout)
        except TimeoutError:
            self._abort(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "flow-control window stalled at zero")
            raise ConnectionResetError("peer window stalled") from None
        finally:
            stream.window_waiter = None

    def reset(self, sid: int, code: h2.errors.ErrorCodes) -> None:
        stream = self.streams.pop(sid, None)
        if stream is None or self.transport is None:
            return
        try:
            self.h2.reset_stream(sid, code)
        except h2.exceptions.ProtocolError:
            return
        if stream.reader is not None and not stream.reader.is_eof():
            stream.reader.set_exception(ConnectionResetError("stream reset"))
        self._flush()

    # --- one stream -------------------------------------------------------------------------------
    def _request(self, stream: _Stream, headers: list[tuple[str, str]], task: asyncio.Task[None]
                 ) -> web.BaseRequest | None:
        pseudo: dict[str, str] = {}
        fields: CIMultiDict[str] = CIMultiDict()
        cookies: list[str] = []
        for k, v in headers:
            if k.startswith(":"):
                pseudo[k] = v
            elif k == "cookie":
                cookies.append(v)
            else:
                fields.add(k, v)
        if cookies:
            fields["Cookie"] = "; ".join(cookies)
        if len(fields) > self.limits.max_headers:
            return None
        authority = pseudo.get(":authority")
        if authority and "host" not in fields:
            fields["Host"] = authority
        method = pseudo.get(":method", "GET")
        target = pseudo.get(":path", "/")
        path, _, query = target.partition("?")
        url = URL.build(path=path, query_string=query, encoded=True)
        raw = tuple((k.encode(), v.encode()) for k, v in fields.items())
        message = RawRequestMessage(method, target, HttpVersion20, CIMultiDictProxy(fields), raw, False, None,
                                    False, False, url)
        payload = stream.reader if stream.reader is not None else EMPTY_PAYLOAD
        proto = _StreamProtocol(self, stream.sid)
        writer = H2StreamWriter(self, stream, method)
        return web.BaseRequest(message, payload, proto, writer, task, self._loop,  # type: ignore[arg-type]
                               client_max_size=self.limits.max_body)

    async def _serve(self, stream: _Stream, headers: list[tuple[str, str]], ended: bool) -> None:
        sid = stream.sid
        task = asyncio.current_task()
        assert task is not None
        try:
            request = self._request(stream, headers, task)
            resp: web.StreamResponse
            if request is None:
                resp = error_response(431, "APIG.0201", "Request header fields too large.")
                request = self._bare_request(stream, headers, task)
            else:
                resp = await self.server.handler(request)
            if resp.prepared:  # streamed by a backend relay: head and body are out
                await resp.write_eof()
            elif isinstance(resp, web.Response) and (resp.body is None or isinstance(resp.body, bytes)) \
                    and not resp.chunked and not resp.compression:
                # a complete answer (MOCK, errors, small relays): straight to frames, no aiohttp writer machinery
                fields, body = complete_head(resp, request.method)
                self.send_headers(stream, fields, not body)
                if body:
                    await self.send_data(stream, body, end=True)
            else:
                await resp.prepare(request)
                await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("HTTP/2 stream %d failed", sid)
            self.reset(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        finally:
            self.tasks.pop(sid, None)
            left = self.streams.pop(sid, None)
            if left is not None and not left.ended and self.transport is not None:
                # the response ended without END_STREAM (handler gave up): tell the peer
                try:
                    self.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                except h2.exceptions.ProtocolError:
                    pass
                self._flush()
            elif left is not None and left.reader is not None and not left.reader.is_eof():
                # we answered before reading the whole body: stop the upload, keep the connection
                try:
                    self.h2.reset_stream(sid, h2.errors.ErrorCodes.NO_ERROR)
                except h2.exceptions.ProtocolError:
                    pass
                self._flush()
            if self._goaway_sent and not self.tasks:
                self.close()

    def _bare_request(self, stream: _Stream, headers: list[tuple[str, str]], task: asyncio.Task[None]
                      ) -> web.BaseRequest:
        method = next((v for k, v in headers if k == ":method"), "GET")
        message = RawRequestMessage(method, "/", HttpVersion20, CIMultiDictProxy(CIMultiDict()), (), False, None,
                                    False, False, URL.build(path="/", encoded=True))
        return web.BaseRequest(message, EMPTY_PAYLOAD, _StreamProtocol(self, stream.sid),  # type: ignore[arg-type]
                               H2StreamWriter(self, stream, method), task, self._loop)
