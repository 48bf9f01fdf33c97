"""Helpers for the robustness tests: an everything-at-once snapshot, a raw-socket HTTP/1.x client that
normalizes nothing, a tolerant response parser, and the checks every answer must pass (ground rule 4)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tests.support import functions_helpers as fh
from tests.support.auth_helpers import APP_CODE, app, auth_api, grant
from tests.support.helpers import GROUP_HOST, RELEASE, http_api, mock_api, snapshot
from tests.support.plugins_helpers import bind, plugin

HOST = GROUP_HOST.encode()
AUTH_URN = fh.urn("authorizer")
SHAPED_URN = fh.urn("shaped")
ECHO_URN = fh.urn("echo")
SIGN_KEY, SIGN_SECRET = "gw_sign_key1", "Gw-secret_0123456789!@#"
# Paths of the published APIs (one per feature); every generator picks among them.
PATHS = ["/app/7", "/iam", "/azr", "/pol/x", "/chan/a", "/fn", "/fnecho", "/mock", "/swa/a/b", "/env", "/post"]


def everything_doc(backend: str) -> dict[str, Any]:
    """One group, one API per feature, and every policy kind bound to something."""
    host, port = backend.rsplit(":", 1)
    app_api = auth_api("app", "/app/{id}", backend, auth_opt={"app_code_auth_type": "HEADER"},
                       backend_uri="/v1/app/{id}")
    app_api["req_params"] = [
        {"name": "id", "location": "PATH", "type": "NUMBER", "required": 1, "valid_enable": 1,
         "min_num": 1, "max_num": 999},
        {"name": "q", "location": "QUERY", "type": "STRING", "valid_enable": 1, "max_size": 10,
         "regular": "^[a-z]*$"},
    ]
    iam_api = auth_api("iam", "/iam", backend, auth_type="IAM")
    azr_api = http_api("azr", "/azr", backend, method="ANY", auth_type="AUTHORIZER", authorizer_id="az1",
                       backend_params=[{"name": "X-User", "location": "HEADER", "origin": "SYSTEM",
                                        "value": "$context.authorizer.frontend.user"}])
    cond = [
        {"condition_origin": "param", "condition_value": "gold", "condition_type": "exact",
         "req_param_name": "tier"},
    ]
    pol_api = http_api("pol", "/pol", backend, method="ANY", match_mode="SWA",
                       req_params=[{"name": "tier", "location": "QUERY", "type": "STRING",
                                    "default_value": "basic"}],
                       policy_mocks=[
                           {"name": "gold", "effect_mode": "ANY", "result_content": "gold", "conditions": cond},
                           {"name": "canary", "effect_mode": "ANY", "result_content": "canary", "conditions": [
                               {"condition_origin": "cookie", "condition_value": "canary,beta",
                                "condition_type": "Enumerated", "cookie_param_name": "lane"}]},
                           {"name": "office", "effect_mode": "ANY", "result_content": "office", "conditions": [
                               {"condition_origin": "source", "condition_value": "10.1.0.0/16"}]},
                           {"name": "admin", "effect_mode": "ANY", "result_content": "admin", "conditions": [
                               {"condition_origin": "system", "condition_value": "^/pol/admin/",
                                "condition_type": "Matching", "sys_param_name": "reqPath"}]},
                       ])
    chan_api = http_api("chan", "/chan", "", method="ANY", match_mode="SWA")
    del chan_api["backend_api"]["url_domain"]
    chan_api["backend_api"].update({"vpc_channel_status": 1, "vpc_channel_info": {"vpc_channel_id": "ch1"}})
    fn_api = fh.func_api("fn", "/fn", SHAPED_URN)
    fnecho_api = fh.func_api("fnecho", "/fnecho", ECHO_URN)
    env_api = http_api("env", "/env", "#host#", backend_uri="/#prefix#/env", method="ANY",
                       backend_params=[{"name": "X-Env", "location": "HEADER", "origin": "CONSTANT",
                                        "value": "#label#"}])
    apis = [app_api, iam_api, azr_api, pol_api, chan_api, fn_api, fnecho_api,
            mock_api("mock", "/mock", '{"mock": true}', method="ANY"),
            http_api("swa", "/swa", backend, method="ANY", match_mode="SWA", cors=True),
            env_api, http_api("post", "/post", backend, method="POST")]
    doc = snapshot(
        apis, envs=["TEST"], publish_in=["env-test"],
        apps=[app("app1")],
        app_auths=[grant("app1", "app"), grant("app1", "app", "env-test")],
        app_codes=[{"id": "c1", "app_id": "app1", "app_code": APP_CODE}],
        acls=[{"id": "acl1", "acl_name": "local_only", "acl_type": "PERMIT", "entity_type": "IP",
               "acl_value": "127.0.0.0/8,::1"}],
        acl_bindings=[{"id": f"ab-{a}", "acl_id": "acl1", "publish_id": f"p-{a}-{RELEASE}"}
                      for a in ("app", "swa", "post")],
        throttles=[{"id": "t1", "name": "generous", "api_call_limits": 100000, "ip_call_limits": 50000,
                    "time_interval": 1, "time_unit": "MINUTE", "type": 1}],
        throttle_bindings=[{"id": f"tb-{a}", "policy_id": "t1", "publish_id": f"p-{a}-{RELEASE}"}
                           for a in ("app", "swa", "fn", "mock")],
        signs=[{"id": "s1", "name": "sign_one", "sign_type": "hmac", "sign_key": SIGN_KEY,
                "sign_secret": SIGN_SECRET}],
        sign_bindings=[{"id": f"sb-{a}", "sign_id": "s1", "publish_id": f"p-{a}-{RELEASE}"}
                       for a in ("app", "swa")],
        vpc_channels=[{"id": "ch1", "name": "chan_ch1", "port": 80, "balance_strategy": 1, "member_type": "ip",
                       "type": 2, "members": [{"host": host, "port": int(port), "weight": 1}]}],
        functions=[fh.function(AUTH_URN, "authorizer"), fh.function(SHAPED_URN, "shaped"),
                   fh.function(ECHO_URN, "echo")],
        authorizers=[fh.authorizer_record("az1", AUTH_URN)],
        plugins=[plugin("cors1", "cors", {"allow_origin": "*", "allow_methods": "GET,POST,PUT",
                                          "allow_headers": "Content-Type", "max_age": 60}),
                 plugin("hdr1", "set_resp_headers", {"response_headers": [
                     {"name": "X-Robust", "value": "yes", "action": "override"}]})],
        plugin_bindings=[bind("pb1", "cors1", "mock"), bind("pb2", "cors1", "fn"),
                         bind("pb3", "hdr1", "swa"), bind("pb4", "hdr1", "fnecho"), bind("pb5", "hdr1", "mock")],
    )
    doc["env_variables"] = [
        {"id": f"v{i}", "group_id": "g1", "env_id": env, "variable_name": name, "variable_value": value}
        for i, (env, name, value) in enumerate([
            (RELEASE, "host", backend), ("env-test", "host", backend),
            (RELEASE, "prefix", "prod"), ("env-test", "prefix", "staging"),
            (RELEASE, "label", "release-label"), ("env-test", "label", "test-label"),
        ])
    ]
    return doc


# --- raw requests ------------------------------------------------------------------------------------

@dataclass
class Case:
    """One hostile request: the exact bytes to send and how the exchange is driven."""

    category: str
    raw: bytes
    allow_5xx: bool = False  # a 5xx the spec gives by design (authorizer failure, broken function result)
    responses: int = 1  # pipelined: how many answers are expected
    half_close: bool = False  # shut our write side after sending
    expect_continue: bytes | None = None  # send the head, wait for "100 Continue" (or 1 s), then these bytes
    may_close: bool = False  # the server may close without answering (incomplete request, then EOF)
    local_addr: str | None = None  # bind the client socket (an untrusted peer: 127.0.0.2)
    statuses: frozenset[int] | None = None  # exact statuses the spec requires, when it does


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class Outcome:
    answers: list[Answer] = field(default_factory=list)
    leftover: bytes = b""
    error: str | None = None


_STATUS_RX = re.compile(rb"^HTTP/1\.[01] (\d{3})(?: ([^\r\n]*))?$")


def parse_answers(data: bytes, head: bool = False) -> Outcome:
    """Parse consecutive HTTP/1.x responses (``head``: answers to HEAD carry no body); anything unparsable
    is left in ``leftover``."""
    out = Outcome()
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            out.leftover = data[pos:]
            out.error = "incomplete response head"
            return out
        lines = data[pos:end].split(b"\r\n")
        m = _STATUS_RX.match(lines[0])
        if m is None:
            out.leftover = data[pos:]
            out.error = f"bad status line {lines[0][:80]!r}"
            return out
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            k, sep, v = line.partition(b":")
            if not sep:
                out.error = f"bad header line {line[:80]!r}"
                return out
            headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
        status = int(m.group(1))
        ans = Answer(status, (m.group(2) or b"").decode("latin-1"), headers, b"")
        pos = end + 4
        if 100 <= status < 200 or status in (204, 304) or head:
            out.answers.append(ans)
            continue
        te = (ans.header("Transfer-Encoding") or "").lower()
        cl = ans.header("Content-Length")
        if "chunked" in te:
            body = bytearray()
            while True:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    out.error = "truncated chunked body"
                    return out
                size = int(data[pos:eol].split(b";")[0], 16)
                pos = eol + 2
                if size == 0:
                    pos = data.find(b"\r\n\r\n", pos - 2) + 4 if data[pos:pos + 2] != b"\r\n" else pos + 2
                    break
                body += data[pos:pos + size]
                pos += size + 2
            ans.body = bytes(body)
        elif cl is not None:
            n = int(cl)
            if len(data) - pos < n:
                out.error = "truncated body"
                return out
            ans.body = data[pos:pos + n]
            pos += n
        else:
            ans.body = data[pos:]
            pos = len(data)
        out.answers.append(ans)
    return out


async def exchange(port: int, case: Case, timeout: float = 8.0) -> Outcome:
    """Send ``case.raw`` over a fresh TCP connection and read until the server closes (or ``timeout``)."""
    local = (case.local_addr, 0) if case.local_addr else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    data = bytearray()
    try:
        writer.write(case.raw)
        await writer.drain()
        if case.expect_continue is not None:
            try:
                first = await asyncio.wait_for(reader.read(65536), 1.0)
                data += first
            except TimeoutError:
                pass
            writer.write(case.expect_continue)
            await writer.drain()
        if case.half_close:
            writer.write_eof()

        async def read_all() -> None:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                data.extend(chunk)
                if case.responses > 1 or case.expect_continue is not None:
                    continue
                done = parse_answers(bytes(data), case.raw.startswith(b"HEAD "))
                # a complete keep-alive answer: no need to wait for the close
                if done.error is None and done.answers and done.answers[-1].header("Connection") != "close" \
                        and done.answers[-1].status >= 200 and not case.half_close \
                        and len([a for a in done.answers if a.status >= 200]) >= case.responses:
                    return

        try:
            await asyncio.wait_for(read_all(), timeout)
        except TimeoutError:
            out = parse_answers(bytes(data), case.raw.startswith(b"HEAD "))
            out.error = (out.error or "") + f" timeout after {timeout}s"
            return out
        except ConnectionResetError:
            pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
    return parse_answers(bytes(data), case.raw.startswith(b"HEAD "))


# --- checks ---------------------------------------------------------------------------------------------

FORBIDDEN_TEXT = ("Traceback", "File \"", "Internal Server Error", "Error handling request")


def check_answer(ans: Answer, allow_5xx: bool, statuses: frozenset[int] | None = None,
                 head: bool = False) -> list[str]:
    """Ground rule 4 for one answer; returns the list of violations (empty when fine)."""
    problems: list[str] = []
    text = ans.body.decode("utf-8", "replace")
    for bad in FORBIDDEN_TEXT:
        if bad in text:
            problems.append(f"body contains {bad!r}")
    if statuses is not None and ans.status not in statuses:
        problems.append(f"status {ans.status}, expected one of {sorted(statuses)}")
    if ans.status >= 500 and not allow_5xx:
        problems.append(f"unexpected status {ans.status}")
    if ans.status >= 400 and not head and ans.header("X-Apig-Upstream-Latency") is None:  # not the backend's
        ctype = ans.header("Content-Type") or ""
        if not ctype.startswith("application/json"):
            problems.append(f"error {ans.status} with content type {ctype!r}: {text[:120]!r}")
            return problems
        try:
            doc = json.loads(ans.body)
        except ValueError:
            problems.append(f"error body is not JSON: {text[:120]!r}")
            return problems
        if not isinstance(doc, dict) or not {"error_code", "error_msg", "request_id"} <= doc.keys():
            problems.append(f"error body lacks error_code/error_msg/request_id: {text[:120]!r}")
        elif doc["error_msg"] == "Internal server error.":
            problems.append("internal APIG.0601 'Internal server error.'")
        if ans.header("X-Request-Id") is None:
            problems.append("error without X-Request-Id")
    return problems
