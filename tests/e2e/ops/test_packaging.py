"""Packaging: `make run` installs runtime dependencies only, the image installs a pinned set kept in the
repository, ships no demo secrets unless asked, and its health check is readiness."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.helpers import mock_api, snapshot

ROOT = Path(__file__).resolve().parents[3]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_constraints_pin_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", version), f"not an exact pin: {line}"
            pins[name.lower().replace("_", "-")] = version
    for req in project["dependencies"]:
        assert _name(req) in pins, f"{req} is not pinned in constraints.txt (run `make lock`)"
    test_only = {_name(r) for r in project["optional-dependencies"]["test"]}
    assert not test_only & set(pins) - {"h2"}, "test-only packages do not belong in the runtime lock"


def test_make_run_installs_runtime_dependencies_only(tmp_path: Path) -> None:
    dry = subprocess.run(["make", "-n", "run", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    installs = [line for line in dry.stdout.splitlines() if "pip install" in line and "upgrade pip" not in line]
    assert installs and all("[test]" not in line for line in installs), dry.stdout
    assert all("-c constraints.txt" in line for line in installs), dry.stdout


def test_dockerfile_pins_ships_no_demo_secrets_and_checks_readiness() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in text and "COPY pyproject.toml README.md constraints.txt" in text
    assert "COPY --chown=root:root config/ /etc/gateway/" not in text
    assert 'ARG DEMO_CONFIG=0' in text and 'if [ "$DEMO_CONFIG" = "1" ]' in text
    assert 'CMD ["python", "-m", "gateway.healthcheck"]' in text and "/healthz" not in text
    demo = (ROOT / "config" / "policies.yaml").read_text()
    assert "app_secret" in demo  # the demo config does carry secrets: that is why it is opt-in


async def test_healthcheck_reports_readiness(make_gateway) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}

    async def check(port: int) -> int:
        run = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gateway.healthcheck"], cwd=ROOT,
                                      capture_output=True, text=True, timeout=60,
                                      env={**env, "GATEWAY_ADMIN_LISTEN": f"0.0.0.0:{port}"})
        return run.returncode

    empty = await make_gateway(None)
    assert await check(int(empty.gw.admin_port)) == 1  # alive, but no snapshot: not ready
    ready = await make_gateway(snapshot([mock_api("m1", "/m")]))
    assert await check(int(ready.gw.admin_port)) == 0
