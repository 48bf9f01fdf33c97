"""The ``rate_limit`` plug-in ("request throttling 2.0"): validate and compile its content at load time.

Role in the pipeline: config-load time only. The content (the vendor's ``RateLimitContent``) becomes a
:class:`RateLimitPlan`: a :class:`~gateway.pipeline.stages.throttling.plan.PolicyPlan` for the basic limits
(API, user, app, IP, excluded apps/users) plus an ordered list of parameter rules, each a compiled
predicate with its own limit and window. The order-70 throttling stage
(:mod:`gateway.pipeline.stages.throttling.stage`) turns it into counter checks with the same engine,
the same all-or-nothing admission and the same 429 and headers as a classic throttling policy.

Content fields (vendor names; docs/throttling.md explains each):

* ``scope``: ``basic`` (each bound API has its own budget) or ``share`` (one budget for every API bound
  to the plug-in; ``api_shared`` accepted too). Default ``basic``.
* ``default_time_unit`` (``second`` | ``minute`` | ``hour`` | ``day``, default ``second``) and
  ``default_interval`` (default 1): the window of the basic limits.
* ``api_limit`` (required; ``-1`` = no API limit), ``user_limit``, ``app_limit``, ``ip_limit`` (absent or 0
  = that dimension is not limited).
* ``algorithm``: ``counter`` / ``haht`` (shared counters, Redis when configured) or ``local`` (counters of
  this process only).
* ``specials``: ``[{type: app|user, policies: [{key, limit}]}]`` — per-app / per-user limits replacing
  ``app_limit`` / ``user_limit`` for that app or user.
* ``parameters``: ``[{name, type: path|method|header|query|system, value}]`` and ``rules``:
  ``[{rule_name, match_regex, time_unit, interval, limit}]`` — the first rule whose condition matches
  adds its own counter (shared by every request that matches it) to the request's checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.pipeline.stages.rules import Predicate, compile_parameters, compile_rule_list
from gateway.pipeline.stages.throttling.plan import PolicyPlan, time_text
from gateway.pipeline.stages.throttling.resources import MAX_LIMIT, UNIT_SECONDS
from gateway.pipeline.stages.throttling.store import ANCHOR_EPOCH, BUCKET, WINDOW
from gateway.snapshot.schema import I, L, Obj, S, check

if TYPE_CHECKING:
    from gateway.snapshot.validate import Index

UNITS = ("second", "minute", "hour", "day")
MAX_RULES = 100  # the vendor's limit on parameter rules
SHARED_SCOPES = ("share", "shared", "api_shared")

_LIMIT = I(min=0, max=MAX_LIMIT)
CONTENT = Obj({
    "scope": S(enum=("basic", *SHARED_SCOPES)),
    "default_time_unit": S(enum=UNITS),
    "default_interval": I(min=1, max=MAX_LIMIT),
    "api_limit": I(True, min=-1, max=MAX_LIMIT),
    "user_limit": _LIMIT,
    "app_limit": _LIMIT,
    "ip_limit": _LIMIT,
    "algorithm": S(enum=("counter", "haht", "local")),
    "specials": L(Obj({}, open=True), max_len=2000),
    "parameters": L(Obj({}, open=True), max_len=MAX_RULES),
    "rules": L(Obj({}, open=True), max_len=MAX_RULES),
})
SPECIAL_POLICY = Obj({"key": S(True, min_len=1, max_len=64), "limit": I(True, min=1, max=MAX_LIMIT)})
SPECIAL = Obj({"type": S(True), "policies": L(SPECIAL_POLICY, True, max_len=1000)})
RULE = Obj({
    "rule_name": S(True, min_len=1, max_len=64),
    "match_regex": S(True, min_len=1, max_len=65535),
    "time_unit": S(enum=UNITS),
    "interval": I(min=1, max=MAX_LIMIT),
    "limit": I(True, min=1, max=MAX_LIMIT),
})


@dataclass(frozen=True)
class RuleLimit:
    """One parameter rule: the condition and the counter it adds when it is the first to match."""

    index: int
    name: str
    match: Predicate
    limit: int
    period_ms: int
    mode: int
    time: str


@dataclass(frozen=True)
class RateLimitPlan:
    """A compiled ``rate_limit`` plug-in (``policy.policy_id`` is filled with the plug-in id when bound)."""

    policy: PolicyPlan
    shared_scope: bool  # one budget for every API bound to the plug-in
    local: bool  # algorithm "local": counters of this process only
    rules: tuple[RuleLimit, ...]


def _window(unit: str, interval: int) -> tuple[int, int, str]:
    """(period_ms, mode, time text) of ``interval`` × ``unit`` (lower-case vendor unit)."""
    upper = unit.upper()
    return interval * UNIT_SECONDS[upper] * 1000, (WINDOW if upper == "DAY" else BUCKET), time_text(interval, upper)


def _specials(items: list[Any], api_limit: int, path: str, problems: list[str]) -> tuple[dict[str, int],
                                                                                         dict[str, int]]:
    apps: dict[str, int] = {}
    users: dict[str, int] = {}
    for i, item in enumerate(items):
        spath = f"{path}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{spath}: must be an object")
            continue
        before = len(problems)
        check(SPECIAL, item, spath, problems)
        if len(problems) > before:
            continue
        kind = str(item["type"]).lower()
        if kind not in ("app", "user"):
            problems.append(f"{spath}.type: must be app or user")
            continue
        target = apps if kind == "app" else users
        for j, pol in enumerate(item["policies"]):
            key, limit = str(pol["key"]), int(pol["limit"])
            ppath = f"{spath}.policies[{j}]"
            if key in target:
                problems.append(f"{ppath}.key: {kind} {key!r} already has an excluded limit")
                continue
            if api_limit > 0 and limit > api_limit:
                problems.append(f"{ppath}.limit: must not exceed api_limit ({api_limit})")
                continue
            target[key] = limit
    return apps, users


def validate_rate_limit(content: dict[str, Any], path: str, problems: list[str], index: Index) -> RateLimitPlan | None:
    before = len(problems)
    check(CONTENT, content, path, problems)
    if len(problems) > before:
        return None
    unit = str(content.get("default_time_unit") or "second")
    interval = int(content.get("default_interval") or 1)
    api_limit = int(content["api_limit"])
    if api_limit == 0:
        problems.append(f"{path}.api_limit: must be a positive number of calls, or -1 for no API limit")
        return None
    user = int(content.get("user_limit") or 0)
    app = int(content.get("app_limit") or 0)
    ip = int(content.get("ip_limit") or 0)
    if api_limit > 0:
        for name, value in (("user_limit", user), ("app_limit", app), ("ip_limit", ip)):
            if value > api_limit:
                problems.append(f"{path}.{name}: must not exceed api_limit ({api_limit})")
    if user and app > user:
        problems.append(f"{path}.app_limit: must not exceed user_limit ({user})")
    special_app, special_user = _specials(content.get("specials") or [], api_limit, f"{path}.specials", problems)
    params = compile_parameters(content.get("parameters") or [], f"{path}.parameters", problems)
    rules: list[RuleLimit] = []
    for i, (r, pred) in enumerate(compile_rule_list(content.get("rules") or [], params, f"{path}.rules", problems,
                                                    RULE)):
        period, mode, text = _window(str(r.get("time_unit") or unit), int(r.get("interval") or interval))
        rules.append(RuleLimit(i, str(r["rule_name"]), pred, int(r["limit"]), period, mode, text))
    if len(problems) > before:
        return None
    period_ms, mode, text = _window(unit, interval)
    shared_scope = content.get("scope") in SHARED_SCOPES
    policy = PolicyPlan(
        policy_id="", type=2 if shared_scope else 1, period_ms=period_ms, mode=mode, anchor_ms=ANCHOR_EPOCH,
        time=text, api_limit=max(0, api_limit), user_limit=user or None, app_limit=app or None,
        ip_limit=ip or None, special_app=special_app, special_user=special_user,
    )
    return RateLimitPlan(policy, shared_scope, content.get("algorithm") == "local", tuple(rules))

