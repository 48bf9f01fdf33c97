"""``state_dir``: accepted snapshots survive a restart; start-up and reload rules; crash mid-write.

Real gateway subprocesses for the restart cases (SIGTERM, then a new process on the same state_dir), an
in-process gateway for the reload rule, and a real writer process killed with SIGKILL in the middle of
writing the state file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.process.reload import load_file, reload_file
from gateway.process.state import STATE_FILE, ConfigOrigin, StateStore, choose_startup, version_time
from tests.conftest import free_port
from tests.support.admin_helpers import V2, call
from tests.support.cluster_helpers import GatewayProcess, get_json, ready_version, wait_for, write_doc
from tests.support.helpers import RELEASE, mock_api, snapshot

ROOT = Path(__file__).resolve().parents[3]


def mock_doc(content: str, version: str | None = None) -> dict[str, Any]:
    doc = snapshot([mock_api("m", "/m", content)])
    if version:
        doc["version"] = version
    return doc


def run_args(config: Path, state: Path, port: int, admin: int) -> list[str]:
    return ["--config", str(config), "--state-dir", str(state), "--listen", f"127.0.0.1:{port}",
            "--admin-listen", f"127.0.0.1:{admin}", "--no-access-log"]


def persisted(state: Path) -> dict[str, Any]:
    rec: dict[str, Any] = orjson.loads((state / STATE_FILE).read_bytes())
    return rec


async def _update_m(s: aiohttp.ClientSession, admin_url: str, content: str) -> str:
    """Edit API m (its draft: m is published) and publish the edit in RELEASE; the new version id."""
    body = {k: v for k, v in mock_api("m", "/m", content).items() if k != "id"}
    status, res, headers = await call(s, admin_url, "PUT", f"{V2}/apis/m", json=body)
    assert status == 200, res
    status, res, headers = await call(s, admin_url, "POST", f"{V2}/apis/action",
                                      json={"action": "online", "api_id": "m", "env_id": RELEASE})
    assert status == 201, res
    return str(headers["ETag"]).strip('"')


async def test_admin_change_survives_restart_until_the_file_changes(tmp_path: Path) -> None:
    conf, state = tmp_path / "gw.json", tmp_path / "state"
    write_doc(conf, mock_doc("one"))
    port, admin = free_port(), free_port()
    admin_url, url = f"http://127.0.0.1:{admin}", f"http://127.0.0.1:{port}/m"
    gp = GatewayProcess(run_args(conf, state, port, admin))
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: ready_version(s, admin_url), 15)
            version = await _update_m(s, admin_url, "admin")
            await wait_for(lambda: (state / STATE_FILE).exists() and persisted(state)["version"] == version, 10)
            assert persisted(state)["doc"]["apis"][0]["mock_info"]["result_content"] == "admin"
    finally:
        assert gp.stop() == 0
    # restart on the same state_dir and the unchanged file: the admin change is still served
    gp = GatewayProcess(run_args(conf, state, port, admin))
    try:
        async with aiohttp.ClientSession() as s:
            assert await wait_for(lambda: ready_version(s, admin_url), 15) == version
            assert (await get_json(s, url))[1] == "admin"
    finally:
        assert gp.stop() == 0
    # the file changes while the gateway is down: it is newer, so it wins, with a warning
    write_doc(conf, mock_doc("edited"))
    gp = GatewayProcess(run_args(conf, state, port, admin))
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: ready_version(s, admin_url), 15)
            assert (await get_json(s, url))[1] == "edited"
        assert "the file replaces it" in gp.log_text()
    finally:
        assert gp.stop() == 0


async def test_state_only_start_and_broken_config(tmp_path: Path) -> None:
    """No --config (or a broken one) but a persisted snapshot: the gateway serves the persisted one."""
    conf, state = tmp_path / "gw.json", tmp_path / "state"
    write_doc(conf, mock_doc("one", "2026-01-01T00:00:00Z-1"))
    port, admin = free_port(), free_port()
    admin_url, url = f"http://127.0.0.1:{admin}", f"http://127.0.0.1:{port}/m"
    gp = GatewayProcess(run_args(conf, state, port, admin))
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: ready_version(s, admin_url), 15)
            await wait_for(lambda: (state / STATE_FILE).exists(), 10)
    finally:
        assert gp.stop() == 0
    conf.write_text("{broken")
    gp = GatewayProcess(run_args(conf, state, port, admin))
    try:
        async with aiohttp.ClientSession() as s:
            assert await wait_for(lambda: ready_version(s, admin_url), 15) == "2026-01-01T00:00:00Z-1"
            assert (await get_json(s, url))[1] == "one"
        assert "rejected" in gp.log_text()
    finally:
        assert gp.stop() == 0


async def test_reload_rule_file_wins_only_when_changed(make_gateway: Any, tmp_path: Path, caplog: Any) -> None:
    conf, state = tmp_path / "gw.json", tmp_path / "state"
    write_doc(conf, mock_doc("one"))
    rg = await make_gateway(state_dir=str(state))
    origin = ConfigOrigin.of(rg.gw)
    load_file(rg.gw, str(conf))
    async with aiohttp.ClientSession() as s:
        await _update_m(s, rg.admin_url, "admin")
        assert (await get_json(s, f"{rg.url}/m"))[1] == "admin"
        # SIGHUP with an unchanged file: the admin change stays, and the override is refused loudly
        caplog.clear()
        assert await reload_file(rg.gw, str(conf)) is True
        assert (await get_json(s, f"{rg.url}/m"))[1] == "admin"
        assert any(r.levelname == "WARNING" and "unchanged since it was last loaded" in r.getMessage()
                   for r in caplog.records)
        # the file changes: it wins and replaces the admin change, with a warning
        write_doc(conf, mock_doc("two"))
        caplog.clear()
        assert await reload_file(rg.gw, str(conf)) is True
        assert (await get_json(s, f"{rg.url}/m"))[1] == "two"
        assert any(r.levelname == "WARNING" and "changed on disk" in r.getMessage() for r in caplog.records)
        assert origin.admin_changes == 0
        assert origin.store is not None
        await origin.store.flush()
        assert persisted(state)["doc"]["apis"][0]["mock_info"]["result_content"] == "two"
        assert persisted(state)["source"] == "file"


def test_startup_rule() -> None:
    from gateway.process.state import Persisted

    p = Persisted(version="2026-05-01T10:00:00Z-3", doc={}, saved_at=time.time(), source="admin",
                  config_digest="d1")
    assert choose_startup(None, {"a": 1}, "v1", None, "d2") == "file"
    assert choose_startup(p, None, None, None, None) == "state"
    assert choose_startup(p, {}, "file-x", None, "d1") == "state"  # file unchanged since the state
    assert choose_startup(p, {}, "2026-06-01T00:00:00Z", None, "d2") == "file"  # newer timestamp version
    assert choose_startup(p, {}, "2026-04-01T00:00:00Z", None, "d2") == "state"
    assert version_time("2026-05-01T10:00:00Z-3") > version_time("2026-05-01T10:00:00Z-2")  # type: ignore[operator]
    assert version_time("2026-05-01T10:00:00Z-10") > version_time("2026-05-01T10:00:00Z-9")  # type: ignore[operator]
    assert version_time("v7") is None


_WRITER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    from gateway.process import state as st
    real_write = os.write
    def slow_write(fd, data):  # small slow writes: the kill lands while the temp file is half written
        n = real_write(fd, bytes(data[:65536]))
        time.sleep(0.002)
        return n
    os.write = slow_write
    store = st.StateStore({dir!r})
    doc = {{"apis": [{{"id": f"a{{i}}", "pad": "x" * 200}} for i in range(20000)]}}
    k = 0
    while True:
        k += 1
        store.write_now(store.record(doc, f"v{{k}}", "admin", None))
        print(k, flush=True)
""")


def test_crash_mid_write_leaves_old_or_new_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = _WRITER.format(root=str(ROOT), dir=str(state))
    torn_checks = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # one complete write exists
            assert first.strip().isdigit()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # wait until the next write is half-way through its temp file
                tmps = list(state.glob(f".{STATE_FILE}.*.tmp"))
                if tmps and tmps[0].stat().st_size > 1_000_000:
                    break
                time.sleep(0.005)
            else:
                raise AssertionError("the writer never got half-way through a temp file")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(10)
        written = [int(x) for x in [first, *proc.stdout.read().split()] if str(x).strip().isdigit()]
        assert list(state.glob(f".{STATE_FILE}.*.tmp")), "killed before a temp file existed"
        rec = StateStore(str(state)).load()  # also removes the leftover temp file
        assert rec is not None, "the state file is torn or missing"
        assert rec.version in {f"v{k}" for k in range(max(written), max(written) + 2)}
        assert len(rec.doc["apis"]) == 20000
        assert not list(state.glob(f".{STATE_FILE}.*.tmp"))
        torn_checks += 1
    assert torn_checks == 3
