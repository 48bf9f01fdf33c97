"""tls stage: req_protocol per API (APIG.0607 on the wrong scheme); BOTH on a plain group builds nothing."""

from __future__ import annotations

from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of


async def test_https_only_api_refuses_plain_http() -> None:
    rt = compile_doc(snapshot([mock_api("a", "/a", req_protocol="HTTPS")]))
    stage = stage_of(endpoint(rt, "a"), "tls")
    assert stage is not None
    err = await run_stage(stage, request_context(rt, api_id="a"))
    assert err is not None and err.code == "APIG.0607" and err.status == 400
    assert "HTTPS" in err.message


def test_both_on_a_plain_group_has_no_stage() -> None:
    rt = compile_doc(snapshot([mock_api("a", "/a")]))
    assert stage_of(endpoint(rt, "a"), "tls") is None
