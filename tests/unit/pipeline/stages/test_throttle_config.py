"""Throttling / quota snapshot validation and compile: schemas, ordering rules, references, stage presence."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.compiler import build_runtime, validate
from gateway.core.errors import SnapshotError
from gateway.core.settings import load_settings
from gateway.model.services import Services
from tests.support.helpers import RELEASE, mock_api, snapshot
from tests.support.throttle_helpers import app, binding, policy, pub


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(SnapshotError) as exc:
        validate(doc)
    return exc.value.problems


def base(**collections: Any) -> dict[str, Any]:
    return snapshot([mock_api("a1", "/a"), mock_api("a2", "/b")], **collections)


def test_valid_policy_binding_special_quota() -> None:
    doc = base(
        throttles=[policy("t1", 100, user=50, app=20, ip=60, interval=1, unit="MINUTE") |
                   {"bind_num": 1, "is_inclu_special_throttle": 1, "create_time": "x",
                    "enable_adaptive_control": "FALSE"}],
        throttle_bindings=[binding("t1", "a1"), binding("t1", "a2", vendor=True) | {"apply_time": "x"}],
        special_throttles=[{"id": "s1", "throttle_id": "t1", "object_type": "APP", "object_id": "app1",
                            "call_limits": 80},
                           {"id": "s2", "throttle_id": "t1", "object_type": "USER", "object_id": "u1",
                            "call_limits": 5}],
        apps=[app("app1")],
        quotas=[{"id": "q1", "name": "quota_one", "call_limits": 1000, "time_unit": "DAY", "time_interval": 1,
                 "reset_time": "2020-09-20 00:00:00"}],
        quota_bindings=[{"app_quota_id": "q1", "app_id": "app1", "bound_time": "x"}],
    )
    index = validate(doc)
    assert set(index.by_id["throttles"]) == {"t1"}


def test_field_rules() -> None:
    doc = base(throttles=[{"id": "t1", "name": "1bad", "api_call_limits": 0, "time_interval": 1,
                           "time_unit": "HOURL", "type": 3, "surprise": 1}])
    got = problems(doc)
    assert "throttles[0].name: does not match [A-Za-z][A-Za-z0-9_]*" in got
    assert any(p.startswith("throttles[0].api_call_limits: must be") for p in got)
    assert any(p.startswith("throttles[0].time_unit: must be one of") for p in got)
    assert any(p.startswith("throttles[0].type: must be one of") for p in got)
    assert "throttles[0].surprise: unknown field" in got


def test_missing_required_fields() -> None:
    got = problems(base(throttles=[{"id": "t1", "name": "abc"}]))
    assert "throttles[0].api_call_limits: is required" in got
    assert "throttles[0].time_interval: is required" in got
    assert "throttles[0].time_unit: is required" in got


def test_ordering_constraints() -> None:
    doc = base(throttles=[policy("t1", 100, user=200, app=300, ip=101),
                          policy("t2", 100, app=101)])
    got = problems(doc)
    assert "throttles[0].user_call_limits: must not exceed api_call_limits (100)" in got
    assert "throttles[0].app_call_limits: must not exceed user_call_limits (200)" in got
    assert "throttles[0].ip_call_limits: must not exceed api_call_limits (100)" in got
    assert "throttles[1].app_call_limits: must not exceed api_call_limits (100)" in got


def test_binding_references_and_uniqueness() -> None:
    doc = base(
        throttles=[policy("t1", 10), policy("t2", 10)],
        throttle_bindings=[
            binding("t1", "a1"),
            {"id": "b2", "policy_id": "t2", "publish_id": pub("a1")},  # second policy on one publication
            {"id": "b3", "policy_id": "nope", "publish_id": pub("a2")},
            {"id": "b4", "strategy_id": "t1", "publish_id": "p-missing"},
            {"id": "b5", "publish_id": pub("a2")},
            {"id": "b6", "policy_id": "t1", "strategy_id": "t2", "publish_id": pub("a2")},
        ],
    )
    got = problems(doc)
    assert ("throttle_bindings[1].publish_id: publication 'p-a1-DEFAULT_ENVIRONMENT_RELEASE_ID' already has a "
            "throttling policy (throttle_bindings[0])") in got
    assert "throttle_bindings[2].policy_id: unknown throttling policy 'nope'" in got
    assert any(p.startswith("throttle_bindings[3].publish_id: unknown publication 'p-missing'") for p in got)
    assert "throttle_bindings[4].policy_id: is required (or strategy_id)" in got
    assert "throttle_bindings[5].strategy_id: differs from policy_id 't1'" in got


def test_special_throttle_rules() -> None:
    doc = base(
        throttles=[policy("t1", 100, app=10)],
        apps=[app("app1")],
        special_throttles=[
            {"id": "s1", "throttle_id": "t1", "object_type": "APP", "object_id": "app1", "call_limits": 50},
            {"id": "s2", "throttle_id": "t1", "object_type": "APP", "object_id": "app1", "call_limits": 60},
            {"id": "s3", "throttle_id": "t9", "object_type": "USER", "object_id": "u", "call_limits": 1},
            {"id": "s4", "throttle_id": "t1", "object_type": "APP", "object_id": "ghost", "call_limits": 1},
            {"id": "s5", "throttle_id": "t1", "object_type": "USER", "object_id": "u", "call_limits": 101},
            {"id": "s6", "throttle_id": "t1", "object_type": "ROBOT", "object_id": "u", "call_limits": 1},
        ],
    )
    got = problems(doc)
    assert ("special_throttles[1]: APP 'app1' already has an excluded configuration in this policy "
            "(special_throttles[0])") in got
    assert "special_throttles[2].throttle_id: unknown throttling policy 't9'" in got
    assert not any(p.startswith("special_throttles[3]") for p in got)  # an unknown app never matches
    assert "special_throttles[4].call_limits: must not exceed the policy's api_call_limits (100)" in got
    assert any(p.startswith("special_throttles[5].object_type: must be one of") for p in got)
    # a special limit above the generic app limit is allowed (it replaces it for that app)
    assert not any(p.startswith("special_throttles[0]") for p in got)


def test_quota_rules() -> None:
    doc = base(
        apps=[app("app1"), app("app2")],
        quotas=[{"id": "q1", "name": "quota_one", "call_limits": 0, "time_unit": "WEEK", "time_interval": 1},
                {"id": "q2", "app_quota_id": "other", "name": "quota_two", "call_limits": 5, "time_unit": "DAY",
                 "time_interval": 1, "reset_time": "tomorrow"}],
        quota_bindings=[{"quota_id": "q2", "app_id": "app1"}, {"quota_id": "q2", "app_id": "app1"},
                        {"quota_id": "q9", "app_id": "app2"}, {"app_id": "app2"},
                        {"quota_id": "q2", "app_id": "ghost"}],
    )
    got = problems(doc)
    assert any(p.startswith("quotas[0].call_limits: must be") for p in got)
    assert any(p.startswith("quotas[0].time_unit: must be one of") for p in got)
    assert "quotas[1].app_quota_id: must equal id 'q2'" in got
    assert "quotas[1].reset_time: not a time like '2020-09-20 00:00:00'" in got
    assert "quota_bindings[1].app_id: app 'app1' already has a credential quota (quota_bindings[0])" in got
    assert "quota_bindings[2].quota_id: unknown credential quota 'q9'" in got
    assert "quota_bindings[3].quota_id: is required (or app_quota_id)" in got
    assert "quota_bindings[4].app_id: unknown app 'ghost'" in got


def _stage_names(doc: dict[str, Any], **settings: Any) -> dict[str, list[str]]:
    services = Services(load_settings(settings, environ={}))
    runtime = build_runtime(doc, services)
    return {api_id: [n for n, _ in ep.stages] for (api_id, _env), ep in runtime.endpoints.items()}


def test_stage_only_where_needed() -> None:
    doc = base(throttles=[policy("t1", 10)], throttle_bindings=[binding("t1", "a1")])
    names = _stage_names(doc)
    assert "throttling" in names["a1"]
    assert "throttling" not in names["a2"]
    # the default ceiling (a Settings knob, 0 = off) puts the stage on every publication
    assert "throttling" in _stage_names(doc, throttle_default_api_limit=200)["a2"]
    # the ratelimit feature record sets the ceiling too
    doc2 = base(features=[{"name": "ratelimit", "enable": True, "config": '{"api_limits": 300}'}])
    assert all("throttling" in v for v in _stage_names(doc2).values())


def test_counters_live_in_services_extras() -> None:
    services = Services(load_settings({}, environ={}))
    doc = base(throttles=[policy("t1", 10)], throttle_bindings=[binding("t1", "a1")])
    build_runtime(doc, services)
    svc = services.extras["throttle"]
    build_runtime(doc, services)
    assert services.extras["throttle"] is svc
    assert services.extras["throttle_stats"] is svc.stats


def test_env_specific_bindings() -> None:
    doc = snapshot([mock_api("a1", "/a")], envs=["TEST"], publish_in=["env-test"],
                   throttles=[policy("t1", 10), policy("t2", 20)],
                   throttle_bindings=[binding("t1", "a1"), binding("t2", "a1", "env-test")])
    runtime = build_runtime(doc, Services(load_settings({}, environ={})))
    assert {env for (_a, env) in runtime.endpoints} == {RELEASE, "env-test"}
