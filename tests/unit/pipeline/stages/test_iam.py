"""iam_auth stage and the iam_token plan stage: JWT verification with configured public keys."""

from __future__ import annotations

from pathlib import Path

from gateway.model.runtime import Runtime
from tests.support.auth_helpers import iam_token, public_pem, rsa_key
from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of

KEY = rsa_key()


def _runtime(tmp_path: Path) -> Runtime:
    pem = tmp_path / "iam.pem"
    pem.write_bytes(public_pem(KEY))
    return compile_doc(snapshot([mock_api("a", "/a", auth_type="IAM")]), iam_jwt_public_keys=str(pem))


async def test_valid_token_sets_the_identity(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    stage = stage_of(endpoint(rt, "a"), "iam_auth")
    assert stage is not None
    ctx = request_context(rt, headers={"X-Auth-Token": iam_token(KEY)}, api_id="a")
    assert await run_stage(stage, ctx) is None
    assert (ctx.user_id, ctx.user_name) == ("user-1", "acme")


async def test_missing_and_forged_tokens(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    stage = stage_of(endpoint(rt, "a"), "iam_auth")
    assert stage is not None
    err = await run_stage(stage, request_context(rt, api_id="a"))
    assert err is not None and (err.code, err.error_type) == ("APIG.0301", "AUTH_HEADER_MISSING")
    forged = iam_token(rsa_key())
    err = await run_stage(stage, request_context(rt, headers={"X-Auth-Token": forged}, api_id="a"))
    assert err is not None and err.error_type == "AUTH_FAILURE"


def test_token_is_not_forwarded_to_the_backend(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    assert "x-auth-token" in endpoint(rt, "a").backend.mapping.drop_headers
