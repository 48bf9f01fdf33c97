"""Gateway errors on gRPC calls: a trailers-only answer (HTTP 200, ``grpc-status``, ``grpc-message``).

Role in the pipeline: the error renderer of :mod:`gateway.pipeline.handle` asks :func:`is_grpc` first; a
gRPC caller never gets a group-response JSON body (gRPC clients cannot read it), but the same error decides
the status (table in :mod:`gateway.core.grpc_status`, docs/http2-grpc.md). Headers the error carries
(``Retry-After``, rate-limit headers) and the gateway's own response headers are kept.
"""

from __future__ import annotations

from aiohttp import web

from gateway.core import grpc_status
from gateway.core.errors import GatewayError
from gateway.core.grpc_status import GRPC_STATUS_KEY
from gateway.model.context import RequestContext, set_latency_headers


def is_grpc(ctx: RequestContext) -> bool:
    """An HTTP/2 request with a ``application/grpc`` content type (gRPC-Web and HTTP/1.1 are not gRPC)."""
    return ctx.request.version.major == 2 and \
        ctx.headers.get("Content-Type", "").lower().startswith("application/grpc")


def error_response(ctx: RequestContext, err: GatewayError) -> web.Response:
    code = grpc_status.for_error(err.error_type, err.status)
    resp = web.Response(status=200)
    h = resp.headers
    h.update(ctx.response_headers)
    if err.headers:
        h.update(err.headers)
    h["Content-Type"] = "application/grpc"
    h["grpc-status"] = str(code)
    h["grpc-message"] = grpc_status.encode_message(f"{err.code}: {err.message}")
    h["X-Request-Id"] = ctx.request_id
    set_latency_headers(ctx, h)
    ctx.extras[GRPC_STATUS_KEY] = code
    ctx.status = 200
    ctx.bytes_sent = 0
    return resp
