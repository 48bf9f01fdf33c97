"""iam_auth stage, AK/SK path: a call signed with an IAM access key from the iam_credentials collection."""

from __future__ import annotations

from tests.support.auth_helpers import signed_headers
from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of

AK, SK = "AKEXAMPLE0001", "secret-key-for-tests-0001"
CRED = {"access": AK, "secret": SK, "user_id": "u-1", "user_name": "bob", "domain_id": "d-9",
        "domain_name": "acme", "status": "active"}


async def test_signed_call_takes_the_keys_identity() -> None:
    rt = compile_doc(snapshot([mock_api("a", "/a", auth_type="IAM")], iam_credentials=[CRED]))
    stage = stage_of(endpoint(rt, "a"), "iam_auth")
    assert stage is not None
    ctx = request_context(rt, "GET", "/a", headers=signed_headers("GET", "/a", key=AK, secret=SK), api_id="a")
    assert await run_stage(stage, ctx) is None
    assert (ctx.user_id, ctx.account_id, ctx.user_name) == ("u-1", "d-9", "acme")
    bad = signed_headers("GET", "/a", key=AK, secret="not-the-secret-key-0001")
    err = await run_stage(stage, request_context(rt, "GET", "/a", headers=bad, api_id="a"))
    assert err is not None and (err.code, err.error_type) == ("APIG.0301", "AUTH_FAILURE")
