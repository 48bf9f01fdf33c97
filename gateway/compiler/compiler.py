"""Compile a validated snapshot into the immutable runtime the request path reads.

Role in the pipeline: config-load time. :func:`compile_snapshot` turns an :class:`Index` into a
:class:`Runtime`; requests only ever read a Runtime (a swap replaces the reference atomically).

What is computed once per publication (API x environment), never per request:
* ``#name#`` environment variables substituted into backend ``url_domain``, ``req_uri`` and CONSTANT
  backend parameters (group- and environment-scoped values);
* the :class:`Endpoint`: backend plans (default and policies, each through the chain's plan stages) with
  parameter mapping and URI template, the ordered stage tuple (only the stages this publication needs), the
  CORS handler, the response hooks, the group response set;
* route tables: ``hosts`` (lower-case Host -> group) and per group a :class:`Router` per environment;
* snapshot-wide tables: pre-route handlers (public keys), the TLS domain table.

Cost: compile is O(total size of the snapshot); memory is one Endpoint per publication plus router
nodes proportional to distinct path segments.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from gateway.compiler.targets import BACKEND_FIELD, TARGETS, policy_lists
from gateway.core.errors import SnapshotError
from gateway.model.plan import BackendPlan, MappingPlan, UriTemplate, backend_plan
from gateway.model.responses import DEFAULT_RESPONSES, ResponseSet
from gateway.model.routing import Router
from gateway.model.runtime import BackendMatcher, Endpoint, GroupRuntime, Runtime
from gateway.model.services import Services
from gateway.pipeline import chain as default_chain
from gateway.pipeline.spec import BuildContext, Chain, EndpointDraft, PlanDraft, substitute
from gateway.pipeline.stages import tls
from gateway.pipeline.stages.params import compile_mapping
from gateway.snapshot import custom_log
from gateway.snapshot.collections import RELEASE_ENV_ID, RELEASE_ENV_NAME, served_definition
from gateway.snapshot.validate import Index
from gateway.snapshot.validate import validate as validate_with

# The validated snapshot each runtime was compiled from: compile-time state (the incremental compiler derives
# the next index from it), kept here so that nothing on the request path can reach the configuration.
_INDEX: weakref.WeakKeyDictionary[Runtime, Index] = weakref.WeakKeyDictionary()


def index_of(runtime: Runtime) -> Index:
    """The validated snapshot ``runtime`` was compiled from."""
    return _INDEX[runtime]


def remember_index(runtime: Runtime, index: Index) -> None:
    _INDEX[runtime] = index


def validate(doc: dict[str, Any], chain: Chain | None = None, only: set[int] | None = None) -> Index:
    """Validate ``doc`` against the chain's schema (core collections + every stage's own and its checks);
    ``only``: the elements whose own fields are checked (an incremental change: the new ones)."""
    return validate_with(doc, (chain or default_chain.DEFAULT).schema, only)


def build_runtime(doc: dict[str, Any], services: Services, version: str | None = None,
                  chain: Chain | None = None) -> Runtime:
    """Validate and compile a document (raises SnapshotError listing every problem)."""
    chain = chain or default_chain.DEFAULT
    return compile_snapshot(validate(doc, chain), services, version, chain)


def _plan(name: str, kind: str, backend: dict[str, Any], params: list[dict[str, Any]], draft: EndpointDraft,
          build: BuildContext, path: str, chain: Chain) -> BackendPlan | None:
    target = TARGETS[kind](backend, draft, build, path)
    if target is None:
        return None
    listed = draft.api.get("req_params")
    req_params = [p for p in listed if isinstance(p, dict)] if listed else []
    consts = [dict(bp, value=substitute(bp["value"], draft.variables)) if bp.get("origin") == "CONSTANT" else bp
              for bp in params] if params else []
    mapping: MappingPlan = compile_mapping(req_params, consts, build.problems,
                                           f"{draft.path}." if req_params or consts else "")
    uri = None
    if kind == "HTTP":
        uri = UriTemplate.parse(substitute(str(backend.get("req_uri") or "/"), draft.variables))
    plan = PlanDraft(name=name, target=target, mapping=mapping, uri=uri, method=str(backend.get("req_method") or "ANY"))
    for apply in _builders(chain)[1]:
        apply(plan, backend, draft, build, path)
    return backend_plan(plan.name, plan.target, plan.mapping, plan.uri, plan.method, tuple(plan.stages),
                        tuple(plan.request_hooks))


_POLICY_LISTS = {kind: policy_lists(kind) for kind in TARGETS}
# id(chain) -> (chain, its builders as plain tuples): the compiler walks them once per publication
_BUILDERS: dict[int, tuple[Chain, tuple[Any, Any, Any]]] = {}


def _builders(chain: Chain) -> tuple[Any, Any, Any]:
    """((name, endpoint stage builder)..., plan stage builders, response hook builders) of ``chain``."""
    hit = _BUILDERS.get(id(chain))
    if hit is not None and hit[0] is chain:
        return hit[1]
    out = (tuple((s.name, s.compile) for s in chain.endpoint), tuple(s.apply for s in chain.plan),
           tuple(s.compile for s in chain.response))
    if len(_BUILDERS) > 64:
        _BUILDERS.clear()
    _BUILDERS[id(chain)] = (chain, out)
    return out


def compile_endpoint(draft: EndpointDraft, build: BuildContext, responses: ResponseSet,
                     chain: Chain | None = None) -> Endpoint | None:
    """One publication: backend plans (selection), endpoint stages, CORS and response hooks, in chain order."""
    chain = chain or default_chain.DEFAULT
    api = draft.api
    kind = api["backend_type"]
    field = BACKEND_FIELD.get(kind, "func_info")
    default = _plan("default", kind, api.get(field) or {}, api.get("backend_params") or [], draft, build,
                    f"{draft.path}.{field}", chain)
    policies: list[tuple[BackendMatcher, BackendPlan]] = []
    for key, pkind in _POLICY_LISTS.get(kind) or policy_lists(kind):
        listed = api.get(key)
        if not listed:
            continue
        for j, pol in enumerate(listed):
            ppath = f"{draft.path}.{key}[{j}]"
            matcher = chain.select(pol, draft, build, ppath)
            plan = _plan(pol["name"], pkind, pol, pol.get("backend_params") or [], draft, build, ppath, chain)
            if plan is not None:
                policies.append((matcher, plan))
    if default is None:
        return None
    endpoint_builders, _, response_builders = _builders(chain)
    stages = []
    for name, build_stage in endpoint_builders:
        stage = build_stage(draft, build)
        if stage is not None:
            stages.append((name, stage))
    hooks = []
    for build_hook in response_builders:
        hook = build_hook(draft, build)
        if hook is not None:
            hooks.append(hook)
    return Endpoint(
        api_id=api["id"], api_name=api["name"], group_id=api["group_id"], env_id=draft.env_id,
        env_name=draft.env_name, publish_id=draft.publish_id, method=api["req_method"], req_uri=api["req_uri"],
        prefix=api.get("match_mode") == "SWA", auth_type=api["auth_type"], req_protocol=api["req_protocol"],
        backend=default, policies=tuple(policies), stages=tuple(stages),
        responses=responses, cors=chain.cors(draft, build), response_hooks=tuple(hooks),
        log_plugin=chain.log(draft, build) if chain.log is not None else None,
    )


def _groups(index: Index, runtime: Runtime, response_sets: dict[str, ResponseSet], build: BuildContext) -> None:
    for group in index.items("groups"):
        g = GroupRuntime(group["id"], group["name"],
                         response_sets.get(group.get("response_id") or "", DEFAULT_RESPONSES))
        runtime.groups[g.id] = g
        hosts = [group.get("sl_domain"), *(group.get("sl_domains") or [])]
        if group.get("sl_domain_access_enabled") is False:
            hosts = []
        hosts += [d.get("domain") for d in group.get("url_domains") or []]
        for h in hosts:
            if h:
                runtime.hosts[str(h).lower()] = g
    default_gid = build.settings.default_group
    if default_gid:
        runtime.default_group = runtime.groups.get(default_gid) or next(
            (g for g in runtime.groups.values() if g.name == default_gid), None)
        if runtime.default_group is None:
            build.problems.append(f"settings.default_group: no group with id or name {default_gid!r}")
    elif len(runtime.groups) == 1:
        # a single-group gateway serves that group whatever the Host (docs/routing.md)
        runtime.default_group = next(iter(runtime.groups.values()))


def _endpoints(index: Index, runtime: Runtime, response_sets: dict[str, ResponseSet], build: BuildContext,
               chain: Chain) -> None:
    api_pos = {id(a): i for i, a in enumerate(index.items("apis"))}
    pub_pos: dict[int, int] = {}
    apis, groups, envs = index.by_id["apis"], index.by_id["groups"], index.by_id["environments"]
    variables, endpoints = index.variables, runtime.endpoints
    for api_id, pubs in index.publishes_by_api.items():
        api = apis[api_id]
        group_dict = groups[api["group_id"]]
        g = runtime.groups[api["group_id"]]
        for pub in pubs:
            env_id = str(pub["env_id"])
            env = envs[env_id]
            served = served_definition(api, pub)  # the publication's own published copy, if it has one
            if served is api:
                path = f"apis[{api_pos.get(id(api), 0)}]"
            else:
                if not pub_pos:
                    pub_pos.update((id(p), i) for i, p in enumerate(index.items("publishes")))
                path = f"publishes[{pub_pos.get(id(pub), 0)}].api_definition"
            responses = response_sets.get(served.get("response_id") or "", g.responses)
            draft = EndpointDraft(
                api=served, path=path, group=group_dict, env_id=env_id,
                env_name=str(env["name"]), publish_id=str(pub["publish_id"]),
                variables=variables.get((api["group_id"], env_id), {}),
            )
            ep = compile_endpoint(draft, build, responses, chain)
            if ep is None:
                continue
            endpoints[(api_id, env_id)] = ep
            router = g.routers.get(env_id)
            if router is None:
                router = g.routers[env_id] = Router()
            router.add(ep.method, ep.req_uri, ep.prefix, ep)


def compile_snapshot(index: Index, services: Services, version: str | None = None,
                     chain: Chain | None = None) -> Runtime:
    """Compile a validated index; raises SnapshotError when compile-time checks fail."""
    chain = chain or default_chain.DEFAULT
    t0 = time.perf_counter()
    build = BuildContext(index=index, services=services)
    runtime = Runtime(version or str(index.doc.get("version") or new_version()), (RELEASE_ENV_ID, RELEASE_ENV_NAME))
    for env in index.by_id["environments"].values():
        runtime.env_ids[str(env["name"]).upper()] = (str(env["id"]), str(env["name"]))
    response_sets = {rid: ResponseSet.compile(res) for rid, res in index.by_id["responses"].items()}
    _groups(index, runtime, response_sets, build)
    _endpoints(index, runtime, response_sets, build, chain)
    runtime.pre_route = tuple(h for h in (pre(build) for pre in chain.pre_route) if h is not None)
    runtime.tls_domains = tls.listener_domains(build)
    runtime.log_fields = custom_log.custom_fields(index)
    if build.problems:
        raise SnapshotError(build.problems)
    runtime.counts = {
        "groups": len(runtime.groups),
        "environments": len(index.by_id["environments"]),
        "apis": len(index.by_id["apis"]),
        "publishes": len(runtime.endpoints),
    }
    runtime.compile_ms = (time.perf_counter() - t0) * 1000.0
    remember_index(runtime, index)
    return runtime


_seq = [0]


def new_version() -> str:
    _seq[0] += 1
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f"-{_seq[0]}"
