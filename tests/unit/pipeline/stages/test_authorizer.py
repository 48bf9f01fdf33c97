"""custom_authorizer stage and backend_authorizer plan stage: in-process authorizer functions."""

from __future__ import annotations

from typing import Any

from tests.support.functions_helpers import authorizer_record, function, urn
from tests.support.helpers import http_api, mock_api, snapshot
from tests.support.stage_harness import (
    compile_doc,
    endpoint,
    plan_stage_of,
    request_context,
    run_stage,
    stage_of,
)


def _doc() -> dict[str, Any]:
    front = mock_api("a", "/a", auth_type="AUTHORIZER", authorizer_id="fa")
    back = http_api("b", "/b", "127.0.0.1:9")
    back["backend_api"]["authorizer_id"] = "ba"
    return snapshot([front, back], functions=[function(urn("auth"), "authorizer"),
                                              function(urn("bauth"), "backend_authorizer")],
                    authorizers=[authorizer_record("fa", urn("auth")),
                                 authorizer_record("ba", urn("bauth"), kind="BACKEND", identities=[])])


async def test_frontend_authorizer_allows_and_denies() -> None:
    rt = compile_doc(_doc())
    stage = stage_of(endpoint(rt, "a"), "custom_authorizer")
    assert stage is not None and stage_of(endpoint(rt, "b"), "custom_authorizer") is None
    ctx = request_context(rt, headers={"Authorization": "Bearer good-1"}, api_id="a")
    assert await run_stage(stage, ctx) is None
    assert ctx.authorizer_frontend["user"] == "alice-good-1"
    err = await run_stage(stage, request_context(rt, headers={"Authorization": "Bearer nope"}, api_id="a"))
    assert err is not None and (err.code, err.error_type) == ("APIG.0305", "AUTHORIZER_FAILURE")


async def test_backend_authorizer_is_a_plan_stage() -> None:
    rt = compile_doc(_doc())
    plan = endpoint(rt, "b").backend
    stage = plan_stage_of(plan, "backend_authorizer")
    assert stage is not None and not endpoint(rt, "a").backend.stages
    ctx = request_context(rt, api_id="b")
    assert await run_stage(stage, ctx) is None
    assert ctx.authorizer_backend["token"].startswith("backend-")
