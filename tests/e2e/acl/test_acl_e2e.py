"""Access control policies end to end: IP ACLs (v4/v6, ranges, CIDR), client-IP features, account ACLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.auth_helpers import app as make_app
from tests.support.auth_helpers import auth_api, call, error_of, iam_token, public_pem, rsa_key, signed_headers
from tests.support.auth_helpers import grant as make_grant
from tests.support.helpers import RELEASE, snapshot

KEY = rsa_key()


def _acl(acl_id: str, acl_type: str, value: str, entity: str = "IP") -> dict[str, Any]:
    return {"id": acl_id, "acl_name": f"acl_{acl_id}", "acl_type": acl_type, "entity_type": entity, "acl_value": value}


def _doc(backend: str, acls: list[dict[str, Any]], bind: dict[str, list[str]], auth_type: str = "NONE",
         **kw: Any) -> dict[str, Any]:
    """API n1 published in RELEASE and TEST; ``bind`` maps publish ids to ACL ids."""
    doc = snapshot([auth_api("n1", "/acl", backend, auth_type=auth_type)], envs=["TEST"], publish_in=["env-test"],
                   acls=acls, **kw)
    doc["acl_bindings"] = [{"id": f"b-{pid}-{aid}", "acl_id": aid, "publish_id": pid}
                           for pid, aids in bind.items() for aid in aids]
    return doc


REL = f"p-n1-{RELEASE}"
TEST = "p-n1-env-test"


@pytest.mark.parametrize(("acl_type", "value", "expected"), [
    ("PERMIT", "127.0.0.1", 200),
    ("PERMIT", "10.0.0.1,127.0.0.0/8", 200),
    ("PERMIT", "127.0.0.3/30", 200),  # non-strict CIDR: means 127.0.0.0/30, which holds .1
    ("PERMIT", "127.0.0.5/30", 403),  # means 127.0.0.4/30
    ("PERMIT", "10.0.0.0/8, 192.168.1.5", 403),
    ("PERMIT", "127.0.0.2-127.0.0.9", 403),
    ("DENY", "127.0.0.0-127.0.0.255", 403),
    ("DENY", "127.0.0.1", 403),
    ("DENY", "10.0.0.0/8,::1", 200),
])
async def test_ip_acl(make_gateway, echo_backend, client, acl_type: str, value: str, expected: int) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr, [_acl("x", acl_type, value)], {REL: ["x"]}))
    st, body, _ = await call(client, gw.url, "GET", "/acl")
    assert st == expected, body
    if expected == 403:
        assert error_of(body) == ("APIG.0402", "The IP address is not authorized to access the API.")


async def test_acl_is_per_publication(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr, [_acl("x", "DENY", "127.0.0.1")], {TEST: ["x"]}))
    st, _, _ = await call(client, gw.url, "GET", "/acl")
    assert st == 200
    st, body, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Stage": "TEST"})
    assert (st, body["error_code"]) == (403, "APIG.0402")


async def test_ipv6_and_client_ip_header_feature(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    features = [{"name": "real_ip_header_getter", "enable": True,
                 "config": {"enable": True, "header_getter": "header:X-Client-IP"}}]
    doc = _doc(addr, [_acl("x", "PERMIT", "2001:db8::/32, 192.168.0.5-192.168.0.10, ::ffff:0:0/96")],
               {REL: ["x"]}, features=features)
    gw = await make_gateway(doc)
    for ip, expected in (("2001:db8::5", 200), ("2001:db9::1", 403), ("192.168.0.7", 200), ("192.168.0.11", 403),
                         ("::ffff:192.168.0.6", 200), ("not-an-ip", 403)):
        st, body, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Client-IP": ip})
        assert st == expected, (ip, body)
        if st == 200:
            assert body["headers"]["X-Ctx-Source-Ip"] == ip
    # header absent: the socket peer (127.0.0.1) is not in the list
    st, _, _ = await call(client, gw.url, "GET", "/acl")
    assert st == 403


async def test_xff_index_feature(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    for index, expected in ((0, 200), (-1, 403), (1, 403), (-3, 200), (5, 403)):
        features = [{"name": "real_ip_from_xff", "enable": True, "config": f'{{"enable": true, "xff_index": {index}}}'}]
        doc = _doc(addr, [_acl("x", "PERMIT", "203.0.113.7")], {REL: ["x"]}, features=features)
        gw = await make_gateway(doc)
        st, body, _ = await call(client, gw.url, "GET", "/acl",
                                 headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.1, 10.1.1.1"})
        assert st == expected, (index, body)
    # feature disabled by its record: XFF ignored
    features = [{"name": "real_ip_from_xff", "enable": False, "config": {"enable": True, "xff_index": 0}}]
    gw = await make_gateway(_doc(addr, [_acl("x", "PERMIT", "203.0.113.7")], {REL: ["x"]}, features=features))
    st, _, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Forwarded-For": "203.0.113.7"})
    assert st == 403


async def test_forwarded_headers_trusted_only_from_proxies(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    doc = _doc(addr, [_acl("x", "DENY", "203.0.113.0/24")], {REL: ["x"]})
    # no trusted proxies: XFF cannot change the client IP
    gw = await make_gateway(doc)
    st, _, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Forwarded-For": "203.0.113.9"})
    assert st == 200
    st, _, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Forwarded-For": "198.51.100.2"})
    assert st == 200
    # the peer is a trusted proxy: the rightmost untrusted XFF hop is the client
    gw = await make_gateway(doc, trusted_proxies=["127.0.0.0/8"])
    st, body, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.9"})
    assert (st, body.get("error_code")) == (403, "APIG.0402")
    st, body, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Forwarded-For": "203.0.113.9, 1.2.3.4"})
    assert st == 200 and body["headers"]["X-Ctx-Source-Ip"] == "1.2.3.4"
    # a feature is ignored when trusted proxies are configured and the peer is not one of them
    features = [{"name": "real_ip_from_xff", "config": {"enable": True, "xff_index": 0}}]
    doc2 = _doc(addr, [_acl("x", "DENY", "127.0.0.1")], {REL: ["x"]}, features=features)
    gw = await make_gateway(doc2, trusted_proxies=["10.0.0.0/8"])
    st, _, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Forwarded-For": "5.6.7.8"})
    assert st == 403


def _iam_doc(addr: str, acls: list[dict[str, Any]], auth_type: str = "IAM", **kw: Any) -> dict[str, Any]:
    return _doc(addr, acls, {REL: [a["id"] for a in acls]}, auth_type=auth_type, **kw)


@pytest.fixture
def pem(tmp_path: Path) -> str:
    p = tmp_path / "k.pem"
    p.write_bytes(public_pem(KEY))
    return str(p)


async def test_domain_acls(make_gateway, echo_backend, client, pem) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_iam_doc(addr, [_acl("d", "PERMIT", "acme,globex", "DOMAIN")]), iam_jwt_public_keys=pem)
    for domain, expected in (("acme", 200), ("globex", 200), ("initech", 403), ("ACME", 403)):
        token = iam_token(KEY, domain_name=domain)
        st, body, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Auth-Token": token})
        assert st == expected, (domain, body)
        if expected == 403:
            assert error_of(body) == ("APIG.0302", "The IAM user is not authorized to access the API.")
    # a token without an account name: PERMIT refuses
    st, body, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Auth-Token": iam_token(KEY, domain_name=None)})
    assert (st, body["error_code"]) == (403, "APIG.0306")
    # DENY by account id
    gw = await make_gateway(_iam_doc(addr, [_acl("d", "DENY", "d-0001", "DOMAIN_ID")]), iam_jwt_public_keys=pem)
    st, _, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Auth-Token": iam_token(KEY)})
    assert st == 403
    st, _, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Auth-Token": iam_token(KEY, domain_id="d-2")})
    assert st == 200


async def test_domain_acl_without_account(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_iam_doc(addr, [_acl("d", "PERMIT", "acme", "DOMAIN")], auth_type="NONE"))
    st, body, _ = await call(client, gw.url, "GET", "/acl")
    assert (st, error_of(body)) == (403, ("APIG.0306", "API access denied."))
    gw = await make_gateway(_iam_doc(addr, [_acl("d", "DENY", "acme", "DOMAIN")], auth_type="NONE"))
    st, _, _ = await call(client, gw.url, "GET", "/acl")
    assert st == 200


async def test_ip_and_domain_acls_all_must_pass(make_gateway, echo_backend, client, pem) -> None:
    _backend, addr = echo_backend
    acls = [_acl("i", "PERMIT", "127.0.0.1"), _acl("d", "DENY", "evil", "DOMAIN")]
    gw = await make_gateway(_iam_doc(addr, acls), iam_jwt_public_keys=pem)
    st, _, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Auth-Token": iam_token(KEY)})
    assert st == 200
    evil = iam_token(KEY, domain_name="evil")
    st, body, _ = await call(client, gw.url, "GET", "/acl", headers={"X-Auth-Token": evil})
    assert (st, body["error_code"]) == (403, "APIG.0302")
    # the IP ACL runs before authentication: a refused IP never reaches the token check
    acls = [_acl("i", "PERMIT", "10.0.0.1"), _acl("d", "DENY", "evil", "DOMAIN")]
    gw = await make_gateway(_iam_doc(addr, acls), iam_jwt_public_keys=pem)
    st, body, _ = await call(client, gw.url, "GET", "/acl")
    assert (st, body["error_code"]) == (403, "APIG.0402")


async def test_ip_acl_runs_before_app_auth(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    doc = _doc(addr, [_acl("i", "DENY", "127.0.0.1")], {REL: ["i"]}, auth_type="APP",
               apps=[make_app("app1")], app_auths=[make_grant("app1", "n1")])
    gw = await make_gateway(doc)
    st, body, _ = await call(client, gw.url, "GET", "/acl", headers=signed_headers("GET", "/acl"))
    assert (st, body["error_code"]) == (403, "APIG.0402")
    doc["acl_bindings"] = []
    gw.gw.apply_document(doc)
    st, body, _ = await call(client, gw.url, "GET", "/acl", headers=signed_headers("GET", "/acl"))
    assert st == 200 and body["headers"]["X-Ctx-App-Id"] == "app1"
