"""Security regressions of APP signature verification: repeated signed headers, the claimed body hash, host.

Real signed requests (the vendor SDK's algorithm, gateway/lib/sdk_signer.py) to a real gateway and echo backend.
"""

from __future__ import annotations

import hashlib
from typing import Any

from multidict import CIMultiDict

from tests.support.auth_helpers import app, auth_api, call, grant, signed_headers
from tests.support.helpers import GROUP_HOST, snapshot


def _doc(addr: str) -> dict[str, Any]:
    return snapshot([auth_api("s1", "/orders", addr, method="ANY")], apps=[app("app1")],
                    app_auths=[grant("app1", "s1")])


async def test_repeated_signed_header_is_refused(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    hdrs = signed_headers("GET", "/orders", headers={"X-Tenant": "t1"})
    st, _, _ = await call(client, gw.url, "GET", "/orders", headers=hdrs)
    assert st == 200
    twice = CIMultiDict(hdrs)
    twice.add("X-Tenant", "t2-injected")  # signature covers one value; the backend would see two
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=twice)  # type: ignore[arg-type]
    assert st == 401
    assert doc["error_code"] == "APIG.0303"
    assert "signed header x-tenant appears more than once" in doc["error_msg"]
    dates = CIMultiDict(hdrs)
    dates.add("X-Sdk-Date", "20200101T000000Z")
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=dates)  # type: ignore[arg-type]
    assert st == 401
    assert backend.hits == 1


async def test_claimed_body_hash_must_match_the_body(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    body = b'{"amount": 10}'
    claimed = hashlib.sha256(body).hexdigest()
    hdrs = signed_headers("POST", "/orders", body, headers={"X-Sdk-Content-Sha256": claimed})
    st, _, _ = await call(client, gw.url, "POST", "/orders", body=body, headers=hdrs)
    assert st == 200
    # the same signed head replayed with another body: the signature still verifies, the hash does not
    st, doc, _ = await call(client, gw.url, "POST", "/orders", body=b'{"amount": 99999}', headers=hdrs)
    assert st == 401
    assert "x-sdk-content-sha256 does not match the body" in doc["error_msg"]
    assert backend.hits == 1
    # UNSIGNED-PAYLOAD stays the documented opt-out: any body
    hdrs = signed_headers("POST", "/orders", b"", headers={"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
    st, _, _ = await call(client, gw.url, "POST", "/orders", body=b"anything", headers=hdrs)
    assert st == 200


async def test_signed_headers_must_include_host(make_gateway, echo_backend, client) -> None:
    from gateway.lib import sdk_signer

    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr))
    date = sdk_signer.format_date()
    hdrs = {"X-Sdk-Date": date}
    canonical = sdk_signer.canonical_request("GET", "/orders", [], hdrs, ["x-sdk-date"],
                                             sdk_signer.payload_hash(b""))
    sig = sdk_signer.sign("app_secret_0001_xyz", sdk_signer.string_to_sign(canonical, date))
    hdrs["Authorization"] = sdk_signer.authorization_value("app_key_0001", ["x-sdk-date"], sig)
    hdrs["Host"] = GROUP_HOST
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=hdrs)
    assert st == 401
    assert "SignedHeaders must include host" in doc["error_msg"]
    assert backend.hits == 0
