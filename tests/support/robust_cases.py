"""Deterministic generators of malformed and hostile HTTP/1.x requests (seeded random, bounded counts).

Every generator returns :class:`tests.support.robust_helpers.Case` objects holding the exact bytes to send; nothing
is normalized by a client library. Categories are named so the test can report counts per category.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

from tests.support.auth_helpers import APP_CODE
from tests.support.robust_helpers import HOST, PATHS, Case

CRLF = b"\r\n"
AUTHORIZER_PATHS = ("/azr",)


def req(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"",
        version: bytes = b"HTTP/1.1", host: bytes | None = HOST, close: bool = True) -> bytes:
    lines = [method + b" " + target + b" " + version]
    if host is not None:
        lines.append(b"Host: " + host)
    for k, v in headers or []:
        lines.append(k + b": " + v)
    if close:
        lines.append(b"Connection: close")
    return CRLF.join(lines) + CRLF + CRLF + body


def _allow5(path: bytes | str) -> bool:
    p = path.decode("latin-1") if isinstance(path, bytes) else path
    return p.startswith(AUTHORIZER_PATHS) or "shape=" in p  # by design: authorizer failure, broken fn result


def _case(category: str, raw: bytes, path: bytes | str = b"", **kw: object) -> Case:
    kw.setdefault("allow_5xx", _allow5(path))
    return Case(category, raw, **kw)  # type: ignore[arg-type]


def _pick(rng: random.Random) -> bytes:
    return rng.choice(PATHS).encode()


def bad_percent(rng: random.Random) -> list[Case]:
    bad = [b"%", b"%z", b"%zz", b"%G1", b"%c3%28", b"%ff%fe", b"%00", b"%0a", b"%0d%0a", b"%25%", b"%%", b"%e4%b8",
           b"%C0%AF", b"%2f", b"%5c", b"%u0041", b"%E2%82%28"]
    out = []
    for i in range(40):
        base = _pick(rng)
        token = rng.choice(bad)
        if i % 2:
            target = base + b"/" + token + b"x"
        else:
            target = base + b"?" + rng.choice([b"a=", b"", b"q="]) + token + rng.choice([b"", b"&b=1", b"=" + token])
        out.append(_case("bad_percent_encoding", req(b"GET", target), target))
    return out


def control_bytes(rng: random.Random) -> list[Case]:
    ctl = [b"\x00", b"\x01", b"\x07", b"\x08", b"\x0b", b"\x1b", b"\x7f", b"\t", b"\xff", b"\xc3\x28", b"\x80",
           b"\r", b"\n"]
    out = []
    for i in range(40):
        base = _pick(rng)
        c = rng.choice(ctl)
        target = base + (b"/a" + c + b"b" if i % 2 else b"?a=" + c + b"&" + c + b"=1")
        out.append(_case("control_bytes_in_target", req(b"GET", target), target))
    return out


def dot_segments(rng: random.Random) -> list[Case]:
    forms = [b"/swa/../mock", b"/swa/%2e%2e/mock", b"/../../etc/passwd", b"/swa/./a", b"//swa", b"/swa//a",
             b"/pol/../../app/7", b"/swa/..%2fmock", b"/swa/%2E%2E%2F%2E%2E", b"/mock/..", b"/app/7/..",
             b"/./mock", b"/swa/.../a", b"/swa/..;/a", b"/swa/a/..%00", b"/iam/..", b"/fn/../fn", b"/..",
             b"/.", b"../mock", b"mock", b"*", b"http://api.test.local/mock", b"http://evil.example/mock",
             b"/swa/a/b/../../../../x"]
    return [_case("dot_segments", req(rng.choice([b"GET", b"POST"]), f, body=b""), f) for f in forms]


def long_targets(rng: random.Random) -> list[Case]:
    out = []
    for n in (1000, 4000, 8000, 16000, 31000, 33000, 70000):
        out.append(_case("long_path", req(b"GET", b"/swa/" + b"a" * n)))
        out.append(_case("long_query", req(b"GET", b"/pol/x?" + b"k=" + b"v" * n)))
    out.append(_case("long_path", req(b"GET", b"/swa" + b"/s" * 8000)))
    out.append(_case("long_path", req(b"GET", b"/app/" + b"9" * 5000)))
    return out


def query_keys(rng: random.Random) -> list[Case]:
    forms = [b"a=1&a=2&a=3", b"=1", b"&&&", b"=", b"a", b"a&a&a", b"tier=gold&tier=silver", b"tier=&tier=gold",
             b"q=abc&q=ABC", b"q=" + b"z" * 11, b"q=", b";a=1;b=2", b"a=1&&b=2&", b"%3D=%26", b"+=+",
             b"a[]=1&a[]=2", b"a.b.c=1", b"__proto__=1&constructor=2", b"?=?", b"tier"]
    out = []
    for f in forms:
        base = rng.choice([b"/pol/x", b"/app/7", b"/fn", b"/fnecho", b"/mock", b"/swa/a"])
        out.append(_case("query_keys", req(b"GET", base + b"?" + f), base))
    many = b"&".join(b"k%d=%d" % (i, i) for i in range(2000))
    out.append(_case("query_keys", req(b"GET", b"/fnecho?" + many)))
    out.append(_case("query_keys", req(b"GET", b"/pol/x?" + b"&".join([b"tier=x"] * 1500))))
    return out


def header_bytes(rng: random.Random) -> list[Case]:
    values = [b"\xff\xfe", b"caf\xc3\xa9", b"\xc3\x28", b"\x80abc", b"a\x00b", b"a\x01b", b"\x7f", b" ", b"",
              b"\xe2\x82", b"a\tb"]
    names = [b"X-Foo", b"Authorization", b"Cookie", b"X-Stage", b"X-Apig-AppCode", b"X-Auth-Token", b"X-Sdk-Date",
             b"Origin", b"X-Forwarded-For", b"Content-Type", b"Accept", b"Range", b"Access-Control-Request-Method"]
    out = []
    for _ in range(45):
        path = _pick(rng)
        name = rng.choice(names)
        out.append(_case("non_utf8_header_values", req(b"GET", path, [(name, rng.choice(values))]), path))
    for name in (b"X-\xff", b"X Foo", b"X-Foo ", b"", b"\x00", b":authority"):
        out.append(_case("bad_header_names", req(b"GET", b"/mock", [(name, b"v")])))
    out.append(_case("non_utf8_header_values", req(b"GET", b"/mock", host=b"api.test.local\xff")))
    out.append(_case("non_utf8_header_values", req(b"GET", b"/mock", host=b"\xc3\xa9.test")))
    return out


def duplicate_framing(rng: random.Random) -> list[Case]:
    b5 = b"hello"
    forms: list[tuple[list[tuple[bytes, bytes]], bytes, bytes | None]] = [
        ([(b"Host", b"api.test.local")], b"", HOST),
        ([(b"Host", b"evil.example")], b"", HOST),
        ([], b"", b"api.test.local, evil.example"),
        ([(b"Content-Length", b"5"), (b"Content-Length", b"5")], b5, HOST),
        ([(b"Content-Length", b"5"), (b"Content-Length", b"6")], b5 + b"x", HOST),
        ([(b"Content-Length", b"5, 5")], b5, HOST),
        ([(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")], b"5\r\nhello\r\n0\r\n\r\n", HOST),
        ([(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], b"0\r\n\r\n", HOST),
        ([(b"Transfer-Encoding", b"gzip, chunked")], b"0\r\n\r\n", HOST),
        ([(b"Transfer-Encoding", b"chunked, identity")], b"0\r\n\r\n", HOST),
        ([(b"Transfer-Encoding", b"identity")], b5, HOST),
        ([(b"Transfer-Encoding", b"xchunked")], b"0\r\n\r\n", HOST),
        ([(b"Transfer-Encoding", b" chunked")], b"0\r\n\r\n", HOST),
        ([(b"Transfer-Encoding", b"CHUNKED")], b"0\r\n\r\n", HOST),
        ([(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"0")], b"0\r\n\r\n", HOST),
        ([(b"Content-Length", b"5"), (b"Content-Length", b"")], b5, HOST),
    ]
    out = []
    for path in (b"/post", b"/fnecho", b"/azr"):
        for headers, body, host in forms:
            out.append(_case("duplicate_framing_headers", req(b"POST", path, headers, body, host=host), path))
    return out


def bad_content_length(rng: random.Random) -> list[Case]:
    values = [b"-1", b"abc", b"1e3", b" 5", b"5 ", b"+5", b"0x5", b"99999999999999999999", b"5.0", b"\xff",
              b"18446744073709551616", b"13000000"]
    out = []
    for v in values:
        path = rng.choice([b"/post", b"/fnecho", b"/swa/a"])
        out.append(_case("invalid_content_length", req(b"POST", path, [(b"Content-Length", v)], b"hello"), path,
                         may_close=True, half_close=True))
    # declared longer than sent, then half-close: the request can never complete
    for path in (b"/post", b"/fnecho", b"/app/7"):
        out.append(_case("invalid_content_length", req(b"POST", path, [(b"Content-Length", b"100")], b"short"),
                         path, half_close=True, may_close=True))
    return out


def bad_chunked(rng: random.Random) -> list[Case]:
    bodies = [b"zz\r\nhello\r\n0\r\n\r\n", b"-1\r\nx\r\n0\r\n\r\n", b"ffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
              b"5\r\nhelloXX0\r\n\r\n", b"5;ext=\xff\r\nhello\r\n0\r\n\r\n", b"5\r\nhel", b"0x5\r\nhello\r\n0\r\n\r\n",
              b" 5\r\nhello\r\n0\r\n\r\n", b"5\nhello\n0\n\n", b"3\r\nhello\r\n0\r\n\r\n",
              b"5\r\nhello\r\n0\r\nX-Trailer: \xff\r\n\r\n", b"\r\n\r\n", b"10000000\r\nabc"]
    out = []
    for path in (b"/post", b"/fnecho", b"/swa/up"):
        for body in bodies:
            out.append(_case("bad_chunked_body", req(b"POST", path, [(b"Transfer-Encoding", b"chunked")], body), path,
                             half_close=True, may_close=True))
    return out


def body_on_get(rng: random.Random) -> list[Case]:
    out = []
    for path in (b"/mock", b"/swa/a", b"/fnecho", b"/pol/x", b"/iam", b"/app/7", b"/chan/a", b"/env"):
        out.append(_case("body_on_get", req(b"GET", path, [(b"Content-Length", b"11")], b"hello world"), path))
        out.append(_case("body_on_get", req(b"HEAD", path, [(b"Transfer-Encoding", b"chunked")],
                                            b"5\r\nhello\r\n0\r\n\r\n"), path))
    return out


def unknown_methods(rng: random.Random) -> list[Case]:
    methods = [b"FOO", b"PROPFIND", b"get", b"G ET", b"TRACE", b"CONNECT", b"PRI", b"M-SEARCH", b"\xff\xfe",
               b"GET\x00", b"X" * 300, b"PURGE", b"LINK", b"OPTIONS", b"DELETE"]
    out = []
    for m in methods:
        path = _pick(rng)
        target = b"api.test.local:443" if m == b"CONNECT" else (b"*" if m in (b"PRI", b"OPTIONS") else path)
        out.append(_case("unknown_methods", req(m, target), target))
    out.append(_case("unknown_methods", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
    out.append(_case("unknown_methods", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40))
    return out


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def garbage_credentials(rng: random.Random) -> list[Case]:
    auth = [b"SDK-HMAC-SHA256", b"SDK-HMAC-SHA256 ", b"SDK-HMAC-SHA256 Access=, SignedHeaders=, Signature=",
            b"SDK-HMAC-SHA256 Access=app_key_0001, SignedHeaders=host;x-sdk-date, Signature=zz",
            b"SDK-HMAC-SHA256 Access=app_key_0001, SignedHeaders=;;;, Signature=00",
            b"SDK-HMAC-SHA256 Access=app_key_0001,SignedHeaders=x-unknown,Signature=" + b"0" * 64,
            b"SDK-HMAC-SHA256 Access=\xff, SignedHeaders=host, Signature=\xff",
            b"SDK-HMAC-SHA256 Access=a=b=c, SignedHeaders, Signature",
            b"SDK-HMAC-SHA256 Access=app_key_0001, SignedHeaders=host;x-sdk-date;" + b"h;" * 500 + b", Signature=1",
            b"Bearer", b"Bearer ", b"Bearer good", b"Bearer boom", b"Bearer junk", b"Bearer nested", b"Bearer status",
            b"Basic \xff\xff", b"Basic Og==", b"Digest x", b",,,", b"=", b"A" * 8000]
    dates = [b"2020", b"99999999T999999Z", b"20240230T250000Z", b"", b"\xff", b"19700101T000000Z",
             b"20991231T235959Z", b"-1", b"20240101T000000Zjunk"]
    codes = [b"", b"x", APP_CODE.encode()[:-1] + b"!", b"\xff" * 64, b"A" * 5000, APP_CODE.encode() + b" "]
    tokens = [b"a.b.c", b"...", b"eyJ", _b64(b'{"alg":"none"}') + b"." + _b64(b"{}") + b".",
              _b64(b'{"alg":"RS256","kid":"\xff"}') + b"." + _b64(b"[]") + b".sig",
              _b64(b'{"alg":"RS256"}') + b"." + _b64(b'{"exp":"soon"}') + b"." + _b64(b"x" * 256),
              _b64(b"not json") + b"." + _b64(b"not json") + b"." + _b64(b"x"),
              _b64(b'{"alg":"ES256","crit":["x"]}') + b"." + _b64(b'{"exp":1e309}') + b".AAAA",
              b"MII" + b"A" * 3000, b"\xff\xfe"]
    out = []
    for value in auth:
        for path in (b"/app/7", b"/azr", b"/iam"):
            out.append(_case("garbage_credentials", req(b"GET", path, [(b"Authorization", value)]), path))
    for d in dates:
        path = rng.choice([b"/app/7", b"/azr"])
        sig = b"SDK-HMAC-SHA256 Access=app_key_0001, SignedHeaders=host;x-sdk-date, Signature=aa"
        hdr = [(b"X-Sdk-Date", d), (b"Authorization", sig)]
        out.append(_case("garbage_credentials", req(b"GET", path, hdr), path))
    for c in codes:
        out.append(_case("garbage_credentials", req(b"GET", b"/app/7", [(b"X-Apig-AppCode", c)])))
    for t in tokens:
        out.append(_case("garbage_credentials", req(b"GET", b"/iam", [(b"X-Auth-Token", t)])))
        out.append(_case("garbage_credentials", req(b"GET", b"/azr", [(b"Authorization", t)]), b"/azr"))
    return out


def malformed_json(rng: random.Random) -> list[Case]:
    bodies = [b"{", b"[1,2", b"\xff\xfe", b"null", b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000, b'"\\ud800"',
              b'{"statusCode":"x"}', b"1e999999", b"NaN", b"", b'{"a":1}' * 1000, b"\x00\x00\x00"]
    out = []
    for path in (b"/fn", b"/fnecho", b"/azr", b"/fn?shape=bodyobj"):
        for body in bodies:
            hdrs = [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode())]
            out.append(_case("malformed_json_bodies", req(b"POST", path, hdrs, body), path))
    for shape in (b"raise", b"string", b"nostatus", b"badb64", b"bodyobj", b"binary", b"text", b"\xff", b"%00"):
        out.append(_case("function_results", req(b"GET", b"/fn?shape=" + shape), allow_5xx=True))
    return out


def header_counts(rng: random.Random) -> list[Case]:
    out = []
    for n in (50, 127, 129, 200, 1000, 5000):
        hdrs = [(b"X-H%d" % i, b"v") for i in range(n)]
        out.append(_case("huge_header_counts", req(b"GET", b"/mock", hdrs)))
    for n in (100, 300):
        out.append(_case("huge_header_counts", req(b"GET", b"/fnecho", [(b"X-Same", b"v")] * n)))
    for size in (8190, 33000, 100000):
        out.append(_case("huge_header_counts", req(b"GET", b"/swa/a", [(b"X-Big", b"v" * size)])))
    out.append(_case("huge_header_counts", req(b"GET", b"/pol/x", [(b"Cookie", b"a=b; " * 8000)])))
    return out


def odd_stages(rng: random.Random) -> list[Case]:
    stages = [b"", b" ", b"test", b"TEST", b"Test ", b"TEST\x00", b"../", b"\xc3\xa4", b"S" * 1000, b"release",
              b"RELEASE", b"DEFAULT_ENVIRONMENT_RELEASE_ID", b"env-test", b"test,release", b"\xff", b"%54EST",
              b"tEsT"]
    out = []
    for s in stages:
        path = rng.choice([b"/env", b"/app/7", b"/mock", b"/fnecho", b"/pol/x"])
        out.append(_case("odd_x_stage", req(b"GET", path, [(b"X-Stage", s)]), path))
    out.append(_case("odd_x_stage", req(b"GET", b"/env", [(b"X-Stage", b"test"), (b"X-Stage", b"release")])))
    return out


def forwarded_for(rng: random.Random) -> list[Case]:
    values = [b"garbage", b"1.2.3.4, garbage", b",,,", b"::1", b"[::1]", b"999.1.1.1", b"10.0.0.1",
              b"10.1.2.3", b"127.0.0.1, 10.1.2.3", b", ".join([b"10.0.0.%d" % (i % 250) for i in range(1000)]),
              b"\xff", b"1.2.3.4:80", b"fe80::1%eth0", b"unknown", b"_hidden", b"1.2.3.4" + b" " * 500,
              b"0.0.0.0", b"255.255.255.255", b"::ffff:10.1.2.3", b"2001:db8::1"]
    out = []
    for peer in (None, "127.0.0.2"):
        for v in values:
            path = rng.choice([b"/app/7", b"/swa/a", b"/pol/x", b"/post", b"/mock"])
            method = b"POST" if path == b"/post" else b"GET"
            extra = [(b"X-Forwarded-For", v), (b"Content-Length", b"0")]
            if rng.random() < 0.3:
                extra.append((b"X-Real-IP", rng.choice([b"garbage", b"10.1.9.9", b"\xff", b""])))
            out.append(_case("x_forwarded_for", req(method, path, extra), path, local_addr=peer))
    return out


def odd_cookies(rng: random.Random) -> list[Case]:
    cookies = [b"a", b"=;=;", b"lane=beta; lane=canary", b'lane="beta"', b"lane=%ff", b"\xff=1", b"a=b=c",
               b";;;;", b"lane", b"lane=", b" lane = beta ", b"lane=beta\x00", b"$Version=1; lane=beta",
               b"lane=" + b"b" * 5000, b"a=1, lane=beta", b"lane=can\xc3\xa4ry"]
    return [_case("odd_cookies", req(b"GET", b"/pol/x", [(b"Cookie", c)])) for c in cookies] + [
        _case("odd_cookies", req(b"GET", b"/pol/x", [(b"Cookie", b"lane=beta"), (b"Cookie", b"lane=x")]))]


def ranges(rng: random.Random) -> list[Case]:
    values = [b"bytes=0-1", b"bytes=abc", b"bytes=5-1", b"bytes=-", b"items=1-2", b"bytes=0-1,2-3,4-5",
              b"bytes=99999999999999999999-", b"bytes=-0", b"bytes=\xff", b""]
    out = []
    for v in values:
        path = rng.choice([b"/mock", b"/swa/a", b"/fnecho", b"/env"])
        out.append(_case("range_headers", req(b"GET", path, [(b"Range", v), (b"If-Range", b"\"x\"")]), path))
    return out


def expect_continue(rng: random.Random) -> list[Case]:
    out = []
    for path in (b"/post", b"/fnecho", b"/swa/a"):
        head = req(b"POST", path, [(b"Expect", b"100-continue"), (b"Content-Length", b"5")])
        out.append(_case("expect_100_continue", head, path, expect_continue=b"hello"))
        head = req(b"POST", path, [(b"Expect", b"100-continue"), (b"Transfer-Encoding", b"chunked")])
        out.append(_case("expect_100_continue", head, path, expect_continue=b"5\r\nhello\r\n0\r\n\r\n"))
    for v in (b"fancy-feature", b"100-continue, x", b"\xff"):
        out.append(_case("expect_100_continue",
                         req(b"POST", b"/post", [(b"Expect", v), (b"Content-Length", b"0")])))
    return out


def versions(rng: random.Random) -> list[Case]:
    out = [
        _case("http_versions", req(b"GET", b"/mock", version=b"HTTP/1.0", host=None, close=False)),
        _case("http_versions", req(b"GET", b"/mock", version=b"HTTP/1.0", close=False)),
        _case("http_versions", req(b"GET", b"/env", version=b"HTTP/1.0", close=False)),
        _case("http_versions", req(b"POST", b"/post", [(b"Content-Length", b"2")], b"{}", version=b"HTTP/1.0",
                                    close=False)),
        _case("http_versions", req(b"GET", b"/mock", host=None)),
        _case("http_versions", b"GET /mock\r\n\r\n", may_close=True, half_close=True),
        _case("http_versions", req(b"GET", b"/mock", version=b"HTTP/2.0"), allow_5xx=True,
              statuses=frozenset({505})),
        _case("http_versions", req(b"GET", b"/mock", version=b"HTTP/1.2")),
        _case("http_versions", req(b"GET", b"/mock", version=b"HTTP/9.9")),
        _case("http_versions", req(b"GET", b"/mock", version=b"HTTP/1.1x")),
        _case("http_versions", req(b"GET", b"/mock", version=b"http/1.1")),
        _case("http_versions", b"GET  /mock  HTTP/1.1\r\nHost: api.test.local\r\nConnection: close\r\n\r\n"),
        _case("http_versions", b"GET /mock HTTP/1.1\nHost: api.test.local\nConnection: close\n\n"),
        _case("http_versions", b"\r\n\r\nGET /mock HTTP/1.1\r\nHost: api.test.local\r\nConnection: close\r\n\r\n"),
        _case("http_versions",
              b"GET /mock HTTP/1.1\r\nHost: api.test.local\r\n Folded: x\r\nConnection: close\r\n\r\n"),
    ]
    return out


def pipelined(rng: random.Random) -> list[Case]:
    good = req(b"GET", b"/mock", close=False)
    fn = req(b"GET", b"/fnecho?a=1", close=False)
    post = req(b"POST", b"/post", [(b"Content-Length", b"3")], b"abc", close=False)
    last = req(b"GET", b"/swa/a")
    bad = req(b"GET", b"/swa/%zz", close=False)
    auth = req(b"GET", b"/app/7", [(b"Authorization", b"junk")], close=False)
    out = [
        _case("pipelined", good + fn + last, responses=3),
        _case("pipelined", post + good + post + last, responses=4),
        _case("pipelined", bad + auth + good + last, responses=4),
        _case("pipelined", good * 10 + last, responses=11),
        _case("pipelined", fn + post + auth + last, responses=4),
        _case("pipelined", req(b"GET", b"/azr", [(b"Authorization", b"good")], close=False) + last, responses=2,
              allow_5xx=True),
        # a request the parser rejects ends the connection; the earlier answers still arrive
        _case("pipelined", good + b"BROKEN\r\n\r\n" + good, responses=2),
        _case("pipelined", (good + fn) * 5 + last, responses=11),
    ]
    return out


def half_closed(rng: random.Random) -> list[Case]:
    return [
        _case("half_closed", req(b"GET", b"/mock"), half_close=True, may_close=True),
        _case("half_closed", req(b"GET", b"/swa/a"), half_close=True, may_close=True),
        _case("half_closed", req(b"GET", b"/fnecho"), half_close=True, may_close=True),
        _case("half_closed", req(b"POST", b"/post", [(b"Content-Length", b"3")], b"abc"), half_close=True,
              may_close=True),
        _case("half_closed", b"GET /mock HTTP/1.1\r\nHost: api.te", half_close=True, may_close=True),
        _case("half_closed", b"GET /mo", half_close=True, may_close=True),
        _case("half_closed", b"", half_close=True, may_close=True),
        _case("half_closed", req(b"POST", b"/fnecho", [(b"Content-Length", b"10")], b"abc"), half_close=True,
              may_close=True),
        _case("half_closed", req(b"POST", b"/post", [(b"Transfer-Encoding", b"chunked")], b"3\r\nabc\r\n"),
              half_close=True, may_close=True),
        _case("half_closed", req(b"GET", b"/mock", close=False) + b"GET /mock HT", half_close=True, may_close=True),
    ]


GENERATORS: list[Callable[[random.Random], list[Case]]] = [
    bad_percent, control_bytes, dot_segments, long_targets, query_keys, header_bytes, duplicate_framing,
    bad_content_length, bad_chunked, body_on_get, unknown_methods, garbage_credentials, malformed_json,
    header_counts, odd_stages, forwarded_for, odd_cookies, ranges, expect_continue, versions, pipelined,
    half_closed,
]


def all_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    for gen in GENERATORS:
        cases.extend(gen(rng))
    return cases
