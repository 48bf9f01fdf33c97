"""SDK-HMAC-SHA256 reproduces the vendor signer exactly (spec 03 §1 vectors a, c1, c2, c3)."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from multidict import CIMultiDict

from gateway.lib import sdk_hmac
from gateway.model.plan import BackendRequest

KEY = "apigateway_sdk_demo_key"
SECRET = "apigateway_sdk_demo_secret"
DATE = "20240326T030801Z"


def _vector(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes,
            canonical: str, sts_hash: str, sig: str) -> None:
    signed = sorted(h.lower() for h in headers)
    cr = sdk_hmac.canonical_request(method, path, query, headers, signed, body)
    assert cr == canonical
    sts = sdk_hmac.string_to_sign(cr, DATE)
    assert sts == f"SDK-HMAC-SHA256\n{DATE}\n{sts_hash}"
    auth = sdk_hmac.authorization(KEY, signed, sdk_hmac.signature(SECRET, sts))
    assert auth == f"SDK-HMAC-SHA256 Access={KEY}, SignedHeaders={';'.join(signed)}, Signature={sig}"


def test_vector_a_hmac_and_canonical() -> None:
    assert hmac.new(b"abc", b"abc", hashlib.sha256).hexdigest() == sdk_hmac.signature("abc", "abc")
    assert sdk_hmac.signature("abc", "abc") == "2f02e24ae2e1fe880399f27600afa88364e6062bf9bbe114b32fa8f23d03608a"
    cr = sdk_hmac.canonical_request("POST", "/app1", [("a", "1")], {"x-stage": "RELEASE"}, ["x-stage"], b"body")
    assert cr == ("POST\n/app1/\na=1\nx-stage:RELEASE\n\nx-stage\n"
                  "230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5")
    assert sdk_hmac.authorization("ABCDE12345", ["host", "x-sdk-date", "x-stage"],
                                  "abcdefghijklmnopqrst1234567890") == (
        "SDK-HMAC-SHA256 Access=ABCDE12345, SignedHeaders=host;x-sdk-date;x-stage, "
        "Signature=abcdefghijklmnopqrst1234567890")


def test_vector_c1() -> None:
    host = "30030113-3657-4fb6-a7ef-90764239b038.apigw.exampleRegion.com"
    _vector("POST", "/app1", [("a", "1")], {"host": host, "x-sdk-date": DATE, "x-stage": "RELEASE"}, b"body",
            f"POST\n/app1/\na=1\nhost:{host}\nx-sdk-date:{DATE}\nx-stage:RELEASE\n\nhost;x-sdk-date;x-stage\n"
            "230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5",
            "7d1576ff01281349b9df6d57cd632b815d54f5e797f25a23df91623c2fde353f",
            "86d521733b49bc165453d602d71fc05b51789bd782de8f260547711fbca8e325")


def test_vector_c2() -> None:
    _vector("GET", "/v1/res/", [("b", "2"), ("a", "x y"), ("a", "3")],
            {"Content-Type": "application/json", "host": "api.example.com", "x-sdk-date": DATE}, b"",
            f"GET\n/v1/res/\na=3&a=x%20y&b=2\ncontent-type:application/json\nhost:api.example.com\n"
            f"x-sdk-date:{DATE}\n\ncontent-type;host;x-sdk-date\n{sdk_hmac.EMPTY_SHA256}",
            "fd299a2d88f7a0b242cbb3d32de86de60534f348b3f047e96a2f4635989561b8",
            "a6189f65b87ca0cdc786bbcbaf7f370acc0ae04fbf88e6fbbc0e1928604a536a")


def test_vector_c3() -> None:
    _vector("PUT", "/upload", [], {"host": "api.example.com", "x-sdk-content-sha256": "UNSIGNED-PAYLOAD",
                                   "x-sdk-date": DATE}, b"big",
            f"PUT\n/upload/\n\nhost:api.example.com\nx-sdk-content-sha256:UNSIGNED-PAYLOAD\nx-sdk-date:{DATE}\n\n"
            "host;x-sdk-content-sha256;x-sdk-date\nUNSIGNED-PAYLOAD",
            "f6e5d3aa4f00739c4dfc2c80bb112fb1783b8314d8deebbffa4c231e0d1e67e6",
            "5b37b8ae44f78442d3245d3f36f8f9e5dade40129eeea3286574d226af0e8c4d")


def test_encoding_matches_sdk() -> None:
    # every ASCII byte except A-Za-z0-9 - . _ ~ is %XX with upper-case hex
    for code in range(128):
        ch = chr(code)
        expected = ch if (ch.isascii() and ch.isalnum()) or ch in "-._~" else f"%{code:02X}"
        assert sdk_hmac.encode(ch) == expected
    assert sdk_hmac.canonical_uri("/a%20b/c+d") == "/a%20b/c%2Bd/"
    assert sdk_hmac.canonical_uri("/") == "/"


def test_sign_headers_on_backend_request() -> None:
    breq = BackendRequest(method="POST", path="/app1", query=[("a", "1")],
                          headers=CIMultiDict({"Host": "api.example.com", "Content-Type": "text/plain",
                                               "X-Other": "not signed"}), body=b"body")
    # 2024-03-26T03:08:01Z
    value = sdk_hmac.sign_headers(breq, KEY, SECRET, now=1711422481)
    assert breq.headers["X-Sdk-Date"] == DATE
    assert value.startswith(f"SDK-HMAC-SHA256 Access={KEY}, SignedHeaders=content-type;host;x-sdk-date, Signature=")
    cr = sdk_hmac.canonical_request("POST", "/app1", [("a", "1")], breq.headers,
                                    ["content-type", "host", "x-sdk-date"], b"body")
    assert value.endswith(sdk_hmac.signature(SECRET, sdk_hmac.string_to_sign(cr, DATE)))
    assert breq.headers["Authorization"] == value


@pytest.mark.parametrize("path", ["/", "", "/a/b", "/a/b/", "//x", "/v1/orders/7", "/a.b~c-d_e", "/a%20b", "/a b",
                                  "/%2F", "/a+b", "/ü", "/a/../b"])
def test_canonical_uri_fast_path_matches_the_general_rule(path: str) -> None:
    from urllib.parse import quote, unquote

    from gateway.lib.sdk_hmac import canonical_uri

    p = path or "/"
    segs = (unquote(p) if "%" in p else p).split("/")
    general = "/".join(s if re.fullmatch(r"[A-Za-z0-9._~-]*", s) else quote(s, safe="~") for s in segs)
    assert canonical_uri(path) == (general if general.endswith("/") else general + "/")
