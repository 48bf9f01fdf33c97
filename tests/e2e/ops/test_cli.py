"""The command line a new user meets first: `gateway validate` output and hints, `gateway run` start-up errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.cluster_helpers import GatewayProcess, wait_for
from tests.support.helpers import http_api, mock_api, snapshot

ROOT = Path(__file__).resolve().parents[3]


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_validate_prints_readable_text_and_warnings(tmp_path: Path) -> None:
    run = gateway("validate", "config/")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("config/: valid\n") and "{" not in run.stdout
    assert "APIs" in run.stdout
    doc = snapshot([mock_api("m1", "/m")])
    doc["apis"].append(mock_api("m2", "/unpublished"))
    path = tmp_path / "warn.json"
    path.write_text(json.dumps(doc))
    run = gateway("validate", str(path))
    assert run.returncode == 0, run.stdout
    assert "warning: apis[1] ('api_m2', id 'm2'): published in no environment" in run.stdout
    assert "warning: groups[0] ('group_one'): the only group becomes the catch-all" in run.stdout
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    run = gateway("validate", str(empty))
    assert run.returncode == 0 and "warning: the snapshot has no APIs" in run.stdout


def test_validate_errors_name_allowed_values_and_likely_intent(tmp_path: Path) -> None:
    api = http_api("a1", "/x", "127.0.0.1:1")
    api["type"] = 3
    api["req_methd"] = "GET"
    api["backend_api"]["vpc_channel_status"] = 0
    api["auth_type"] = "none"
    doc = snapshot([api])
    doc["publishes"][0]["env_id"] = "RELEASE"
    doc["throttles"] = [{"id": "t1", "name": "basic", "api_call_limits": 5, "time_interval": 1,
                         "time_unit": "SECOND"}]
    doc["throttle_bindings"] = [{"id": "b1", "policy_id": "t1", "publish_id": "p-a1-nowhere"}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    run = gateway("validate", str(path))
    assert run.returncode == 1
    out = run.stdout
    assert out.startswith(f"{path}: invalid, ") and "Traceback" not in out + run.stderr
    assert "apis[0].type: must be one of 1 = public, 2 = private" in out
    assert "vpc_channel_status: must be one of 1 = through a VPC channel, 2 = to url_domain" in out
    assert "apis[0].auth_type: must be one of NONE, APP, IAM, AUTHORIZER (did you mean 'NONE'?)" in out
    assert "apis[0].req_methd: unknown field (did you mean 'req_method'?)" in out
    assert "publishes[0].env_id: unknown environment 'RELEASE' (did you mean 'DEFAULT_ENVIRONMENT_RELEASE_ID'?" in out
    assert "throttle_bindings[0].publish_id: unknown publication 'p-a1-nowhere'" in out


def test_run_log_level_in_any_case_and_bad_level_is_one_line(tmp_path: Path) -> None:
    run = gateway("run", "--config", "config/", "--log-level", "loud")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid log level 'loud'" in lines[0] and "DEBUG" in lines[0], run.stderr


async def test_run_debug_level_and_missing_config_warning() -> None:
    proc = GatewayProcess(["--log-level", "debug", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
    try:
        await wait_for(lambda: "listening on" in proc.log_text(), timeout=60)
        text = proc.log_text()
        assert "WARNING gateway: no configuration: --config" in text, text
        assert "Traceback" not in text
    finally:
        assert proc.stop() == 0
    proc = GatewayProcess(["--log-level", "Warning", "--config", "config/", "--listen", "127.0.0.1:0",
                           "--admin-listen", "127.0.0.1:0"])
    try:
        await wait_for(lambda: proc.proc.poll() is None and "catch-all" in proc.log_text(), timeout=60)
        assert "INFO" not in proc.log_text()  # WARNING level: the info lines are gone
    finally:
        assert proc.stop() == 0
