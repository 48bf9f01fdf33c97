"""IAM authentication end to end: JWT verifier (PEM and JWKS) and a real remote token-validation service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.core.errors import SnapshotError
from tests.support.auth_helpers import auth_api, call, ec_key, error_of, iam_token, jwks, public_pem, rsa_key
from tests.support.helpers import snapshot

RSA = rsa_key()
EC = ec_key()
OTHER = rsa_key()


def _doc(backend: str) -> dict[str, Any]:
    return snapshot([auth_api("i1", "/me", backend, auth_type="IAM")])


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[str, str]:
    pem = tmp_path / "iam.pem"
    pem.write_bytes(public_pem(RSA))
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(jwks(("rsa-1", RSA), ("ec-1", EC)))
    return str(pem), str(jwks_file)


async def test_jwt_pem_and_jwks(make_gateway, echo_backend, client, key_files) -> None:
    _backend, addr = echo_backend
    pem, jwks_file = key_files
    gw = await make_gateway(_doc(addr), iam_jwt_public_keys=pem)
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": iam_token(RSA)})
    assert st == 200, body
    assert body["headers"]["X-Ctx-User-Id"] == "user-1"
    gw2 = await make_gateway(_doc(addr), iam_jwks_file=jwks_file)
    for token in (iam_token(EC, "ES256", "ec-1"), iam_token(RSA, "RS256", "rsa-1"), iam_token(EC, "ES256")):
        st, body, _ = await call(client, gw2.url, "GET", "/me", headers={"X-Auth-Token": token})
        assert st == 200, body


async def test_jwt_rejections(make_gateway, echo_backend, client, key_files) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr), iam_jwks_file=key_files[1])
    st, body, _ = await call(client, gw.url, "GET", "/me")
    assert (st, body["error_code"]) == (401, "APIG.0301")
    assert body["error_msg"] == "Incorrect IAM authentication information: x-auth-token not found"
    cases = [
        (iam_token(RSA, ttl=-120), "token expired"),
        (iam_token(RSA, nbf=int(time.time()) + 600), "token not yet valid"),
        (iam_token(OTHER, kid="rsa-1"), "verify signature fail"),
        (iam_token(OTHER), "verify signature fail"),
        (iam_token(RSA, kid="unknown-kid"), "no key to verify the token"),
        (iam_token(RSA, exp=None), "token has no exp claim"),
        (jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "s" * 32, algorithm="HS256"),
         "token algorithm not accepted"),
        ("not-a-jwt", "decrypt token fail"),
    ]
    for token, reason in cases:
        st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": token})
        assert (st, error_of(body)) == (401, ("APIG.0301", f"Incorrect IAM authentication information: {reason}")), \
            reason
        assert token not in str(body)
    assert backend.hits == 0


async def test_issuer_and_audience(make_gateway, echo_backend, client, key_files) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr), iam_jwt_public_keys=key_files[0], iam_jwt_issuer="https://iam.test",
                            iam_jwt_audience="apig")
    good = iam_token(RSA, iss="https://iam.test", aud="apig")
    st, _, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": good})
    assert st == 200
    bad = iam_token(RSA, iss="https://evil.test", aud="apig")
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": bad})
    assert st == 401 and "another service" in body["error_msg"]


async def test_bad_key_file_rejects_snapshot(make_gateway, echo_backend, tmp_path) -> None:
    _backend, addr = echo_backend
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    with pytest.raises(SnapshotError) as exc:
        await make_gateway(_doc(addr), iam_jwt_public_keys=str(bad))
    assert any(p.startswith("settings.iam_jwt_public_keys:") for p in exc.value.problems)


async def test_not_configured_is_503(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": iam_token(RSA)})
    assert (st, body["error_code"]) == (503, "APIG.0613")


class IamService:
    """A real token-validation endpoint: tokens map to Keystone-like identities."""

    def __init__(self) -> None:
        self.calls = 0
        self.tokens: dict[str, dict[str, Any]] = {}
        self.status = 200
        self.delay = 0.0
        self.seen: list[tuple[str, dict[str, str], Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        body = await request.json() if request.method == "POST" else None
        self.seen.append((request.method, dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.Response(status=self.status)
        token = request.headers.get("X-Subject-Token", "")
        ident = self.tokens.get(token)
        if ident is None:
            return web.json_response({"error": "invalid"}, status=404)
        return web.json_response({"token": ident})


@pytest.fixture
async def iam_service() -> AsyncIterator[tuple[IamService, str]]:
    svc = IamService()
    app = web.Application()
    app.router.add_route("*", "/v3/auth/tokens", svc.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield svc, f"http://127.0.0.1:{server.port}/v3/auth/tokens"
    await server.close()


def _ident(user: str, domain: str, expires: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"user": {"id": f"id-{user}", "name": user,
                                    "domain": {"id": f"did-{domain}", "name": domain}}}
    if expires is not None:
        out["expires_at"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(expires))
    return out


async def test_remote_verifier_cache_and_errors(make_gateway, echo_backend, client, iam_service) -> None:
    _backend, addr = echo_backend
    svc, url = iam_service
    svc.tokens["tok-a"] = _ident("alice", "acme", time.time() + 3600)
    svc.tokens["tok-old"] = _ident("bob", "acme", time.time() - 10)
    gw = await make_gateway(_doc(addr), iam_remote_url=url, iam_remote_service_token="svc-token")
    for _ in range(3):
        st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "tok-a"})
        assert st == 200 and body["headers"]["X-Ctx-User-Id"] == "id-alice"
    assert svc.calls == 1  # cached
    assert svc.seen[0][1]["X-Auth-Token"] == "svc-token" and svc.seen[0][1]["X-Subject-Token"] == "tok-a"
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "tok-unknown"})
    assert (st, body["error_msg"]) == (401, "Incorrect IAM authentication information: token validation failed")
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "tok-unknown"})
    assert st == 401 and svc.calls == 2  # negative answer cached too
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "tok-old"})
    assert st == 401 and body["error_msg"].endswith("token expired")
    # IAM down: 503, not cached
    svc.status = 500
    for _ in range(2):
        st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "tok-new"})
        assert (st, body["error_code"]) == (503, "APIG.0613")
    assert svc.calls == 5
    svc.status = 200
    svc.tokens["tok-new"] = _ident("carol", "acme")
    st, _, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "tok-new"})
    assert st == 200


async def test_remote_verifier_post_and_single_flight(make_gateway, echo_backend, client, iam_service) -> None:
    _backend, addr = echo_backend
    svc, url = iam_service
    svc.tokens["tok-p"] = _ident("dave", "acme")
    svc.delay = 0.2
    gw = await make_gateway(_doc(addr), iam_remote_url=url, iam_remote_method="POST", iam_cache_ttl_s=0)
    results = await asyncio.gather(*[call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "tok-p"})
                                     for _ in range(5)])
    assert [r[0] for r in results] == [200] * 5
    assert svc.calls == 1  # concurrent checks of one token share one call
    assert svc.seen[0][0] == "POST" and svc.seen[0][2] == {"token": "tok-p"}
    st, _, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "tok-p"})
    assert st == 200 and svc.calls == 2  # ttl 0: no cache


async def test_remote_unreachable(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    from tests.conftest import free_port

    gw = await make_gateway(_doc(addr), iam_remote_url=f"http://127.0.0.1:{free_port()}/x", iam_remote_timeout_s=1)
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "t"})
    assert (st, body["error_code"]) == (503, "APIG.0613")


async def test_token_forwarding_follows_backend_token_allow(make_gateway, echo_backend, client, key_files) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr), iam_jwt_public_keys=key_files[0])
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": iam_token(RSA)})
    assert st == 200 and "X-Auth-Token" not in body["headers"]
    doc = _doc(addr)
    doc["features"] = [{"name": "backend_token_allow", "enable": True,
                        "config": '[{"backend_token_allow_users": [{"user_name": "ac.e"}]}]'}]
    gw = await make_gateway(doc, iam_jwt_public_keys=key_files[0])
    token = iam_token(RSA)
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": token})
    assert st == 200 and body["headers"]["X-Auth-Token"] == token
    other = iam_token(RSA, domain_name="xacme")
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": other})
    assert st == 200 and "X-Auth-Token" not in body["headers"]


async def test_user_throttling_counts_per_account(make_gateway, echo_backend, client, key_files) -> None:
    """USER limits and excluded USER throttles key on the account (domain) id: two users of one account share
    one budget; another account has its own, and an excluded throttle names an account id."""
    _backend, addr = echo_backend
    pem, _ = key_files
    doc = _doc(addr)
    doc["throttles"] = [{"id": "t1", "name": "per_account", "api_call_limits": 100, "user_call_limits": 2,
                         "time_interval": 1, "time_unit": "HOUR"}]
    doc["throttle_bindings"] = [{"id": "tb1", "policy_id": "t1", "publish_id": "p-i1-DEFAULT_ENVIRONMENT_RELEASE_ID"}]
    doc["special_throttles"] = [{"id": "s1", "throttle_id": "t1", "object_type": "USER", "object_id": "d-0003",
                                 "call_limits": 1}]
    gw = await make_gateway(doc, iam_jwt_public_keys=pem)
    alice = iam_token(RSA, sub="u-alice", domain_id="d-0001")
    bob = iam_token(RSA, sub="u-bob", domain_id="d-0001")
    carol = iam_token(RSA, sub="u-carol", domain_id="d-0002")
    dave = iam_token(RSA, sub="u-dave", domain_id="d-0003")
    statuses = []
    for token in (alice, bob, alice, bob):
        st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": token})
        statuses.append(st)
    assert statuses == [200, 200, 429, 429]  # one account, one budget of 2
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": carol})
    assert st == 200 and body["headers"]["X-Ctx-User-Id"] == "u-carol"  # $context.userId stays the user id
    assert [(await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": dave}))[0]
            for _ in range(2)] == [200, 429]  # the excluded throttle of account d-0003
