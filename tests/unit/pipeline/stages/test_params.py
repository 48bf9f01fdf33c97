"""request_parameters stage: declared parameters read, defaulted and validated into ctx.params."""

from __future__ import annotations

from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of

PARAMS = [
    {"name": "n", "location": "QUERY", "type": "NUMBER", "required": 1, "valid_enable": 1, "max_num": 10},
    {"name": "X-Mode", "location": "HEADER", "type": "STRING", "required": 2, "default_value": "fast",
     "enumerations": "fast,slow", "valid_enable": 1},
]


async def test_valid_defaulted_and_refused_values() -> None:
    rt = compile_doc(snapshot([mock_api("a", "/a", req_params=PARAMS), mock_api("b", "/b")]))
    stage = stage_of(endpoint(rt, "a"), "request_parameters")
    assert stage is not None and stage_of(endpoint(rt, "b"), "request_parameters") is None
    ctx = request_context(rt, "GET", "/a?n=3", api_id="a")
    assert await run_stage(stage, ctx) is None
    assert ctx.params == {("QUERY", "n"): "3", ("HEADER", "X-Mode"): "fast"}
    for path, headers in (("/a", {}), ("/a?n=11", {}), ("/a?n=x", {}), ("/a?n=1", {"X-Mode": "other"})):
        err = await run_stage(stage, request_context(rt, "GET", path, headers=headers, api_id="a"))
        assert err is not None and err.error_type == "REQUEST_PARAMETERS_FAILURE", path


def test_unknown_system_parameter_is_a_snapshot_problem() -> None:
    import pytest

    from gateway.core.errors import SnapshotError

    api = mock_api("a", "/a", backend_params=[{"name": "x", "location": "HEADER", "origin": "SYSTEM",
                                                "value": "$context.nope"}])
    with pytest.raises(SnapshotError) as exc:
        compile_doc(snapshot([api]))
    assert any("apis[0].backend_params[0].value: unknown system parameter" in p for p in exc.value.problems)
