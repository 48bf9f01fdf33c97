"""Snapshot schemas and cross-reference checks for throttling and credential-quota collections.

Role in the pipeline: config-load time only. :data:`COLLECTIONS` holds the schemas
of ``throttles``, ``throttle_bindings``, ``special_throttles``, ``quotas`` and ``quota_bindings`` with the
vendor's field tables (seed 002 T3-128, T3-449/T3-451, T3-505/T3-506, T3-1781/T3-1782, T3-1835);
:func:`check_throttling` is the stage's check (spec 02 §1.2 ordering rules, §12 checklist). Both are listed
in :mod:`gateway.pipeline.chain`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.snapshot.schema import Field, I, Obj, S
from gateway.snapshot.validate import Index, unknown_publication

MAX_LIMIT = 2147483647
TIME_UNITS = ("SECOND", "MINUTE", "HOUR", "DAY")
UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
_NAME = r"[A-Za-z][A-Za-z0-9_]*"


def _limit(required: bool = False) -> Field:
    return I(required, min=1, max=MAX_LIMIT)


THROTTLE = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "name": S(True, min_len=3, max_len=64, pattern=_NAME),
        "api_call_limits": _limit(True),
        "user_call_limits": _limit(),
        "app_call_limits": _limit(),
        "ip_call_limits": _limit(),
        "time_interval": _limit(True),
        "time_unit": S(True, enum=TIME_UNITS),
        "type": I(enum=(1, 2), meanings=("counters per API and environment", "counters shared by every bound API")),
        "enable_adaptive_control": S(enum=("TRUE", "FALSE")),
        "remark": S(max_len=255),
    },
    output_only=frozenset({"bind_num", "is_included_special_throttle", "is_inclu_special_throttle", "create_time",
                           "project_id", "update_time"}),
)

THROTTLE_BINDING = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "policy_id": S(min_len=1, max_len=65),
        "strategy_id": S(min_len=1, max_len=65),  # the vendor's spelling (T3-449)
        "publish_id": S(True, min_len=1),
        "scope": I(enum=(1, 2, 3), meanings=("API", "treated as 1", "treated as 1")),  # vendor: only 1 (API)
    },
    output_only=frozenset({"apply_time", "api_id", "api_name", "env_id", "env_name", "group_name", "strategy_name"}),
)

SPECIAL_THROTTLE = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "throttle_id": S(True, min_len=1),
        "object_type": S(True, enum=("APP", "USER")),
        "object_id": S(True, min_len=1, max_len=64),
        "call_limits": _limit(True),
        "object_name": S(),
        "app_id": S(),
        "app_name": S(),
    },
    output_only=frozenset({"apply_time"}),
)

QUOTA = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "app_quota_id": S(),  # the vendor's spelling of the id; must equal ``id`` when given
        "name": S(True, min_len=3, max_len=255, pattern=_NAME),
        "call_limits": _limit(True),
        "time_unit": S(True, enum=TIME_UNITS),
        "time_interval": _limit(True),
        "reset_time": S(),
        "remark": S(max_len=255, pattern=r"[^<>]*"),
    },
    output_only=frozenset({"create_time", "bound_app_num", "project_id"}),
)

QUOTA_BINDING = Obj(
    {
        "quota_id": S(min_len=1),
        "app_quota_id": S(min_len=1),  # the vendor's spelling (T3-1835)
        "app_id": S(True, min_len=1),
    },
    output_only=frozenset({"bound_time", "id", "app_name"}),
)

COLLECTIONS = {
    "throttles": (THROTTLE, "id"),
    "throttle_bindings": (THROTTLE_BINDING, "id"),
    "special_throttles": (SPECIAL_THROTTLE, "id"),
    "quotas": (QUOTA, "id"),
    "quota_bindings": (QUOTA_BINDING, None),
}

_RESET_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S %z",
                  "%Y-%m-%dT%H:%M:%S%z")


def parse_reset_time(text: str) -> float | None:
    """Epoch seconds of a quota ``reset_time`` (UTC unless an offset is written), or None if unparsable.

    Accepts the vendor's request form ``2020-09-20 00:00:00``, its echo ``2020-09-20 00:00:00 +0000 +0000``
    and ISO-8601 forms.
    """
    raw = text.strip()
    parts = raw.split()
    if len(parts) == 4 and parts[2] == parts[3]:  # "2020-09-20 00:00:00 +0000 +0000"
        raw = " ".join(parts[:3])
    for fmt in _RESET_FORMATS:
        try:
            dt = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return None


def binding_policy_id(binding: dict[str, Any]) -> Any:
    return binding.get("policy_id") or binding.get("strategy_id")


def binding_quota_id(binding: dict[str, Any]) -> Any:
    return binding.get("quota_id") or binding.get("app_quota_id")


def _check_policies(index: Index, problems: list[str]) -> None:
    for i, t in enumerate(index.items("throttles")):
        path = f"throttles[{i}]"
        api, user, app, ip = (t.get(k) for k in ("api_call_limits", "user_call_limits", "app_call_limits",
                                                 "ip_call_limits"))
        if not isinstance(api, int):
            continue
        if isinstance(user, int) and user > api:
            problems.append(f"{path}.user_call_limits: must not exceed api_call_limits ({api})")
        if isinstance(app, int):
            cap, what = (user, "user_call_limits") if isinstance(user, int) else (api, "api_call_limits")
            if app > cap:
                problems.append(f"{path}.app_call_limits: must not exceed {what} ({cap})")
        if isinstance(ip, int) and ip > api:
            problems.append(f"{path}.ip_call_limits: must not exceed api_call_limits ({api})")


def _check_aliased_ref(b: dict[str, Any], path: str, field: str, alias: str, known: dict[str, Any], what: str,
                       problems: list[str]) -> None:
    """A reference that may be spelled ``field`` (snapshot) or ``alias`` (vendor): one of them, equal if both,
    and naming an existing ``what``."""
    value, aliased = b.get(field), b.get(alias)
    if value is None and aliased is None:
        problems.append(f"{path}.{field}: is required (or {alias})")
    elif value is not None and aliased is not None and value != aliased:
        problems.append(f"{path}.{alias}: differs from {field} {value!r}")
    else:
        ref, used = (value, field) if value is not None else (aliased, alias)
        if isinstance(ref, str) and ref not in known:
            problems.append(f"{path}.{used}: unknown {what} {ref!r}")


def _check_bindings(index: Index, problems: list[str]) -> None:
    policies = index.by_id.get("throttles", {})
    bound: dict[str, int] = {}
    for i, b in enumerate(index.items("throttle_bindings")):
        path = f"throttle_bindings[{i}]"
        _check_aliased_ref(b, path, "policy_id", "strategy_id", policies, "throttling policy", problems)
        pub = b.get("publish_id")
        if isinstance(pub, str):
            if pub not in index.publish_by_id:
                problems.append(f"{path}.publish_id: {unknown_publication(index, pub)}")
            elif pub in bound:
                problems.append(f"{path}.publish_id: publication {pub!r} already has a throttling policy "
                                f"(throttle_bindings[{bound[pub]}])")
            else:
                bound[pub] = i


def _check_specials(index: Index, problems: list[str]) -> None:
    policies = index.by_id.get("throttles", {})
    # object_id is not required to resolve: USER ids are accounts outside the snapshot, and an APP id
    # that is not (yet) in ``apps`` simply never matches a caller
    seen: dict[tuple[Any, Any, Any], int] = {}
    for i, s in enumerate(index.items("special_throttles")):
        path = f"special_throttles[{i}]"
        tid = s.get("throttle_id")
        parent = policies.get(tid) if isinstance(tid, str) else None
        if isinstance(tid, str) and parent is None:
            problems.append(f"{path}.throttle_id: unknown throttling policy {tid!r}")
        otype, oid = s.get("object_type"), s.get("object_id")
        key = (tid, otype, oid)
        if key in seen:
            problems.append(f"{path}: {otype} {oid!r} already has an excluded configuration in this policy "
                            f"(special_throttles[{seen[key]}])")
        else:
            seen[key] = i
        limit, api = s.get("call_limits"), (parent or {}).get("api_call_limits")
        if isinstance(limit, int) and isinstance(api, int) and limit > api:
            problems.append(f"{path}.call_limits: must not exceed the policy's api_call_limits ({api})")


def _check_quotas(index: Index, problems: list[str]) -> None:
    for i, q in enumerate(index.items("quotas")):
        path = f"quotas[{i}]"
        alias = q.get("app_quota_id")
        if alias is not None and alias != q.get("id"):
            problems.append(f"{path}.app_quota_id: must equal id {q.get('id')!r}")
        reset = q.get("reset_time")
        if isinstance(reset, str) and reset.strip() and parse_reset_time(reset) is None:
            problems.append(f"{path}.reset_time: not a time like '2020-09-20 00:00:00'")
    quotas = index.by_id.get("quotas", {})
    apps = index.by_id.get("apps", {})
    bound: dict[str, int] = {}
    for i, b in enumerate(index.items("quota_bindings")):
        path = f"quota_bindings[{i}]"
        _check_aliased_ref(b, path, "quota_id", "app_quota_id", quotas, "credential quota", problems)
        app = b.get("app_id")
        if isinstance(app, str):
            if app not in apps:
                problems.append(f"{path}.app_id: unknown app {app!r}")
            if app in bound:
                problems.append(f"{path}.app_id: app {app!r} already has a credential quota "
                                f"(quota_bindings[{bound[app]}])")
            else:
                bound[app] = i


def check_throttling(index: Index, problems: list[str]) -> None:
    """Cross-reference and ordering checks for the throttling and quota collections."""
    _check_policies(index, problems)
    _check_bindings(index, problems)
    _check_specials(index, problems)
    _check_quotas(index, problems)

