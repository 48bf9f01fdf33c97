"""throttling stage: one admission over the bound policy's limits (in-process store)."""

from __future__ import annotations

from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of
from tests.support.throttle_helpers import binding, policy


async def test_policy_limit_then_429_with_retry_after() -> None:
    rt = compile_doc(snapshot([mock_api("a", "/a"), mock_api("b", "/b")], throttles=[policy("t1", 2, unit="HOUR")],
                              throttle_bindings=[binding("t1", "a")]), throttle_default_api_limit=0)
    stage = stage_of(endpoint(rt, "a"), "throttling")
    assert stage is not None and stage_of(endpoint(rt, "b"), "throttling") is None
    results = [await run_stage(stage, request_context(rt, api_id="a")) for _ in range(3)]
    assert results[:2] == [None, None]
    err = results[2]
    assert err is not None and (err.code, err.status) == ("APIG.0308", 429)
    assert "Retry-After" in (err.headers or {})
