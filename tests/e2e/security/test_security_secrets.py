"""Secrets never leave the gateway: not in logs, the access log, /metrics, admin answers, exports or errors.

One snapshot full of recognizable secret strings (app secret, AppCode, HMAC/basic signing secrets, a private
key, authorizer user_data) runs behind a real gateway with the admin token required; real traffic then
exercises successes and failures (bad signatures, bad AppCodes, bad and good IAM tokens, a crashing
authorizer, a dead backend, invalid admin pushes that carry secrets in the failing fields, wrong admin
tokens). Every logging record (root logger at DEBUG, tracebacks included), the access-log file, the
/metrics text, every admin answer and every gateway-generated error body is collected, and no secret
string may appear in any of it.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import free_port
from tests.support.auth_helpers import app, auth_api, grant, iam_token, public_pem, rsa_key, signed_headers
from tests.support.functions_helpers import authorizer_record, function, urn
from tests.support.helpers import GROUP_HOST, RELEASE, http_api, snapshot

APP_KEY = "leakTestAppKey01"
APP_SECRET = "SECRETappSecret0001xyz"
APP_CODE = "SECRETappCode" + "Q" * 60
HMAC_SECRET = "SECRETsignHmac0001xyz"
BASIC_SECRET = "SECRETbasicPw0001xyz"
USER_DATA = "SECRETuserData0001xyz"
ADMIN_TOKEN = "SECRETadminToken0001xyz"
WRONG_ADMIN_TOKEN = "SECRETwrongAdminToken0001"
BAD_APP_CODE = "SECRETbadAppCode" + "Z" * 60
AUTHZ_HEADER = "Bearer SECRETauthzHeader0001"
BAD_IAM_TOKEN = "SECRETiamTokenBad0001xyz"
PUSHED_SECRET = "SECRETpushedBad!0001xyz"  # a secret inside an invalid push
PUSHED_APP_SECRET = "SECRET pushed app secret"  # invalid: spaces
RSA = rsa_key()
GOOD_IAM_TOKEN = iam_token(RSA)
_EC = ec.generate_private_key(ec.SECP256R1())
PK_PUBLIC = base64.b64encode(_EC.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
PK_PRIVATE = base64.b64encode(_EC.private_bytes(
    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())).decode()

SECRETS = [APP_SECRET, APP_CODE, HMAC_SECRET, BASIC_SECRET, USER_DATA, ADMIN_TOKEN, WRONG_ADMIN_TOKEN,
           BAD_APP_CODE, AUTHZ_HEADER.split()[1], BAD_IAM_TOKEN, PUSHED_SECRET, PUSHED_APP_SECRET, GOOD_IAM_TOKEN,
           PK_PRIVATE, PK_PRIVATE[40:80]]
AUTH_URN = urn("authorizer")


def _doc(addr: str, dead: str) -> dict[str, Any]:
    apis = [
        auth_api("app", "/app", addr),
        auth_api("code", "/code", dead, auth_opt={"app_code_auth_type": "HEADER"}, retry_count="0"),
        auth_api("iam", "/iam", addr, auth_type="IAM", backend_params=[]),
        http_api("az", "/az", addr, auth_type="AUTHORIZER", authorizer_id="az1"),
        http_api("pk", "/pk", addr),
    ]
    signs = [
        {"id": "s-hmac", "name": "sign_hmac", "sign_type": "hmac", "sign_key": "leak_sign_key1",
         "sign_secret": HMAC_SECRET},
        {"id": "s-basic", "name": "sign_basic", "sign_type": "basic", "sign_key": "gwuser",
         "sign_secret": BASIC_SECRET},
        {"id": "s-pk", "name": "sign_pk", "sign_type": "public_key", "sign_key": PK_PUBLIC, "sign_secret": PK_PRIVATE},
    ]
    bindings = [{"id": f"sb-{api}", "sign_id": sid, "publish_id": f"p-{api}-{RELEASE}"}
                for api, sid in (("app", "s-hmac"), ("code", "s-basic"), ("pk", "s-pk"))]
    return snapshot(
        apis,
        apps=[app("app1", key=APP_KEY, secret=APP_SECRET)],
        app_codes=[{"id": "c1", "app_id": "app1", "app_code": APP_CODE}],
        app_auths=[grant("app1", "app"), grant("app1", "code")],
        signs=signs, sign_bindings=bindings,
        functions=[function(AUTH_URN, "authorizer")],
        authorizers=[authorizer_record("az1", AUTH_URN, user_data=USER_DATA)],
        features=[{"name": "public_key", "enable": True,
                   "config": '{"public_key_uri_prefix": "/apigw/authadv/v2/public-key/"}'}],
    )


class Collector:
    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes) -> None:
        self.texts.append((where, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))

    def leaks(self) -> list[tuple[str, str]]:
        return [(where, s) for where, text in self.texts for s in SECRETS if s in text]


async def _public(c: Collector, session: aiohttp.ClientSession, url: str, method: str, path: str,
                  headers: dict[str, str] | None = None, body: bytes | None = None) -> int:
    async with session.request(method, url + path, headers=headers, data=body) as r:
        raw = await r.read()
        head = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        if r.status >= 400 or path.startswith("/apigw/"):  # gateway-generated answers (backends echo input)
            c.add(f"public {method} {path} -> {r.status}", head + "\n" + raw.decode("utf-8", "replace"))
        else:
            c.add(f"public head {method} {path}", head)
        return r.status


async def _admin(c: Collector, session: aiohttp.ClientSession, url: str, method: str, path: str, *,
                 token: str | None = ADMIN_TOKEN, body: Any = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = orjson.dumps(body) if body is not None and not isinstance(body, bytes) else body
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with session.request(method, url + path, headers=headers, data=data) as r:
        raw = await r.read()
        c.add(f"admin {method} {path} -> {r.status}", "\n".join(f"{k}: {v}" for k, v in r.headers.items()) + "\n"
              + raw.decode("utf-8", "replace"))
        return r.status, raw


async def test_no_secret_reaches_logs_metrics_admin_or_errors(make_gateway, echo_backend, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # root logger: every module's records
    _backend, addr = echo_backend
    dead = f"127.0.0.1:{free_port()}"
    pem = tmp_path / "iam.pem"
    pem.write_bytes(public_pem(RSA))
    access = tmp_path / "access.log"
    gw = await make_gateway(_doc(addr, dead), admin_token=ADMIN_TOKEN, admin_token_required=True,
                            app_code_allow_http=True, iam_jwt_public_keys=str(pem), access_log_path=str(access),
                            access_log_query=True)
    c = Collector()
    url, admin = gw.url, gw.admin_url
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
        # APP signature: good, wrong secret, expired, unknown key; a query carrying a secret-like parameter
        assert await _public(c, s, url, "GET", "/app", signed_headers("GET", "/app", key=APP_KEY,
                                                                      secret=APP_SECRET)) == 200
        assert await _public(c, s, url, "GET", "/app", signed_headers("GET", "/app", key=APP_KEY,
                                                                      secret="SECRETwrongOne0001")) == 401
        assert await _public(c, s, url, "GET", "/app", signed_headers(
            "GET", "/app", key=APP_KEY, secret=APP_SECRET, date="20200101T000000Z")) == 401
        assert await _public(c, s, url, "GET", f"/app?token={BAD_IAM_TOKEN}&app_secret={APP_SECRET}",
                             {"Authorization": AUTHZ_HEADER}) == 401
        # AppCode: good (dead backend -> 502, basic-signed attempt), bad code
        assert await _public(c, s, url, "GET", "/code", {"X-Apig-AppCode": APP_CODE}) == 502
        assert await _public(c, s, url, "GET", "/code", {"X-Apig-AppCode": BAD_APP_CODE}) == 401
        # IAM: bad token, good token, Authorization header
        assert await _public(c, s, url, "GET", "/iam", {"X-Auth-Token": BAD_IAM_TOKEN}) == 401
        assert await _public(c, s, url, "GET", "/iam", {"X-Auth-Token": GOOD_IAM_TOKEN}) == 200
        # authorizer: allow (context carries user_data to the backend), deny, crash, junk
        for token, want in (("good-1", 200), ("nope", 500), ("boom", 500), ("junk", 500)):
            status = await _public(c, s, url, "GET", "/az", {"Authorization": f"Bearer {token}"})
            assert status == want or (want >= 500 and status >= 500), (token, status)
        await _public(c, s, url, "GET", "/az", {"Authorization": AUTHZ_HEADER})
        # public-key signing and the public-key endpoint (public material only)
        assert await _public(c, s, url, "GET", "/pk") == 200
        assert await _public(c, s, url, "GET", "/apigw/authadv/v2/public-key/s-pk") == 200

    async with aiohttp.ClientSession() as a:
        assert (await _admin(c, a, admin, "GET", "/v1/snapshot", token=None))[0] == 401
        assert (await _admin(c, a, admin, "GET", "/v1/snapshot", token=WRONG_ADMIN_TOKEN))[0] == 401
        status, raw = await _admin(c, a, admin, "GET", "/v1/snapshot")
        assert status == 200
        current = orjson.loads(raw)
        # invalid pushes whose failing fields hold secrets
        bad = _doc(addr, dead)
        bad["apps"][0]["app_secret"] = PUSHED_APP_SECRET
        bad["app_codes"].append({"id": "c2", "app_id": "app1", "app_code": APP_CODE})  # duplicate AppCode
        bad["signs"][2]["sign_secret"] = base64.b64encode(b"SECRETpushedBad!0001xyz not a key").decode()
        bad["signs"][0]["sign_secret"] = PUSHED_SECRET + "\u00e9"
        status, raw = await _admin(c, a, admin, "PUT", "/v1/snapshot", body=bad)
        assert status == 400
        problems = orjson.loads(raw)["problems"]
        for field in ("apps[0].app_secret", "app_codes[1].app_code", "signs[0].sign_secret", "signs[2].sign_secret"):
            assert any(p.startswith(field) for p in problems), (field, problems)
        bad2 = _doc(addr, dead)
        bad2["authorizers"][0]["user_data"] = {"nested": USER_DATA}
        assert (await _admin(c, a, admin, "PUT", "/v1/snapshot", body=bad2))[0] == 400
        # a masked document round-trips (masks keep the stored secrets)
        assert (await _admin(c, a, admin, "PUT", "/v1/snapshot", body=current))[0] == 200
        for path in ("/readyz", "/metrics", "/v1/snapshot/version", "/v1/export?group_id=g1",
                     f"/v1/export?group_id=g1&env_id={RELEASE}&format=yaml"):
            assert (await _admin(c, a, admin, "GET", path))[0] == 200, path
        v2 = "/v2/proj1/apigw/instances/inst1"
        for path in (f"{v2}/apps", f"{v2}/apps/app1", f"{v2}/apps/app1/app-codes", f"{v2}/signs",
                     f"{v2}/authorizers"):
            await _admin(c, a, admin, "GET", path)
        await _admin(c, a, admin, "POST", f"{v2}/apps/app1/app-codes", body={"app_code": APP_CODE})
        await _admin(c, a, admin, "POST", f"{v2}/openapi/export", body={"group_id": "g1"})
    await gw.gw.stop()  # flushes the access log
    c.add("access log", access.read_text())
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        c.add(f"log {record.name}", formatter.format(record))
    assert caplog.records, "expected some log records (e.g. the crashing authorizer)"
    assert c.leaks() == []
    # the masking is real: the secrets' fields are present, masked
    assert current["apps"][0]["app_secret"] == "******"
    assert current["app_codes"][0]["app_code"] == "******"
    assert all(sign["sign_secret"] == "******" for sign in current["signs"])
    assert current["authorizers"][0]["user_data"] == "******"
