"""The compiled snapshot that requests read: :class:`Runtime`, :class:`GroupRuntime`, :class:`Endpoint`.

Role in the pipeline: request time. :mod:`gateway.compiler` builds a Runtime from a validated snapshot once
per publication set; a swap replaces the reference atomically, and nothing changes a Runtime after it was
built. Requests never see raw config: everything they need is a field here (or a closure on an endpoint).

What a request does with it: one dict probe for the host, one for the environment (``X-Stage``), one
router lookup (see :mod:`gateway.model.routing`), then the endpoint's compiled stages and backend plans.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from gateway.core.errors import not_found
from gateway.model.plan import BackendPlan, ResponseHook, Stage
from gateway.model.responses import ResponseSet
from gateway.model.routing import Router

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.model.context import RequestContext
    from gateway.model.tls import DomainTls

# Answers a gateway-owned path before routing (public keys, the app token endpoint): a response or an awaitable
# of one, or None to continue. Each must be O(1) (a prefix test) when it does not apply.
PreRoute = Callable[["RequestContext"], "web.StreamResponse | Awaitable[web.StreamResponse] | None"]
# The CORS handler of an endpoint: adds CORS headers; returns the preflight answer or None.
CorsHook = Callable[["RequestContext"], "web.StreamResponse | None"]
BackendMatcher = Callable[["RequestContext"], bool]


class LogField(Protocol):
    """One extra access-log value (the ``custom_log`` feature): ``field`` <- ``get(ctx)``."""

    @property
    def field(self) -> str: ...  # custom_data_log01 ...

    @property
    def name(self) -> str: ...  # the header / query / cookie name (masked when it looks like a credential)

    @property
    def get(self) -> Callable[[RequestContext], str | None]: ...


class Endpoint:
    """One API published in one environment, compiled."""

    __slots__ = (
        "api_id", "api_name", "auth_type", "backend", "cors", "env_id", "env_name", "group_id", "log_plugin",
        "method", "policies", "prefix", "publish_id", "req_protocol", "req_uri", "response_hooks", "responses",
        "stages",
    )

    def __init__(self, *, api_id: str, api_name: str, group_id: str, env_id: str, env_name: str, publish_id: str,
                 method: str, req_uri: str, prefix: bool, auth_type: str, req_protocol: str,
                 backend: BackendPlan, policies: tuple[tuple[BackendMatcher, BackendPlan], ...],
                 stages: tuple[tuple[str, Stage], ...], responses: ResponseSet,
                 cors: CorsHook | None = None, response_hooks: tuple[ResponseHook, ...] = (),
                 log_plugin: tuple[str, Any] | None = None) -> None:
        self.api_id = api_id
        self.api_name = api_name
        self.group_id = group_id
        self.env_id = env_id
        self.env_name = env_name
        self.publish_id = publish_id
        self.method = method
        self.req_uri = req_uri
        self.prefix = prefix  # match_mode SWA
        self.auth_type = auth_type
        self.req_protocol = req_protocol
        self.backend = backend
        self.policies = policies
        self.stages = stages
        self.responses = responses
        # The CORS handler (a bound cors plug-in, else the API's ``cors`` flag with the vendor's defaults; adds
        # CORS response headers, answers preflight), and hooks that edit every response just before it is sent.
        self.cors = cors
        self.response_hooks = response_hooks
        # a bound logging plug-in (kafka_log): (plug-in id, compiled plan), read after the response by its hook
        self.log_plugin = log_plugin

    def select_backend(self, ctx: RequestContext) -> BackendPlan:
        for matches, plan in self.policies:
            if matches(ctx):
                return plan
        return self.backend


class GroupRuntime:
    __slots__ = ("id", "name", "responses", "routers")

    def __init__(self, gid: str, name: str, responses: ResponseSet) -> None:
        self.id = gid
        self.name = name
        self.responses = responses
        self.routers: dict[str, Router[Endpoint]] = {}  # env id -> router (filled by the compiler)


# what Runtime.route remembers per (Host, X-Stage, method, path): host, group, (env id, name), endpoint, path
# parameters, SWA suffix
_Routed = tuple[str, GroupRuntime, tuple[str, str], Endpoint, dict[str, str], str]
_ROUTES_MAX = 4096


class Runtime:
    """The compiled snapshot (built by :func:`gateway.compiler.compile_snapshot`, never changed after)."""

    __slots__ = (
        "__weakref__",  # the compiler keeps compile-time state about a runtime in a weak table
        "compile_ms",
        "compiled_at",
        "counts",
        "default_env",
        "default_group",
        "endpoints",
        "env_ids",
        "groups",
        "hosts",
        "log_fields",
        "pre_route",
        "routes",
        "tls_domains",
        "version",
    )

    def __init__(self, version: str, default_env: tuple[str, str]) -> None:
        self.version = version
        self.default_env = default_env  # (id, name) of the environment used without X-Stage (RELEASE)
        self.hosts: dict[str, GroupRuntime] = {}
        self.groups: dict[str, GroupRuntime] = {}
        self.env_ids: dict[str, tuple[str, str]] = {}  # upper-case env name -> (id, name)
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.default_group: GroupRuntime | None = None
        self.pre_route: tuple[PreRoute, ...] = ()  # gateway-owned paths (public keys, app tokens)
        self.tls_domains: Mapping[str, DomainTls] = {}  # lower-case domain -> TLS settings (SNI, tls stage)
        self.log_fields: tuple[LogField, ...] = ()  # extra access-log values (custom_log feature)
        self.counts: dict[str, int] = {}
        self.compiled_at = time.time()
        self.compile_ms = 0.0
        # (Host header, X-Stage header, method, path) -> what :meth:`route` found for them: filled by requests,
        # bounded, and gone with this snapshot (a new snapshot starts empty)
        self.routes: dict[tuple[str, str | None, str, str], _Routed] = {}

    def route(self, ctx: RequestContext) -> Endpoint:
        """Step 2: Host -> group, X-Stage -> environment, method + path -> endpoint."""
        raw_host = ctx.request.host
        env_header = ctx.headers.get("X-Stage")
        method = ctx.method
        # an OPTIONS request may be a CORS preflight (routed by another header): never remembered
        key = (raw_host, env_header, method, ctx.path) if method != "OPTIONS" else None
        routed = self.routes.get(key) if key is not None else None
        if routed is not None:  # the same request line and headers found this before: nothing to search
            ctx.host, ctx.group, env, ep, params, ctx.path_suffix = routed
            ctx.env_id, ctx.env_name = env
            ctx.endpoint = ep
            ctx.path_params = params.copy() if params else {}
            return ep
        host = raw_host
        if host.startswith("["):
            host = host[1:host.find("]")]
        elif ":" in host:
            host = host.rsplit(":", 1)[0]
        host = host.lower()
        ctx.host = host
        group = self.hosts.get(host) or self.default_group
        if group is None:
            raise not_found("The API does not exist or has not been published in the environment.")
        ctx.group = group
        if env_header:
            found = self.env_ids.get(env_header.upper())
            if found is None:
                raise not_found()
            env = found
        else:
            env = self.default_env
        ctx.env_id, ctx.env_name = env
        router = group.routers.get(env[0])
        if router is None:
            raise not_found()
        if method == "OPTIONS" and "Access-Control-Request-Method" in ctx.headers:
            # CORS preflight: route by the method the browser intends to use
            match, _ = router.lookup(ctx.headers["Access-Control-Request-Method"].upper(), ctx.path)
            if match is not None and match.target.cors is not None:
                ctx.extras["preflight"] = True
            else:
                match, _ = router.lookup(method, ctx.path)
        else:
            match, path_matched = router.lookup(method, ctx.path)
            if match is None and path_matched:
                raise not_found("The API does not exist.")
        if match is None:
            raise not_found()
        ep = match.target
        ctx.endpoint = ep
        ctx.path_params = match.params
        ctx.path_suffix = match.suffix
        if key is not None:
            routes = self.routes
            if len(routes) >= _ROUTES_MAX:  # many distinct hosts/paths: start over rather than grow
                routes.clear()
            routes[key] = (host, group, env, ep, dict(match.params), match.suffix)
        return match.target
