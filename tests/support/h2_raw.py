"""A raw HTTP/2 client on the ``h2`` library, for tests that need frame-level control (floods, windows)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

from tests.support.helpers import GROUP_HOST
from tests.support.tls_helpers import TestCA


class _Client(h2.connection.H2Connection):
    """The h2 client, except that a graceful GOAWAY (NO_ERROR) leaves the streams it covers readable: the
    library would refuse every later frame, where a real client finishes those streams (RFC 9113 §6.8)."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        result = super()._receive_goaway_frame(frame)
        if frame.error_code == 0:
            self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return result


class RawH2:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: h2.connection.H2Connection) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.events: list[Any] = []
        self.closed = False
        self.bodies: dict[int, bytearray] = {}

    @classmethod
    async def connect(cls, port: int, ca: TestCA | None = None, settings: dict[int, int] | None = None,
                      auto_ack: bool = True) -> RawH2:
        ctx = None
        if ca is not None:
            ctx = ssl.create_default_context(cadata=ca.pem)
            ctx.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                       server_hostname="127.0.0.1" if ctx else None)
        if ctx is not None:
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        conn = _Client(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        if settings:
            conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        conn.initiate_connection()
        self = cls(reader, writer, conn)
        self.auto_ack = auto_ack
        self.flush()
        return self

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def write_raw(self, data: bytes) -> None:
        self.flush()
        self.writer.write(data)

    def request(self, path: str, method: str = "GET", body: bytes | None = None, end: bool = True,
                headers: list[tuple[str, str]] | None = None) -> int:
        sid = self.conn.get_next_available_stream_id()
        head = [(":method", method), (":scheme", "https"), (":path", path), (":authority", GROUP_HOST),
                *(headers or [])]
        self.conn.send_headers(sid, head, end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    async def until(self, cond: Callable[[RawH2], bool], timeout: float = 15.0) -> bool:
        """Read and process frames until ``cond(self)`` holds (True) or the connection closes (cond's value)."""
        end = time.monotonic() + timeout
        while not cond(self):
            if self.closed:
                return cond(self)
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                data = await asyncio.wait_for(self.reader.read(65536), left)
            except (TimeoutError, ConnectionError, ssl.SSLError):
                if time.monotonic() >= end:
                    return False
                data = b""
            if not data:
                self.closed = True
                continue
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.closed = True
                continue
            for ev in events:
                self.events.append(ev)
                if isinstance(ev, h2.events.DataReceived):
                    self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                    if self.auto_ack:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            self.flush()
        return True

    def of(self, kind: type, sid: int | None = None) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and (sid is None or getattr(e, "stream_id", None) == sid)]

    def status(self, sid: int) -> int | None:
        for e in self.of(h2.events.ResponseReceived, sid):
            return int(dict(e.headers)[":status"])
        return None

    def ended(self, sid: int) -> bool:
        return bool(self.of(h2.events.StreamEnded, sid))

    def goaway(self) -> Any:
        found = self.of(h2.events.ConnectionTerminated)
        return found[0] if found else None

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
