"""HTTP(S) backends: build the outgoing request and forward it with timeouts and retries.

Role in the pipeline: step 17 of spec 02 §11.2, the terminal step for ``backend_type`` HTTP.

* Connections come from one pooled keep-alive ``aiohttp.ClientSession`` owned by the long-lived
  :class:`gateway.model.services.Services` (pools survive config swaps).
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
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp import StreamReader, web
from multidict import CIMultiDict

from gateway.core.errors import (
    GatewayError,
    backend_timeout,
    backend_unavailable,
    bad_body,
    body_timeout,
    body_too_large,
)
from gateway.core.ratelog import RateLimitedLog
from gateway.lib.h1client import HOP_BY_HOP as HOP_BY_HOP  # re-exported: one definition for every backend
from gateway.lib.h1client import RELAY_DROP, UpstreamError
from gateway.model.answer import relayed_answer, relayed_block_answer
from gateway.model.context import BODY_ERRORS, set_latency_headers
from gateway.model.plan import REQUEST_DROP, BackendPlan, BackendRequest, MappingPlan

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.services import Services

log = logging.getLogger("gateway.backends")
# backend failures: one WARNING per (API, member, cause) every 10 s, with the count of the ones left out
failure_log = RateLimitedLog(log, 10.0)

# Request headers the gateway never forwards as-is (defined with the mapping plans, which compile them in).
_REQUEST_DROP = REQUEST_DROP
_RESPONSE_DROP = RELAY_DROP  # HOP_BY_HOP | {"content-length"}; the same object: the client prepares that list
# A request header whose name has '_' where one of these has '-' is dropped (``Transfer_Encoding``,
# ``X_Forwarded_For``): CGI/WSGI-style backends map '-' and '_' to the same variable, so such a header could
# smuggle framing or spoof what the gateway sets. nginx drops every underscore name by default; other
# underscore names pass here (docs/parameters.md "Header names with underscores").
_UNDERSCORE_DROP = _REQUEST_DROP | {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip",
                                    "x-request-id"}
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "OPTIONS", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_NOT_TRIED: list[Any] = []  # a fixed address tries no members (never appended to)
SMALL_BODY = 65536  # responses up to this size (with a Content-Length) are relayed in one write


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

    __slots__ = ("_host_header", "addr_text", "address")

    def __init__(self, host: str, port: int, scheme: str) -> None:
        self.address = Address(host, port)
        self.addr_text = f"{host}:{port}"
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


def copy_end_to_end(source: Any, target: Any, drop: frozenset[str]) -> None:
    """Copy headers except ``drop`` (lower-case names) and those named by ``Connection`` (RFC 9110 §7.6.1)."""
    conn = source.get("Connection")
    if not conn or (conn.lower() == "keep-alive" and "keep-alive" in drop):
        tokens: Any = ()  # the usual "Connection: keep-alive" names nothing beyond ``drop``
    else:
        tokens = {t.strip().lower() for t in conn.split(",")}
    add = target.add
    for key, value in source.items():
        low = key.lower()
        if low in drop or low in tokens:
            continue
        add(key, value)


def forwarded_fields(ctx: RequestContext, mapping: MappingPlan) -> list[tuple[str, str]]:
    """Caller header fields minus hop-by-hop/dropped ones (and their underscore spellings), plus X-Forwarded-*,
    as a list of pairs (one pass over the caller's fields; the drop set was compiled into ``mapping``).

    The gateway's own X-Forwarded-For/-Proto/-Host and X-Real-IP replace the caller's (X-Forwarded-For extends
    the caller's chain); they follow the caller's other fields. A caller's X-Request-Id is left out too: the
    backend request builder appends the gateway's.
    """
    own_host = bool(ctx.host)
    dropped = mapping.forward_drop_host if own_host else mapping.forward_drop
    out = []
    xff = conn = host = None
    for field in ctx.headers.items():
        low = field[0].lower()
        if low in dropped:  # the fields read below are all dropped ones: found in the same pass
            if low == "host":
                if host is None:
                    host = field[1]
            elif low == "connection":
                if conn is None:
                    conn = field[1]
            elif low == "x-forwarded-for" and xff is None:
                xff = field[1]
        elif "_" not in low or low.replace("_", "-") not in _UNDERSCORE_DROP:
            out.append(field)
    if conn and conn.lower() not in ("keep-alive", "close"):
        named = {t.strip().lower() for t in conn.split(",")}
        out = [f for f in out if f[0].lower() not in named]
    request = ctx.request
    xff = f"{xff}, {ctx.peer_ip}" if xff else ctx.peer_ip
    if own_host:  # one extend, not one append per field
        out += (("X-Forwarded-For", xff), ("X-Forwarded-Proto", request.scheme),
                ("X-Forwarded-Host", host if host is not None else request.host), ("X-Real-IP", ctx.client_ip))
    else:
        out += (("X-Forwarded-For", xff), ("X-Forwarded-Proto", request.scheme), ("X-Real-IP", ctx.client_ip))
    return out


def forwarded_headers(ctx: RequestContext, drop: frozenset[str]) -> CIMultiDict[str]:
    """:func:`forwarded_fields` for a mapping whose only dropped names are ``drop``, as a multidict."""
    return CIMultiDict(forwarded_fields(ctx, MappingPlan((), frozenset(), drop)))


async def _limited(ctx: RequestContext, deadline: asyncio.Timeout, timeout_s: float) -> AsyncIterator[bytes]:
    """The caller's body streamed to the backend within the body limit.

    Waiting for the caller is the caller's time, not the backend's: the backend ``deadline`` is suspended while
    the next piece is awaited (that wait has its own bound, ``ctx.body_timeout`` -> 408) and restarts from the
    full backend timeout when a piece arrives. So a caller that stalls its own body never produces a backend
    timeout, and never ejects a channel member.
    """
    total = 0
    loop = asyncio.get_running_loop()
    chunks = ctx.body_chunks().__aiter__()
    try:
        while True:
            _reschedule(deadline, None)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            finally:
                _reschedule(deadline, loop.time() + timeout_s)
            total += len(chunk)
            if total > ctx.max_body:
                ctx.extras["body_too_large"] = True
                raise body_too_large()
            yield chunk
    except BODY_ERRORS:
        ctx.extras["bad_body"] = True  # the caller's fault: the backend member stays healthy
        raise bad_body() from None


def _arrived_body(ctx: RequestContext, reader: aiohttp.StreamReader) -> bytes | aiohttp.StreamReader:
    """A request body that has completely arrived, taken at once (the same limit and errors as a streamed one):
    it then goes out with the request head in one write, under the client's own deadline. The reader itself
    when it cannot be taken now."""
    try:
        data = reader.read_nowait(-1)
    except BODY_ERRORS:
        ctx.extras["bad_body"] = True
        raise bad_body() from None
    except RuntimeError:  # something else is waiting on the reader: leave it to the streamed path
        return reader
    if len(data) > ctx.max_body:
        ctx.extras["body_too_large"] = True
        raise body_too_large()
    ctx.body = data
    return data


def _reschedule(deadline: asyncio.Timeout, when: float | None) -> None:
    try:
        deadline.reschedule(when)
    except RuntimeError:  # already expired or left (the aiohttp client writes the body from its own task)
        pass


def _cause(exc: BaseException) -> str:
    """A short, secret-free cause: refused, reset, bad response ... (never request data)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, UpstreamError):
        return f"bad response: {str(exc)[:200]}"
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _log_failure(ctx: RequestContext, member: Member, cause: str) -> None:
    ep = ctx.endpoint
    api = f"{ep.api_name} ({ep.api_id})" if ep is not None else "-"
    addr = f"[{member.host}]:{member.port}" if ":" in member.host else f"{member.host}:{member.port}"
    failure_log.warning((ep.api_id if ep is not None else None, addr, cause.split(":")[0]),
                        "backend failure: request %s, API %s, member %s: %s", ctx.request_id, api, addr, cause)


def _caller_fault(ctx: RequestContext) -> GatewayError | None:
    """The error to answer when an attempt failed because of the caller's own body, else None."""
    extras = ctx.extras
    if not extras:
        return None
    if extras.get("body_timeout"):
        return body_timeout()
    if extras.get("body_too_large"):
        return body_too_large()
    if extras.get("bad_body"):
        return bad_body()
    return None


class HttpTarget:
    """Forwarding to an HTTP(S) upstream."""

    kind = "HTTP"
    __slots__ = ("_aiohttp", "_direct", "retry_count", "scheme", "services", "ssl", "timeout_s", "upstream")

    def __init__(self, services: Services, scheme: str, upstream: Upstream, timeout_ms: int,
                 retry_count: int, ssl: Any = None) -> None:
        self.services = services
        self.scheme = scheme
        self.upstream = upstream
        self.timeout_s = timeout_ms / 1000.0
        self.retry_count = retry_count
        self.ssl = ssl
        self._aiohttp = services.settings.upstream_client == "aiohttp"  # (process settings: fixed)
        # one fixed address: nothing to choose, count or report
        self._direct = upstream if type(upstream) is DirectUpstream else None

    async def invoke(self, ctx: RequestContext, breq: BackendRequest | None, plan: BackendPlan
                     ) -> web.StreamResponse:
        """Forward ``breq``: an attempt per member tried, each in this one coroutine frame (the hot path awaits
        nothing but the client's exchange)."""
        assert breq is not None  # built for every target but MOCK (pipeline.run)
        retries = self.retry_count
        if retries < 0:
            retries = 1 if breq.method in IDEMPOTENT else 0
        timed = self._aiohttp
        if breq.body is not None and type(breq.body) is not bytes and isinstance(breq.body, StreamReader):
            if breq.body.is_eof():  # it has all arrived (a small body, with its head): bytes, the hot path
                breq.body = _arrived_body(ctx, breq.body)
            if retries and isinstance(breq.body, StreamReader):
                breq.body = await ctx.read_body()  # a retry must be able to replay the body
            # a streamed body (like the aiohttp client) is sent under one asyncio.timeout (_send_timed)
            timed = timed or isinstance(breq.body, StreamReader)
        hooks = plan.request_hooks
        # the hot path writes the fields list straight into the head; hooks and the timed path need the header
        # mapping (made once, Host set in it per attempt)
        mapping = bool(hooks) or timed
        upstream = self.upstream
        direct = self._direct
        tried: list[Member] = [] if direct is None else _NOT_TRIED  # (a fixed address never chooses)
        last: GatewayError | None = None
        member: Member
        for attempt in range(retries + 1):
            if direct is not None:
                member = direct.address
                host_header = direct._host_header
            else:
                member = upstream.choose(ctx, tried)
                tried.append(member)
                host_header = upstream.host_header(member)
            breq.scheme = self.scheme
            breq.host, breq.port = member.host, member.port
            breq.host_header = host_header
            if mapping or breq.fields is None:  # hooks edit (and sign) the header mapping, Host included
                breq.headers["Host"] = host_header
                try:
                    for hook in hooks:
                        res = hook(ctx, breq)
                        if res is not None:
                            await res
                except BaseException:
                    upstream.release(member)  # keep least-connection counts exact when a hook fails
                    raise
            if attempt:
                ctx.retries += 1
            try:
                # --- one attempt: send, then the answer (a GatewayError of BACKEND_* kind tries the next) ---
                qs = breq.query_text
                if qs is None:
                    qs = breq.query_string()
                target = f"{breq.path}?{qs}" if qs else breq.path
                sent_at = perf_counter()
                answer: _Response
                try:
                    if timed or isinstance(breq.body, StreamReader):  # (a hook may have set a reader)
                        answer = await self._send_timed(ctx, breq, target)
                    else:  # the hot path: the client's own deadline, no asyncio.timeout (a timer) per request
                        client = self.services._h1  # (what h1_client() returns once made: a call less)
                        if client is None:
                            client = self.services.h1_client()
                        answer = await client.request(
                            self.scheme, breq.host, breq.port, breq.method, target,
                            breq.headers if breq.fields is None else breq.head_lines(host_header), breq.body,
                            self.ssl, self.timeout_s)
                except TimeoutError:
                    upstream.release(member)
                    fault = _caller_fault(ctx)
                    if fault is not None:
                        raise fault from None
                    upstream.report(member, False)
                    _log_failure(ctx, member, f"timeout after {self.timeout_s * 1000:.0f} ms")
                    raise backend_timeout() from None
                except GatewayError:
                    upstream.release(member)
                    raise
                except (aiohttp.ClientError, UpstreamError, OSError) as exc:
                    exc.__traceback__ = None  # its frames (asyncio's connect among them) refer back to it: no cycle
                    upstream.release(member)
                    fault = _caller_fault(ctx)
                    if fault is not None:
                        raise fault from None
                    upstream.report(member, False)
                    _log_failure(ctx, member, _cause(exc))
                    raise backend_unavailable(f"Backend unavailable: {type(exc).__name__}") from None
                except asyncio.CancelledError:  # caller went away: give the member back (least-connections count)
                    upstream.release(member)
                    raise
                if direct is None:
                    upstream.report(member, True)
                ctx.backend_ms = (perf_counter() - sent_at) * 1000.0
                ep = ctx.endpoint
                if ep is not None and ep.log_plugin is not None:  # only the kafka_log plug-in's record reads them
                    extras = ctx.extras
                    extras["upstream_addr"] = direct.addr_text if direct is not None else f"{breq.host}:{breq.port}"
                    extras["upstream_status"] = answer.status
                try:
                    length = answer.content_length
                    chunked = answer.chunked
                    if chunked or (length is not None and length <= SMALL_BODY):
                        data = answer.take_buffered()  # the common small answer arrived with its head: no await
                        if data is not None:  # (a chunked one too, when its last chunk is here: sent with a length)
                            ctx.backend_body_ms = 0.0
                            return self._small_response(ctx, answer, data)
                        if not chunked:
                            return self._small_response(ctx, answer, await self._read_small(ctx, answer))
                    return await self._relay(ctx, answer)
                finally:
                    answer.release()
                    if direct is None:
                        upstream.release(member)
            except GatewayError as err:
                last = err
                if err.error_type not in ("BACKEND_UNAVAILABLE", "BACKEND_TIMEOUT"):
                    raise
        assert last is not None
        raise last

    async def _send_timed(self, ctx: RequestContext, breq: BackendRequest, target: str) -> _Response:
        """Send under one ``asyncio.timeout``: a streamed caller body (whose waits suspend the backend deadline,
        see :func:`_limited`) or the aiohttp client."""
        data: Any
        deadline = asyncio.timeout(self.timeout_s)
        if isinstance(breq.body, aiohttp.StreamReader):
            data = _limited(ctx, deadline, self.timeout_s)
            length = ctx.request.content_length
            if length is not None:
                breq.headers["Content-Length"] = str(length)
        else:
            data = breq.body
        async with deadline:
            if self.services.settings.upstream_client == "aiohttp":
                return await self._send_aiohttp(breq, target, data)
            return await self.services.h1_client().request(
                self.scheme, breq.host, breq.port, breq.method, target, breq.headers, data, ssl=self.ssl)

    async def _send_aiohttp(self, breq: BackendRequest, target: str, data: Any) -> _Response:
        host = f"[{breq.host}]" if ":" in breq.host else breq.host
        resp = await self.services.http_session().request(
            breq.method, aiohttp.client.URL(f"{self.scheme}://{host}:{breq.port}{target}", encoded=True),
            headers=breq.headers, data=data, allow_redirects=False,
            ssl=self.ssl if self.ssl is not None else True,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=self.timeout_s),
        )
        return _AiohttpResponse(resp)

    async def _read_small(self, ctx: RequestContext, upstream: _Response) -> bytes:
        body_started = time.perf_counter()
        try:
            body = await upstream.read(self.timeout_s)
        except (aiohttp.ClientError, UpstreamError, TimeoutError, OSError) as exc:
            raise backend_unavailable(f"Backend unavailable: {type(exc).__name__}") from None
        ctx.backend_body_ms = (time.perf_counter() - body_started) * 1000.0
        return body

    def _small_response(self, ctx: RequestContext, upstream: _Response, body: bytes) -> web.StreamResponse:
        """A small complete answer: on the HTTP/1 listener without response hooks, a head serialised here
        (:func:`gateway.model.answer.relayed_block_answer` from the backend's header block as received, or
        :func:`gateway.model.answer.relayed_answer` from its fields); else one ``web.Response`` (head + body in
        one write by the listener), the relayed fields passed to its constructor."""
        if ctx.preset_ok:
            block = upstream.block
            if block is not None:
                answer = relayed_block_answer(ctx, upstream.status, upstream.reason, block, body)
                if answer is not None:
                    ctx.status = upstream.status
                    ctx.bytes_sent = len(body)
                    return answer  # type: ignore[return-value]  # the HTTP/1 listener writes it (ctx.preset_ok)
        fields = upstream.end_to_end(_RESPONSE_DROP)
        if ctx.preset_ok:
            answer = relayed_answer(ctx, upstream.status, upstream.reason, fields, body)
            if answer is not None:
                ctx.status = upstream.status
                ctx.bytes_sent = len(body)
                return answer  # type: ignore[return-value]  # the HTTP/1 listener writes it (ctx.preset_ok)
        resp = web.Response(status=upstream.status, reason=upstream.reason or None, body=body,
                            headers=fields)
        h = resp.headers
        h.update(ctx.response_headers)
        h["X-Request-Id"] = ctx.request_id
        set_latency_headers(ctx, h)
        ctx.status = upstream.status
        ctx.bytes_sent = len(body) if body else upstream.content_length or 0  # (HEAD: the length announced)
        return resp

    async def _relay(self, ctx: RequestContext, upstream: _Response) -> web.StreamResponse:
        """A streamed answer (chunked, close-delimited or large): head first, then the body piece by piece with
        back-pressure both ways."""
        length = upstream.content_length
        timeout = self.timeout_s
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason or None)
        h = resp.headers
        h.extend(upstream.end_to_end(_RESPONSE_DROP))
        h.update(ctx.response_headers)
        h["X-Request-Id"] = ctx.request_id
        set_latency_headers(ctx, h)
        ctx.status = upstream.status
        if length is not None and not upstream.chunked:
            resp.content_length = length
        ctx.finish_response(resp)  # response hooks (plug-ins) before the head is sent
        try:
            await resp.prepare(ctx.request)
        except ConnectionError:
            ctx.extras["client_gone"] = True
            return resp
        body_started = time.perf_counter()
        sent = 0
        try:
            async for chunk in upstream.iter_chunks(timeout):
                sent += len(chunk)
                await resp.write(chunk)
        except (aiohttp.ClientError, UpstreamError, TimeoutError, ConnectionError, OSError):
            # the head is already sent: the only honest signal left is to cut the connection
            ctx.bytes_sent = sent
            ctx.extras["aborted"] = True
            if ctx.request.transport is not None:
                ctx.request.transport.close()
            return resp
        ctx.bytes_sent = sent
        ctx.backend_body_ms = (time.perf_counter() - body_started) * 1000.0
        try:
            await resp.write_eof()
        except ConnectionError:
            ctx.extras["client_gone"] = True
        return resp


class _Response(Protocol):
    status: int
    reason: str
    content_length: int | None
    block: str | None  # the header block as received, when the strict parser passed it whole

    @property
    def chunked(self) -> bool: ...

    def end_to_end(self, drop: frozenset[str]) -> list[tuple[str, str]]: ...

    def take_buffered(self) -> bytes | None: ...

    async def read(self, timeout: float | None = None) -> bytes: ...

    def iter_chunks(self, timeout: float | None = None) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class _AiohttpResponse:
    """Adapter giving aiohttp's ClientResponse the interface of h1client.UpstreamResponse."""

    __slots__ = ("_resp", "content_length", "headers", "reason", "status")

    block: str | None = None

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.reason = resp.reason or ""
        self.headers = resp.headers
        self.content_length = resp.content_length

    @property
    def chunked(self) -> bool:
        return "chunked" in self._resp.headers.get("Transfer-Encoding", "").lower()

    def end_to_end(self, drop: frozenset[str]) -> list[tuple[str, str]]:
        out: CIMultiDict[str] = CIMultiDict()
        copy_end_to_end(self.headers, out, drop)
        return list(out.items())

    def take_buffered(self) -> bytes | None:
        return None

    async def read(self, timeout: float | None = None) -> bytes:
        return await self._resp.read()

    async def iter_chunks(self, timeout: float | None = None) -> AsyncIterator[bytes]:
        async for chunk in self._resp.content.iter_any():
            yield chunk

    def release(self) -> None:
        self._resp.release()
