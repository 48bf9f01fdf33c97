"""Group responses: render a :class:`GatewayError` through the API group's response templates.

Role in the pipeline: the last step for every failed request (spec 02 §10.2, seed 002 §3.19). Each
group response is compiled at config-load time into a :class:`ResponseSet`: per error type a status,
a pre-split body template and the custom headers. Rendering is a join over the pre-split parts.

Template variables (03 §6c): ``$context.error.code|message|type``, ``$context.requestId``,
``$context.apiId|apiName|appId|appName|stage|sourceIp|reqPath|reqUri|reqMethod``,
``$context.authorizer.frontend.<k>`` and ``$context.authorizer.backend.<k>``. When the body template is
JSON (starts with ``{`` or ``[``) values are JSON-escaped so a message can never break the document.
Unknown variables render as the empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway.core.errors import RESPONSE_TYPES, GatewayError, canonical_response_type
from gateway.model.context import set_latency_headers

if TYPE_CHECKING:
    from gateway.model.context import RequestContext

DEFAULT_BODY = (
    '{"error_code":"$context.error.code","error_msg":"$context.error.message",'
    '"request_id":"$context.requestId"}'
)
_VAR_RX = re.compile(r"\$context\.[A-Za-z0-9_.]*[A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[tuple[bool, str], ...]
    json_escape: bool

    @classmethod
    def parse(cls, body: str) -> Template:
        parts: list[tuple[bool, str]] = []
        pos = 0
        for m in _VAR_RX.finditer(body):
            if m.start() > pos:
                parts.append((False, body[pos:m.start()]))
            parts.append((True, m.group(0)[len("$context."):]))
            pos = m.end()
        if pos < len(body):
            parts.append((False, body[pos:]))
        return cls(tuple(parts), body.lstrip()[:1] in ("{", "["))

    def render(self, ctx: RequestContext | None, err: GatewayError) -> str:
        out = []
        for is_var, text in self.parts:
            if not is_var:
                out.append(text)
                continue
            value = _variable(ctx, err, text)
            if self.json_escape:
                value = orjson.dumps(value).decode()[1:-1]
            out.append(value)
        return "".join(out)


def _variable(ctx: RequestContext | None, err: GatewayError, name: str) -> str:
    if name == "error.code":
        return err.code
    if name == "error.message":
        return err.message
    if name == "error.type":
        return err.error_type
    if ctx is None:
        return ""
    if name == "requestId":
        return ctx.request_id
    ep = ctx.endpoint
    simple: dict[str, Any] = {
        "apiId": ep.api_id if ep else "",
        "apiName": ep.api_name if ep else "",
        "appId": ctx.app_id or "",
        "appName": ctx.app_name or "",
        "stage": ctx.env_name,
        "sourceIp": ctx.client_ip,
        "reqPath": ctx.path,
        "reqUri": ctx.request.raw_path,
        "reqMethod": ctx.method,
    }
    if name in simple:
        return str(simple[name])
    for prefix, source in (("authorizer.frontend.", ctx.authorizer_frontend),
                           ("authorizer.backend.", ctx.authorizer_backend)):
        if name.startswith(prefix):
            v = source.get(name[len(prefix):])
            return "" if v is None else str(v)
    return ""


@dataclass(frozen=True, slots=True)
class ResponseEntry:
    status: int | None
    body: Template
    headers: tuple[tuple[str, str], ...]


_DEFAULT_TEMPLATE = Template.parse(DEFAULT_BODY)
_BUILTIN = ResponseEntry(None, _DEFAULT_TEMPLATE, ())


class ResponseSet:
    """The compiled responses of one group response (or the built-in default)."""

    __slots__ = ("entries", "id")

    def __init__(self, response_id: str | None, entries: dict[str, ResponseEntry]) -> None:
        self.id = response_id
        self.entries = entries

    @classmethod
    def compile(cls, resource: dict[str, Any] | None) -> ResponseSet:
        if resource is None:
            return DEFAULT_RESPONSES
        entries: dict[str, ResponseEntry] = {}
        for type_name, entry in (resource.get("responses") or {}).items():
            headers = tuple((h["key"], h["value"]) for h in entry.get("headers") or [])
            entries[canonical_response_type(type_name)] = ResponseEntry(
                entry.get("status"), Template.parse(entry.get("body") or DEFAULT_BODY), headers
            )
        return cls(resource.get("id"), entries)

    def render(self, ctx: RequestContext | None, err: GatewayError) -> web.Response:
        entry = self.entries.get(err.error_type) or _BUILTIN
        status = err.status
        if entry.status is not None and RESPONSE_TYPES.get(err.error_type) is not None:
            status = entry.status
        body = entry.body.render(ctx, err)
        resp = web.Response(
            status=status,
            body=body.encode(),
            content_type="application/json" if entry.body.json_escape else "text/plain",
            charset="utf-8",
        )
        h = resp.headers
        if ctx is not None:
            h.update(ctx.response_headers)
            h["X-Request-Id"] = ctx.request_id
            set_latency_headers(ctx, h)
        for key, value in entry.headers:
            h[key] = value
        if err.headers:
            h.update(err.headers)
        return resp


DEFAULT_RESPONSES = ResponseSet(None, {})
