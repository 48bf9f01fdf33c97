"""A minimal pipelined RESP2 connection for one hot command (the throttling script's ``EVALSHA``).

Role in the pipeline: step 70 (throttling) with the Redis store on a single Redis instance. redis-py's
asyncio client spends ~50 µs of CPU per command on this machine (connection-pool checkout, retry and
health-check wrappers, the generic reply machinery); the throttling stage sends one script call per
event-loop iteration, so that was most of what the Redis store cost over the in-process store. This module
writes the command with one ``transport.write`` on one long-lived connection and matches replies to callers
in order (RESP answers in order), ~12 µs per call.

Scope: plain TCP to one server (``redis://``, with ``AUTH`` and ``SELECT`` when configured). TLS, Unix sockets,
Sentinel and Cluster keep using redis-py (:func:`for_client` returns None for them). Errors are redis-py's
exception types, so callers handle both clients alike: ``ConnectionError`` when the connection cannot be made
or is lost (every waiting call fails; the next call reconnects), ``NoScriptError`` / ``ResponseError`` for
an error reply. Timeouts are the caller's (the throttling service bounds each decision).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

_INCOMPLETE = object()


def encode(args: tuple[Any, ...]) -> bytes:
    """A RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(parts)


def parse(buf: bytearray | bytes, pos: int) -> tuple[Any, int]:
    """One reply at ``pos`` -> (value, next position); (_INCOMPLETE, pos) when more bytes are needed.
    An error reply is returned as a ``ResponseError`` instance (not raised)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind = buf[pos:pos + 1]
    line = bytes(buf[pos + 1:end])
    nxt = end + 2
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            return _INCOMPLETE, pos
        return bytes(buf[nxt:nxt + n]), nxt + n + 2
    if kind == b"+":
        return line, nxt
    if kind == b":":
        return int(line), nxt
    if kind == b"-":
        text = line.decode("utf-8", "replace")
        return (NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text)), nxt
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            item, nxt = parse(buf, nxt)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return items, nxt
    raise RedisConnectionError(f"unexpected RESP reply type {kind!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        waiters = self.waiters
        try:
            while pos < len(buf):
                value, nxt = parse(buf, pos)
                if value is _INCOMPLETE:
                    break
                pos = nxt
                if not waiters:
                    raise RedisConnectionError("reply without a request")
                fut = waiters.popleft()
                if not fut.done():
                    if isinstance(value, ResponseError):
                        fut.set_exception(value)
                    else:
                        fut.set_result(value)
        except (RedisConnectionError, ValueError) as exc:
            self._fail(RedisConnectionError(f"bad reply from Redis: {exc}"))
            if self.transport is not None:
                self.transport.close()
            return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.transport = None
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def call(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            fut.set_exception(RedisConnectionError("connection to Redis closed"))
            return fut
        self.waiters.append(fut)
        self.transport.write(encode(args))
        return fut


class RespClient:
    """One lazily (re)connected pipelined connection to ``host:port``."""

    def __init__(self, host: str, port: int, db: int = 0, username: str | None = None, password: str | None = None,
                 connect_timeout: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.db = db
        self.username = username
        self.password = password
        self.connect_timeout = connect_timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        pending = self._connecting
        if pending is not None:  # one connect at a time; concurrent callers share it
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            proto = await self._open()
        except BaseException as exc:
            fut, self._connecting = self._connecting, None
            err = exc if isinstance(exc, RedisConnectionError) else RedisConnectionError(f"{type(exc).__name__}: {exc}")
            fut.set_exception(err)
            fut.exception()  # retrieved: nobody else may be waiting
            raise err from None
        fut, self._connecting = self._connecting, None
        self._proto = proto
        fut.set_result(proto)
        return proto

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, proto = await loop.create_connection(_Protocol, self.host, self.port)
            if self.password:
                auth = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
                await proto.call(auth)
            if self.db:
                await proto.call(("SELECT", self.db))
        return proto

    async def execute(self, *args: Any) -> Any:
        proto = await self._connection()
        return await proto.call(args)

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return await self.execute("EVALSHA", sha, numkeys, *keys_and_args)

    def reset(self) -> None:
        """Drop the connection (the next call reconnects)."""
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    async def close(self) -> None:
        self.reset()


def for_client(client: Any) -> RespClient | None:
    """A :class:`RespClient` to the same single server as the redis-py ``client``, or None when the client
    is anything else (cluster, sentinel, TLS, Unix socket) and must keep doing the work itself."""
    from redis.asyncio import Redis
    from redis.asyncio.connection import Connection

    if type(client) is not Redis:
        return None
    pool = client.connection_pool
    if type(pool).__name__ != "ConnectionPool" or pool.connection_class is not Connection:
        return None
    kw = pool.connection_kwargs
    host, port = kw.get("host"), kw.get("port")
    if not host or not port:
        return None
    timeout = kw.get("socket_connect_timeout") or kw.get("socket_timeout") or 1.0
    return RespClient(str(host), int(port), int(kw.get("db") or 0), kw.get("username"), kw.get("password"),
                      float(timeout))
