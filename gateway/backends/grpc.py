"""GRPC backends: relay a gRPC call over a pooled, multiplexed HTTP/2 connection to the backend.

Role in the pipeline: the terminal step for ``backend_type`` GRPC (after routing by the full method path
``/package.Service/Method`` and every policy stage). ``backend_api.req_protocol`` ``GRPCS`` reaches the
backend over TLS (ALPN ``h2``, verified like HTTPS backends), ``HTTP`` over prior-knowledge ``h2c``. The
caller's method path is forwarded unchanged (the configured ``req_uri`` is the vendor's ``/`` placeholder).

* All four call shapes (unary, server-, client- and bidirectional streaming) are one relay: the request body
  is pumped to the backend while the answer is pumped back, both under HTTP/2 flow control, so a slow side
  slows the other instead of filling memory.
* Deadline: the caller's ``grpc-timeout``, capped by the API's backend ``timeout`` (itself capped by
  ``max_backend_timeout_ms``), bounds the whole call and is sent on as ``grpc-timeout``. Expired before the
  answer's head -> BACKEND_TIMEOUT (DEADLINE_EXCEEDED); expired mid-stream -> trailers with DEADLINE_EXCEEDED.
* Backend trailers (``grpc-status``, ``grpc-message``, metadata) are forwarded; a trailers-only answer
  stays trailers-only. A backend that fails mid-stream ends the call with UNAVAILABLE in the trailers.
* No retries: a gRPC call is not known to be idempotent.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from gateway.backends.http import HOP_BY_HOP, Member, Upstream
from gateway.core import grpc_status
from gateway.core.errors import GatewayError, backend_timeout, backend_unavailable, grpc_needs_http2
from gateway.core.grpc_status import GRPC_STATUS_KEY
from gateway.core.urlpath import encode_path
from gateway.lib.h2client import H2ClientError, H2Pool
from gateway.model.context import BODY_ERRORS, set_latency_headers
from gateway.model.plan import BackendPlan, BackendRequest

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.services import Services

REFUSED_STREAM = 0x7  # HTTP/2 error code: the stream was not processed
MAX_REFUSALS = 3  # refused streams opened again per call
REPLAY_LIMIT = 64 * 1024  # a streamed request body kept for opening a refused stream again, at most
_POOL_KEY = "grpc.pool"
_DROP = HOP_BY_HOP | {"host", "content-length", "x-apig-appcode", "expect", "grpc-timeout"}
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_grpc_timeout(value: str | None) -> float | None:
    """``grpc-timeout`` (1-8 digits and a unit H M S m u n) -> seconds; None when absent or malformed."""
    if not value or len(value) < 2 or value[-1] not in _TIMEOUT_UNITS or not value[:-1].isdigit() \
            or len(value) > 9:
        return None
    return int(value[:-1]) * _TIMEOUT_UNITS[value[-1]]


def format_grpc_timeout(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}m"


def pool_of(services: Services) -> H2Pool:
    pool = services.extras.get(_POOL_KEY)
    if pool is None:
        pool = services.extras[_POOL_KEY] = H2Pool()
        services.close_hooks.append(pool.close)
    return pool


def _deadline_error() -> GatewayError:
    return backend_timeout("Backend timeout: the gRPC deadline expired.")


def _answer_head(ctx: RequestContext, resp: web.StreamResponse, fields: list[tuple[str, str]]) -> None:
    """The caller's answer head (always HTTP 200 for gRPC): the backend's fields, the gateway's own headers."""
    h = resp.headers
    for k, v in fields:
        h.add(k, v)
    h.update(ctx.response_headers)
    h["X-Request-Id"] = ctx.request_id
    set_latency_headers(ctx, h)
    ctx.status = 200


class _SentBody:
    """A streamed request body as sent so far, kept while it is small, for re-sending on a refused stream."""

    __slots__ = ("chunks", "ended", "overflow", "refusals", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.ended = False
        self.overflow = False
        self.refusals = 0

    def release(self) -> None:
        self.overflow, self.chunks = True, []  # a new list: a pump still re-sending keeps the one it iterates

    def keep(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.size += len(chunk)
        if self.size > REPLAY_LIMIT:
            self.overflow, self.chunks = True, []
        else:
            self.chunks.append(chunk)


class GrpcTarget:
    """Relays gRPC calls to one upstream (an address or a VPC channel)."""

    kind = "GRPC"
    __slots__ = ("scheme", "services", "ssl", "timeout_s", "upstream")

    def __init__(self, services: Services, scheme: str, upstream: Upstream, timeout_ms: int,
                 ssl_ctx: ssl.SSLContext | None) -> None:
        self.services = services
        self.scheme = scheme
        self.upstream = upstream
        self.timeout_s = timeout_ms / 1000.0
        self.ssl = ssl_ctx

    async def invoke(self, ctx: RequestContext, breq: BackendRequest | None, plan: BackendPlan
                     ) -> web.StreamResponse:
        assert breq is not None
        request = ctx.request
        if request.version.major != 2:
            raise grpc_needs_http2()
        caller = parse_grpc_timeout(ctx.headers.get("grpc-timeout"))
        budget = self.timeout_s if caller is None else min(caller, self.timeout_s)
        deadline = time.monotonic() + budget
        member = self.upstream.choose(ctx, [])
        breq.scheme, breq.host, breq.port = self.scheme, member.host, member.port
        breq.host_header = self.upstream.host_header(member)
        try:
            for hook in plan.request_hooks:
                res = hook(ctx, breq)
                if res is not None:
                    await res
            return await self._call(ctx, breq, member, deadline)
        finally:
            self.upstream.release(member)

    def _headers(self, ctx: RequestContext, breq: BackendRequest, deadline: float) -> list[tuple[str, str]]:
        # the caller's method path, unchanged (normalized and re-encoded like every forwarded path)
        out = [(":method", "POST"), (":scheme", self.scheme), (":path", encode_path(ctx.path)),
               (":authority", breq.host_header)]
        for k, v in breq.headers.items():
            name = k.lower()
            if name not in _DROP and not name.startswith(":"):
                out.append((name, v))
        out.append(("te", "trailers"))
        out.append(("grpc-timeout", format_grpc_timeout(deadline - time.monotonic())))
        return out

    async def _call(self, ctx: RequestContext, breq: BackendRequest, member: Member, deadline: float
                    ) -> web.StreamResponse:
        pool = pool_of(self.services)
        sent_at = time.perf_counter()
        pump: asyncio.Task[None] | None = None
        stream = None
        try:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    sent = _SentBody()
                    while True:
                        stream = await pool.open_stream(breq.host, breq.port, self.ssl, breq.host.strip("[]")
                                                        if self.ssl is not None else None,
                                                        self._headers(ctx, breq, deadline))
                        pump = asyncio.get_running_loop().create_task(self._pump(ctx, breq, stream, sent))
                        try:
                            head, ended = await stream.response()
                            sent.release()  # answered: nothing will be re-sent
                            break
                        except H2ClientError as exc:
                            # A refused stream (or one above a GOAWAY's last id) was not processed (RFC 9113
                            # §8.7): open it again while what was sent can be sent again. A backend may still
                            # count a stream whose end we saw against its limit (grpcio does, briefly).
                            sent.refusals += 1
                            if exc.code != REFUSED_STREAM or sent.refusals > MAX_REFUSALS or sent.overflow:
                                raise
                            pump.cancel()
                            stream.cancel()
            except TimeoutError:
                self.upstream.report(member, True)
                raise _deadline_error() from None
            except (H2ClientError, OSError, ssl.SSLError) as exc:
                self.upstream.report(member, False)
                raise backend_unavailable(f"Backend unavailable: {type(exc).__name__}") from None
            self.upstream.report(member, True)
            ctx.backend_ms = (time.perf_counter() - sent_at) * 1000.0
            return await self._relay(ctx, stream, head, ended, deadline)
        finally:
            if pump is not None and not pump.done():
                pump.cancel()
            if stream is not None:
                stream.cancel()  # no-op when it ended both ways; else the backend stops working for nobody

    async def _pump(self, ctx: RequestContext, breq: BackendRequest, stream: Any, sent: _SentBody) -> None:
        """Caller's messages -> backend, under both flow controls. What is sent is also kept in ``sent`` (up to
        a bound) until the backend answers, so that a refused stream can be opened again."""
        try:
            body = breq.body
            if isinstance(body, bytes):
                await stream.send(body, end=True)
                return
            if body is None:
                stream.end()
                return
            assert isinstance(body, aiohttp.StreamReader)
            for chunk in sent.chunks:  # a previous attempt's, refused: the caller does not send them twice
                await stream.send(chunk)
            if not sent.ended:
                async for chunk in body.iter_any():
                    sent.keep(chunk)  # before sending: a cancel while sending must not lose it
                    await stream.send(chunk)
                sent.ended = True
            stream.end()
        except BODY_ERRORS:
            stream.cancel()  # the caller cancelled or broke off: so does the backend call
        except (H2ClientError, OSError):
            pass  # the backend went away: the response side reports it

    async def _relay(self, ctx: RequestContext, stream: Any, head: list[tuple[str, str]], ended: bool,
                     deadline: float) -> web.StreamResponse:
        status = next((v for k, v in head if k == ":status"), "200")
        fields = [(k, v) for k, v in head if not k.startswith(":") and k not in HOP_BY_HOP]
        if status != "200":  # not a gRPC answer at all: the gRPC spec's HTTP -> status mapping
            code = grpc_status.BY_HTTP_STATUS.get(int(status), grpc_status.UNKNOWN)
            return self._trailers_only(ctx, [("content-type", "application/grpc"), ("grpc-status", str(code)),
                                             ("grpc-message", f"backend answered HTTP {status}")])
        if ended:  # trailers-only answer (typically an error status)
            return self._trailers_only(ctx, fields)
        resp = web.StreamResponse(status=200)
        _answer_head(ctx, resp, fields)
        ctx.finish_response(resp)
        try:
            writer = await resp.prepare(ctx.request)
        except ConnectionError:
            ctx.extras["client_gone"] = True
            return resp
        sent = 0
        trailers: list[tuple[str, str]]
        try:
            while True:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    chunk = await stream.read()
                if chunk is None:
                    break
                sent += len(chunk)
                await resp.write(chunk)
            trailers = stream.trailers or [("grpc-status", str(grpc_status.INTERNAL)),
                                           ("grpc-message", "backend sent no trailers")]
        except TimeoutError:
            trailers = [("grpc-status", str(grpc_status.DEADLINE_EXCEEDED)),
                        ("grpc-message", "Backend timeout: the gRPC deadline expired.")]
        except H2ClientError as exc:
            code = grpc_status.CANCELLED if exc.code == 8 else grpc_status.UNAVAILABLE
            trailers = [("grpc-status", str(code)), ("grpc-message", "backend failed mid-stream")]
            ctx.extras["aborted"] = True
        except ConnectionError:
            ctx.extras["client_gone"] = True
            ctx.bytes_sent = sent
            return resp
        ctx.bytes_sent = sent
        ctx.extras[GRPC_STATUS_KEY] = _status_of(trailers)
        if writer is not None and hasattr(writer, "trailers"):
            writer.trailers = trailers
        try:
            await resp.write_eof()
        except ConnectionError:
            ctx.extras["client_gone"] = True
        return resp

    def _trailers_only(self, ctx: RequestContext, fields: list[tuple[str, str]]) -> web.Response:
        resp = web.Response(status=200)
        _answer_head(ctx, resp, fields)
        ctx.extras[GRPC_STATUS_KEY] = _status_of(fields)
        return resp


def _status_of(fields: list[tuple[str, str]]) -> int:
    raw = next((v for k, v in fields if k == "grpc-status"), None)
    try:
        return int(raw) if raw is not None else grpc_status.UNKNOWN
    except ValueError:
        return grpc_status.UNKNOWN


# --- compile time ---------------------------------------------------------------------------------

_CLIENT_CONTEXTS: dict[tuple[Any, ...], ssl.SSLContext] = {}


def client_context(services: Services) -> ssl.SSLContext:
    """The TLS context towards GRPCS backends: verified like HTTPS backends, ALPN ``h2`` (one per settings)."""
    s = services.settings
    key = (s.backend_ca_file, s.backend_ssl_verify, s.backend_client_cert_file, s.backend_client_key_file)
    ctx = _CLIENT_CONTEXTS.get(key)
    if ctx is None:
        ctx = ssl.create_default_context(cafile=s.backend_ca_file)
        if not s.backend_ssl_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if s.backend_client_cert_file:
            ctx.load_cert_chain(s.backend_client_cert_file, s.backend_client_key_file or None)
        ctx.set_alpn_protocols(["h2"])
        _CLIENT_CONTEXTS[key] = ctx
    return ctx
