"""A pooled, multiplexed HTTP/2 client (over TLS with ALPN ``h2``, or prior-knowledge ``h2c``).

Role in the pipeline: the transport of GRPC backends (:mod:`gateway.backends.grpc`). One :class:`H2Pool`
per process keeps a few connections per (host, port, TLS context) and opens many concurrent streams on
each, up to the server's ``SETTINGS_MAX_CONCURRENT_STREAMS``; a connection that got ``GOAWAY`` or failed
takes no new streams.

Flow control gives end-to-end back-pressure: :meth:`ClientStream.send` waits for the server's window, and
received DATA is acknowledged only when :meth:`ClientStream.read` hands it to the caller, so a backend
can never get more than one window ahead of whoever consumes its answer.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hpack import NeverIndexedHeaderTuple

# Request fields kept out of the HPACK table: credentials (never worth exposing to compression side channels)
# and values that differ on every call (they would only crowd the table out and slow every lookup).
NEVER_INDEXED = frozenset({"authorization", "x-auth-token", "x-apig-appcode", "cookie", "x-request-id",
                           "grpc-timeout", "x-sdk-date", "x-sdk-nonce"})
_WINDOW = 1024 * 1024  # per-stream receive window
_CONN_WINDOW = 16 * 1024 * 1024


class H2ClientError(ConnectionError):
    """The connection or the stream failed before the answer was complete (``code``: the RST_STREAM code)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ClientStream:
    """One request/response exchange on a pooled connection."""

    def __init__(self, conn: H2ClientConnection, sid: int) -> None:
        self.conn = conn
        self.sid = sid
        self.headers: asyncio.Future[tuple[list[tuple[str, str]], bool]] = conn.loop.create_future()
        self.trailers: list[tuple[str, str]] | None = None
        self._chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self._eof = False
        self._error: BaseException | None = None
        self._data_waiter: asyncio.Future[None] | None = None
        self.window_waiter: asyncio.Future[None] | None = None
        self.closed = False

    # --- fed by the connection ----------------------------------------------------------------------
    def _on_headers(self, headers: list[tuple[str, str]], ended: bool) -> None:
        if not self.headers.done():
            self.headers.set_result((headers, ended))
        if ended:
            self._on_end()

    def _on_data(self, data: bytes, flow: int) -> None:
        self._chunks.append((data, flow))
        self._wake()

    def _on_end(self) -> None:
        self._eof = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._eof and not self._chunks and self.headers.done():
            return
        self._error = exc
        if not self.headers.done():
            self.headers.set_exception(exc)
            self.headers.exception()  # mark retrieved: nobody may be waiting yet
        self._wake()
        w = self.window_waiter
        if w is not None and not w.done():
            w.set_exception(exc)

    def _wake(self) -> None:
        w = self._data_waiter
        if w is not None and not w.done():
            w.set_result(None)

    # --- used by the caller -------------------------------------------------------------------------
    async def response(self) -> tuple[list[tuple[str, str]], bool]:
        """The response head (pseudo-headers included) and whether the stream already ended with it."""
        return await self.headers

    async def read(self) -> bytes | None:
        """The next DATA payload, or None at the end of the stream (then :attr:`trailers` is set)."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return None
            self._data_waiter = self.conn.loop.create_future()
            try:
                await self._data_waiter
            finally:
                self._data_waiter = None
        data, flow = self._chunks.popleft()
        self.conn.ack(self.sid, flow)
        return data

    async def send(self, data: bytes, end: bool = False) -> None:
        await self.conn.send_data(self, data, end)

    def end(self) -> None:
        self.conn.end_stream(self)

    def cancel(self, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Reset the stream unless it already ended both ways."""
        self.conn.reset(self, code)


class H2ClientConnection(asyncio.Protocol):
    def __init__(self, pool: H2Pool, key: tuple[Any, ...]) -> None:
        self.pool = pool
        self.key = key
        self.loop = asyncio.get_event_loop()
        # the request headers are built lower-case and clean by the caller: h2's outbound checks are skipped
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
            normalize_outbound_headers=False))
        encode = self.h2.encoder.encode  # literals without Huffman coding (see gateway.process.h2.plain_literals)
        self.h2.encoder.encode = lambda headers, huffman=True: encode(headers, huffman=False)  # type: ignore[method-assign]
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, ClientStream] = {}
        self.usable = False
        self._paused = False
        self._drain: list[asyncio.Future[None]] = []
        self.settings_seen = self.loop.create_future()
        self._flush_scheduled = False

    # --- protocol ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 256 * 1024,
        })
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONN_WINDOW - 65535)
        self.usable = True
        self._flush()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transport = None
        self.usable = False
        self.pool._forget(self)
        err = H2ClientError(f"backend connection lost: {exc}" if exc else "backend connection closed")
        for stream in list(self.streams.values()):
            stream._fail(err)
        self.streams.clear()
        self.pool._slot_freed(self.key)
        if not self.settings_seen.done():
            self.settings_seen.set_exception(err)
            self.settings_seen.exception()
        for fut in self._drain:
            if not fut.done():
                fut.set_exception(err)
        self._drain.clear()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiters, self._drain = self._drain, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()
            self.usable = False
            if self.transport is not None:
                self.transport.close()
            self.connection_lost(exc)
            return
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    s._on_headers([(str(k), str(v)) for k, v in ev.headers], ev.stream_ended is not None)
            elif isinstance(ev, h2.events.DataReceived):
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    s._on_data(ev.data, ev.flow_controlled_length)
                elif ev.flow_controlled_length:
                    self.ack(ev.stream_id, ev.flow_controlled_length)
            elif isinstance(ev, h2.events.TrailersReceived):
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    s.trailers = [(str(k), str(v)) for k, v in ev.headers]
                    if not s.headers.done():  # trailers without a head: a broken answer
                        s._fail(H2ClientError("trailers before headers"))
            elif isinstance(ev, h2.events.StreamEnded):
                s = self.streams.pop(ev.stream_id, None)
                if s is not None:
                    s.closed = True
                    s._on_end()
                    self.pool._slot_freed(self.key)
            elif isinstance(ev, h2.events.StreamReset):
                s = self.streams.pop(ev.stream_id, None)
                if s is not None:
                    s.closed = True
                    self.pool._slot_freed(self.key)
                    s._fail(H2ClientError(f"stream reset by the backend ({ev.error_code!r})", int(ev.error_code)))
            elif isinstance(ev, h2.events.WindowUpdated):
                targets = list(self.streams.values()) if ev.stream_id == 0 else \
                    [s for s in (self.streams.get(ev.stream_id),) if s is not None]
                for s in targets:
                    w = s.window_waiter
                    if w is not None and not w.done():
                        w.set_result(None)
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                if not self.settings_seen.done():
                    self.settings_seen.set_result(None)
                for s in self.streams.values():
                    w = s.window_waiter
                    if w is not None and not w.done():
                        w.set_result(None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.usable = False  # GOAWAY: streams above last_stream_id were not processed
                last = ev.last_stream_id if ev.last_stream_id is not None else 0
                for sid in [sid for sid in self.streams if sid > last]:
                    self.streams.pop(sid)._fail(H2ClientError("backend sent GOAWAY", 7))
                if not self.streams and self.transport is not None:
                    self.transport.close()
        self._flush()

    # --- helpers -------------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write what h2 queued once per event-loop turn (many streams' frames in one syscall)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def capacity(self) -> int:
        if not self.usable or self.transport is None:
            return 0
        limit = self.h2.remote_settings.max_concurrent_streams
        return min(limit, 1000) - len(self.streams)

    def open(self, headers: list[tuple[str, str]], end: bool) -> ClientStream:
        sid = self.h2.get_next_available_stream_id()
        stream = ClientStream(self, sid)
        self.streams[sid] = stream
        fields = [NeverIndexedHeaderTuple(k, v) if k in NEVER_INDEXED else (k, v) for k, v in headers]
        self.h2.send_headers(sid, fields, end_stream=end)
        self._flush()
        return stream

    def ack(self, sid: int, size: int) -> None:
        if size and self.transport is not None:
            try:
                self.h2.acknowledge_received_data(size, sid)
            except h2.exceptions.ProtocolError:
                return
            self._flush()

    async def send_data(self, stream: ClientStream, data: bytes, end: bool) -> None:
        pos, total = 0, len(data)
        while pos < total:
            if stream._error is not None:
                raise stream._error
            if self.transport is None or stream.closed:
                raise H2ClientError("stream closed")
            window = self.h2.local_flow_control_window(stream.sid)
            if window <= 0:
                stream.window_waiter = self.loop.create_future()
                try:
                    await stream.window_waiter
                finally:
                    stream.window_waiter = None
                continue
            n = min(window, self.h2.max_outbound_frame_size, total - pos)
            last = end and pos + n >= total
            try:
                self.h2.send_data(stream.sid, data[pos:pos + n], end_stream=last)
            except h2.exceptions.ProtocolError as exc:
                raise H2ClientError(f"stream closed: {exc}") from None
            pos += n
            self._flush_now() if n >= 16384 else self._flush()
            if self._paused:
                fut: asyncio.Future[None] = self.loop.create_future()
                self._drain.append(fut)
                await fut
        if end and total == 0:
            self.end_stream(stream)

    def end_stream(self, stream: ClientStream) -> None:
        if self.transport is None:
            return
        try:
            self.h2.end_stream(stream.sid)
        except h2.exceptions.ProtocolError:
            return
        self._flush()

    def reset(self, stream: ClientStream, code: int) -> None:
        if self.streams.pop(stream.sid, None) is None or self.transport is None:
            return
        stream.closed = True
        self.pool._slot_freed(self.key)
        try:
            self.h2.reset_stream(stream.sid, code)
        except h2.exceptions.ProtocolError:
            return
        self._flush()


class H2Pool:
    """Connections per (host, port, TLS context), each carrying many streams."""

    def __init__(self, max_connections_per_host: int = 4, connect_timeout_s: float = 10.0) -> None:
        self.max_per_host = max_connections_per_host
        self.connect_timeout_s = connect_timeout_s
        self._conns: dict[tuple[Any, ...], list[H2ClientConnection]] = {}
        self._connecting: dict[tuple[Any, ...], asyncio.Future[H2ClientConnection]] = {}
        self._freed: dict[tuple[Any, ...], asyncio.Event] = {}

    def _slot_freed(self, key: tuple[Any, ...]) -> None:
        event = self._freed.get(key)
        if event is not None:
            event.set()

    def _forget(self, conn: H2ClientConnection) -> None:
        lst = self._conns.get(conn.key)
        if lst is not None and conn in lst:
            lst.remove(conn)

    async def open_stream(self, host: str, port: int, ssl_ctx: ssl.SSLContext | None, server_hostname: str | None,
                          headers: list[tuple[str, str]], end: bool = False) -> ClientStream:
        """Open a stream (sending ``headers``) on a connection with a free stream slot."""
        key = (host, port, id(ssl_ctx) if ssl_ctx is not None else None, server_hostname)
        while True:
            conns = self._conns.setdefault(key, [])
            best = max(conns, key=lambda c: c.capacity(), default=None)
            if best is not None and best.capacity() > 0:
                return best.open(headers, end)
            if len(conns) >= self.max_per_host and best is not None:
                # every connection is full: wait until a stream ends somewhere (the caller's deadline bounds it)
                event = self._freed.get(key)
                if event is None:
                    event = self._freed[key] = asyncio.Event()
                event.clear()
                await event.wait()
                continue
            conn = await self._connect(key, host, port, ssl_ctx, server_hostname)
            if conn.capacity() > 0:
                return conn.open(headers, end)

    async def _connect(self, key: tuple[Any, ...], host: str, port: int, ssl_ctx: ssl.SSLContext | None,
                       server_hostname: str | None) -> H2ClientConnection:
        pending = self._connecting.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[H2ClientConnection] = loop.create_future()
        self._connecting[key] = fut
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _t, conn = await loop.create_connection(
                    lambda: H2ClientConnection(self, key), host, port, ssl=ssl_ctx,
                    server_hostname=server_hostname if ssl_ctx is not None else None)
                if ssl_ctx is not None:
                    sslobj = _t.get_extra_info("ssl_object")
                    if sslobj is None or sslobj.selected_alpn_protocol() != "h2":
                        _t.close()
                        raise H2ClientError("the backend did not negotiate HTTP/2 (ALPN h2)")
                await conn.settings_seen  # the server's limits (MAX_CONCURRENT_STREAMS) are known
            self._conns.setdefault(key, []).append(conn)
            fut.set_result(conn)
            return conn
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()
            raise
        finally:
            self._connecting.pop(key, None)

    async def close(self) -> None:
        for conns in list(self._conns.values()):
            for conn in list(conns):
                if conn.transport is not None:
                    conn.transport.close()
        self._conns.clear()

