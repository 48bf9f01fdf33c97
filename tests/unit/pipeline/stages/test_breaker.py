"""breaker plan stage: the last plan stage wraps the finished target of a bound publication."""

from __future__ import annotations

from gateway.pipeline.stages.breaker import BreakerTarget
from tests.support.helpers import mock_api, snapshot
from tests.support.plugins_helpers import bind, plugin
from tests.support.stage_harness import compile_doc, endpoint, request_context

BREAKER = {"breaker_condition": {"breaker_type": "condition", "breaker_mode": "counter",
                                 "unhealthy_condition": "", "unhealthy_threshold": 1, "min_call_threshold": 1,
                                 "time_window": 10, "open_breaker_time": 60}, "scope": "basic"}


async def test_bound_plan_is_wrapped_and_opens() -> None:
    content = {**BREAKER, "breaker_condition": {**BREAKER["breaker_condition"], "breaker_type": "timeout"}}
    rt = compile_doc(snapshot([mock_api("a", "/a"), mock_api("b", "/b")],
                              plugins=[plugin("br", "breaker", content)], plugin_bindings=[bind("x", "br", "a")]))
    target = endpoint(rt, "a").backend.target
    assert isinstance(target, BreakerTarget) and target.kind == "MOCK"
    assert not isinstance(endpoint(rt, "b").backend.target, BreakerTarget)
    resp = await target.invoke(request_context(rt, api_id="a"), None, endpoint(rt, "a").backend)
    assert resp.status == 200
