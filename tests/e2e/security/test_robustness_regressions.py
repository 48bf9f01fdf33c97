"""One regression test per robustness bug found by tests/test_robustness.py (real gateway, raw sockets)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tests.support.auth_helpers import public_pem, rsa_key
from tests.support.helpers import http_api, snapshot
from tests.support.robust_cases import req
from tests.support.robust_helpers import Case, everything_doc, exchange


async def _one(port: int, raw: bytes, **kw: Any) -> Any:
    out = await exchange(port, Case("regression", raw, **kw))
    assert out.error is None, out.error
    assert out.answers, "no answer"
    return out.answers[-1]


async def test_parser_rejections_answer_group_response_json(make_gateway: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp's parser errors used to be text/plain bodies echoing the request bytes, logged at ERROR with a
    traceback per bad client. Now: the built-in group-response JSON, a fixed message, a DEBUG log line."""
    caplog.set_level(logging.DEBUG)
    gw = await make_gateway(snapshot([]))
    port = gw.gw.public_port
    for raw, msg in ((b"G ET /x HTTP/1.1\r\n\r\n", "Invalid HTTP method."),
                     (req(b"GET", b"/x", [(b"X Bad", b"secret-ish")]), "Bad request."),
                     (req(b"POST", b"/x", [(b"Content-Length", b"1"), (b"Content-Length", b"2")]), "Bad request."),
                     (req(b"GET", b"/x?" + b"a" * 40000), "Request line or header field too long.")):
        ans = await _one(port, raw)
        assert ans.status == 400 and ans.header("Content-Type").startswith("application/json")
        doc = json.loads(ans.body)
        assert (doc["error_code"], doc["error_msg"]) == ("APIG.0201", msg)
        assert doc["request_id"] == ans.header("X-Request-Id") and len(doc["request_id"]) == 32
        assert ans.header("Server") == "api-gateway"
        assert b"secret-ish" not in ans.body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_http_2_request_line_gets_505_on_http_1_1(make_gateway: Any) -> None:
    """aiohttp answered "HTTP/2.0 200 OK" to a plain-text "GET / HTTP/2.0": the status line echoed the version."""
    gw = await make_gateway(snapshot([]))
    out = await exchange(gw.gw.public_port, Case("v", req(b"GET", b"/x", version=b"HTTP/2.0")))
    assert out.error is None, out.error  # the parser (the test's) accepts only HTTP/1.x status lines
    ans = out.answers[0]
    assert ans.status == 505
    assert json.loads(ans.body)["error_msg"] == "HTTP version not supported."
    # versions aiohttp's parser refuses outright get the parser-rejection answer
    ans = await _one(gw.gw.public_port, req(b"GET", b"/x", version=b"HTTP/3.0"))
    assert ans.status == 400 and json.loads(ans.body)["error_msg"] == "Invalid request line."


async def test_swa_suffix_is_percent_encoded_towards_the_backend(make_gateway: Any) -> None:
    """A decoded SWA suffix was written raw into the backend request line: %0d%0a became a real CR LF
    (request splitting: the caller could add headers to the backend request) and %00 a NUL."""
    heads: list[bytes] = []

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        writer.close()

    server = await asyncio.start_server(backend, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        gw = await make_gateway(snapshot([http_api("swa", "/swa", f"127.0.0.1:{port}", match_mode="SWA")]))
        for raw, seen in ((b"/swa/a%0d%0aX-Injected:%201", b"/swa/a%0d%0aX-Injected:%201"),  # the caller's encoding
                          (b"/swa/a%00b", b"/swa/a%00b"), (b"/swa/%3Fq=1", b"/swa/%3Fq=1"),
                          (b"/swa/caf%C3%A9", b"/swa/caf%C3%A9"), (b"/swa/a%20b", b"/swa/a%20b"),
                          (b"/swa/a;b=c:d@e", b"/swa/a;b=c:d@e")):
            ans = await _one(gw.gw.public_port, req(b"GET", raw))
            assert ans.status == 200, ans.body
            assert heads[-1].split(b"\r\n")[0] == b"GET " + seen + b" HTTP/1.1"
            assert b"X-Injected" not in heads[-1].split(b"\r\n", 1)[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_broken_request_body_is_400_not_5xx(make_gateway: Any, echo_backend: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A bad chunk size or a body cut short used to surface as an unhandled error (500, logged with a
    traceback) for FUNCTION targets and signed APIs, or as 502 with the healthy backend member reported
    failed for HTTP targets."""
    from tests.support import functions_helpers as fh

    caplog.set_level(logging.ERROR)
    _backend, addr = echo_backend
    doc = snapshot([http_api("p", "/p", addr, method="POST"),
                    fh.func_api("f", "/f", fh.urn("echo"))], functions=[fh.function(fh.urn("echo"), "echo")])
    gw = await make_gateway(doc)
    for path in (b"/p", b"/f"):
        # the head and a good chunk first (the handler starts), then a bad chunk size
        ans = await _one(gw.gw.public_port, req(b"POST", path, [(b"Transfer-Encoding", b"chunked")],
                                                b"5\r\nhello\r\n"), expect_continue=b"zz\r\n")
        assert ans.status == 400, ans.body
        assert json.loads(ans.body)["error_msg"] == "Invalid request body."
    assert not [r for r in caplog.records if "unhandled" in r.getMessage()]


async def test_non_ascii_iam_token_is_401(make_gateway: Any, echo_backend: Any, tmp_path: Any) -> None:
    """A token with non-UTF-8 bytes reached PyJWT as a surrogate string: UnicodeEncodeError, 500."""
    _backend, addr = echo_backend
    pem = tmp_path / "k.pem"
    pem.write_bytes(public_pem(rsa_key()))
    gw = await make_gateway(everything_doc(addr), iam_jwt_public_keys=str(pem), access_log=False)
    for token in (b"\xff\xfe", b"\xc3(", b"eyJ\xe9.x.y"):
        ans = await _one(gw.gw.public_port, req(b"GET", b"/iam", [(b"X-Auth-Token", token)]))
        doc = json.loads(ans.body)
        assert (ans.status, doc["error_code"]) == (401, "APIG.0301")
        assert doc["error_msg"].endswith("decrypt token fail")
