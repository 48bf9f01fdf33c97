"""The JSON access log: documented fields, no secrets, whole-line writes, stdout by default."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from gateway.observe.accesslog import CHUNK, FIELDS, AccessLog, access_log_of, redact_query
from tests.conftest import free_port
from tests.support.helpers import GROUP_HOST, http_api, mock_api, snapshot

SECRETS = ("Bearer sekrit-AUTH-value", "sekrit-TOKEN-value", "sekrit-APPCODE-value", "sekrit-SIG-value",
           "sekrit-KEY-value")


def read_lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_access_log_fields_and_no_secrets(make_gateway, echo_backend, client, tmp_path) -> None:
    _, addr = echo_backend
    log_path = tmp_path / "access.log"
    doc = snapshot([mock_api("m1", "/mock", '{"a":1}'), http_api("h1", "/echo", addr)])
    gw = await make_gateway(doc, access_log_path=str(log_path), node_name="node-a")
    secret_headers = {"Authorization": SECRETS[0], "X-Auth-Token": SECRETS[1], "X-Apig-AppCode": SECRETS[2],
                      "User-Agent": "ops-test/1.0"}
    async with client.get(gw.url + "/echo?x-sdk-signature=sekrit-SIG-value&page=2", headers=secret_headers) as r:
        assert r.status == 200
        request_id = r.headers["X-Request-Id"]
    async with client.get(gw.url + "/mock?access_key=sekrit-KEY-value", headers=secret_headers) as r:
        assert r.status == 200
        body_len = len(await r.read())
    async with client.get(gw.url + "/missing", headers=secret_headers) as r:
        assert r.status == 404
    log = access_log_of(gw.gw.services)
    assert log is not None
    log.flush()
    raw = log_path.read_text()
    for secret in SECRETS:
        assert secret not in raw
    assert "sekrit" not in raw
    lines = read_lines(log_path)
    assert len(lines) == 3
    for line in lines:
        assert tuple(line) == FIELDS
    echo, mock, missing = lines
    assert echo["request_id"] == request_id
    assert echo["api_id"] == "h1" and echo["env"] == "RELEASE" and echo["group_id"] == "g1"
    assert echo["method"] == "GET" and echo["path"] == "/echo" and echo["status"] == 200
    assert echo["client_ip"] == "127.0.0.1" and echo["node"] == "node-a"
    assert echo["user_agent"] == "ops-test/1.0" and echo["host"] == GROUP_HOST
    assert echo["backend_ms"] is not None and echo["total_ms"] >= echo["backend_ms"] > 0
    assert echo["error_type"] is None and echo["retries"] == 0 and echo["bytes"] > 0
    assert mock["api_id"] == "m1" and mock["backend_ms"] is None and mock["bytes"] == body_len
    assert missing["api_id"] is None and missing["status"] == 404
    assert missing["error_type"] == "NOT_FOUND" and missing["error_code"] == "APIG.0101"
    assert time.strptime(echo["time"][:19], "%Y-%m-%dT%H:%M:%S") and echo["time"].endswith("Z")


async def test_query_logging_redacts_signature_like_parameters(make_gateway, client, tmp_path) -> None:
    log_path = tmp_path / "access.log"
    gw = await make_gateway(snapshot([mock_api("m1", "/mock")]), access_log_path=str(log_path),
                            access_log_query=True)
    query = ("page=2&signature=sekrit-SIG-value&X-Amz-Credential=sekrit-KEY-value&token=sekrit-TOKEN-value"
             "&appcode=sekrit-APPCODE-value&q=shoes")
    async with client.get(f"{gw.url}/mock?{query}") as r:
        assert r.status == 200
    await gw.gw.stop()  # the close hook flushes
    raw = log_path.read_text()
    assert "sekrit" not in raw
    (line,) = read_lines(log_path)
    assert line["query"] == "page=2&signature=***&X-Amz-Credential=***&token=***&appcode=***&q=shoes"
    assert tuple(line) == (*FIELDS, "query")


def test_redact_query_names() -> None:
    from multidict import MultiDict

    q = MultiDict([("Signature", "s"), ("sig", "x"), ("apikey", "k"), ("password", "p"), ("limit", "10")])
    assert redact_query(q) == "Signature=***&sig=***&apikey=***&password=***&limit=10"


def test_writes_are_whole_lines_of_at_most_pipe_buf() -> None:
    # a datagram socket keeps the boundary of every write(): each must be whole lines, <= 4096 bytes
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        log = AccessLog(writer.fileno())
        for i in range(200):
            line = orjson.dumps({"n": i, "pad": "x" * (i % 300)}, option=orjson.OPT_APPEND_NEWLINE)
            log._buf.append(line)
            log._size += len(line)
        log.flush()
        reader.setblocking(False)
        seen = []
        while True:
            try:
                data = reader.recv(65536)
            except BlockingIOError:
                break
            assert len(data) <= CHUNK and data.endswith(b"\n")
            seen.extend(json.loads(x)["n"] for x in data.splitlines())
        assert seen == list(range(200))
    finally:
        reader.close()
        writer.close()


def test_dropped_when_output_fails() -> None:
    r, w = os.pipe()
    os.close(r)
    log = AccessLog(w)
    log._buf.append(b'{"a":1}\n')
    old = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        log.flush()  # EPIPE: counted, not raised
    finally:
        signal.signal(signal.SIGPIPE, old)
        os.close(w)
    assert log.dropped == 1


@pytest.mark.timeout(60)
def test_cli_run_logs_to_stdout_by_default(tmp_path) -> None:
    cfg = tmp_path / "gw.json"
    cfg.write_text(json.dumps(snapshot([mock_api("m1", "/mock")])))
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(cfg), "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        import urllib.request

        deadline = time.time() + 20
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/mock",
                                             headers={"Host": GROUP_HOST, "Authorization": SECRETS[0]})
                with urllib.request.urlopen(req, timeout=2) as resp:
                    assert resp.status == 200
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    lines = [orjson.loads(x) for x in out.splitlines() if x.startswith(b"{")]
    assert lines and lines[-1]["api_id"] == "m1" and lines[-1]["status"] == 200
    assert b"sekrit" not in out and b"sekrit" not in err


async def test_backend_failures_and_rejected_pushes_reach_the_process_log(make_gateway, client, caplog) -> None:
    """Backend failures: WARNING with request id, API, member and cause, at most one per (API, member, cause) every
    10 s. A rejected admin push: WARNING with the problems, never the body."""
    import logging
    import socket

    from aiohttp import ClientSession

    from gateway.backends import http as http_backend

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    http_backend.failure_log._last.clear()
    gw = await make_gateway(snapshot([http_api("d1", "/dead", f"127.0.0.1:{dead}", retry_count="0")]))
    caplog.set_level(logging.WARNING)
    ids = []
    for _ in range(5):
        async with client.get(gw.url + "/dead") as r:
            assert r.status == 502
            ids.append(r.headers["X-Request-Id"])
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.backends"]
    assert len(lines) == 1, lines  # rate-limited
    assert f"request {ids[0]}" in lines[0] and "API api_d1 (d1)" in lines[0]
    assert f"member 127.0.0.1:{dead}" in lines[0] and "connection refused" in lines[0]
    caplog.clear()
    bad = snapshot([http_api("x1", "/x", "127.0.0.1:1")])
    bad["apis"][0]["req_method"] = "FETCH"
    bad["apis"][0]["secret_marker"] = "do-not-log-me"
    async with ClientSession() as admin, admin.put(gw.admin_url + "/v1/snapshot", json=bad) as r:
        assert r.status == 400
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1, rejected
    assert "admin PUT /v1/snapshot rejected: 400" in rejected[0] and "apis[0].req_method" in rejected[0]
    assert "do-not-log-me" not in rejected[0]
