"""app_auth and app_checks stages: SDK-HMAC signatures identify the app; app checks authorize it."""

from __future__ import annotations

from typing import Any

from tests.support.auth_helpers import APP_KEY, app, grant, signed_headers
from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of


def _doc(**kw: Any) -> dict[str, Any]:
    return snapshot([mock_api("a", "/a", auth_type="APP"), mock_api("n", "/n")], apps=[app("app1")], **kw)


async def test_signature_identifies_the_app() -> None:
    rt = compile_doc(_doc(app_auths=[grant("app1", "a")]))
    ep = endpoint(rt, "a")
    auth, checks = stage_of(ep, "app_auth"), stage_of(ep, "app_checks")
    assert auth is not None and checks is not None
    assert stage_of(endpoint(rt, "n"), "app_auth") is None  # auth_type NONE: nothing built
    ctx = request_context(rt, "GET", "/a", headers=signed_headers("GET", "/a"), api_id="a")
    assert await run_stage(auth, ctx) is None
    assert ctx.app_id == "app1"
    assert await run_stage(checks, ctx) is None


async def test_missing_and_wrong_credentials() -> None:
    rt = compile_doc(_doc(app_auths=[grant("app1", "a")]))
    auth = stage_of(endpoint(rt, "a"), "app_auth")
    assert auth is not None
    err = await run_stage(auth, request_context(rt, "GET", "/a", api_id="a"))
    assert err is not None and err.error_type == "AUTH_HEADER_MISSING"
    bad = signed_headers("GET", "/a", secret="not-the-secret-0001")
    err = await run_stage(auth, request_context(rt, "GET", "/a", headers=bad, api_id="a"))
    assert err is not None and (err.code, err.error_type) == ("APIG.0303", "AUTH_FAILURE")
    assert APP_KEY not in err.message or "verify signature fail" in err.message


async def test_app_checks_refuse_an_unauthorized_app() -> None:
    rt = compile_doc(_doc())  # no app_auths: app1 may not call "a"
    checks = stage_of(endpoint(rt, "a"), "app_checks")
    assert checks is not None
    ctx = request_context(rt, api_id="a")
    ctx.app_id = "app1"
    err = await run_stage(checks, ctx)
    assert err is not None and (err.code, err.status) == ("APIG.0304", 403)


async def test_a_call_without_body_is_verified_without_a_coroutine() -> None:
    rt = compile_doc(_doc(app_auths=[grant("app1", "a")]))
    auth = stage_of(endpoint(rt, "a"), "app_auth")
    assert auth is not None
    ctx = request_context(rt, "GET", "/a", headers=signed_headers("GET", "/a"), api_id="a")
    assert auth(ctx) is None  # decided on the spot
    assert ctx.app_id == "app1" and ctx.identity is not None and ctx.identity["auth_mode"] == "signature"
    other = request_context(rt, "GET", "/a", headers=signed_headers("GET", "/a"), api_id="a")
    assert auth(other) is None and other.identity == ctx.identity
    tampered = signed_headers("GET", "/a")
    value = tampered["Authorization"]
    tampered["Authorization"] = value[:-1] + ("1" if value[-1] == "0" else "0")  # one hex digit changed
    err = await run_stage(auth, request_context(rt, "GET", "/a", headers=tampered, api_id="a"))
    assert err is not None and err.code == "APIG.0303"


async def test_a_remembered_date_is_still_checked_against_the_clock_every_call() -> None:
    from datetime import UTC, datetime, timedelta

    from gateway.lib.sdk_signer import DATE_FORMAT

    rt = compile_doc(_doc(app_auths=[grant("app1", "a")]))
    auth = stage_of(endpoint(rt, "a"), "app_auth")
    assert auth is not None
    old = (datetime.now(UTC) - timedelta(hours=2)).strftime(DATE_FORMAT)
    for _ in range(2):  # the second call finds the instant remembered: still refused
        ctx = request_context(rt, "GET", "/a", headers=signed_headers("GET", "/a", date=old), api_id="a")
        err = await run_stage(auth, ctx)
        assert err is not None and err.code == "APIG.0303" and "signature expired" in err.message
    padded = signed_headers("GET", "/a")
    padded["X-Sdk-Date"] = f" {padded['X-Sdk-Date']} "  # blanks around the date: stripped as before
    assert await run_stage(auth, request_context(rt, "GET", "/a", headers=padded, api_id="a")) is None


async def test_a_remembered_signature_prefix_still_checks_every_signature() -> None:
    rt = compile_doc(_doc(app_auths=[grant("app1", "a")]))
    auth = stage_of(endpoint(rt, "a"), "app_auth")
    assert auth is not None
    first = signed_headers("GET", "/a")
    assert auth(request_context(rt, "GET", "/a", headers=first, api_id="a")) is None  # the prefix is remembered
    prefix, sig = first["Authorization"][:-64], first["Authorization"][-64:]
    assert prefix.endswith("Signature=")
    ok = signed_headers("GET", "/a")
    ok["Authorization"] = prefix + sig.upper()  # upper-case digits: the same signature
    assert auth(request_context(rt, "GET", "/a", headers=ok, api_id="a")) is None
    cases = {
        "tampered": prefix + sig[:-1] + ("1" if sig[-1] == "0" else "0"),
        "not hex": prefix + "z" + sig[1:],
        "blank inside": prefix + sig[:30] + " " + sig[31:],
        "signed for another path": signed_headers("GET", "/b")["Authorization"],
    }
    for what, value in cases.items():
        headers = signed_headers("GET", "/a")
        headers["Authorization"] = value
        err = await run_stage(auth, request_context(rt, "GET", "/a", headers=headers, api_id="a"))
        assert err is not None and err.code == "APIG.0303", what
    padded = signed_headers("GET", "/a")
    padded["Authorization"] += "  "  # a blank after the signature: the general parse, still accepted
    assert await run_stage(auth, request_context(rt, "GET", "/a", headers=padded, api_id="a")) is None
    from datetime import UTC, datetime, timedelta

    from gateway.lib.sdk_signer import DATE_FORMAT

    old = (datetime.now(UTC) - timedelta(hours=2)).strftime(DATE_FORMAT)
    stale = signed_headers("GET", "/a", date=old)
    assert stale["Authorization"][:-64] == prefix  # the remembered prefix: the clock is still read
    err = await run_stage(auth, request_context(rt, "GET", "/a", headers=stale, api_id="a"))
    assert err is not None and "signature expired" in err.message
