"""HTTP(S) backends: build the outgoing request and forward it with timeouts and retries.

Role in the pipeline: step 17 of spec 02 §11.2, the terminal step for ``backend_type`` HTTP.

* Connections come from one pooled keep-alive ``aiohttp.ClientSession`` owned by the long-lived
  :class:`gateway.services.Services` (pools survive config swaps).
* Request bodies stream from the caller to the backend unless something needed the whole body
  (signature body hash, function event) or a retry may need to replay it; response bodies always
  stream back. Content encodings pass through untouched (``auto_decompress=False``).
* Hop-by-hop headers are removed both ways; ``X-Forwarded-For`` (appended), ``X-Forwarded-Proto``,
  ``X-Forwarded-Host`` and ``X-Real-IP`` are set.
* ``timeout`` (ms, capped by the gateway's ``max_backend_timeout``) bounds connecting plus waiting for the
  response head, and then each read of the body. Expired -> BACKEND_TIMEOUT (504). Refused / reset /
  DNS failure -> BACKEND_UNAVAILABLE (502).
* ``retry_count``: -1 -> idempotent methods (GET HEAD PUT OPTIONS DELETE) retry once, POST/PATCH never;
  0..10 -> that many retries. Only failures before a response head arrived are retried (a backend's
  own 5xx is an answer, not a failure); each retry may go to another member of a channel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.backends.base import BackendPlan, BackendRequest
from gateway.context import set_latency_headers
from gateway.errors import GatewayError, backend_timeout, backend_unavailable, body_too_large

if TYPE_CHECKING:
    from gateway.context import RequestContext
    from gateway.services import Services

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
})
# Request headers the gateway never forwards as-is.
_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "x-apig-appcode", "expect"}
_RESPONSE_DROP = HOP_BY_HOP | {"content-length"}
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "OPTIONS", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def effective_retries(retry_count: int, method: str) -> int:
    if retry_count < 0:
        return 1 if method in IDEMPOTENT else 0
    return retry_count


def parse_host_port(url_domain: str, scheme: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or bare host) -> (host, port) with the scheme's default port."""
    value = url_domain.strip()
    if "://" in value:
        value = value.split("://", 1)[1]
    value = value.split("/", 1)[0]
    if value.startswith("["):
        end = value.find("]")
        host = value[1:end]
        rest = value[end + 1:]
        port = int(rest[1:]) if rest.startswith(":") else DEFAULT_PORTS[scheme]
        return host, port
    if value.count(":") == 1:
        host, port_s = value.split(":")
        return host, int(port_s)
    return value, DEFAULT_PORTS[scheme]


class Member(Protocol):
    host: str
    port: int


class Upstream(Protocol):
    """Chooses where an attempt goes (a fixed address, or a member of a load-balanced channel)."""

    def choose(self, ctx: RequestContext, tried: list[Member]) -> Member:
        ...

    def report(self, member: Member, ok: bool) -> None:
        ...

    def host_header(self, member: Member) -> str:
        ...

    def release(self, member: Member) -> None:
        ...


@dataclass(slots=True)
class Address:
    host: str
    port: int


class DirectUpstream:
    """A backend given as ``url_domain`` host:port."""

    __slots__ = ("_host_header", "address")

    def __init__(self, host: str, port: int, scheme: str) -> None:
        self.address = Address(host, port)
        default = DEFAULT_PORTS[scheme]
        shown = f"[{host}]" if ":" in host else host
        self._host_header = shown if port == default else f"{shown}:{port}"

    def choose(self, ctx: RequestContext, tried: list[Member]) -> Member:
        return self.address

    def report(self, member: Member, ok: bool) -> None:
        return None

    def host_header(self, member: Member) -> str:
        return self._host_header

    def release(self, member: Member) -> None:
        return None


def forwarded_headers(ctx: RequestContext, drop: frozenset[str]) -> CIMultiDict[str]:
    """Caller headers minus hop-by-hop/dropped ones, plus the X-Forwarded-* family."""
    out: CIMultiDict[str] = CIMultiDict()
    connection_tokens: set[str] = set()
    conn = ctx.headers.get("Connection")
    if conn:
        connection_tokens = {t.strip().lower() for t in conn.split(",")}
    for key, value in ctx.headers.items():
        low = key.lower()
        if low in _REQUEST_DROP or low in drop or low in connection_tokens:
            continue
        out.add(key, value)
    xff = ctx.headers.get("X-Forwarded-For")
    out["X-Forwarded-For"] = f"{xff}, {ctx.peer_ip}" if xff else ctx.peer_ip
    out["X-Forwarded-Proto"] = ctx.request.scheme
    if ctx.host:
        out["X-Forwarded-Host"] = ctx.request.host
    out["X-Real-IP"] = ctx.client_ip
    return out


async def _limited(ctx: RequestContext) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in ctx.request.content.iter_chunked(65536):
        total += len(chunk)
        if total > ctx.max_body:
            ctx.extras["body_too_large"] = True
            raise body_too_large()
        yield chunk


class HttpTarget:
    """Forwarding to an HTTP(S) upstream."""

    kind = "HTTP"
    __slots__ = ("retry_count", "scheme", "services", "ssl", "timeout_s", "upstream")

    def __init__(self, services: Services, scheme: str, upstream: Upstream, timeout_ms: int,
                 retry_count: int, ssl: object = None) -> None:
        self.services = services
        self.scheme = scheme
        self.upstream = upstream
        self.timeout_s = timeout_ms / 1000.0
        self.retry_count = retry_count
        self.ssl = ssl

    async def invoke(self, ctx: RequestContext, breq: BackendRequest, plan: BackendPlan) -> web.StreamResponse:
        retries = effective_retries(self.retry_count, breq.method)
        if retries and isinstance(breq.body, aiohttp.StreamReader):
            breq.body = await ctx.read_body()  # a retry must be able to replay the body
        session = self.services.http_session()
        tried: list[Member] = []
        last: GatewayError | None = None
        for attempt in range(retries + 1):
            member = self.upstream.choose(ctx, tried)
            tried.append(member)
            breq.scheme = self.scheme
            breq.host, breq.port = member.host, member.port
            breq.host_header = self.upstream.host_header(member)
            breq.headers["Host"] = breq.host_header
            for hook in plan.request_hooks:
                res = hook(ctx, breq)
                if res is not None:
                    await res
            if attempt:
                ctx.retries += 1
            try:
                return await self._attempt(ctx, session, breq, member)
            except GatewayError as err:
                last = err
                if err.error_type not in ("BACKEND_UNAVAILABLE", "BACKEND_TIMEOUT"):
                    raise
        assert last is not None
        raise last

    async def _attempt(self, ctx: RequestContext, session: aiohttp.ClientSession, breq: BackendRequest,
                       member: Member) -> web.StreamResponse:
        host = f"[{breq.host}]" if ":" in breq.host else breq.host
        url = f"{self.scheme}://{host}:{breq.port}{breq.path}"
        qs = breq.query_string()
        if qs:
            url = f"{url}?{qs}"
        data: object
        if isinstance(breq.body, aiohttp.StreamReader):
            data = _limited(ctx)
            length = ctx.request.content_length
            if length is not None:
                breq.headers["Content-Length"] = str(length)
        else:
            data = breq.body
        sent_at = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                upstream = await session.request(
                    breq.method, aiohttp.client.URL(url, encoded=True), headers=breq.headers, data=data,
                    allow_redirects=False, ssl=self.ssl if self.ssl is not None else True,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=self.timeout_s),
                )
        except TimeoutError:
            self.upstream.report(member, False)
            self.upstream.release(member)
            raise backend_timeout() from None
        except GatewayError:
            self.upstream.release(member)
            raise
        except (aiohttp.ClientError, OSError) as exc:
            self.upstream.release(member)
            if ctx.extras.get("body_too_large"):
                raise body_too_large() from None
            self.upstream.report(member, False)
            raise backend_unavailable(f"Backend unavailable: {type(exc).__name__}") from None
        self.upstream.report(member, True)
        ctx.backend_ms = (time.perf_counter() - sent_at) * 1000.0
        try:
            return await self._relay(ctx, upstream)
        finally:
            upstream.release()
            self.upstream.release(member)

    async def _relay(self, ctx: RequestContext, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        h = resp.headers
        tokens: set[str] = set()
        conn = upstream.headers.get("Connection")
        if conn:
            tokens = {t.strip().lower() for t in conn.split(",")}
        for key, value in upstream.headers.items():
            low = key.lower()
            if low in _RESPONSE_DROP or low in tokens:
                continue
            h.add(key, value)
        h.update(ctx.response_headers)
        h["X-Request-Id"] = ctx.request_id
        set_latency_headers(ctx, h)
        if upstream.content_length is not None and "Transfer-Encoding" not in upstream.headers:
            resp.content_length = upstream.content_length
        ctx.status = upstream.status
        await resp.prepare(ctx.request)
        sent = 0
        try:
            async for chunk in upstream.content.iter_any():
                sent += len(chunk)
                await resp.write(chunk)
        except (aiohttp.ClientError, TimeoutError, ConnectionError):
            # the head is already sent: the only honest signal left is to cut the connection
            ctx.bytes_sent = sent
            ctx.extras["aborted"] = True
            if ctx.request.transport is not None:
                ctx.request.transport.close()
            return resp
        ctx.bytes_sent = sent
        await resp.write_eof()
        return resp
