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


def test_query_value_matches_the_listeners_first_value() -> None:
    from gateway.pipeline.stages.params import query_value
    from gateway.process.http1 import _split_query

    for raw in ("q=abc", "a=1&q=2&q=3", "q", "q=", "qq=1&q=2", "xq=1", "=v&q=a=b", "&&q=x&", "a=1", "Q=1",
                "q=1;a=2", "a=q&b=1"):
        parsed = _split_query(raw)
        for name in ("q", "a", "Q", "b", "qq"):
            assert query_value(raw, name) == parsed.get(name), (raw, name)


async def test_query_parameters_read_from_the_raw_text_or_decoded() -> None:
    api = mock_api("a", "/a", req_params=[
        {"name": "q", "location": "QUERY", "type": "STRING", "required": 1, "valid_enable": 1, "max_size": 5},
        {"name": "r", "location": "QUERY", "type": "STRING", "required": 2}])
    rt = compile_doc(snapshot([api]))
    stage = stage_of(endpoint(rt, "a"), "request_parameters")
    assert stage is not None
    for path, q, r in (("/a?q=abc", "abc", None), ("/a?r=1&q=x&q=y", "x", "1"), ("/a?q=a%20b", "a b", None),
                       ("/a?q=a+b&r=", "a b", ""), ("/a?q=", "", None)):
        ctx = request_context(rt, "GET", path, api_id="a")
        assert await run_stage(stage, ctx) is None, path
        assert ctx.params.get(("QUERY", "q")) == q and ctx.params.get(("QUERY", "r")) == r, path
    for path in ("/a", "/a?r=1", "/a?q=abcdef", "/a?qq=1"):
        err = await run_stage(stage, request_context(rt, "GET", path, api_id="a"))
        assert err is not None and err.error_type == "REQUEST_PARAMETERS_FAILURE", path
