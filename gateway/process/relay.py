"""The channel between the ``--workers`` supervisor and each worker (a UNIX socketpair per worker).

Role: control plane only. Frames are a 4-byte big-endian length followed by a JSON object:

- supervisor -> worker ``{"type": "hello", "snapshot": payload | null}`` first (the latest snapshot pushed
  to any worker, so a restarted worker serves it, not the possibly older config file), then
  ``{"type": "snapshot", ...payload}`` for every push relayed from a worker.
- worker -> supervisor ``{"type": "ready", "pid", "admin_port"}`` once listening, and
  ``{"type": "snapshot", "id", "version", "doc"}`` for each push it accepted (admin API, SIGHUP reload).

Without Redis the supervisor relays every worker's push to *all* workers (the pusher included) in the order
it received them, and each worker skips a snapshot whose identity is already active, so concurrent pushes
on two workers converge on the one the supervisor saw last. With ``--redis-url`` each worker is a Redis node
and only ``hello``/``ready`` use this channel. A worker whose channel closes (the supervisor died) shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from gateway.core.aio import cancel_and_wait
from gateway.core.errors import SnapshotError
from gateway.process.reload import ClusterState, snapshot_id

if TYPE_CHECKING:
    from gateway.model.runtime import Runtime
    from gateway.process.server import Gateway

log = logging.getLogger("gateway.process.relay")

_HEADER = struct.Struct(">I")
MAX_FRAME = 512 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS, default=str)
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One frame's JSON bytes, or None at end of stream."""
    try:
        head = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(head)
        if size > MAX_FRAME:
            raise ValueError(f"relay frame of {size} bytes")
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body)) + body


class WorkerLink:
    """Worker side of the channel."""

    def __init__(self, gw: Gateway, fd: int, relay_pushes: bool) -> None:
        self.gw = gw
        self.fd = fd
        self.relay_pushes = relay_pushes
        self.state = ClusterState.of(gw)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.on_closed: Callable[[], None] | None = None

    async def connect(self) -> dict[str, Any] | None:
        """Open the channel and read the hello; returns the snapshot payload it carries, if any."""
        sock = socket.socket(fileno=self.fd)
        self.reader, self.writer = await asyncio.open_unix_connection(sock=sock, limit=2**20)
        raw = await read_frame(self.reader)
        if raw is None:
            raise ConnectionError("supervisor closed the channel before hello")
        hello = orjson.loads(raw)
        snap = hello.get("snapshot")
        return snap if isinstance(snap, dict) else None

    async def apply(self, payload: dict[str, Any], distribute: bool = False) -> bool:
        sid = str(payload.get("id") or "")
        if sid and sid == self.state.snapshot_id:
            return True
        version = str(payload["version"])
        try:
            await self.gw.push_document(payload["doc"], version=version, distribute=distribute, source="relay")
        except SnapshotError as exc:
            for problem in exc.problems:
                log.error("relayed snapshot %s rejected: %s", version, problem)
            return False
        self.state.record(payload["doc"], version, known_id=sid or None)
        return True

    def start(self) -> None:
        if self.relay_pushes:
            self.gw.push_hooks.append(self.push_hook)
        self._task = asyncio.get_running_loop().create_task(self._receive())

    async def send(self, message: dict[str, Any]) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        self.writer.write(encode(message))
        await self.writer.drain()

    async def push_hook(self, doc: dict[str, Any], runtime: Runtime) -> None:
        sid = snapshot_id(doc, runtime.version)
        try:
            await self.send({"type": "snapshot", "id": sid, "version": runtime.version, "doc": doc})
        except Exception as exc:
            log.warning("could not relay snapshot %s to the other workers: %s", runtime.version, exc)

    async def _receive(self) -> None:
        assert self.reader is not None
        while True:
            raw = await read_frame(self.reader)
            if raw is None:
                break
            try:
                msg = orjson.loads(raw)
                if msg.get("type") == "snapshot":
                    await self.apply(msg)
            except Exception:
                log.exception("bad relay message")
        log.warning("supervisor channel closed")
        if self.on_closed is not None:
            self.on_closed()

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        if self.writer is not None:
            self.writer.close()
