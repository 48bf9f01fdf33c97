"""The request pipeline: route, run the endpoint's stages, pick a backend, forward, render errors.

Role in the pipeline: this *is* the pipeline (spec 02 §11.2). Everything variable was compiled into the
endpoint at config-load time, so this module is a short straight line:

    route -> CORS preflight -> endpoint stages (ACL, auth, app checks, validation, throttling)
    -> backend selection (policies) -> backend stages (backend authorizer) -> parameter mapping
    -> target.invoke (request hooks such as backend signing run per attempt)

Any :class:`GatewayError` ends the request through the group response of the API's group (or the
built-in default before a group is known). Any other exception is logged with its traceback and
answered as DEFAULT_5XX without details: the caller never sees a stack trace.
"""

from __future__ import annotations

import logging

from aiohttp import StreamReader, web
from multidict import CIMultiDict

from gateway.backends.http import forwarded_fields
from gateway.core.errors import GatewayError, body_too_large, internal_error
from gateway.core.urlpath import (
    clean_header_value,
    encode_path,
    normalize,
    quote_component,
    raw_query_without,
    raw_tail,
    split_target,
)
from gateway.model.context import RequestContext
from gateway.model.plan import BackendRequest, MappingPlan, UriTemplate, apply_mapping, apply_mapping_into
from gateway.model.responses import DEFAULT_RESPONSES
from gateway.model.runtime import Endpoint
from gateway.pipeline.grpc import error_response as grpc_error_response
from gateway.pipeline.grpc import is_grpc

log = logging.getLogger("gateway.pipeline.handle")

_NO_PARAMS: dict[str, str] = {}


def build_backend_request(ctx: RequestContext, ep: Endpoint, plan_method: str, mapping: MappingPlan,
                          uri: UriTemplate | None) -> BackendRequest:
    fields = forwarded_fields(ctx, mapping)
    headers: CIMultiDict[str] | None = None
    added: str | None = None  # the mapped query pairs as text, when made with them
    if mapping.plain_headers:  # distinct mapped names, none the gateway's own: appended as they are
        if mapping.steps:  # one pass over the compiled steps; values from the caller are cleaned of CR/LF
            path_params, add_query, added = apply_mapping_into(ctx, mapping, fields)
        else:  # nothing mapped (most APIs)
            path_params, add_query = _NO_PARAMS, []
        fields.append(("X-Request-Id", ctx.request_id))  # correlation (docs/parameters.md)
    else:  # a mapped header replaces a same-named field (the last of two mapped ones wins)
        path_params, add_query, add_headers = apply_mapping(ctx, mapping)
        headers = CIMultiDict(fields)
        for k, v in add_headers:
            headers[k] = clean_header_value(v)
        headers["X-Request-Id"] = ctx.request_id
    target = ctx.request.raw_path  # the request target as received
    if target.startswith("/"):  # no URL object built on the hot path
        raw_path, _, raw_query = target.partition("?")
        if "#" in target:  # a fragment (never sent by a conforming client)
            raw_path, raw_query = split_target(target)
    else:  # absolute-form target: let yarl take it apart
        url = ctx.request.rel_url
        raw_path, raw_query = url.raw_path, url.raw_query_string
    drop_query = mapping.drop_query
    query: list[tuple[str, str]] | None
    if raw_query:  # the decoded pairs are made when read (signers, function targets)
        query = None
        query_from = (ctx, drop_query, add_query)  # ctx.query parsed only if read
        # unmapped parameters go out byte for byte as the caller sent them; mapped ones are appended encoded
        query_text = raw_query_without(raw_query, drop_query)
    else:  # no caller query: nothing to parse
        query = add_query
        query_from = None
        query_text = ""
    if add_query:
        if added is None:
            added = "&".join([f"{quote_component(k)}={quote_component(v)}" for k, v in add_query])
        query_text = f"{query_text}&{added}" if query_text else added
    if uri is not None:
        path = uri.render(path_params, ctx.path_params)
    else:
        path = raw_tail(raw_path, ctx.path, ctx.path.count("/")) or encode_path(ctx.path)
    if ctx.path_suffix:  # the caller's own encoding when safe, else the decoded text re-encoded
        suffix = raw_tail(raw_path, ctx.path, ctx.path_suffix.count("/")) or encode_path(ctx.path_suffix)
        path = path.rstrip("/") + suffix
    method = ctx.method if plan_method == "ANY" else plan_method
    body: bytes | StreamReader | None
    if ctx.body is not None:
        body = ctx.body
    elif ctx.request.body_exists:
        body = ctx.request.content
    else:
        body = None
    return BackendRequest(method, path or "/", query, headers, body, "http", "", 0, "", query_text, fields,
                          query_from)


def render_error(ctx: RequestContext, err: GatewayError) -> web.Response:
    # the context keeps the error (access log, metrics), not its traceback: the traceback holds the frames that
    # hold the context, a cycle only the garbage collector could free (and a whole-snapshot push pauses it)
    err.__traceback__ = None
    ctx.error = err
    if is_grpc(ctx):  # gRPC callers get a status in trailers, not a group-response body (docs/http2-grpc.md)
        return grpc_error_response(ctx, err)
    ep = ctx.endpoint
    if ep is not None:
        responses = ep.responses
    elif ctx.group is not None:
        responses = ctx.group.responses
    else:
        responses = DEFAULT_RESPONSES
    resp = responses.render(ctx, err)
    ctx.status = resp.status
    ctx.bytes_sent = len(resp.body) if isinstance(resp.body, bytes) else 0
    return resp


async def handle(ctx: RequestContext) -> web.StreamResponse:
    """Run the pipeline for one request and return its response (hooks applied when not yet sent).

    One coroutine frame for the whole straight line (a frame per step cost measurable time per request)."""
    resp: web.StreamResponse | None = None
    try:
        ctx.path = normalize(ctx.path)  # no '.'/'..' segments reach routing or the backend (docs/security.md)
        for pre in ctx.runtime.pre_route:  # gateway-owned paths (public keys, app tokens); empty unless configured
            answered = pre(ctx)
            if answered is not None:  # a response, or an awaitable of one (the app token endpoint)
                resp = answered if isinstance(answered, web.StreamResponse) else await answered
                break
        if resp is None:
            ep = ctx.runtime.route(ctx)
            length = ctx.request.content_length
            if length is not None and length > ctx.max_body:
                raise body_too_large()
            if ep.cors is not None:  # the cors plug-in, or the API's cors flag (the same handler, vendor defaults)
                resp = ep.cors(ctx)  # a preflight, answered before any stage; else None
            if resp is None:
                for _name, stage in ep.stages:
                    waiting = stage(ctx)  # None: the stage is done (it never waits); else an awaitable
                    if waiting is not None:
                        await waiting
                plan = ep.select_backend(ctx)
                for _name, stage in plan.stages:
                    waiting = stage(ctx)
                    if waiting is not None:
                        await waiting
                target = plan.target
                # a MOCK answer needs nothing from the backend request: skip building it (hot path)
                breq = None if target.kind == "MOCK" else build_backend_request(ctx, ep, plan.method, plan.mapping,
                                                                                 plan.uri)
                resp = await target.invoke(ctx, breq, plan)
    except GatewayError as err:
        resp = render_error(ctx, err)
    except Exception:
        log.exception("unhandled error on request %s", ctx.request_id)
        resp = render_error(ctx, internal_error())
    if not resp.prepared:  # a streamed backend response ran the hooks itself before sending its head
        ctx.finish_response(resp)
    return resp
