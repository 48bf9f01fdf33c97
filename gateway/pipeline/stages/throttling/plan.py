"""Compile throttling policies, excluded configurations and credential quotas once per snapshot.

Role in the pipeline: config-load time. :func:`snapshot_plan` resolves every binding of the snapshot
into lookups the request path uses directly: publication id -> :class:`PolicyPlan` (with its excluded
APP/USER limits as dicts), app id -> :class:`QuotaPlan`, plus the default per-API ceiling and whether
counters are shared through Redis. Nothing here runs per request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.pipeline.stages.throttling.resources import (
    UNIT_SECONDS,
    binding_policy_id,
    binding_quota_id,
    parse_reset_time,
)
from gateway.pipeline.stages.throttling.store import ANCHOR_EPOCH, ANCHOR_FIRST_CALL, BUCKET, WINDOW
from gateway.snapshot.validate import Index


def time_text(interval: int, unit: str) -> str:
    """``10 second``, ``1 minute`` — the vendor's ``time:`` format in messages and headers."""
    return f"{interval} {unit.lower()}"


@dataclass(frozen=True)
class PolicyPlan:
    policy_id: str
    type: int  # 1: per API (publication); 2: shared by every publication bound to the policy
    period_ms: int
    mode: int  # BUCKET for SECOND/MINUTE/HOUR, WINDOW (UTC-aligned) for DAY
    anchor_ms: int
    time: str
    api_limit: int
    user_limit: int | None
    app_limit: int | None
    ip_limit: int | None
    special_app: dict[str, int] = field(default_factory=dict)
    special_user: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class QuotaPlan:
    quota_id: str
    limit: int
    period_ms: int
    anchor_ms: int  # reset_time in epoch ms, or ANCHOR_FIRST_CALL
    time: str


@dataclass
class SnapshotPlan:
    by_publish: dict[str, PolicyPlan] = field(default_factory=dict)
    quota_by_app: dict[str, QuotaPlan] = field(default_factory=dict)
    ceiling: int = 0  # default per-API calls/s over all environments; 0 = off
    shared: bool = True  # counters in Redis (when configured); False: feature throttle_strategy=local


def _feature_config(index: Index, name: str) -> dict[str, Any] | str | None:
    """The config of an enabled gateway feature record (spec 02 §9.1), or None."""
    for f in index.items("features"):
        if f.get("name") != name or f.get("enable") is False:
            continue
        cfg = f.get("config")
        if isinstance(cfg, str):
            try:
                parsed = json.loads(cfg)
            except ValueError:
                return cfg
            return parsed if isinstance(parsed, dict | str) else cfg
        return cfg if isinstance(cfg, dict) else ""
    return None


def _policy(t: dict[str, Any], specials: list[dict[str, Any]]) -> PolicyPlan:
    unit = str(t["time_unit"])
    interval = int(t["time_interval"])
    app: dict[str, int] = {}
    user: dict[str, int] = {}
    for s in specials:
        (app if s.get("object_type") == "APP" else user)[str(s["object_id"])] = int(s["call_limits"])
    return PolicyPlan(
        policy_id=str(t["id"]),
        type=int(t.get("type") or 1),
        period_ms=interval * UNIT_SECONDS[unit] * 1000,
        mode=WINDOW if unit == "DAY" else BUCKET,
        anchor_ms=ANCHOR_EPOCH,
        time=time_text(interval, unit),
        api_limit=int(t["api_call_limits"]),
        user_limit=t.get("user_call_limits"),
        app_limit=t.get("app_call_limits"),
        ip_limit=t.get("ip_call_limits"),
        special_app=app,
        special_user=user,
    )


def snapshot_plan(index: Index, default_ceiling: int) -> SnapshotPlan:
    plan = SnapshotPlan(ceiling=max(0, int(default_ceiling)))
    specials: dict[str, list[dict[str, Any]]] = {}
    for s in index.items("special_throttles"):
        specials.setdefault(str(s.get("throttle_id")), []).append(s)
    policies = {pid: _policy(t, specials.get(pid, [])) for pid, t in index.by_id.get("throttles", {}).items()}
    for b in index.items("throttle_bindings"):
        policy = policies.get(str(binding_policy_id(b)))
        if policy is not None:
            plan.by_publish[str(b["publish_id"])] = policy
    quotas: dict[str, QuotaPlan] = {}
    for qid, q in index.by_id.get("quotas", {}).items():
        reset = q.get("reset_time")
        anchor = parse_reset_time(reset) if isinstance(reset, str) and reset.strip() else None
        unit, interval = str(q["time_unit"]), int(q["time_interval"])
        quotas[qid] = QuotaPlan(qid, int(q["call_limits"]), interval * UNIT_SECONDS[unit] * 1000,
                                int(anchor * 1000) if anchor is not None else ANCHOR_FIRST_CALL,
                                time_text(interval, unit))
    for b in index.items("quota_bindings"):
        quota = quotas.get(str(binding_quota_id(b)))
        if quota is not None:
            plan.quota_by_app[str(b["app_id"])] = quota
    ratelimit = _feature_config(index, "ratelimit")
    if isinstance(ratelimit, dict) and isinstance(ratelimit.get("api_limits"), int):
        plan.ceiling = max(0, int(ratelimit["api_limits"]))
    strategy = _feature_config(index, "throttle_strategy")
    if isinstance(strategy, dict):
        strategy = strategy.get("strategy")
    if strategy == "local":
        plan.shared = False
    return plan
