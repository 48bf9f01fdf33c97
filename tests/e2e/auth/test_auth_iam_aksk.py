"""IAM AK/SK-signed calls end to end: SDK-HMAC-SHA256 with IAM access keys (``iam_credentials``), the
identity reaching $context, USER throttling per account, DOMAIN_ID ACLs; real gateway, real backend."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.errors import SnapshotError
from gateway.lib.sdk_signer import sign_request
from tests.support.auth_helpers import auth_api, call, error_of
from tests.support.helpers import GROUP_HOST, snapshot
from tests.support.throttle_helpers import binding, policy

AK, SK = "AKIAEXAMPLE0001", "sk-secret-0001-abcdef"
AK2, SK2 = "AKIAEXAMPLE0002", "sk-secret-0002-abcdef"


def cred(access: str, secret: str, user: str, domain: str, **extra: Any) -> dict[str, Any]:
    return {"access": access, "secret": secret, "user_id": user, "user_name": f"name-{user}", "domain_id": domain,
            "domain_name": f"acct-{domain}", "status": "active", **extra}


def _doc(backend: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("iam_credentials", [cred(AK, SK, "u-1", "d-1"), cred(AK2, SK2, "u-2", "d-1"),
                                      cred("AKIAINACTIVE0003", "sk-secret-0003", "u-3", "d-3", status="inactive")])
    return snapshot([auth_api("i1", "/me", backend, auth_type="IAM", method="ANY")], **kw)


def signed(method: str, path: str, ak: str = AK, sk: str = SK, body: bytes = b"", **kw: Any) -> dict[str, str]:
    return sign_request(ak, sk, method, f"http://{GROUP_HOST}{path}", {"Host": GROUP_HOST}, body, **kw)


async def test_aksk_signed_calls_carry_the_identity(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    st, body, _ = await call(client, gw.url, "GET", "/me?x=1", headers=signed("GET", "/me?x=1"))
    assert st == 200, body
    assert body["headers"]["X-Ctx-User-Id"] == "u-1"
    data = b'{"a": 1}'
    st, body, _ = await call(client, gw.url, "POST", "/me", data, signed("POST", "/me", body=data))
    assert st == 200 and body["body"] == data.decode()
    cases = [
        (signed("GET", "/me", sk="wrong-secret-0001"), "verify aksk signature fail"),
        (signed("GET", "/me", ak="AKIAUNKNOWN9999", sk=SK), "Get secretKey failed,ak:******,err:ak not exist"),
        (signed("GET", "/me", ak="AKIAINACTIVE0003", sk="sk-secret-0003"), "ak not exist"),
        (signed("GET", "/me", date="20200101T000000Z"), "signature expired"),
    ]
    for headers, reason in cases:
        st, err, _ = await call(client, gw.url, "GET", "/me", headers=headers)
        assert (st, error_of(err)[0]) == (401, "APIG.0301"), err
        assert reason in error_of(err)[1] and "AKIAUNKNOWN" not in error_of(err)[1] and SK not in str(err)
    st, err, _ = await call(client, gw.url, "GET", "/me")
    assert st == 401 and "x-auth-token not found" in error_of(err)[1]
    assert backend.hits == 2


async def test_user_throttling_per_account_and_domain_acl(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    doc = _doc(addr, throttles=[policy("t1", 100, user=2, unit="MINUTE")], throttle_bindings=[binding("t1", "i1")])
    gw = await make_gateway(doc, throttle_default_api_limit=0)
    # two users of one account (d-1) share the account's USER budget
    got = [(await call(client, gw.url, "GET", "/me", headers=signed("GET", "/me", ak=a, sk=s)))[0]
           for a, s in ((AK, SK), (AK2, SK2), (AK, SK))]
    assert got == [200, 200, 429]
    acl = {"id": "deny-d1", "acl_name": "deny_d1", "acl_type": "DENY", "entity_type": "DOMAIN_ID", "acl_value": "d-1"}
    doc = _doc(addr, acls=[acl], acl_bindings=[{"id": "b1", "acl_id": "deny-d1", "publish_id": "p-i1-"
                                                                                        "DEFAULT_ENVIRONMENT_RELEASE_ID"}])
    gw2 = await make_gateway(doc)
    st, err, _ = await call(client, gw2.url, "GET", "/me", headers=signed("GET", "/me"))
    assert st == 403, err


async def test_credentials_validated_and_secret_masked(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    with pytest.raises(SnapshotError) as exc:
        await make_gateway(_doc(addr, iam_credentials=[cred(AK, SK, "u-1", "d-1"), cred(AK, SK2, "u-2", "d-2"),
                                                        cred(AK2, SK2, "u-1", "d-9")]))
    probs = exc.value.problems
    assert any("iam_credentials[1]" in p and "duplicate" in p for p in probs), probs
    assert any(p.startswith("iam_credentials[2].domain_id: user 'u-1' already belongs") for p in probs), probs
    gw = await make_gateway(_doc(addr))
    async with client.get(gw.admin_url + "/v1/snapshot") as r:
        text = await r.text()
    assert r.status == 200 and AK in text and SK not in text and SK2 not in text
