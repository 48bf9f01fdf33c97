"""APP authentication end to end: real gateway, real echo backend, real client, SDK-signed requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.lib.sdk_signer import format_date
from tests.support.auth_helpers import (
    APP_CODE,
    APP_KEY,
    APP_SECRET,
    app,
    auth_api,
    call,
    error_of,
    grant,
    signed_headers,
)
from tests.support.helpers import snapshot


def _doc(backend: str, **kw: Any) -> dict[str, Any]:
    apis = kw.pop("apis", None) or [
        auth_api("a1", "/orders", backend, method="ANY"),
        auth_api("a2", "/items/{id}", backend, method="GET",
                 req_params=[{"name": "id", "location": "PATH", "type": "STRING", "required": 1}]),
        auth_api("a3", "/code", backend, auth_opt={"app_code_auth_type": "HEADER"}),
    ]
    kw.setdefault("apps", [app("app1"), app("app2", key="second_key_02", secret="second_secret_02")])
    kw.setdefault("app_auths", [grant("app1", "a1"), grant("app1", "a2"), grant("app1", "a3"),
                                grant("app2", "a1", "env-test")])
    kw.setdefault("app_codes", [{"id": "c1", "app_id": "app1", "app_code": APP_CODE}])
    return snapshot(apis, envs=["TEST"], publish_in=["env-test"], **kw)


async def test_signed_calls_reach_backend_with_app_context(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    # GET with repeated and encoded query keys
    path = "/orders?b=2&a=x%20y&a=3&empty=&flag"
    st, doc, _ = await call(client, gw.url, "GET", path, headers=signed_headers("GET", path))
    assert st == 200, doc
    assert doc["headers"]["X-Ctx-App-Id"] == "app1"
    assert doc["headers"]["X-Ctx-App-Name"] == "app_app1"
    # POST with a body (hash of the body is signed) and a signed content-type
    body = '{"qty": 3, "name": "caf\u00e9"}'.encode()
    hdrs = signed_headers("POST", "/orders", body, headers={"Content-Type": "application/json"})
    st, doc, _ = await call(client, gw.url, "POST", "/orders", body, hdrs)
    assert st == 200, doc
    assert doc["body"] == body.decode() and doc["headers"]["X-Ctx-App-Id"] == "app1"
    # UNSIGNED-PAYLOAD: body not part of the signature
    hdrs = signed_headers("PUT", "/orders", b"", headers={"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
    st, doc, _ = await call(client, gw.url, "PUT", "/orders", b"any body at all", hdrs)
    assert st == 200, doc
    assert doc["body"] == "any body at all"
    # non-ASCII path segment, percent-encoded on the wire
    path = "/items/caf%C3%A9%20x?q=%E4%B8%AD"
    st, doc, _ = await call(client, gw.url, "GET", path, headers=signed_headers("GET", path))
    assert st == 200, doc


async def test_missing_and_malformed_credentials(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    st, doc, _ = await call(client, gw.url, "GET", "/orders")
    assert st == 401 and error_of(doc)[0] == "APIG.0303"
    assert "authorization not found" in error_of(doc)[1]
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers={"Authorization": "Bearer abc"})
    assert st == 401 and "not an SDK-HMAC-SHA256 signature" in error_of(doc)[1]
    hdrs = signed_headers("GET", "/orders")
    del hdrs["X-Sdk-Date"]
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=hdrs)
    assert st == 401 and "x-sdk-date not found" in error_of(doc)[1]
    hdrs = signed_headers("GET", "/orders", date="2024-03-26 03:08:01")
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=hdrs)
    assert st == 401 and "invalid x-sdk-date" in error_of(doc)[1]
    assert backend.hits == 0


async def test_rejections_never_leak_secret_or_signature(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    # unknown key
    hdrs = signed_headers("GET", "/orders", key="nobody_key_1")
    st, doc, resp = await call(client, gw.url, "GET", "/orders", headers=hdrs)
    assert (st, error_of(doc)[0]) == (401, "APIG.0303") and "app not found, appkey nobody_key_1" in doc["error_msg"]
    # wrong secret
    hdrs = signed_headers("GET", "/orders", secret="wrong_secret_1")
    good = signed_headers("GET", "/orders", date=hdrs["X-Sdk-Date"])["Authorization"].rsplit("=", 1)[1]
    st, doc, resp = await call(client, gw.url, "GET", "/orders", headers=hdrs)
    text = str(doc) + str(dict(resp.headers))
    assert st == 401 and doc["error_msg"].endswith("verify signature fail")
    assert APP_SECRET not in text and good not in text
    # tampered body, query, path, signed header value
    hdrs = signed_headers("POST", "/orders", b"original")
    st, doc, _ = await call(client, gw.url, "POST", "/orders", b"tampered", hdrs)
    assert st == 401 and "verify signature fail" in doc["error_msg"]
    hdrs = signed_headers("GET", "/orders?a=1")
    st, doc, _ = await call(client, gw.url, "GET", "/orders?a=2", headers=hdrs)
    assert st == 401
    hdrs = signed_headers("GET", "/orders", headers={"X-Tenant": "t1"})
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers={**hdrs, "X-Tenant": "t2"})
    assert st == 401
    # a header listed in SignedHeaders that the request does not carry
    hdrs = signed_headers("GET", "/orders", headers={"X-Tenant": "t1"})
    del hdrs["X-Tenant"]
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=hdrs)
    assert st == 401 and "signed header x-tenant not found" in doc["error_msg"]
    assert backend.hits == 0


async def test_clock_skew_window(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    now = datetime.now(UTC)
    for minutes, expected in ((-14, 200), (14, 200), (-16, 401), (16, 401)):
        date = format_date(now + timedelta(minutes=minutes))
        st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=signed_headers("GET", "/orders", date=date))
        assert st == expected, (minutes, doc)
        if expected == 401:
            assert f"signature expired, signature time:{date}" in doc["error_msg"]


async def test_authorization_per_environment_status_and_app_acl(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    doc = _doc(addr, apps=[app("app1"), app("app2", key="second_key_02", secret="second_secret_02"),
                           app("app3", key="frozen_key_03", secret="frozen_secret_3", status=2),
                           app("app4", key="acl_key_00004", secret="acl_secret_004"),
                           app("app5", key="acl_key_00005", secret="acl_secret_005")],
               app_auths=[grant("app1", "a1"), grant("app2", "a1", "env-test"), grant("app3", "a1"),
                          grant("app4", "a1"), grant("app5", "a1"),
                          {**grant("app1", "a2"), "auth_result": {"status": "FAILED"}}],
               app_acls=[{"app_id": "app4", "app_acl_type": "PERMIT", "app_acl_values": ["10.0.0.0/8"]},
                         {"app_id": "app5", "app_acl_type": "DENY",
                          "app_acl_values": ["192.168.0.1", "127.0.0.0-127.0.0.9"]}])
    gw = await make_gateway(doc)
    # app2 is authorized in TEST only
    h = signed_headers("GET", "/orders", key="second_key_02", secret="second_secret_02")
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=h)
    assert (st, error_of(body)[0]) == (403, "APIG.0304")
    assert body["error_msg"] == "The app is not authorized to access the API."
    h = signed_headers("GET", "/orders", key="second_key_02", secret="second_secret_02", headers={"X-Stage": "TEST"})
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=h)
    assert st == 200 and body["headers"]["X-Ctx-App-Id"] == "app2"
    # a FAILED authorization record does not authorize
    st, body, _ = await call(client, gw.url, "GET", "/items/1", headers=signed_headers("GET", "/items/1"))
    assert (st, error_of(body)[0]) == (403, "APIG.0304")
    # frozen app
    h = signed_headers("GET", "/orders", key="frozen_key_03", secret="frozen_secret_3")
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=h)
    assert (st, error_of(body)[0]) == (405, "APIG.0502")
    # app ACLs: app4 only from 10/8, app5 not from 127.0.0.0-127.0.0.9 (we call from 127.0.0.1)
    for key, secret in (("acl_key_00004", "acl_secret_004"), ("acl_key_00005", "acl_secret_005")):
        st, body, _ = await call(client, gw.url, "GET", "/orders", headers=signed_headers(
            "GET", "/orders", key=key, secret=secret))
        assert (st, error_of(body)[0]) == (403, "APIG.0405"), key
        assert body["error_msg"] == "The app is not accessed from a trusted IP address."
    assert backend.hits == 1


async def test_app_acl_admits_matching_ip(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    doc = _doc(addr, app_acls=[{"app_id": "app1", "app_acl_type": "PERMIT",
                                "app_acl_values": ["192.168.0.100/28", "127.0.0.1"]}])
    gw = await make_gateway(doc)
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=signed_headers("GET", "/orders"))
    assert st == 200, body


async def test_app_code(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr), app_code_allow_http=True)
    st, body, _ = await call(client, gw.url, "GET", "/code", headers={"X-Apig-AppCode": APP_CODE})
    assert st == 200, body
    assert body["headers"]["X-Ctx-App-Id"] == "app1"
    assert not any(k.lower() == "x-apig-appcode" for k in body["headers"])
    st, body, _ = await call(client, gw.url, "GET", "/code", headers={"X-Apig-AppCode": APP_CODE[:-1] + "x"})
    assert (st, body["error_msg"]) == (401, "Incorrect app authentication information: AppCode not found")
    # a signed call is still accepted on an AppCode API
    st, body, _ = await call(client, gw.url, "GET", "/code", headers=signed_headers("GET", "/code"))
    assert st == 200
    # an API without app_code_auth_type HEADER ignores the AppCode
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers={"X-Apig-AppCode": APP_CODE})
    assert st == 401 and "authorization not found" in body["error_msg"]


async def test_app_code_requires_https_by_default(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    st, body, _ = await call(client, gw.url, "GET", "/code", headers={"X-Apig-AppCode": APP_CODE})
    assert st == 401 and "only accepted over HTTPS" in body["error_msg"]
    # behind a trusted TLS-terminating proxy
    gw2 = await make_gateway(_doc(addr), trusted_proxies=["127.0.0.0/8"])
    st, body, _ = await call(client, gw2.url, "GET", "/code",
                             headers={"X-Apig-AppCode": APP_CODE, "X-Forwarded-Proto": "https"})
    assert st == 200, body


async def test_custom_auth_header_feature(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    doc = _doc(addr, features=[{"name": "custom_auth_header", "enable": True,
                                "config": '{"app_auth_header": "X-App-Sign", "backend_sign_header": ""}'}])
    gw = await make_gateway(doc)
    h = signed_headers("GET", "/orders")
    h["X-App-Sign"] = h.pop("Authorization")
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=h)
    assert st == 200, body
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=signed_headers("GET", "/orders"))
    assert st == 401 and "x-app-sign not found" in body["error_msg"]


async def test_group_response_overrides_auth_errors(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    doc = _doc(addr, responses=[{"id": "r1", "name": "custom", "responses": {
        "AUTH_FAILURE": {"status": 418, "body": '{"code":"$context.error.code","app":"$context.appId"}'}}}])
    doc["groups"][0]["response_id"] = "r1"
    gw = await make_gateway(doc)
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=signed_headers("GET", "/orders", secret="x" * 9))
    assert (st, body) == (418, {"code": "APIG.0303", "app": ""})


async def test_snapshot_swap_rotates_secret(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    doc = _doc(addr)
    gw = await make_gateway(doc)
    st, _, _ = await call(client, gw.url, "GET", "/orders", headers=signed_headers("GET", "/orders"))
    assert st == 200
    doc2 = _doc(addr, apps=[app("app1", secret="rotated_secret_1")])
    doc2["app_auths"] = [grant("app1", "a1")]
    gw.gw.apply_document(doc2)
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=signed_headers("GET", "/orders"))
    assert st == 401 and body["error_msg"].endswith("verify signature fail")
    st, _, _ = await call(client, gw.url, "GET", "/orders",
                          headers=signed_headers("GET", "/orders", secret="rotated_secret_1"))
    assert st == 200


async def test_both_official_signers_verify_unsigned_payload(make_gateway, echo_backend, client) -> None:
    """X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD is signed literally by the APIG SDK, and as sha256("") by
    huaweicloudsdkcore when the body is empty and not JSON: both are accepted, the second only without a body."""
    from gateway.lib import sdk_signer

    _backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    literal = signed_headers("GET", "/orders", headers={"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD",
                                                         "Content-Type": "text/plain"})
    st, doc, _ = await call(client, gw.url, "GET", "/orders", None, literal)
    assert st == 200, doc

    def core_sdk(method: str) -> dict[str, str]:
        # what huaweicloudsdkcore sends: the header says UNSIGNED-PAYLOAD, the canonical request ends in sha256("")
        date = format_date()
        hdrs = {"Host": "api.test.local", "Content-Type": "text/plain", "X-Sdk-Date": date,
                "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}
        names = sdk_signer.signed_header_names(hdrs)
        canonical = sdk_signer.canonical_request(method, "/orders", [], hdrs, names, sdk_signer.EMPTY_SHA256)
        sig = sdk_signer.sign(APP_SECRET, sdk_signer.string_to_sign(canonical, date))
        hdrs["Authorization"] = sdk_signer.authorization_value(APP_KEY, names, sig)
        return hdrs

    for method in ("GET", "DELETE", "POST"):
        st, doc, _ = await call(client, gw.url, method, "/orders", None, core_sdk(method))
        assert st == 200, (method, doc)
        assert doc["headers"]["X-Ctx-App-Id"] == "app1"
    # the empty-body form does not cover a body
    st, doc, _ = await call(client, gw.url, "POST", "/orders", b"smuggled", core_sdk("POST"))
    assert st == 401 and error_of(doc)[0] == "APIG.0303", doc
