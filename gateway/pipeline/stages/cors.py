"""The ``cors`` plug-in (seed 002 §3.27.1 CorsPluginContent; spec 02 §8.3): preflight answers and CORS headers.

Role in the pipeline: step 4 of spec 02 §11.2 and every response. At config-load time the content is compiled
into a :class:`CorsHandler` installed on the endpoint (``Endpoint.cors``, by :func:`build_handler`, the
chain's ``CORS`` entry). The API's ``cors: true`` flag is the same handler with the vendor's defaults
(:func:`vendor_defaults`); a bound plug-in takes precedence over it.
Routing treats ``OPTIONS`` + ``Access-Control-Request-Method`` as a preflight for such endpoints, and the
pipeline calls the handler before any stage:

* every request: when the ``Origin`` is allowed, ``Access-Control-Allow-Origin`` (``*``, or the request's
  origin when credentials are allowed or the origin list is explicit; ``Origin`` is then merged into ``Vary``),
  ``-Expose-Headers`` and ``-Allow-Credentials`` go into ``ctx.response_headers`` (so they are on success
  and gateway-error responses alike);
* preflight: answered 200 right away (no auth, ACL or throttling) with ``-Allow-Methods``,
  ``-Allow-Headers`` (``*`` echoes the requested headers when credentials are on) and ``-Max-Age``.
  A preflight from an origin that is not allowed is answered 200 without any CORS header (the browser then
  refuses the call), as APISIX and Kong do.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.model.context import set_latency_headers
from gateway.snapshot.collections import served_definition
from gateway.snapshot.plugins import BoundPlugin, bound_plugin
from gateway.snapshot.schema import B, Field, I, Obj, check
from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.plan import ResponseHook
    from gateway.pipeline.spec import BuildContext, EndpointDraft

_STR_OR_LIST = Field("any")
CONTENT = Obj({
    "allow_origin": _STR_OR_LIST,
    "allow_methods": _STR_OR_LIST,
    "allow_headers": _STR_OR_LIST,
    "expose_headers": _STR_OR_LIST,
    "max_age": I(min=0, max=2147483647),
    "allow_credentials": B(),
})
_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
_ORIGIN_RX = re.compile(r"(\*|[A-Za-z][A-Za-z0-9+.-]*://[^\s,/]+|null)")
_TOKEN_RX = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
DEFAULT_MAX_AGE = 86400


def _items(value: Any, path: str, problems: list[str]) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    problems.append(f"{path}: must be a comma-separated string or a list of strings")
    return None


class CorsHandler:
    """A compiled cors plug-in. ``__call__(ctx)`` adds the headers; returns the preflight answer or None."""

    __slots__ = ("any_origin", "append_requested", "credentials", "echo_headers", "expose", "expose_on_preflight",
                 "headers", "latency", "max_age", "methods", "origins")

    def __init__(self, origins: list[str], methods: list[str], headers: list[str], expose: list[str],
                 max_age: int, credentials: bool, *, append_requested: bool = False,
                 expose_on_preflight: bool = False, latency: bool = False) -> None:
        self.any_origin = not origins or "*" in origins
        self.origins = frozenset(o.lower() for o in origins if o != "*")
        self.methods = ",".join(methods) if methods else ",".join(_METHODS)
        self.echo_headers = "*" in headers and credentials  # "*" is not honoured by browsers with credentials
        self.headers = ",".join(headers)
        self.expose = ",".join(expose)
        self.max_age = str(max_age)
        self.credentials = credentials
        # the API ``cors`` flag's vendor defaults (:func:`vendor_defaults`): the requested headers are added to
        # the allowed list, the exposed headers are on the preflight too, and the preflight carries latency
        self.append_requested = append_requested
        self.expose_on_preflight = expose_on_preflight
        self.latency = latency

    def __call__(self, ctx: RequestContext) -> web.StreamResponse | None:
        origin = ctx.headers.get("Origin")
        allowed = self._allow_origin(origin)
        preflight = ctx.extras.get("preflight")
        if allowed is not None:
            rh = ctx.response_headers
            rh["Access-Control-Allow-Origin"] = allowed
            if self.credentials:
                rh["Access-Control-Allow-Credentials"] = "true"
            if self.expose and (not preflight or self.expose_on_preflight):
                rh["Access-Control-Expose-Headers"] = self.expose
        if not preflight:
            return None
        resp = web.Response(status=200)
        h = resp.headers
        h.update(ctx.response_headers)
        if allowed is not None:
            h["Access-Control-Allow-Methods"] = self.methods
            requested = ctx.headers.get("Access-Control-Request-Headers")
            if self.echo_headers:
                if requested:
                    h["Access-Control-Allow-Headers"] = requested
            elif self.append_requested:
                h["Access-Control-Allow-Headers"] = self.headers + ("," + requested if requested else "")
            elif self.headers:
                h["Access-Control-Allow-Headers"] = self.headers
            h["Access-Control-Max-Age"] = self.max_age
        h["X-Request-Id"] = ctx.request_id
        if self.latency:
            set_latency_headers(ctx, h)
        ctx.status = 200
        return resp

    def _allow_origin(self, origin: str | None) -> str | None:
        if self.any_origin:
            if origin and (self.credentials or self.origins):
                return origin
            return "*"
        if origin and origin.lower() in self.origins:
            return origin
        return None


def validate(content: dict[str, Any], path: str, problems: list[str], index: Index) -> CorsHandler | None:
    before = len(problems)
    check(CONTENT, content, path, problems)
    origins = _items(content.get("allow_origin"), f"{path}.allow_origin", problems) or []
    for o in origins:
        if not _ORIGIN_RX.fullmatch(o):
            problems.append(f"{path}.allow_origin: {o!r} is not * or scheme://host[:port]")
    methods = [m.upper() for m in _items(content.get("allow_methods"), f"{path}.allow_methods", problems) or []]
    if "*" in methods:
        methods = list(_METHODS)
    for m in methods:
        if m not in _METHODS:
            problems.append(f"{path}.allow_methods: {m!r} is not an HTTP method ({', '.join(_METHODS)})")
    headers = _items(content.get("allow_headers"), f"{path}.allow_headers", problems) or []
    expose = _items(content.get("expose_headers"), f"{path}.expose_headers", problems) or []
    for key, names in (("allow_headers", headers), ("expose_headers", expose)):
        for n in names:
            if n != "*" and not _TOKEN_RX.fullmatch(n):
                problems.append(f"{path}.{key}: {n!r} is not a header name")
    if len(problems) > before:
        return None
    max_age = content.get("max_age")
    return CorsHandler(origins, methods, headers, expose,
                       DEFAULT_MAX_AGE if max_age is None else int(max_age), content.get("allow_credentials") is True)


def check_methods(index: Index, by_pub: dict[tuple[str, str], dict[str, BoundPlugin]], problems: list[str]) -> None:
    """Vendor rule: the API's request method must be one of the plug-in's allow_methods."""
    for (api_id, env_id), plugins in by_pub.items():
        bp = plugins.get("cors")
        api = index.by_id["apis"].get(api_id)
        if bp is None or api is None:
            continue
        pub = next((p for p in index.publishes_by_api.get(api_id, []) if str(p.get("env_id")) == env_id), None)
        if pub is not None:
            api = served_definition(api, pub)  # the definition that environment serves
        method = str(api.get("req_method"))
        if method != "ANY" and method not in bp.config.methods.split(","):
            problems.append(f"{bp.path}.plugin_content.allow_methods: does not include {method}, "
                            f"the method of API {api_id!r} it is bound to")


def vary_origin(ctx: RequestContext, resp: web.StreamResponse) -> None:
    """Response hook: an echoed origin makes the response depend on ``Origin`` (merged into ``Vary``)."""
    h = resp.headers
    allowed = h.get("Access-Control-Allow-Origin")
    if allowed is None or allowed == "*":
        return
    vary = h.get("Vary")
    if not vary:
        h["Vary"] = "Origin"
    elif "origin" not in {v.strip().lower() for v in vary.split(",")} and vary.strip() != "*":
        h["Vary"] = f"{vary}, Origin"


# The API ``cors: true`` flag: the vendor's defaults (any origin, the API's method, its SDK's headers).
VENDOR_ALLOW_HEADERS = (
    "X-Stage", "X-Sdk-Date", "X-Sdk-Nonce", "X-Proxy-Signed-Headers", "X-Sdk-Content-Sha256", "X-Forwarded-For",
    "Authorization", "Content-Type", "Accept", "Accept-Ranges", "Cache-Control", "Range", "X-Apig-AppCode",
    "X-Auth-Token",
)
VENDOR_EXPOSE_HEADERS = ("X-Request-Id", "X-Apig-Latency", "X-Apig-Upstream-Latency", "X-Apig-Ratelimit-Api")
VENDOR_MAX_AGE = 172800


def vendor_defaults(method: str) -> CorsHandler:
    """What ``cors: true`` on an API means: a cors plug-in with the vendor's defaults."""
    return CorsHandler([], [] if method == "ANY" else [method], list(VENDOR_ALLOW_HEADERS),
                       list(VENDOR_EXPOSE_HEADERS), VENDOR_MAX_AGE, False,
                       append_requested=True, expose_on_preflight=True, latency=True)


def build_handler(draft: EndpointDraft, build: BuildContext) -> CorsHandler | None:
    """The endpoint's CORS handler: the bound cors plug-in, else the ``cors`` flag's vendor defaults."""
    bp = bound_plugin(build.index, str(draft.api["id"]), draft.env_id, "cors")
    if bp is not None:
        return bp.config  # type: ignore[no-any-return,unused-ignore]
    if not draft.api.get("cors"):
        return None
    method = str(draft.api.get("req_method") or "ANY")
    return build.once(f"cors_flag:{method}", lambda: vendor_defaults(method))


def build_vary_origin(draft: EndpointDraft, build: BuildContext) -> ResponseHook | None:
    """With a cors plug-in bound, every response of the endpoint merges ``Origin`` into ``Vary``."""
    return vary_origin if bound_plugin(build.index, str(draft.api["id"]), draft.env_id, "cors") else None
