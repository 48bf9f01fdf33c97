"""Plug-in records and bindings (seed 002 §3.27; spec 02 §8.1): schemas, content parsing, binding resolution.

Role in the pipeline: config-load time only.

* Owns the ``plugins`` and ``plugin_bindings`` collections (:data:`COLLECTIONS`, merged by the chain).
* ``plugin_content`` is a JSON document in a string (vendor shape, ≤ 65535 chars) or an already-decoded
  object. A string that is double-escaped the way the vendor's printed examples are (``{\\"a\\": 1}``) is
  unescaped once before giving up. The decoded object is checked by the type's validator, which returns the
  compiled configuration (or None after appending ``path: reason`` problems).
* A binding is ``{id, plugin_id, publish_id}`` (00-snapshot) or the vendor's ``{plugin_id, env_id, api_id}``
  (``api_ids`` list accepted too, as in the bind call T3-1573); env/api pairs are resolved through the
  publication. One plug-in per (API, environment, ``plugin_type``) — two bindings of the same type are an
  error (the vendor replaces; a snapshot must say which one it means).
* The implemented types are handed in (:func:`make_check`, called by :mod:`gateway.pipeline.chain` with each
  type's validator). A type that is known to the vendor but not implemented by this build is rejected with a
  clear message (``UNSUPPORTED``), never ignored.

The check records the compiled bindings on the validated index (``Index.derived``); :func:`bound_plugin` is
what the stage builders call per publication: a dict probe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.snapshot.schema import Field, L, Obj, S
from gateway.snapshot.validate import Check, Index, unknown_environment, unknown_publication

VENDOR_TYPES = ("cors", "set_resp_headers", "kafka_log", "breaker", "rate_limit", "third_auth")
MAX_CONTENT = 65535

# type -> reason shown when a plug-in of that type is present (types this build does not implement).
UNSUPPORTED: dict[str, str] = {
}

_OUT = frozenset({"create_time", "update_time", "remark", "project_id", "plugin_attach_id", "attached_time"})

PLUGIN = Obj(
    {
        "id": S(min_len=1, max_len=64),
        "plugin_id": S(min_len=1, max_len=64),  # the vendor's name of the id
        # T3-1530 says letters, digits, "_" (responses also "-"); the vendor's own examples use spaces: accepted
        "plugin_name": S(True, min_len=3, max_len=255, pattern=r"[A-Za-z][A-Za-z0-9_\- ]*"),
        "plugin_type": S(True, enum=VENDOR_TYPES),
        "plugin_scope": S(max_len=64),  # documented enum: global; examples also use "app" — informational
        "plugin_content": Field("any", required=True),
        "remark": S(max_len=255),
    },
    output_only=_OUT,
)

PLUGIN_BINDING = Obj(
    {
        "id": S(min_len=1, max_len=64),
        "plugin_id": S(True, min_len=1, max_len=64),
        "publish_id": S(min_len=1),
        "env_id": S(min_len=1),
        "api_id": S(min_len=1),
        "api_ids": L(S(min_len=1), min_len=1, max_len=500),
    },
    output_only=_OUT | frozenset({"plugin_name", "plugin_type", "plugin_scope", "plugin_content", "env_name",
                                  "api_name"}),
)

COLLECTIONS = {"plugins": (PLUGIN, "id"), "plugin_bindings": (PLUGIN_BINDING, "id")}

# validator(content, path, problems, index) -> compiled config, or None when problems were appended
Validator = Callable[[dict[str, Any], str, list[str], Index], Any]


@dataclass(frozen=True, slots=True)
class BoundPlugin:
    """One plug-in bound to one publication, with its compiled configuration."""

    id: str
    name: str
    type: str
    config: Any
    path: str  # "plugins[3]" for compile-time problems


def parse_content(raw: Any, path: str, problems: list[str]) -> dict[str, Any] | None:
    """The decoded ``plugin_content`` object, or None (problem appended)."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        problems.append(f"{path}: must be a JSON object or a string holding one")
        return None
    if len(raw) > MAX_CONTENT:
        problems.append(f"{path}: length must be at most {MAX_CONTENT}")
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        value = _unescaped(raw)
        if value is None:
            problems.append(f"{path}: is not valid JSON ({str(exc).split(':')[0]})")
            return None
    if not isinstance(value, dict):
        problems.append(f"{path}: must hold a JSON object")
        return None
    return value


def _unescaped(raw: str) -> Any:
    """The vendor's double-escaped examples (``{\\"k\\": 1}``): unescape once and retry."""
    if '\\"' not in raw:
        return None
    try:
        text = json.loads('"' + raw.replace('"', '\\"').replace('\\\\"', '\\"') + '"')
        return orjson.loads(text)
    except (ValueError, orjson.JSONDecodeError):
        return None


_DERIVED_KEY = "plugins"
ByPublication = dict[tuple[str, str], dict[str, BoundPlugin]]
# Checks over the resolved bindings: (index, {(api_id, env_id): {type: BoundPlugin}}, problems) -> None
PublicationCheck = Callable[[Index, ByPublication, list[str]], None]


def bound_plugin(index: Index, api_id: str, env_id: str, plugin_type: str) -> BoundPlugin | None:
    """The plug-in of ``plugin_type`` bound to the publication (api_id, env_id), if any."""
    by_pub: ByPublication = index.derived.get(_DERIVED_KEY) or {}
    found = by_pub.get((api_id, env_id))
    return found.get(plugin_type) if found else None


def make_check(types: dict[str, Validator], publication_checks: tuple[PublicationCheck, ...] = ()) -> Check:
    """The snapshot check of plug-in records and bindings for the implemented ``types``."""

    def check_plugins(index: Index, problems: list[str]) -> None:
        _check(index, problems, types, publication_checks)

    return check_plugins


def _check(index: Index, problems: list[str], types: dict[str, Validator],
           publication_checks: tuple[PublicationCheck, ...]) -> None:
    compiled = _compile_records(index, problems, types)
    by_publication = _resolve_bindings(index, problems, compiled)
    for check in publication_checks:
        check(index, by_publication, problems)
    index.derived[_DERIVED_KEY] = by_publication


def _compile_records(index: Index, problems: list[str], types: dict[str, Validator]) -> dict[str, BoundPlugin]:
    """Each plug-in record checked (ids, names, type) and its content compiled by its type's validator."""
    compiled: dict[str, BoundPlugin] = {}
    names: dict[str, int] = {}
    ids: dict[str, int] = {}
    by_id = index.by_id.setdefault("plugins", {})
    for i, p in enumerate(index.items("plugins")):
        path = f"plugins[{i}]"
        pid_a, pid_b = p.get("id"), p.get("plugin_id")
        if pid_a is None and pid_b is None:
            problems.append(f"{path}.id: is required (or plugin_id)")
            continue
        if pid_a is not None and pid_b is not None and pid_a != pid_b:
            problems.append(f"{path}.plugin_id: differs from id {pid_a!r}")
            continue
        pid = str(pid_a if pid_a is not None else pid_b)
        if pid in ids:
            problems.append(f"{path}.plugin_id: duplicate plug-in id {pid!r} (first at plugins[{ids[pid]}])")
            continue
        ids[pid] = i
        by_id[pid] = p
        name = p.get("plugin_name")
        if isinstance(name, str):
            if name in names:
                problems.append(f"{path}.plugin_name: duplicate plug-in name {name!r} "
                                f"(first at plugins[{names[name]}])")
            names.setdefault(name, i)
        ptype = p.get("plugin_type")
        if not isinstance(ptype, str) or ptype not in VENDOR_TYPES:
            continue  # the schema already reported it
        if ptype not in types:
            problems.append(f"{path}.plugin_type: {UNSUPPORTED.get(ptype) or ptype + ' plug-ins are not supported'}")
            continue
        before = len(problems)
        content = parse_content(p.get("plugin_content"), f"{path}.plugin_content", problems)
        if content is None:
            continue
        config = types[ptype](content, f"{path}.plugin_content", problems, index)
        if config is None or len(problems) > before:
            continue
        compiled[pid] = BoundPlugin(pid, str(name), ptype, config, path)
    return compiled


def _resolve_bindings(index: Index, problems: list[str], compiled: dict[str, BoundPlugin]) -> ByPublication:
    """The bindings resolved to publications: (api_id, env_id) -> {type: the compiled plug-in}."""
    by_id = index.by_id["plugins"]
    by_publication: ByPublication = {}
    where: dict[tuple[str, str, str], str] = {}
    for i, b in enumerate(index.items("plugin_bindings")):
        path = f"plugin_bindings[{i}]"
        pid = str(b.get("plugin_id"))
        if pid not in by_id:
            problems.append(f"{path}.plugin_id: unknown plug-in {pid!r}")
            continue
        for api_id, env_id, sub in _publications(index, b, path, problems):
            plugin = by_id[pid]
            ptype = str(plugin.get("plugin_type"))
            key = (api_id, env_id, ptype)
            if key in where:
                problems.append(f"{sub}: API {api_id!r} already has a {ptype} plug-in in environment {env_id!r} "
                                f"({where[key]}); one plug-in per type")
                continue
            where[key] = sub
            bp = compiled.get(pid)
            if bp is not None:
                by_publication.setdefault((api_id, env_id), {})[ptype] = bp
    return by_publication


def _publications(index: Index, b: dict[str, Any], path: str,
                  problems: list[str]) -> list[tuple[str, str, str]]:
    """(api_id, env_id, problem path) of each publication a binding names."""
    pub_id = b.get("publish_id")
    if pub_id is not None:
        if b.get("env_id") is not None or b.get("api_id") is not None or b.get("api_ids") is not None:
            problems.append(f"{path}: give either publish_id or env_id + api_id(s), not both")
            return []
        pub = index.publish_by_id.get(str(pub_id))
        if pub is None:
            problems.append(f"{path}.publish_id: {unknown_publication(index, pub_id)}")
            return []
        return [(str(pub.get("api_id")), str(pub.get("env_id")), path)]
    env_id = b.get("env_id")
    if env_id is None:
        problems.append(f"{path}: publish_id or env_id + api_id is required")
        return []
    api_ids: list[tuple[str, str]] = []
    if b.get("api_id") is not None:
        api_ids.append((str(b["api_id"]), f"{path}.api_id"))
    for j, a in enumerate(b.get("api_ids") or []):
        api_ids.append((str(a), f"{path}.api_ids[{j}]"))
    if not api_ids:
        problems.append(f"{path}.api_id: is required with env_id")
        return []
    if str(env_id) not in index.by_id["environments"]:
        problems.append(f"{path}.env_id: {unknown_environment(index, env_id)}")
        return []
    out = []
    for api_id, sub in api_ids:
        published = any(str(p.get("env_id")) == str(env_id) for p in index.publishes_by_api.get(api_id, []))
        if not published:
            # APIG.3707: only published APIs can take plug-ins
            problems.append(f"{sub}: API {api_id!r} is not published in environment {env_id!r}")
            continue
        out.append((api_id, str(env_id), sub))
    return out
