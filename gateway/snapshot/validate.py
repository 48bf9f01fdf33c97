"""Validate a whole snapshot: field schemas, references, env variables, route conflicts.

Role in the pipeline: config-load time only, before compilation. :func:`validate` returns an
:class:`Index` (every collection keyed by id) or raises :class:`SnapshotError` with every problem as
``path.to.field: reason``. A document that fails here never reaches the compiler, so nothing
half-loaded can serve.

The caller hands in the :class:`Schema`: the collections (core ones refined by the stages that own them)
and the stages' checks, each a function ``(index, problems) -> None`` run in order after the core checks.
:mod:`gateway.pipeline.chain` assembles the full schema; this module never imports a stage.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.core.errors import RESPONSE_TYPE_ALIASES, RESPONSE_TYPES, SnapshotError
from gateway.snapshot.collections import (
    COLLECTIONS,
    RELEASE_ENV_ID,
    RELEASE_ENV_NAME,
    RESPONSE_ENTRY,
    TOP_LEVEL_SCALARS,
    served_definition,
)
from gateway.snapshot.schema import Obj, check, check_field, check_unique_ids, did_you_mean, fast_check

ENV_VAR_RX = re.compile(r"#([A-Za-z][A-Za-z0-9_-]{2,31})#")
PATH_PARAM_RX = re.compile(r"\{([^{}/]+?)\+?\}")


@dataclass
class Index:
    """The validated document with each collection keyed by its id (and a few derived lookups)."""

    doc: dict[str, Any]
    by_id: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    env_by_name: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (group_id, env_id) -> {variable_name: value}
    variables: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # api_id -> [publish records]
    publishes_by_api: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    publish_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    # what checks derive while validating and compile reads: "plugins" -> bound plug-ins per publication
    # (gateway.snapshot.plugins), "custom_log" -> log fields. Written only during validate(); read-only after.
    derived: dict[str, Any] = field(default_factory=dict)
    # collection -> (the document's list, its objects): ``items`` is asked for the same collection by every check
    _items: dict[str, tuple[list[Any], int, list[dict[str, Any]]]] = field(default_factory=dict, repr=False,
                                                                           compare=False)

    def items(self, collection: str) -> list[dict[str, Any]]:
        """The objects of a collection, in document order (do not modify the list)."""
        value = self.doc.get(collection) or []
        hit = self._items.get(collection)
        if hit is not None and hit[0] is value and hit[1] == len(value):
            return hit[2]
        out = [x for x in value if isinstance(x, dict)]
        if len(value) > 64:
            self._items[collection] = (value, len(value), out)
        return out

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        return self.by_id.get(collection, {}).get(key)


Check = Callable[[Index, list[str]], None]


@dataclass(frozen=True)
class Schema:
    """What a snapshot may hold: collection -> (element schema, identifying field), plus the checks
    (``(index, problems) -> None``) that run after the core ones, in order."""

    collections: Mapping[str, tuple[Obj, str | None]]
    checks: tuple[Check, ...] = ()


# The core collections alone (stage-owned collections are open objects with an id; no stage checks).
CORE = Schema(COLLECTIONS)


def unknown_environment(index: Index, env_id: Any) -> str:
    """``unknown environment 'RELEASE' (did you mean ...)``: environments are referenced by id, not by name."""
    envs = index.by_id.get("environments", {})
    by_name = next((eid for eid, e in envs.items() if str(e.get("name", "")).upper() == str(env_id).upper()), None)
    if by_name is not None:
        hint = f" (did you mean {by_name!r}? environments are referenced by id; {env_id!r} is the name of {by_name!r})"
    else:
        hint = did_you_mean(env_id, envs) or f" (known environment ids: {', '.join(sorted(envs))})"
    return f"unknown environment {env_id!r}{hint}"


def unknown_publication(index: Index, publish_id: Any) -> str:
    """``unknown publication 'x'``: which publication is missing, and the likely one meant."""
    listed = {str(p.get("publish_id")) for p in index.items("publishes") if p.get("publish_id") is not None}
    if str(publish_id) in listed:
        return f"publication {publish_id!r} is not usable: its publishes entry has a problem (reported above)"
    hint = did_you_mean(publish_id, listed) if listed else " (the snapshot has no publishes)"
    return f"unknown publication {publish_id!r}: no publishes entry has this publish_id{hint}"


def _where(collection: str, items: list[dict[str, Any]], key: str, value: Any) -> str:
    for i, item in enumerate(items):
        if item.get(key) == value:
            return f"{collection}[{i}]"
    return collection


def validate(doc: dict[str, Any], schema: Schema = CORE, only: set[int] | None = None) -> Index:
    """Check ``doc`` against ``schema``; its index, or SnapshotError listing every problem.

    ``only``: the ids (``id()``) of the elements whose own fields are checked; the others come unchanged from
    a document validated before (an incremental change's partial document). References, uniqueness and the
    cross-element checks cover every element either way."""
    collections = schema.collections
    problems: list[str] = []
    for key, value in doc.items():
        if key in TOP_LEVEL_SCALARS:
            check_field(TOP_LEVEL_SCALARS[key], value, key, problems)
        elif key not in collections:
            problems.append(f"{key}: unknown top-level key")
        elif value is not None and not isinstance(value, list):
            problems.append(f"{key}: must be a list")
    if problems:
        raise SnapshotError(problems)

    for name, (obj, id_key) in collections.items():
        items = doc.get(name) or []
        valid = fast_check(obj)  # the yes/no predicate; check() walks a failing element for the messages
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append(f"{name}[{i}]: must be an object")
            elif (only is None or id(item) in only) and not valid(item):
                check(obj, item, f"{name}[{i}]", problems)
        if id_key:
            check_unique_ids(items, id_key, name, problems)

    index = Index(doc=doc)
    for name, (_obj, id_key) in collections.items():
        if id_key:
            index.by_id[name] = {
                str(x[id_key]): x for x in index.items(name) if x.get(id_key) is not None
            }
    envs = index.by_id["environments"]
    if RELEASE_ENV_ID not in envs:
        envs[RELEASE_ENV_ID] = {"id": RELEASE_ENV_ID, "name": RELEASE_ENV_NAME}
    for i, env in enumerate(index.items("environments")):
        env_name: Any = env.get("name")
        if isinstance(env_name, str) and env_name.upper() in {e.upper() for e in index.env_by_name}:
            problems.append(f"environments[{i}].name: duplicate environment name {env_name!r}")
        if env.get("id") != RELEASE_ENV_ID and isinstance(env_name, str) and env_name.upper() == RELEASE_ENV_NAME:
            problems.append(f"environments[{i}].name: RELEASE is reserved for {RELEASE_ENV_ID}")
    for env in envs.values():
        if isinstance(env.get("name"), str):
            index.env_by_name.setdefault(env["name"].upper(), env)

    _check_groups(index, problems)
    _check_variables(index, problems)
    _check_responses(index, problems)
    _check_publishes(index, problems)
    _check_published_copies(index, collections["apis"][0], problems, only)
    _check_apis(index, problems, only)
    for extra in schema.checks:
        extra(index, problems)
    _check_copies_with(index, schema.checks, problems)
    if problems:
        raise SnapshotError(problems)
    return index


def _check_groups(index: Index, problems: list[str]) -> None:
    hosts: dict[str, str] = {}
    for i, g in enumerate(index.items("groups")):
        names = [g.get("sl_domain"), *list(g.get("sl_domains") or [])]
        names += [d.get("domain") for d in g.get("url_domains") or [] if isinstance(d, dict)]
        for host in names:
            if not isinstance(host, str) or not host:
                continue
            key = host.lower()
            if key in hosts and hosts[key] != g.get("id"):
                problems.append(f"groups[{i}]: domain {host!r} is already used by group {hosts[key]!r}")
            hosts[key] = str(g.get("id"))
        rid = g.get("response_id")
        if rid and rid not in index.by_id["responses"]:
            problems.append(f"groups[{i}].response_id: unknown response {rid!r}")


def _check_variables(index: Index, problems: list[str]) -> None:
    for i, v in enumerate(index.items("env_variables")):
        gid, eid = v.get("group_id"), v.get("env_id")
        if gid not in index.by_id["groups"]:
            problems.append(f"env_variables[{i}].group_id: unknown group {gid!r}")
        if eid not in index.by_id["environments"]:
            problems.append(f"env_variables[{i}].env_id: {unknown_environment(index, eid)}")
        scope = index.variables.setdefault((str(gid), str(eid)), {})
        name = v.get("variable_name")
        if name in scope:
            problems.append(f"env_variables[{i}].variable_name: duplicate {name!r} in this group and environment")
        scope[str(name)] = str(v.get("variable_value"))


def _check_responses(index: Index, problems: list[str]) -> None:
    for i, r in enumerate(index.items("responses")):
        entries = r.get("responses") or {}
        if not isinstance(entries, dict):
            continue
        for type_name, entry in entries.items():
            path = f"responses[{i}].responses.{type_name}"
            canonical = RESPONSE_TYPE_ALIASES.get(type_name, type_name)
            if canonical not in RESPONSE_TYPES:
                problems.append(f"{path}: unknown response type")
            elif not isinstance(entry, dict):
                problems.append(f"{path}: must be an object")
            else:
                check(RESPONSE_ENTRY, entry, path, problems)
                if entry.get("status") == 444:
                    problems.append(f"{path}.status: 444 is not allowed")
        gid = r.get("group_id")
        if gid and gid not in index.by_id["groups"]:
            problems.append(f"responses[{i}].group_id: unknown group {gid!r}")


def _check_publishes(index: Index, problems: list[str]) -> None:
    seen: set[tuple[str, str]] = set()
    apis, envs = index.by_id["apis"], index.by_id["environments"]
    by_api, by_id = index.publishes_by_api, index.publish_by_id
    for i, p in enumerate(index.items("publishes")):
        aid, eid = p.get("api_id"), p.get("env_id")
        if aid not in apis:
            problems.append(f"publishes[{i}].api_id: unknown API {aid!r}")
            continue
        if eid not in envs:
            problems.append(f"publishes[{i}].env_id: {unknown_environment(index, eid)}")
            continue
        key = (str(aid), str(eid))
        if key in seen:
            problems.append(f"publishes[{i}]: API {aid!r} is published twice in environment {eid!r}")
        seen.add(key)
        pubs = by_api.get(key[0])
        if pubs is None:
            by_api[key[0]] = [p]
        else:
            pubs.append(p)
        by_id[str(p.get("publish_id"))] = p


def _copies(index: Index) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(position, publication, its published copy) of every publication that carries ``api_definition``."""
    pubs = index.items("publishes")
    hit = index.derived.get(_COPIES)
    if hit is not None and hit[0] is pubs:
        return hit[1]
    out = [(i, p, p["api_definition"]) for i, p in enumerate(pubs) if isinstance(p.get("api_definition"), dict)]
    index.derived[_COPIES] = (pubs, out)
    return out


_COPIES = "validate.copies"  # Index.derived key: the publications with their own copy, computed once


def _check_published_copies(index: Index, api_schema: Obj, problems: list[str], only: set[int] | None = None) -> None:
    """A publication's own copy of the API (``api_definition``) is checked like an ``apis`` element; it
    belongs to the published API (same ``id`` and ``group_id``). With ``only``, the copies of publications and
    APIs named there."""
    for i, p, defn in _copies(index):
        api = index.by_id["apis"].get(str(p.get("api_id")))
        if only is not None and id(p) not in only and id(api) not in only:
            continue  # an unchanged publication of an unchanged API: checked when it entered
        path = f"publishes[{i}].api_definition"
        check(api_schema, defn, path, problems)
        if api is None:
            continue
        if defn.get("id") != api.get("id"):
            problems.append(f"{path}.id: must be {api.get('id')!r}, the id of the published API")
        if defn.get("group_id") != api.get("group_id"):
            problems.append(f"{path}.group_id: must be {api.get('group_id')!r}, the group of the published API "
                            "(a published copy cannot move the API to another group)")
        _check_api_fields(index, defn, path, problems)
        _check_api_params(defn, path, problems)


def _check_copies_with(index: Index, checks: tuple[Check, ...], problems: list[str]) -> None:
    """The stages' checks on the published copies: run on a shadow index whose ``apis`` are the copies, and
    their ``apis[k]`` problems reported at ``publishes[i].api_definition`` (nothing runs without copies)."""
    copies = _copies(index)
    if not copies or not checks:
        return
    shadow = copy.copy(index)
    shadow.doc = {**index.doc, "apis": [defn for _, _, defn in copies]}
    shadow.by_id = dict(index.by_id)
    shadow.derived = {}
    found: list[str] = []
    for extra in checks:
        extra(shadow, found)
    rx = re.compile(r"apis\[(\d+)\]")
    for problem in found:
        m = rx.match(problem)
        if m is not None and int(m.group(1)) < len(copies):
            problems.append(f"publishes[{copies[int(m.group(1))][0]}].api_definition{problem[m.end():]}")


def _backend_strings(api: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, value) of every field in which #env# variables are substituted (and that names one)."""
    out: list[tuple[str, str]] = []
    b = api.get("backend_api") or {}
    for key in ("url_domain", "req_uri"):
        if isinstance(b.get(key), str) and "#" in b[key]:
            out.append((f"backend_api.{key}", b[key]))
    for j, pol in enumerate(api.get("policy_https") or []):
        for key in ("url_domain", "req_uri"):
            if isinstance(pol, dict) and isinstance(pol.get(key), str) and "#" in pol[key]:
                out.append((f"policy_https[{j}].{key}", pol[key]))
    for group in ("backend_params",):
        for j, bp in enumerate(api.get(group) or []):
            if isinstance(bp, dict) and bp.get("origin") == "CONSTANT" and isinstance(bp.get("value"), str) \
                    and "#" in bp["value"]:
                out.append((f"{group}[{j}].value", bp["value"]))
    return out


def _check_apis(index: Index, problems: list[str], only: set[int] | None = None) -> None:
    """Every API's own checks, and route conflicts. With ``only``, the own checks run for the APIs named there
    (an incremental change names every API whose checks could give another answer: changed, with a changed
    publication or binding, or in a group whose variables changed); route conflicts are checked for all."""
    routes: dict[tuple[str, str, str, str, str], str] = {}
    copies = {id(p): i for i, p, _ in _copies(index)}  # publication -> its position, for those with a copy
    for i, api in enumerate(index.items("apis")):
        path = f"apis[{i}]"
        full = only is None or id(api) in only
        if full:
            _check_api_fields(index, api, path, problems)
            _check_api_params(api, path, problems)
        _check_api_publications(index, api, path, routes, copies, problems, full)


def _check_api_fields(index: Index, api: dict[str, Any], path: str, problems: list[str]) -> None:
    """References and the fields one backend type or auth type requires."""
    gid = api.get("group_id")
    if gid not in index.by_id["groups"]:
        problems.append(f"{path}.group_id: unknown group {gid!r}")
    rid = api.get("response_id")
    if rid and rid not in index.by_id["responses"]:
        problems.append(f"{path}.response_id: unknown response {rid!r}")
    btype = api.get("backend_type")
    if btype == "HTTP" and not isinstance(api.get("backend_api"), dict):
        problems.append(f"{path}.backend_api: is required when backend_type is HTTP")
    if btype == "MOCK" and not isinstance(api.get("mock_info"), dict):
        problems.append(f"{path}.mock_info: is required when backend_type is MOCK")
    if btype == "FUNCTION" and not isinstance(api.get("func_info"), dict):
        problems.append(f"{path}.func_info: is required when backend_type is FUNCTION")
    if btype == "GRPC" and not isinstance(api.get("backend_api"), dict):
        problems.append(f"{path}.backend_api: is required when backend_type is GRPC")
    if api.get("auth_type") == "AUTHORIZER" and not api.get("authorizer_id"):
        problems.append(f"{path}.authorizer_id: is required when auth_type is AUTHORIZER")
    backend = api.get("backend_api")
    if isinstance(backend, dict):
        if backend.get("vpc_channel_status") == 1:
            if not backend.get("vpc_channel_info"):
                problems.append(f"{path}.backend_api.vpc_channel_info: is required when vpc_channel_status is 1")
        elif not backend.get("url_domain"):
            problems.append(f"{path}.backend_api.url_domain: is required without a VPC channel")


def _check_api_params(api: dict[str, Any], path: str, problems: list[str]) -> None:
    """Request parameters against the URI; backend parameters against the request parameters."""
    backend = api.get("backend_api")
    # without any parameter list, only the backend URI's {parameters} can lack a value
    if not (api.get("req_params") or api.get("backend_params") or api.get("policy_https") or api.get("policy_mocks")
            or api.get("policy_functions")) and (not isinstance(backend, dict)
                                                 or "{" not in str(backend.get("req_uri") or "")):
        return
    req_params = [p for p in api.get("req_params") or [] if isinstance(p, dict)]
    uri: str = api["req_uri"] if isinstance(api.get("req_uri"), str) else ""
    uri_params = set(PATH_PARAM_RX.findall(uri))
    names = {(p.get("location"), p.get("name")) for p in req_params}
    for j, p in enumerate(req_params):
        if p.get("location") == "PATH" and p.get("name") not in uri_params:
            problems.append(f"{path}.req_params[{j}].name: PATH parameter {p.get('name')!r} is not in req_uri")
        pname = str(p.get("name", "")).lower()
        if pname == "x-stage" or pname.startswith(("x-apig-", "x-sdk-")):
            problems.append(f"{path}.req_params[{j}].name: {p.get('name')!r} is a reserved name")
    req_names = {p.get("name") for p in req_params}
    param_lists = [("backend_params", api.get("backend_params"))]
    for key in ("policy_https", "policy_mocks", "policy_functions"):
        for j, pol in enumerate(api.get(key) or []):
            if isinstance(pol, dict):
                param_lists.append((f"{key}[{j}].backend_params", pol.get("backend_params")))
    for lpath, plist in param_lists:
        for j, bp in enumerate(plist or []):
            if not isinstance(bp, dict):
                continue
            if bp.get("origin") == "REQUEST" and bp.get("value") not in req_names:
                problems.append(f"{path}.{lpath}[{j}].value: no request parameter named {bp.get('value')!r}")
    if isinstance(backend, dict) and isinstance(backend.get("req_uri"), str):
        backend_path = {bp.get("name") for bp in api.get("backend_params") or []
                        if isinstance(bp, dict) and bp.get("location") == "PATH"}
        for name in PATH_PARAM_RX.findall(ENV_VAR_RX.sub("", backend["req_uri"])):
            if name not in backend_path and ("PATH", name) not in names and name not in uri_params:
                problems.append(f"{path}.backend_api.req_uri: path parameter {{{name}}} has no value")


def _check_api_publications(index: Index, api: dict[str, Any], path: str,
                            routes: dict[tuple[str, str, str, str, str], str], copies: dict[int, int],
                            problems: list[str], full: bool = True) -> None:
    """Per publication (the definition it serves): every #variable# has a value, and no two APIs share a
    route in one environment."""
    gid = str(api.get("group_id"))
    publishes = index.publishes_by_api.get(str(api.get("id")), [])
    envs = index.by_id["environments"]
    for pub in publishes:
        served = served_definition(api, pub)
        uri: str = served["req_uri"] if isinstance(served.get("req_uri"), str) else ""
        eid = str(pub.get("env_id"))
        strings = _backend_strings(served) if full and (
            served.get("backend_api") or served.get("policy_https") or served.get("backend_params")) else ()
        if strings:
            scope = index.variables.get((gid, eid), {})
            for fpath, value in strings:
                for var in ENV_VAR_RX.findall(value):
                    if var not in scope:
                        env_name = envs.get(eid, {}).get("name", eid)
                        problems.append(f"{_served_at(path, served, api, pub, copies)}.{fpath}: variable #{var}# has "
                                        f"no value in environment {env_name!r}")
        template = PATH_PARAM_RX.sub("{}", uri) if "{" in uri else uri
        route_key = (gid, eid, str(served.get("req_method")), template.rstrip("/") or "/",
                     str(served.get("match_mode") or "NORMAL"))
        if route_key in routes:
            env_name = envs.get(eid, {}).get("name", eid)
            problems.append(f"{_served_at(path, served, api, pub, copies)}: same method, path and match mode as API "
                            f"{routes[route_key]!r} in environment {env_name!r}")
        routes[route_key] = str(api.get("id"))


def _served_at(path: str, served: dict[str, Any], api: dict[str, Any], pub: dict[str, Any],
               copies: dict[int, int]) -> str:
    """Where a publication's served definition is in the document (for a problem message)."""
    return path if served is api else f"publishes[{copies.get(id(pub), 0)}].api_definition"
