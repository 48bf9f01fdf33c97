"""Per-request state that flows through the pipeline stages.

Role in the pipeline: the server creates one :class:`RequestContext` per request; routing fills in the
endpoint, stages (ACL, auth, validation, throttling ...) read and enrich it, the backend builder reads
it to build the backend request, and the response layer and access log read the outcome. It is a
plain slotted object: no dict lookups or properties on the hot path. :func:`set_latency_headers` adds the
latency headers to every response head (docs/operations.md "Response headers").
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDictProxy, MultiMapping

from gateway.core.errors import GatewayError, bad_body, body_timeout, body_too_large
from gateway.core.settings import LATENCY_ALWAYS, LATENCY_OFF

if TYPE_CHECKING:
    from gateway.model.runtime import Endpoint, GroupRuntime, Runtime


# What reading a request body raises when the caller sends a broken body (bad chunk framing, a body shorter
# than its Content-Length, the connection lost mid-body): the caller's fault, answered 400, never a 5xx.
BODY_ERRORS: tuple[type[BaseException], ...] = (RequestPayloadError, ConnectionResetError)

SERVER_HEADER = "api-gateway"  # the vendor's value (spec 02 §9.6); hides the framework and its version


_LOW_HEX = tuple(f"{i:04x}" for i in range(0x10000))  # the counter's low 16 bits, formatted once


def _id_stream(prefix: str, start: int) -> Iterator[str]:
    """Request ids from ``start`` on: the 12 hex digits of the 48-bit counter, formatted 16 bits at a time
    (one string concatenation per id; a format call per id showed in profiles)."""
    high, low = (start >> 16) & 0xFFFFFFFF, start & 0xFFFF
    lows: Sequence[str] = _LOW_HEX[low:]
    while True:
        head = f"{prefix}{high:08x}"
        for tail in lows:
            yield head + tail
        high = (high + 1) & 0xFFFFFFFF
        lows = _LOW_HEX


class _RequestIds:
    """Request ids: 32 hex characters, a random per-process prefix (80 bits) and a counter (48 bits).

    Unique without a system call per request (``os.urandom`` on every request showed in profiles); a
    forked child draws a new prefix."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(10).hex()
        self.next = _id_stream(self.prefix, int.from_bytes(os.urandom(4), "big")).__next__
        global _next_id
        _next_id = self.next

    def __call__(self) -> str:
        return new_request_id()


_next_id: Callable[[], str]
_IDS = _RequestIds()


def new_request_id() -> str:
    """The next request id (a plain function: half the cost of calling the instance)."""
    return _next_id()


class RequestContext:
    """Everything the pipeline knows about one request."""

    __slots__ = (
        "_query",
        "account_id",
        "app_id",
        "app_name",
        "authorizer_backend",
        "authorizer_frontend",
        "backend_body_ms",
        "backend_ms",
        "body",
        "body_timeout",
        "bytes_sent",
        "client_ip",
        "endpoint",
        "env_id",
        "env_name",
        "error",
        "extras",
        "group",
        "headers",
        "host",
        "identity",
        "latency_mode",
        "max_body",
        "method",
        "params",
        "path",
        "path_params",
        "path_suffix",
        "peer_ip",
        "preset_ok",
        "request",
        "request_id",
        "response_headers",
        "retries",
        "runtime",
        "started",
        "status",
        "user_id",
        "user_name",
    )

    def __init__(
        self,
        request: web.BaseRequest,
        request_id: str,
        runtime: Runtime,
        peer_ip: str,
        max_body: int,
        client_ip: str | None = None,
        latency_mode: int = LATENCY_ALWAYS,
        body_timeout: float = 8.0,
        preset_ok: bool = False,
    ) -> None:
        self.request = request
        self.request_id: str = request_id
        self.runtime = runtime
        self.started = perf_counter()
        self.peer_ip = peer_ip
        self.client_ip: str = peer_ip if client_ip is None else client_ip
        self.method: str = request.method
        self.path: str = request.path
        self._query: MultiMapping[str] | None = None  # request.query, parsed when first read (a MOCK never does)
        self.headers: CIMultiDictProxy[str] = request.headers
        self.host: str = ""
        self.max_body = max_body
        self.body_timeout = body_timeout  # seconds the caller may pause within a body (client_body_timeout_s)
        self.group: GroupRuntime | None = None
        self.endpoint: Endpoint | None = None
        self.env_id: str = ""
        self.env_name: str = ""
        self.path_params: dict[str, str] = {}
        self.path_suffix: str = ""
        # Validated request parameter values: (location, name) -> value (defaults applied).
        self.params: dict[tuple[str, str], str] = {}
        self.app_id: str | None = None
        self.app_name: str | None = None
        self.user_id: str | None = None  # IAM user id ($context.userId)
        # the caller's account (IAM domain id): the subject of USER throttling and excluded USER throttles
        self.account_id: str | None = None
        self.user_name: str | None = None  # IAM account/domain name (DOMAIN ACLs)
        self.identity: dict[str, Any] | None = None  # raw identity claims (IAM token, app record)
        self.authorizer_frontend: dict[str, Any] = {}
        self.authorizer_backend: dict[str, Any] = {}
        # Headers added to whatever response is sent (success or error): CORS, rate-limit, latency ...
        self.response_headers: dict[str, str] = {"Server": SERVER_HEADER}
        self.body: bytes | None = None
        self.error: GatewayError | None = None
        self.status: int = 0
        self.bytes_sent: int = 0
        self.backend_ms: float | None = None
        # time spent reading or relaying the backend's response body (backend time, not gateway overhead)
        self.backend_body_ms: float = 0.0
        self.retries: int = 0
        self.extras: dict[str, Any] = {}
        self.latency_mode: int = latency_mode  # the server passes Settings.latency_headers
        # the listener writes a gateway.model.answer.PresetAnswer (the HTTP/1 listener); else web.Response only
        self.preset_ok = preset_ok

    @property
    def query(self) -> MultiMapping[str]:
        """The request's query parameters (parsed on first use)."""
        q = self._query
        if q is None:
            q = self._query = self.request.query
        return q

    async def read_body(self) -> bytes:
        """Read and cache the whole request body, enforcing the body limit (413 via DEFAULT_4XX)."""
        if self.body is not None:
            return self.body
        if not self.request.body_exists:  # nothing to wait for (a GET): no iterator, no timer
            self.body = b""
            return self.body
        length = self.request.content_length
        if length is not None and length > self.max_body:
            raise body_too_large()
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in self.body_chunks():
                total += len(chunk)
                if total > self.max_body:
                    raise body_too_large()
                chunks.append(chunk)
        except BODY_ERRORS:
            raise bad_body() from None
        self.body = b"".join(chunks)
        return self.body

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The request body as it arrives; each wait for the next piece is bounded by ``body_timeout``
        (408 after it, with ``extras["body_timeout"]`` set: the caller's fault, never a backend's)."""
        chunks = self.request.content.iter_chunked(65536).__aiter__()
        timeout = self.body_timeout
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                self.extras["body_timeout"] = True
                raise body_timeout() from None
            yield chunk

    def finish_response(self, resp: web.StreamResponse) -> None:
        """Run the endpoint's response hooks (set_resp_headers plug-in) on a response not yet sent."""
        ep = self.endpoint
        if ep is not None and ep.response_hooks:
            for hook in ep.response_hooks:
                hook(self, resp)

    def elapsed_ms(self) -> float:
        return (perf_counter() - self.started) * 1000.0


def set_latency_headers(ctx: RequestContext, headers: MutableMapping[str, str]) -> None:
    """Add ``X-Apig-Latency`` (ms from arrival to this response head, integer) and, when a backend answered,
    ``X-Apig-Upstream-Latency`` (ms from sending to the backend's response head) to a response head.

    Called where every response head is built (HTTP relay, MOCK, group-response errors, CORS preflight).
    Mode ``debug`` emits them only when the request carries ``X-Apig-Mode: debug`` (the vendor's behaviour).
    """
    mode = ctx.latency_mode
    if mode != LATENCY_ALWAYS and (mode == LATENCY_OFF or ctx.headers.get("X-Apig-Mode", "").lower() != "debug"):
        return
    headers["X-Apig-Latency"] = str(int((perf_counter() - ctx.started) * 1000.0))
    if ctx.backend_ms is not None:
        headers["X-Apig-Upstream-Latency"] = str(int(ctx.backend_ms))
