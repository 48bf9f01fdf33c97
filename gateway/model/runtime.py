"""Compile a validated snapshot into the immutable runtime the request path reads.

Role in the pipeline: config-load time. :func:`compile_snapshot` turns an :class:`Index` into a
:class:`Runtime`; requests only ever read a Runtime (a swap replaces the reference atomically).

What is computed once per publication (API x environment), never per request:
* ``#name#`` environment variables substituted into backend ``url_domain``, ``req_uri`` and CONSTANT
  backend parameters (group- and environment-scoped values);
* the :class:`Endpoint`: request-parameter plan, backend plans (default and policies) with parameter
  mapping and URI template, the ordered stage tuple (only the stages this publication needs), the
  group response set;
* route tables: ``hosts`` (lower-case Host -> group) and per group a :class:`Router` per environment.

Cost: compile is O(total size of the snapshot); memory is one Endpoint per publication plus router
nodes proportional to distinct path segments. A request does one dict probe for the host, one for the
environment and one router lookup (see :mod:`gateway.model.routing`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.backends.http import DirectUpstream, HttpTarget, Upstream, parse_host_port
from gateway.backends.mock import MockTarget
from gateway.core.errors import GatewayError, not_found
from gateway.model.plan import BackendPlan, Target
from gateway.model.responses import DEFAULT_RESPONSES, ResponseSet
from gateway.model.routing import Router
from gateway.pipeline import spec as stage_registry
from gateway.pipeline.stages.params import (
    MappingPlan,
    ReqParam,
    UriTemplate,
    compile_mapping,
    compile_req_params,
    read_params,
)
from gateway.snapshot.collections import RELEASE_ENV_ID
from gateway.snapshot.load import SnapshotError
from gateway.snapshot.validate import ENV_VAR_RX, Index

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.model.context import RequestContext
    from gateway.model.services import Services
    from gateway.pipeline.spec import Stage


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace every ``#name#`` with its value (validation guarantees the value exists)."""
    if "#" not in text:
        return text
    return ENV_VAR_RX.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


@dataclass
class EndpointDraft:
    """What a stage builder needs to know about the publication it is compiling."""

    api: dict[str, Any]
    path: str  # "apis[3]" for problem messages
    group: dict[str, Any]
    env_id: str
    env_name: str
    publish_id: str
    variables: dict[str, str]


@dataclass
class BuildContext:
    """Compile-time access to the whole snapshot and the long-lived services."""

    index: Index
    services: Services
    problems: list[str] = field(default_factory=list)
    # per-compile memo for feature modules (compiled once per snapshot, shared by all publications)
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Any:
        return self.services.settings


class Endpoint:
    """One API published in one environment, compiled."""

    __slots__ = (
        "api", "api_id", "api_name", "auth_type", "backend", "cors", "cors_plugin", "env_id", "env_name",
        "group_id", "method", "policies", "prefix", "publish_id", "req_plan", "req_protocol", "req_uri",
        "response_hooks", "responses", "stages",
    )

    def __init__(self, draft: EndpointDraft, req_plan: tuple[ReqParam, ...], backend: BackendPlan,
                 policies: tuple[tuple[Callable[[RequestContext], bool], BackendPlan], ...],
                 stages: tuple[tuple[str, Stage], ...], responses: ResponseSet) -> None:
        api = draft.api
        self.api = api
        self.api_id: str = api["id"]
        self.api_name: str = api["name"]
        self.group_id: str = api["group_id"]
        self.env_id = draft.env_id
        self.env_name = draft.env_name
        self.publish_id = draft.publish_id
        self.method: str = api["req_method"]
        self.req_uri: str = api["req_uri"]
        self.prefix = api.get("match_mode") == "SWA"
        self.cors = bool(api.get("cors"))
        self.auth_type: str = api["auth_type"]
        self.req_protocol: str = api["req_protocol"]
        self.req_plan = req_plan
        self.backend = backend
        self.policies = policies
        self.stages = stages
        self.responses = responses
        # Set by ENDPOINT_FINISHERS (gateway.pipeline.stages.plugins): a CORS plug-in handler that takes
        # precedence over the
        # ``cors`` flag (adds CORS response headers, answers preflight), and hooks that edit every response
        # of this endpoint (success or error) just before it is sent (set_resp_headers).
        self.cors_plugin: Callable[[RequestContext], web.StreamResponse | None] | None = None
        self.response_hooks: tuple[Callable[[RequestContext, web.StreamResponse], None], ...] = ()

    def select_backend(self, ctx: RequestContext) -> BackendPlan:
        for matches, plan in self.policies:
            if matches(ctx):
                return plan
        return self.backend


class GroupRuntime:
    __slots__ = ("id", "name", "responses", "routers")

    def __init__(self, group: dict[str, Any], responses: ResponseSet) -> None:
        self.id: str = group["id"]
        self.name: str = group["name"]
        self.responses = responses
        self.routers: dict[str, Router[Endpoint]] = {}


class Runtime:
    """The immutable compiled snapshot."""

    __slots__ = (
        "compile_ms",
        "compiled_at",
        "counts",
        "default_group",
        "endpoints",
        "env_ids",
        "groups",
        "hosts",
        "index",
        "version",
    )

    def __init__(self, index: Index, version: str) -> None:
        self.index = index
        self.version = version
        self.hosts: dict[str, GroupRuntime] = {}
        self.groups: dict[str, GroupRuntime] = {}
        self.env_ids: dict[str, tuple[str, str]] = {}  # upper-case env name -> (id, name)
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.default_group: GroupRuntime | None = None
        self.counts: dict[str, int] = {}
        self.compiled_at = time.time()
        self.compile_ms = 0.0

    def route(self, ctx: RequestContext) -> Endpoint:
        """Step 2: Host -> group, X-Stage -> environment, method + path -> endpoint."""
        host = ctx.request.host
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
        stage = ctx.headers.get("X-Stage")
        if stage:
            env = self.env_ids.get(stage.upper())
            if env is None:
                raise not_found()
        else:
            env = (RELEASE_ENV_ID, "RELEASE")
        ctx.env_id, ctx.env_name = env
        router = group.routers.get(env[0])
        if router is None:
            raise not_found()
        method = ctx.method
        if method == "OPTIONS" and "Access-Control-Request-Method" in ctx.headers:
            # CORS preflight: route by the method the browser intends to use
            match, _ = router.lookup(ctx.headers["Access-Control-Request-Method"].upper(), ctx.path)
            if match is not None and (match.target.cors or match.target.cors_plugin is not None):
                ctx.extras["preflight"] = True
            else:
                match, _ = router.lookup(method, ctx.path)
        else:
            match, path_matched = router.lookup(method, ctx.path)
            if match is None and path_matched:
                raise not_found("The API does not exist.")
        if match is None:
            raise not_found()
        ctx.endpoint = match.target
        ctx.path_params = match.params
        ctx.path_suffix = match.suffix
        return match.target


# --- target builders (feature modules add kinds / channel upstreams) -------------------------------

TargetBuilder = Callable[[dict[str, Any], EndpointDraft, BuildContext, str], Target | None]
UpstreamBuilder = Callable[[dict[str, Any], EndpointDraft, BuildContext, str, str], Upstream | None]


def _http_target(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str) -> Target | None:
    scheme = "https" if backend.get("req_protocol") == "HTTPS" else "http"
    timeout = min(int(backend.get("timeout") or 5000), build.settings.max_backend_timeout_ms)
    retry = int(backend.get("retry_count", -1) if backend.get("retry_count") not in (None, "") else -1)
    upstream: Upstream | None
    if backend.get("vpc_channel_status") == 1:
        if UPSTREAM_BUILDERS.get("vpc") is None:
            build.problems.append(f"{path}.vpc_channel_info: VPC channels are not supported by this build")
            return None
        upstream = UPSTREAM_BUILDERS["vpc"](backend, draft, build, path, scheme)
        if upstream is None:
            return None
    else:
        domain = substitute(str(backend.get("url_domain") or ""), draft.variables)
        try:
            host, port = parse_host_port(domain, scheme)
        except (ValueError, KeyError):
            build.problems.append(f"{path}.url_domain: {domain!r} is not host:port (env {draft.env_name})")
            return None
        upstream = DirectUpstream(host, port, scheme)
    ssl_ctx = None
    ssl_builder = UPSTREAM_BUILDERS.get("ssl")
    if ssl_builder is not None and scheme == "https":
        ssl_ctx = ssl_builder(backend, draft, build, path, scheme)
    return HttpTarget(build.services, scheme, upstream, timeout, retry, ssl_ctx)


def _mock_target(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str) -> Target | None:
    return MockTarget(backend)


class _Unsupported:
    kind = "UNSUPPORTED"

    def __init__(self, what: str) -> None:
        self.what = what

    async def invoke(self, ctx: RequestContext, breq: Any, plan: Any) -> Any:
        raise GatewayError("DEFAULT_5XX", "APIG.0103", f"The backend does not exist: {self.what}", status=500)


def _function_target(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext,
                     path: str) -> Target | None:
    return _Unsupported("FUNCTION backends are not supported by this build")


TARGET_BUILDERS: dict[str, TargetBuilder] = {
    "HTTP": _http_target,
    "MOCK": _mock_target,
    "FUNCTION": _function_target,
}
UPSTREAM_BUILDERS: dict[str, Any] = {}

# Backend-policy condition compiler: (policy, draft, build, path) -> matcher.
# Set by gateway.pipeline.stages.backend_policy.
PolicyCompiler = Callable[[dict[str, Any], EndpointDraft, BuildContext, str], Callable[["RequestContext"], bool]]
POLICY_COMPILER: list[PolicyCompiler] = []
# Backend-plan finishers (backend authorizer stages, signing hooks): (plan, backend, draft, build, path).
PLAN_FINISHERS: list[Callable[[BackendPlan, dict[str, Any], EndpointDraft, BuildContext, str], None]] = []
# Endpoint finishers (plug-ins: CORS handler, response hooks): (endpoint, draft, build), after the stages.
ENDPOINT_FINISHERS: list[Callable[[Endpoint, EndpointDraft, BuildContext], None]] = []


def _plan(name: str, kind: str, backend: dict[str, Any], params: list[dict[str, Any]], draft: EndpointDraft,
          build: BuildContext, path: str) -> BackendPlan | None:
    target = TARGET_BUILDERS[kind](backend, draft, build, path)
    if target is None:
        return None
    req_params = [p for p in draft.api.get("req_params") or [] if isinstance(p, dict)]
    consts = [dict(bp, value=substitute(bp["value"], draft.variables)) if bp.get("origin") == "CONSTANT" else bp
              for bp in params]
    mapping: MappingPlan = compile_mapping(req_params, consts, build.problems, f"{draft.path}.")
    uri = None
    if kind == "HTTP":
        uri = UriTemplate.parse(substitute(str(backend.get("req_uri") or "/"), draft.variables))
    plan = BackendPlan(name=name, target=target, mapping=mapping, uri=uri,
                       method=str(backend.get("req_method") or "ANY"))
    for finish in PLAN_FINISHERS:
        finish(plan, backend, draft, build, path)
    return plan


def _params_stage(plan: tuple[ReqParam, ...]) -> Stage:
    async def stage(ctx: RequestContext) -> None:
        read_params(ctx, plan)

    return stage


@stage_registry.register_stage(stage_registry.ORDER_VALIDATION, "request_parameters")
def _build_params_stage(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    req = [p for p in draft.api.get("req_params") or [] if isinstance(p, dict)]
    return _params_stage(compile_req_params(req)) if req else None


def compile_endpoint(draft: EndpointDraft, build: BuildContext, responses: ResponseSet) -> Endpoint | None:
    api = draft.api
    kind = api["backend_type"]
    backend_info: dict[str, Any]
    if kind in ("HTTP", "GRPC"):
        backend_info = api.get("backend_api") or {}
        bpath = f"{draft.path}.backend_api"
    elif kind == "MOCK":
        backend_info = api.get("mock_info") or {}
        bpath = f"{draft.path}.mock_info"
    else:
        backend_info = api.get("func_info") or {}
        bpath = f"{draft.path}.func_info"
    default = _plan("default", kind, backend_info, api.get("backend_params") or [], draft, build, bpath)
    policies: list[tuple[Callable[[RequestContext], bool], BackendPlan]] = []
    https_kind = "GRPC" if kind == "GRPC" else "HTTP"  # a GRPC API's policies are gRPC backends too
    for key, pkind in (("policy_https", https_kind), ("policy_mocks", "MOCK"), ("policy_functions", "FUNCTION")):
        for j, pol in enumerate(api.get(key) or []):
            ppath = f"{draft.path}.{key}[{j}]"
            if not POLICY_COMPILER:
                build.problems.append(f"{ppath}: backend policies are not supported by this build")
                continue
            matcher = POLICY_COMPILER[0](pol, draft, build, ppath)
            plan = _plan(pol["name"], pkind, pol, pol.get("backend_params") or [], draft, build, ppath)
            if plan is not None:
                policies.append((matcher, plan))
    if default is None:
        return None
    req_plan = compile_req_params([p for p in api.get("req_params") or [] if isinstance(p, dict)])
    stages = stage_registry.build_stages(draft, build)
    endpoint = Endpoint(draft, req_plan, default, tuple(policies), stages, responses)
    for finish in ENDPOINT_FINISHERS:
        finish(endpoint, draft, build)
    return endpoint


def compile_snapshot(index: Index, services: Services, version: str | None = None) -> Runtime:
    """Compile a validated index; raises SnapshotError when compile-time checks fail."""
    t0 = time.perf_counter()
    build = BuildContext(index=index, services=services)
    doc = index.doc
    runtime = Runtime(index, version or str(doc.get("version") or _new_version()))
    for env in index.by_id["environments"].values():
        runtime.env_ids[str(env["name"]).upper()] = (str(env["id"]), str(env["name"]))
    response_sets: dict[str, ResponseSet] = {}
    for rid, res in index.by_id["responses"].items():
        response_sets[rid] = ResponseSet.compile(res)
    for group in index.items("groups"):
        g = GroupRuntime(group, response_sets.get(group.get("response_id") or "", DEFAULT_RESPONSES))
        runtime.groups[g.id] = g
        hosts = [group.get("sl_domain"), *(group.get("sl_domains") or [])]
        if group.get("sl_domain_access_enabled") is False:
            hosts = []
        hosts += [d.get("domain") for d in group.get("url_domains") or []]
        for h in hosts:
            if h:
                runtime.hosts[str(h).lower()] = g
    default_gid = services.settings.default_group
    if default_gid:
        runtime.default_group = runtime.groups.get(default_gid) or next(
            (g for g in runtime.groups.values() if g.name == default_gid), None)
        if runtime.default_group is None:
            build.problems.append(f"settings.default_group: no group with id or name {default_gid!r}")
    elif len(runtime.groups) == 1:
        # a single-group gateway serves that group whatever the Host (docs/routing.md)
        runtime.default_group = next(iter(runtime.groups.values()))

    api_pos = {id(a): i for i, a in enumerate(index.items("apis"))}
    for api_id, pubs in index.publishes_by_api.items():
        api = index.by_id["apis"][api_id]
        group_dict = index.by_id["groups"][api["group_id"]]
        g = runtime.groups[api["group_id"]]
        responses = response_sets.get(api.get("response_id") or "", g.responses)
        for pub in pubs:
            env_id = str(pub["env_id"])
            env = index.by_id["environments"][env_id]
            draft = EndpointDraft(
                api=api, path=f"apis[{api_pos.get(id(api), 0)}]", group=group_dict, env_id=env_id,
                env_name=str(env["name"]), publish_id=str(pub["publish_id"]),
                variables=index.variables.get((api["group_id"], env_id), {}),
            )
            ep = compile_endpoint(draft, build, responses)
            if ep is None:
                continue
            runtime.endpoints[(api_id, env_id)] = ep
            g.routers.setdefault(env_id, Router()).add(ep.method, ep.req_uri, ep.prefix, ep)
    if build.problems:
        raise SnapshotError(build.problems)
    runtime.counts = {
        "groups": len(runtime.groups),
        "environments": len(index.by_id["environments"]),
        "apis": len(index.by_id["apis"]),
        "publishes": len(runtime.endpoints),
    }
    runtime.compile_ms = (time.perf_counter() - t0) * 1000.0
    return runtime


_seq = [0]


def _new_version() -> str:
    _seq[0] += 1
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f"-{_seq[0]}"

