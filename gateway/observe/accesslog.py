"""The JSON access log: one line per request, written after the response (spec 02 §11.2 step 19).

Role in the pipeline: a completion hook. Each finished request becomes one ``orjson`` line with fixed
fields (docs/operations.md "Access log"). Secrets are never written: no request header is logged except
``User-Agent``; the query string is left out unless ``access_log_query`` is on, and then every parameter
whose name looks like a credential or a signature has its value replaced by ``***``. Header bytes that are
not UTF-8 (a hostile ``User-Agent``) are logged as ``\xff`` escapes: such a request is never missing.

Writing: lines go to an in-memory buffer and are written with ``os.write`` in chunks of whole lines of at
most ``PIPE_BUF`` (4096) bytes, so lines from several worker processes sharing one stdout pipe never
interleave; a chunk is written as soon as 4 KB are buffered, else at most :data:`FLUSH_DELAY_S` after the
first buffered line, and at shutdown. No ``logging`` formatting machinery is involved. If the output cannot
take a write (closed pipe, full non-blocking pipe) the chunk is dropped and counted, never retried, so a
stuck log consumer cannot grow memory or stall requests.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import TYPE_CHECKING, Any

import orjson

from gateway.core.grpc_status import GRPC_STATUS_KEY
from gateway.model.services import Services
from gateway.observe import jsonsafe
from gateway.snapshot.custom_log import MAX_VALUE as MAX_CUSTOM

if TYPE_CHECKING:
    from gateway.model.context import RequestContext

EXTRAS_KEY = "accesslog"
CHUNK = 4096  # PIPE_BUF on Linux: writes up to this size to a pipe are atomic
FLUSH_DELAY_S = 0.25
MAX_UA = 512
MAX_PATH = 2048
MAX_QUERY = 2048
# The fields of every line, in order (docs/operations.md documents each; ``query`` only with access_log_query).
FIELDS = (
    "time", "request_id", "node", "group_id", "api_id", "api_name", "env", "app_id", "client_ip", "peer_ip",
    "method", "host", "path", "status", "bytes", "total_ms", "backend_ms", "error_type", "error_code", "retries",
    "aborted", "user_agent", "protocol", "grpc_status",
)
# Query parameter names whose values are never logged (case-insensitive search).
SECRET_PARAM_RX = re.compile(
    r"sig|token|secret|passw|pwd|auth|key|code|credential|session|ticket|x-amz-|x-goog-|nonce", re.IGNORECASE
)


def redact_query(query: Any) -> str:
    """``a=1&signature=***``: the query with credential-like values masked (names are kept)."""
    parts = []
    for name, value in query.items():
        parts.append(f"{name}={'***' if SECRET_PARAM_RX.search(name) else value}")
    return "&".join(parts)[:MAX_QUERY]


class _Clock:
    """ISO-8601 UTC timestamps with milliseconds; the seconds part is formatted once per second."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def now(self) -> str:
        t = time.time()
        sec = int(t)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._prefix}.{int((t - sec) * 1000):03d}Z"


class AccessLog:
    """Formats and writes access-log lines for one gateway process."""

    def __init__(self, fd: int, include_query: bool = False, node: str = "", owns_fd: bool = False) -> None:
        self.fd = fd
        self.include_query = include_query
        self.node = node or None
        self._owns_fd = owns_fd
        self._buf: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._clock = _Clock()
        self.lines = 0
        self.dropped = 0

    @classmethod
    def open(cls, path: str, include_query: bool = False, node: str = "") -> AccessLog:
        if path in ("", "-", "stdout"):
            return cls(1, include_query, node)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return cls(fd, include_query, node, owns_fd=True)

    def record(self, ctx: RequestContext) -> dict[str, Any]:
        """The fields of one line (documented in docs/operations.md; keep both in step)."""
        ep = ctx.endpoint
        err = ctx.error
        group = ctx.group
        backend_ms = ctx.backend_ms
        ua = ctx.headers.get("User-Agent")
        rec: dict[str, Any] = {
            "time": self._clock.now(),
            "request_id": ctx.request_id,
            "node": self.node,
            "group_id": group.id if group is not None else None,
            "api_id": ep.api_id if ep is not None else None,
            "api_name": ep.api_name if ep is not None else None,
            "env": ctx.env_name or None,
            "app_id": ctx.app_id,
            "client_ip": ctx.client_ip,
            "peer_ip": ctx.peer_ip,
            "method": ctx.method,
            "host": ctx.host or None,
            "path": ctx.path[:MAX_PATH],
            "status": ctx.status,
            "bytes": ctx.bytes_sent,
            "total_ms": round(ctx.elapsed_ms(), 3),
            "backend_ms": round(backend_ms, 3) if backend_ms is not None else None,
            "error_type": err.error_type if err is not None else None,
            "error_code": err.code if err is not None else None,
            "retries": ctx.retries,
            "aborted": bool(ctx.extras.get("aborted")) if ctx.extras else False,
            "user_agent": ua[:MAX_UA] if ua else None,
            "protocol": "HTTP/2" if ctx.request.version.major == 2 else "HTTP/1.1",
            "grpc_status": ctx.extras.get(GRPC_STATUS_KEY) if ctx.extras else None,
        }
        if self.include_query:
            rec["query"] = redact_query(ctx.query) if ctx.query else None
        runtime = ctx.runtime  # None: no snapshot loaded yet (503)
        for f in runtime.log_fields if runtime is not None else ():  # custom_log: custom_data_log01 ...
            v = f.get(ctx)
            rec[f.field] = None if v is None else "***" if SECRET_PARAM_RX.search(f.name) else v[:MAX_CUSTOM]
        return rec

    def __call__(self, ctx: RequestContext) -> None:
        """Completion hook: buffer one line; write when a chunk is full, else soon."""
        # header bytes that are not UTF-8 arrive as surrogates: written as \xff escapes (gateway/observe/jsonsafe.py)
        line = jsonsafe.dumps(self.record(ctx), option=orjson.OPT_APPEND_NEWLINE)
        self.lines += 1
        self._buf.append(line)
        self._size += len(line)
        if self._size >= CHUNK:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self._timed_flush)
            except RuntimeError:  # no loop (direct call from a script): write now
                self.flush()

    def _timed_flush(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write everything buffered, in whole-line chunks of at most CHUNK bytes (one line may exceed it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        buf, self._buf, self._size = self._buf, [], 0
        chunk: list[bytes] = []
        size = 0
        for line in buf:
            if chunk and size + len(line) > CHUNK:
                self._write(b"".join(chunk), len(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write(b"".join(chunk), len(chunk))

    def _write(self, data: bytes, nlines: int) -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError:
            self.dropped += nlines

    async def close(self) -> None:
        self.flush()
        if self._owns_fd:
            os.close(self.fd)
            self._owns_fd = False


def access_log_of(services: Services) -> AccessLog | None:
    log = services.extras.get(EXTRAS_KEY)
    return log if isinstance(log, AccessLog) else None


def setup(services: Services) -> None:
    """Called by the process once per Services: open the log and install its completion hook."""
    s = services.settings
    if not s.access_log:
        return
    log = AccessLog.open(s.access_log_path, s.access_log_query, s.node_name)
    services.extras[EXTRAS_KEY] = log
    services.completion_hooks.append(log)
    services.close_hooks.append(log.close)

