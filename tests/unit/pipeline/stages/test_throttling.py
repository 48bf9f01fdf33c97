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


async def test_per_app_and_per_ip_checks_are_remembered_but_bounded() -> None:
    from gateway.pipeline.stages.throttling import stage as throttle_stage

    rt = compile_doc(snapshot([mock_api("a", "/a")], throttles=[policy("t1", 1000, app=1000, ip=2, unit="HOUR")],
                              throttle_bindings=[binding("t1", "a")]), throttle_default_api_limit=0)
    stage = stage_of(endpoint(rt, "a"), "throttling")
    assert stage is not None
    owner = stage.__self__  # type: ignore[attr-defined]
    for peer in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        ctx = request_context(rt, api_id="a", peer=peer)
        ctx.app_id = "app-1"
        assert await run_stage(stage, ctx) is None
    assert set(owner._per_ip) == {"10.0.0.1", "10.0.0.2"} and set(owner._per_app) == {"app-1"}
    # every check of a call is remembered per (app, account, client IP) too
    assert set(owner._combos) == {("app-1", None, "10.0.0.1"), ("app-1", None, "10.0.0.2")}
    ctx = request_context(rt, api_id="a", peer="10.0.0.1")
    err = await run_stage(stage, ctx)  # the remembered per-IP check still counts: 3rd call from 10.0.0.1
    assert err is not None and err.status == 429 and "policy ip" in err.message
    table: dict[str, int] = {}
    for i in range(throttle_stage.MEMO_MAX + 5):
        throttle_stage._memo(table, str(i), i)
    assert len(table) <= throttle_stage.MEMO_MAX
