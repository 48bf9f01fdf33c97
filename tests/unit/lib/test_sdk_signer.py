"""SDK-HMAC-SHA256: the vendor-SDK vectors (spec 03 §1) and vectors from an independent implementation."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from multidict import CIMultiDict

from gateway.lib import sdk_signer as s

KEY, SECRET, DATE = "apigateway_sdk_demo_key", "apigateway_sdk_demo_secret", "20240326T030801Z"


def test_hmac_vector() -> None:
    assert s.sign("abc", "abc") == "2f02e24ae2e1fe880399f27600afa88364e6062bf9bbe114b32fa8f23d03608a"


def test_sdk_unit_canonical_request() -> None:
    cr = s.canonical_request("POST", "/app1", [("a", "1")], {"x-stage": "RELEASE"}, ["x-stage"],
                             s.payload_hash(b"body"))
    assert cr == ("POST\n/app1/\na=1\nx-stage:RELEASE\n\nx-stage\n"
                  "230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5")


def test_auth_header_value() -> None:
    assert s.authorization_value("ABCDE12345", ["host", "x-sdk-date", "x-stage"], "abcdefghijklmnopqrst1234567890") == (
        "SDK-HMAC-SHA256 Access=ABCDE12345, SignedHeaders=host;x-sdk-date;x-stage, "
        "Signature=abcdefghijklmnopqrst1234567890")


C1_HOST = "30030113-3657-4fb6-a7ef-90764239b038.apigw.exampleRegion.com"


def test_vector_c1() -> None:
    headers = {"host": C1_HOST, "x-sdk-date": DATE, "x-stage": "RELEASE"}
    names = ["host", "x-sdk-date", "x-stage"]
    cr = s.canonical_request("POST", "/app1", [("a", "1")], headers, names, s.payload_hash(b"body"))
    assert cr == (f"POST\n/app1/\na=1\nhost:{C1_HOST}\nx-sdk-date:{DATE}\nx-stage:RELEASE\n\n"
                  "host;x-sdk-date;x-stage\n230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5")
    sts = s.string_to_sign(cr, DATE)
    assert sts == f"SDK-HMAC-SHA256\n{DATE}\n7d1576ff01281349b9df6d57cd632b815d54f5e797f25a23df91623c2fde353f"
    out = s.sign_request(KEY, SECRET, "POST", f"https://{C1_HOST}/app1?a=1", {"x-stage": "RELEASE"}, b"body",
                         date=DATE)
    assert out["Authorization"] == (
        f"SDK-HMAC-SHA256 Access={KEY}, SignedHeaders=host;x-sdk-date;x-stage, "
        "Signature=86d521733b49bc165453d602d71fc05b51789bd782de8f260547711fbca8e325")


def test_vector_c2() -> None:
    pairs = s.parse_query("b=2&a=x%20y&a=3")
    assert s.canonical_query(pairs) == "a=3&a=x%20y&b=2"
    headers = {"Content-Type": "application/json", "Host": "api.example.com", "X-Sdk-Date": DATE}
    cr = s.canonical_request("GET", "/v1/res/", pairs, headers, ["content-type", "host", "x-sdk-date"], s.EMPTY_SHA256)
    assert s.string_to_sign(cr, DATE).endswith("fd299a2d88f7a0b242cbb3d32de86de60534f348b3f047e96a2f4635989561b8")
    out = s.sign_request(KEY, SECRET, "GET", "https://api.example.com/v1/res/?b=2&a=x%20y&a=3",
                         {"Content-Type": "application/json"}, b"", date=DATE)
    assert out["Authorization"].endswith(
        "SignedHeaders=content-type;host;x-sdk-date, "
        "Signature=a6189f65b87ca0cdc786bbcbaf7f370acc0ae04fbf88e6fbbc0e1928604a536a")


def test_vector_c3() -> None:
    out = s.sign_request(KEY, SECRET, "PUT", "https://api.example.com/upload",
                         {"x-sdk-content-sha256": "UNSIGNED-PAYLOAD"}, b"big", date=DATE)
    assert out["Authorization"] == (
        f"SDK-HMAC-SHA256 Access={KEY}, SignedHeaders=host;x-sdk-content-sha256;x-sdk-date, "
        "Signature=5b37b8ae44f78442d3245d3f36f8f9e5dade40129eeea3286574d226af0e8c4d")
    cr = s.canonical_request("PUT", "/upload", [], out, ["host", "x-sdk-content-sha256", "x-sdk-date"],
                             "UNSIGNED-PAYLOAD")
    assert s.string_to_sign(cr, DATE).endswith("f6e5d3aa4f00739c4dfc2c80bb112fb1783b8314d8deebbffa4c231e0d1e67e6")


# --- an independent implementation written from the public algorithm description ------------------

_UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _enc(text: str) -> str:
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def _dec(text: str) -> str:
    """Percent-decoding written out by hand (invalid escapes stay as they are)."""
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    hexdigits = b"0123456789abcdefABCDEF"
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) + 1 and len(raw[i + 1:i + 3]) == 2 \
                and all(c in hexdigits for c in raw[i + 1:i + 3]):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def _ref_sign(method: str, raw_path: str, raw_query: str, headers: dict[str, str], body: bytes) -> str:
    segs = [_enc(seg) for seg in _dec(raw_path).split("/")]
    uri = "/".join(segs)
    uri = uri if uri.endswith("/") else uri + "/"
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        k, eq, v = part.partition("=")
        if k:
            pairs.append((_dec(k), _dec(v) if eq else ""))
    pairs.sort()
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in pairs)
    low = {k.lower(): v.strip() for k, v in headers.items()}
    names = sorted(low)
    block = "".join(f"{n}:{low[n]}\n" for n in names)
    digest = low.get("x-sdk-content-sha256") or hashlib.sha256(body).hexdigest()
    cr = f"{method}\n{uri}\n{query}\n{block}\n{';'.join(names)}\n{digest}"
    sts = f"SDK-HMAC-SHA256\n{low['x-sdk-date']}\n{hashlib.sha256(cr.encode()).hexdigest()}"
    return hmac.new(SECRET.encode(), sts.encode(), hashlib.sha256).hexdigest()


CASES = [
    ("GET", "/", "", b""),
    ("GET", "/a/b/", "", b""),  # trailing slash kept, not doubled
    ("GET", "/a/b", "k=1&k=0&k=", b""),  # repeated keys, values sorted, empty value
    ("GET", "/p", "flag&x=&=skipped&&y=2", b""),  # key without '=', empty value, empty key dropped
    ("GET", "/with%20space/x", "q=a%20b&r=a+b", b""),  # spaces; '+' stays a literal plus
    ("GET", "/%E4%B8%AD%E6%96%87/caf%C3%A9", "n=%C3%A9t%C3%A9&%E4%B8%AD=1", b""),  # non-ASCII
    ("GET", "/tilde~/a-b_c.d", "t=~x&s=%2F%3F%26", b""),  # unreserved kept, reserved encoded
    ("POST", "/upload", "", b'{"a": 1}'),
    ("PUT", "/bin", "z=1&a=2", bytes(range(256))),
    ("DELETE", "/x//y", "", b""),  # empty segment kept
]


@pytest.mark.parametrize(("method", "path", "query", "body"), CASES)
def test_independent_vectors(method: str, path: str, query: str, body: bytes) -> None:
    url = f"http://h.example:8080{path}" + (f"?{query}" if query else "")
    out = s.sign_request(KEY, SECRET, method, url, {"Content-Type": "text/plain", "X-Custom": "  v  "}, body,
                         date=DATE)
    sig = out["Authorization"].rsplit("Signature=", 1)[1]
    headers = {k: v for k, v in out.items() if k != "Authorization"}
    assert sig == _ref_sign(method, path, query, headers, body)
    creds = s.parse_authorization(out["Authorization"])
    assert creds is not None and creds.access == KEY
    assert s.verify(SECRET, sig, method, path, s.parse_query(query), headers, creds.signed_headers,
                    s.payload_hash(body), DATE)
    assert not s.verify("other_secret", sig, method, path, s.parse_query(query), headers, creds.signed_headers,
                        s.payload_hash(body), DATE)


def test_ascii_encoding_table() -> None:
    for b in range(0x80):
        ch = chr(b)
        expected = ch if (ch.isalnum() or ch in "-._~") else f"%{b:02X}"
        assert s.encode(ch) == expected


def test_parse_authorization_lenient_and_strict() -> None:
    ok = s.parse_authorization("SDK-HMAC-SHA256  Access=k1,SignedHeaders=Host;X-Sdk-Date,  Signature=ABCDEF01")
    assert ok == s.Credentials("k1", ("host", "x-sdk-date"), "abcdef01")
    for bad in ("Basic abc", "SDK-HMAC-SHA256 Access=k", "SDK-HMAC-SHA256 Access=k, SignedHeaders=h, Signature=zz",
                "SDK-HMAC-SHA256 Access=, SignedHeaders=h, Signature=00"):
        assert s.parse_authorization(bad) is None


def test_dates_and_missing_signed_header() -> None:
    assert s.parse_date("20240326T030801Z") is not None
    for bad in ("2024-03-26T03:08:01Z", "20241326T030801Z", "20240326T030801", ""):
        assert s.parse_date(bad) is None
    with pytest.raises(KeyError):
        s.canonical_request("GET", "/", [], {"host": "h"}, ["host", "x-sdk-date"], s.EMPTY_SHA256)


def test_settings_env_overrides() -> None:
    from gateway.core.settings import load_settings

    st = load_settings(environ={"GATEWAY_IAM_JWT_ALGORITHMS": "RS256, ES384", "GATEWAY_APP_CODE_ALLOW_HTTP": "true",
                                "GATEWAY_IAM_CACHE_TTL_S": "12.5", "GATEWAY_APP_AUTH_CLOCK_SKEW_S": "60",
                                "GATEWAY_IAM_REMOTE_URL": "http://iam.local/v3/auth/tokens"})
    assert st.iam_jwt_algorithms == ["RS256", "ES384"] and st.app_code_allow_http is True
    assert (st.iam_cache_ttl_s, st.app_auth_clock_skew_s) == (12.5, 60)
    assert st.iam_remote_url == "http://iam.local/v3/auth/tokens"


def test_parse_date_slices_the_fixed_format() -> None:
    from datetime import UTC, datetime

    from gateway.lib.sdk_signer import parse_date

    assert parse_date("20240326T030801Z") == datetime(2024, 3, 26, 3, 8, 1, tzinfo=UTC)
    for bad in ("20240230T030801Z", "20241326T030801Z", "20240326T250801Z", "20240326T030801", "2024-03-26T03:08:01Z",
                "20240326t030801Z", " 20240326T030801Z", "２0240326T030801Z"):
        assert parse_date(bad) is None, bad


def test_verify_prepared_agrees_with_verify() -> None:
    from multidict import CIMultiDict

    from gateway.lib.sdk_signer import parse_query, prepare_key, sign_request, verify, verify_prepared

    url = "http://api.test.local/a%20b/c?z=1&a=2&a=1&e="
    hdrs = sign_request("k1", "s3cret", "POST", url, {"Host": "api.test.local", "Content-Type": "text/plain"},
                        b"body", date="20240326T030801Z")
    headers = CIMultiDict(hdrs)
    names = ("content-type", "host", "x-sdk-date")
    sig = hdrs["Authorization"].rsplit("=", 1)[1]
    digest = __import__("hashlib").sha256(b"body").hexdigest()
    args = (sig, "POST", "/a%20b/c", parse_query("z=1&a=2&a=1&e="), headers, names, digest, "20240326T030801Z")
    assert verify("s3cret", *args)
    assert verify_prepared(prepare_key("s3cret"), *args)
    key = prepare_key("s3cret")
    assert verify_prepared(key, *args) and verify_prepared(key, *args)  # the prepared key is reusable
    assert not verify_prepared(prepare_key("other"), *args)
    assert not verify_prepared(key, "0" * 64, *args[1:])


@pytest.mark.parametrize(("method", "path", "query", "body"), CASES)
def test_verify_target_agrees_with_the_reference(method: str, path: str, query: str, body: bytes) -> None:
    from multidict import CIMultiDict

    url = f"http://h.example:8080{path}" + (f"?{query}" if query else "")
    out = s.sign_request(KEY, SECRET, method, url, {"Content-Type": "text/plain", "X-Custom": "  v  "}, body,
                         date=DATE)
    creds = s.parse_authorization(out["Authorization"])
    assert creds is not None
    headers = CIMultiDict({k: v for k, v in out.items() if k != "Authorization"})
    target = path + (f"?{query}" if query else "")
    key = s.prepare_key(SECRET)
    for _ in range(2):  # the second call reads the memoised target lines: same verdict
        assert s.verify_target(key, creds.signature, method, target, headers, creds.signed_headers,
                               s.payload_hash(body), DATE)
        assert s.verify_target(key, creds.signature, method, f"http://other.example{target}", headers,
                               creds.signed_headers, s.payload_hash(body), DATE)  # absolute-form target
    assert not s.verify_target(s.prepare_key("other_secret"), creds.signature, method, target, headers,
                               creds.signed_headers, s.payload_hash(body), DATE)
    assert not s.verify_target(key, creds.signature, method, target + ("&x=1" if query else "?x=1"), headers,
                               creds.signed_headers, s.payload_hash(body), DATE)
    assert not s.verify_target(key, "0" * 64, method, target, headers, creds.signed_headers, s.payload_hash(body),
                               DATE)


def test_memo_is_bounded_and_never_remembers_long_keys() -> None:
    calls: list[str] = []

    def fn(text: str) -> str:
        calls.append(text)
        return text.upper()

    memo = s._Memo(fn, size=3, max_key=8)
    assert [memo(x) for x in ("a", "b", "a", "c")] == ["A", "B", "A", "C"]
    assert calls == ["a", "b", "c"] and len(memo.data) == 3
    assert memo("d") == "D" and len(memo.data) == 1  # full: emptied, then the new entry
    long = "x" * 9
    assert memo(long) == long.upper() and memo(long) == long.upper()
    assert calls.count(long) == 2 and long not in memo.data


def test_check_date_reads_the_clock_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    when = s.parse_date(DATE)
    assert when is not None
    monkeypatch.setattr(time, "time", lambda: when.timestamp() + 10)
    assert s.check_date(DATE, 900) == (DATE, None)
    monkeypatch.setattr(time, "time", lambda: when.timestamp() + 901)  # the same (memoised) date, later
    assert s.check_date(DATE, 900)[1] is not None and "expired" in str(s.check_date(DATE, 900)[1])
    for _ in range(2):
        assert s.check_date("20241326T030801Z", 900)[1] is not None  # malformed: memoised as malformed
    assert s.check_date(f" {DATE} ", 1e12) == (DATE, None)


def test_prepared_key_is_a_reusable_hmac_sha256() -> None:
    key = s.prepare_key(SECRET)
    for _ in range(2):  # copied per use: the prepared key itself never absorbs a message
        mac = key.copy()
        mac.update(b"abc")
        assert mac.hexdigest() == hmac.new(SECRET.encode(), b"abc", hashlib.sha256).hexdigest()


_REFERENCE_RX = re.compile(
    r"^\s*SDK-HMAC-SHA256\s+Access=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9A-Fa-f]+)\s*$")


def test_parse_signature_accepts_exactly_what_the_reference_pattern_accepts() -> None:
    """The request path parses the part before ``Signature=`` once per text and the signature on every call: the
    outcome must be the single regular expression's, on well-formed values and on every near miss."""
    good = "SDK-HMAC-SHA256 Access=key1, SignedHeaders=Host;X-Sdk-Date, Signature=ABcd0123"
    cases = [good, good + " ", good + "\n", good + "\t\n", " " + good, good.replace(", ", ","),
             good.replace(" Access", "   Access"), good.replace(", Sig", " ,  Sig")]
    # every single-character edit at every position of the good value, and a few hostile shapes
    for i in range(len(good) + 1):
        for ch in ("", " ", ",", "=", "g", "A", "\u00e9", "\u212a", ";", "\n"):
            cases.append(good[:i] + ch + good[i + 1:])
            cases.append(good[:i] + ch + good[i:])
    cases += ["SDK-HMAC-SHA256 Access=Signature=x, SignedHeaders=host, Signature=00",
              "SDK-HMAC-SHA256 Access=k, SignedHeaders=host, Signature=Signature=00",
              "SDK-HMAC-SHA256 Access=k, SignedHeaders=;;, Signature=00",
              "SDK-HMAC-SHA256 Access=k, SignedHeaders=host, Signature=", "Signature=00", ""]
    for value in cases:
        m = _REFERENCE_RX.match(value)
        got = s.parse_signature(value)
        names = tuple(h for h in m.group(2).lower().split(";") if h) if m is not None else ()
        if m is None or not names:
            assert got is None, value
        else:
            assert got == (m.group(1), names, ";".join(names), m.group(3).lower()), value
        assert s.parse_signature(value) == got  # the remembered answer is the same


def test_verify_lines_agrees_with_verify_target() -> None:
    hdrs = s.sign_request("ak", "sk-secret-1", "GET", "http://h.example/p/a b?x=1&a=2", {"X-Extra": " v "})
    headers = CIMultiDict(hdrs)
    parsed = s.parse_signature(hdrs["Authorization"])
    assert parsed is not None
    _access, names, signed, sig = parsed
    lines = "".join(f"{n}:{headers[n].strip()}\n" for n in names)
    key = s.prepare_key("sk-secret-1")
    target = "/p/a%20b?x=1&a=2"
    assert s.verify_target(key, sig, "GET", target, headers, names, s.EMPTY_SHA256, hdrs["X-Sdk-Date"])
    assert s.verify_lines(key, sig, "GET", target, lines, signed, s.EMPTY_SHA256, hdrs["X-Sdk-Date"])
    assert not s.verify_lines(key, sig, "POST", target, lines, signed, s.EMPTY_SHA256, hdrs["X-Sdk-Date"])
    assert not s.verify_lines(s.prepare_key("other"), sig, "GET", target, lines, signed, s.EMPTY_SHA256,
                              hdrs["X-Sdk-Date"])


@pytest.mark.parametrize("secret", ["", "s", "sk-secret-1", "x" * 63, "y" * 64, "z" * 65, "k" * 200, "clé-秘密"])
def test_prepared_key_is_hmac_sha256(secret: str) -> None:
    key = s.prepare_key(secret)
    for msg in (b"", b"SDK-HMAC-SHA256\n20240326T030801Z\n" + b"e" * 64, b"m" * 200):
        expected = hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).hexdigest()
        assert key.hexmac(msg) == expected
        assert key.hexmac(msg) == expected  # the key is reusable
        mac = key.copy()
        mac.update(msg[:7])
        mac.update(msg[7:])
        assert mac.hexdigest() == expected
    assert s.prepare_key(secret + "!").hexmac(b"m") != key.hexmac(b"m")
