"""FUNCTION backends: build the vendor's API-trigger event, call the function, translate its answer.

Role in the pipeline: the terminal step for ``backend_type`` FUNCTION (``func_info``) and for
``policy_functions`` backend policies (spec 03 §5). Built by :mod:`gateway.compiler.targets`; the function
is resolved at config-load time through :mod:`gateway.backends.invokers` (in-process handler or HTTP
function endpoint).

* Event (03 §5): ``httpMethod``, ``path``, ``headers`` (lower-case names; repeated headers comma-joined),
  ``queryStringParameters`` (first value of each name), ``pathParameters``, ``body`` and ``isBase64Encoded``
  (Base64 of the raw bytes unless the API sets ``is_send_fg_body_base64: false`` and the body is UTF-8),
  ``requestContext`` {apiId, requestId, stage, sourceIp}. Headers and query are those of the *backend*
  request, i.e. after backend-parameter mapping (so ``$context.authorizer.*`` values reach the function).
* Result: an object ``{statusCode, headers, body, isBase64Encoded}``; anything else (a bare string, a
  missing/invalid ``statusCode``, a non-string body, bad Base64) -> DEFAULT_5XX 500.
* ``func_info.timeout`` (ms, bounded by the function's own ``timeout`` and ``max_backend_timeout_ms``)
  expired -> BACKEND_TIMEOUT 504; the function raised / its endpoint failed -> BACKEND_UNAVAILABLE 502.
* ``invocation_type: async``: answered at once with 202 ``{"request_id": ...}``; the call runs in the
  background (bounded by ``function_max_pending_async``; beyond it -> BACKEND_UNAVAILABLE 502).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway.backends import invokers as fn
from gateway.backends.http import HOP_BY_HOP
from gateway.core.errors import backend_timeout, backend_unavailable, invalid_function_response
from gateway.model.context import set_latency_headers
from gateway.model.plan import BackendPlan, BackendRequest

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.services import Services
    from gateway.snapshot.validate import Index

log = logging.getLogger("gateway.backends.function")

_ASYNC_KEY = "functions.async_tasks"
_RESPONSE_DROP = HOP_BY_HOP | {"content-length"}


def encode_body(body: bytes, base64_body: bool) -> tuple[str, bool]:
    """(event body, isBase64Encoded): Base64 unless switched off and the bytes are UTF-8 text."""
    if not base64_body:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def request_event(ctx: RequestContext, headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]],
                  method: str, body: bytes | None, base64_body: bool) -> dict[str, Any]:
    """The vendor's APIG trigger event (03 §5) for the current request."""
    hdrs: dict[str, str] = {}
    for k, v in headers:
        low = k.lower()
        hdrs[low] = f"{hdrs[low]},{v}" if low in hdrs else v
    qs: dict[str, str] = {}
    for k, v in query:
        qs.setdefault(k, v)
    text, is_b64 = encode_body(body or b"", base64_body)
    return {
        "body": text,
        "requestContext": {
            "apiId": ctx.endpoint.api_id if ctx.endpoint else "",
            "requestId": ctx.request_id,
            "stage": ctx.env_name,
            "sourceIp": ctx.client_ip,
        },
        "httpMethod": method,
        "queryStringParameters": qs,
        "pathParameters": dict(ctx.path_params),
        "headers": hdrs,
        "path": ctx.path,
        "isBase64Encoded": is_b64,
    }


def translate_result(ctx: RequestContext, result: Any) -> web.Response:
    """Turn ``{statusCode, headers, body, isBase64Encoded}`` into the caller's HTTP response."""
    if not isinstance(result, dict):
        raise invalid_function_response(f"expected an object with statusCode, got {type(result).__name__}")
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise invalid_function_response("statusCode must be an integer 200..599")
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise invalid_function_response("headers must be an object")
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise invalid_function_response("body must be a string")
    elif result.get("isBase64Encoded") is True:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_function_response("body is not valid Base64") from None
    else:
        data = body.encode("utf-8")
    if status in (204, 304):
        data = b""
    resp = web.Response(status=status, body=data)
    h = resp.headers
    for key, value in raw_headers.items():
        if not isinstance(key, str) or not key or key.lower() in _RESPONSE_DROP:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is None:
                continue
            text = ("true" if v else "false") if isinstance(v, bool) else str(v)
            if "\r" in text or "\n" in text:
                raise invalid_function_response(f"header {key} contains a line break")
            h.add(key, text)
    if "Content-Type" not in h:
        if result.get("isBase64Encoded") is True:
            h["Content-Type"] = "application/octet-stream"
        else:
            try:
                orjson.loads(data)
                h["Content-Type"] = "application/json"
            except orjson.JSONDecodeError:
                h["Content-Type"] = "text/plain; charset=utf-8"
    h.update(ctx.response_headers)
    h["X-Request-Id"] = ctx.request_id
    set_latency_headers(ctx, h)
    ctx.status = status
    ctx.bytes_sent = len(data)
    return resp


def _async_tasks(services: Services) -> set[asyncio.Task[None]]:
    tasks: set[asyncio.Task[None]] | None = services.extras.get(_ASYNC_KEY)
    if tasks is None:
        tasks = set()
        services.extras[_ASYNC_KEY] = tasks
        pending = tasks

        async def close() -> None:
            if pending:
                _done, still = await asyncio.wait(list(pending), timeout=5.0)
                for t in still:
                    t.cancel()

        services.close_hooks.append(close)
    return tasks


class FunctionTarget:
    """A function (in-process handler or HTTP endpoint) answering as an API backend."""

    kind = "FUNCTION"
    __slots__ = ("async_mode", "base64_body", "invoker", "services", "timeout_s")

    def __init__(self, services: Services, invoker: fn.Invoker, timeout_ms: int, async_mode: bool,
                 base64_body: bool) -> None:
        self.services = services
        self.invoker = invoker
        self.timeout_s = timeout_ms / 1000.0
        self.async_mode = async_mode
        self.base64_body = base64_body

    async def invoke(self, ctx: RequestContext, breq: BackendRequest | None, plan: BackendPlan
                     ) -> web.StreamResponse:
        assert breq is not None  # built for every target but MOCK (pipeline.run)
        for hook in plan.request_hooks:
            res = hook(ctx, breq)
            if res is not None:
                await res
        if isinstance(breq.body, bytes):
            body: bytes = breq.body
        elif breq.body is not None:
            body = await ctx.read_body()
        else:
            body = b""
        headers = [(k, v) for k, v in breq.headers.items() if k.lower() not in ("host", "x-request-id")]
        headers += [("host", ctx.request.host), ("x-request-id", ctx.request_id)]
        event = request_event(ctx, headers, breq.query, breq.method, body, self.base64_body)
        if self.async_mode:
            return self._start_async(ctx, event)
        started = time.perf_counter()
        try:
            result = await self.invoker.invoke(event, ctx.request_id, self.timeout_s)
        except fn.FunctionTimeout as exc:
            raise backend_timeout(f"Backend timeout: {exc.reason}") from None
        except fn.FunctionError as exc:
            raise backend_unavailable(f"Backend unavailable: {exc.reason}") from None
        finally:
            ctx.backend_ms = (time.perf_counter() - started) * 1000.0
        return translate_result(ctx, result)

    def _start_async(self, ctx: RequestContext, event: dict[str, Any]) -> web.Response:
        tasks = _async_tasks(self.services)
        if len(tasks) >= self.services.settings.function_max_pending_async:
            raise backend_unavailable("Backend unavailable: too many pending asynchronous function invocations")
        task = asyncio.get_running_loop().create_task(self._background(event, ctx.request_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        body = orjson.dumps({"request_id": ctx.request_id})
        resp = web.Response(status=202, body=body, content_type="application/json")
        resp.headers.update(ctx.response_headers)
        resp.headers["X-Request-Id"] = ctx.request_id
        set_latency_headers(ctx, resp.headers)
        ctx.status = 202
        ctx.bytes_sent = len(body)
        return resp

    async def _background(self, event: dict[str, Any], request_id: str) -> None:
        try:
            await self.invoker.invoke(event, request_id, self.timeout_s)
        except fn.FunctionError as exc:
            log.warning("async function %s failed on request %s: %s", self.invoker.urn, request_id, exc.reason)


def build_function_target(backend: dict[str, Any], index: Index, services: Services, problems: list[str],
                          path: str, base64_body: bool) -> FunctionTarget | None:
    """The target of a FUNCTION backend record (None after appending a problem)."""
    urn = str(backend.get("function_urn") or "")
    unknown = f"{path}.function_urn: unknown function {urn!r} (add it to functions)"
    compiled = fn.compile_invoker(index, services, urn, backend.get("version"), backend.get("alias_urn"),
                                  problems, unknown, f"{path}.function_urn")
    if compiled is None:
        return None
    record, invoker = compiled
    timeout_ms = fn.effective_timeout_ms(backend.get("timeout"), record, services.settings.max_backend_timeout_ms)
    return FunctionTarget(services, invoker, timeout_ms, backend.get("invocation_type") == "async", base64_body)
