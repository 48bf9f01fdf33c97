"""Incremental compile: a per-API change rebuilds only what it touches, the rest is reused.

Role in the pipeline: config-load time only. Given the active :class:`Runtime` and a
:class:`gateway.snapshot.delta.ChangePlan`, :func:`compile_change` validates the plan's partial document
(the changed records and everything they reference), compiles the publications of the changed APIs against
it (walking the same chain as :func:`gateway.compiler.compile_snapshot`), and assembles a new Runtime that
shares every other compiled object with the active one:

* endpoints: the compiled :class:`Endpoint` of every publication the change did not touch is reused as is
  (the same object); the touched ones are compiled again. What an endpoint depends on (its API, its
  publications, the records bound to them and the policies they name, the environment variables of its
  group, the group) is exactly what :mod:`gateway.snapshot.delta` puts in the partial document, so the
  endpoint it compiles is the one a full compile would build;
* routers and group runtimes: for the groups the change touches, a new router per environment made from the
  old one with the changed APIs' routes taken out and put back (only the touched paths are copied); shared
  otherwise; host table and default group re-pointed at the new group runtimes;
* response sets, environments: shared (a change to them is not a per-API change).

The result answers every request exactly like ``compile_snapshot`` of the whole new document
(tests/e2e/admin/test_incremental_property.py checks it on random sequences of v2 changes).
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from gateway.compiler.compiler import compile_endpoint, index_of, new_version, remember_index, validate
from gateway.core.errors import SnapshotError
from gateway.model.responses import DEFAULT_RESPONSES, ResponseSet
from gateway.model.routing import Router
from gateway.model.runtime import Endpoint, GroupRuntime, Runtime
from gateway.pipeline.spec import BuildContext, Chain, EndpointDraft
from gateway.snapshot.collections import served_definition
from gateway.snapshot.delta import ChangePlan
from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from gateway.model.services import Services


def _patched_index(old: Index, doc: dict[str, Any], plan: ChangePlan) -> Index:
    """The whole new document's index, derived from the active one: the changed collections' lookups come from
    the plan's :class:`DocIndex` (read at request time by a few features; the partial document was validated)."""
    index = copy.copy(old)
    index.doc = doc
    index.by_id = dict(old.by_id)
    ix = plan.index
    for name in plan.collections:
        if name in ix.by_key and (name in index.by_id or name != "publishes"):
            index.by_id[name] = ix.by_key[name]
    if "publishes" in plan.collections:
        index.publishes_by_api = ix.pubs_by_api
        index.publish_by_id = ix.by_key.get("publishes", {})
    if "env_variables" in plan.collections:
        index.variables = {}
        for v in doc.get("env_variables") or []:
            if isinstance(v, dict):
                index.variables.setdefault((str(v.get("group_id")), str(v.get("env_id"))), {})[
                    str(v.get("variable_name"))] = str(v.get("variable_value"))
    return index


def compile_change(current: Runtime, doc: dict[str, Any], plan: ChangePlan, services: Services,
                   version: str | None = None, chain: Chain | None = None) -> Runtime:
    """The runtime of ``doc`` built from ``current`` (raises SnapshotError when the partial document fails:
    the caller validates the whole document then, for the exact problem paths)."""
    t0 = time.perf_counter()
    old_index = index_of(current)
    part = validate(plan.partial, chain, plan.fresh) if plan.partial else old_index
    build = BuildContext(index=part, services=services)
    index = _patched_index(old_index, doc, plan) if plan.collections else old_index
    runtime = Runtime(version or str(doc.get("version") or new_version()), current.default_env)
    runtime.env_ids = current.env_ids
    # snapshot-wide tables: a per-API change never changes what they are built from (signs, features, groups)
    runtime.pre_route, runtime.tls_domains, runtime.log_fields = current.pre_route, current.tls_domains, \
        current.log_fields
    env_ids = [env_id for env_id, _ in current.env_ids.values()]
    fresh: dict[tuple[str, str], Endpoint] = {}  # the recompiled endpoints
    response_sets: dict[str, ResponseSet] = {}
    positions = {id(a): i for i, a in enumerate(part.items("apis"))}
    for api_id in plan.apis:
        api = part.by_id["apis"].get(api_id)
        if api is None:
            continue  # deleted
        gid = str(api["group_id"])
        group = part.by_id["groups"][gid]
        g_old = current.groups.get(gid)
        group_responses = g_old.responses if g_old is not None else _responses(part, group.get("response_id"),
                                                                                response_sets)
        for pub in part.publishes_by_api.get(api_id, []):
            env_id = str(pub["env_id"])
            env = part.by_id["environments"][env_id]
            served = served_definition(api, pub)  # the publication's own published copy, if it has one
            rid = served.get("response_id")
            responses = _responses(part, rid, response_sets) if rid else group_responses
            draft = EndpointDraft(
                api=served, path=f"apis[{positions.get(id(api), 0)}]", group=group, env_id=env_id,
                env_name=str(env["name"]), publish_id=str(pub["publish_id"]),
                variables=part.variables.get((gid, env_id), {}),
            )
            ep = compile_endpoint(draft, build, responses, chain)
            if ep is not None:
                fresh[(api_id, env_id)] = ep
    if build.problems:
        raise SnapshotError(build.problems)
    # copy, then overwrite in place and delete only what is gone: a dictionary without deleted slots is copied
    # by the next change in one block (a pop-then-insert per change would make every later copy re-hash)
    endpoints = dict(current.endpoints)
    endpoints.update(fresh)
    for api_id in plan.apis:
        for env_id in env_ids:
            if (api_id, env_id) not in fresh:
                endpoints.pop((api_id, env_id), None)
    runtime.endpoints = endpoints
    runtime.groups = groups = _regroup(current, part, plan, endpoints, env_ids)
    runtime.hosts = {h: groups[g.id] for h, g in current.hosts.items()}
    runtime.default_group = groups[current.default_group.id] if current.default_group is not None else None
    runtime.counts = dict(current.counts, apis=len(index.by_id["apis"]), publishes=len(endpoints))
    runtime.compile_ms = (time.perf_counter() - t0) * 1000.0
    remember_index(runtime, index)
    return runtime


def _regroup(current: Runtime, part: Index, plan: ChangePlan, endpoints: dict[tuple[str, str], Endpoint],
             env_ids: list[str]) -> dict[str, GroupRuntime]:
    """Group runtimes of the groups the change touches: their routers are the old ones with the changed APIs'
    routes taken out and put back (:meth:`Router.updated` copies only the touched paths); others are shared."""
    groups = dict(current.groups)
    for gid in plan.groups:
        old = current.groups.get(gid)
        if old is None:
            continue
        grp = part.by_id["groups"][gid]
        g = GroupRuntime(str(grp["id"]), str(grp["name"]), old.responses)
        g.routers = dict(old.routers)
        for env_id in env_ids:
            removed: list[tuple[str, str, bool, Endpoint]] = []
            added: list[tuple[str, str, bool, Endpoint]] = []
            for api_id in plan.apis:
                before, after = current.endpoints.get((api_id, env_id)), endpoints.get((api_id, env_id))
                if before is after:
                    continue
                if before is not None and str(before.group_id) == gid:
                    removed.append((before.method, before.req_uri, before.prefix, before))
                if after is not None and str(after.group_id) == gid:
                    added.append((after.method, after.req_uri, after.prefix, after))
            if not removed and not added:
                continue
            router = g.routers.get(env_id)
            router = router.updated(removed, added) if router is not None else Router[Endpoint]().updated([], added)
            if router.size:
                g.routers[env_id] = router
            else:
                g.routers.pop(env_id, None)  # a full compile has no router where nothing is published
        groups[gid] = g
    return groups


def _responses(index: Index, rid: Any, cache: dict[str, ResponseSet]) -> ResponseSet:
    if not rid:
        return DEFAULT_RESPONSES
    res = cache.get(str(rid))
    if res is None:
        record = index.by_id["responses"].get(str(rid))
        res = cache[str(rid)] = ResponseSet.compile(record) if record is not None else DEFAULT_RESPONSES
    return res
