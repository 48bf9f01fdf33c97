"""Real gateway subprocesses: SIGHUP / --watch reloads, graceful SIGTERM, --workers supervisor and relay."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.support.cluster_helpers import (
    GatewayProcess,
    PortBackend,
    admin_port_pair,
    get_json,
    ready_version,
    start_backend,
    wait_for,
    write_doc,
)
from tests.support.helpers import http_api, mock_api, snapshot


def mock_doc(content: str, version: str | None = None) -> dict[str, Any]:
    doc = snapshot([mock_api("m", "/m", content)])
    if version:
        doc["version"] = version
    return doc


def run_args(config: Path, port: int, admin: int, *extra: str) -> list[str]:
    return ["--config", str(config), "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
            "--no-access-log", *extra]


async def body_of(session: aiohttp.ClientSession, url: str) -> Any:
    return (await get_json(session, url))[1]


async def test_sighup_reload_and_bad_file_keeps_serving(tmp_path: Path) -> None:
    conf = tmp_path / "gw.json"
    write_doc(conf, mock_doc("one"))
    port, admin = free_port(), free_port()
    gp = GatewayProcess(run_args(conf, port, admin))
    url = f"http://127.0.0.1:{port}/m"
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: ready_version(s, f"http://127.0.0.1:{admin}"), 15)
            assert await body_of(s, url) == "one"
            write_doc(conf, mock_doc("two"))
            gp.signal(signal.SIGHUP)
            await wait_for(lambda: _eq(body_of(s, url), "two"), 5)
            # bad file: every problem is logged, the old snapshot keeps serving
            bad = mock_doc("three")
            bad["apis"][0]["req_method"] = "BREW"
            write_doc(conf, bad)
            gp.signal(signal.SIGHUP)
            await wait_for(lambda: "reload rejected: apis[0].req_method" in gp.log_text(), 5)
            assert await body_of(s, url) == "two"
            assert gp.proc.poll() is None
    finally:
        assert gp.stop() == 0


async def test_watch_reloads_on_file_change(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    write_doc(conf / "a.json", mock_doc("one"))
    port, admin = free_port(), free_port()
    gp = GatewayProcess(run_args(conf, port, admin, "--watch"))
    url = f"http://127.0.0.1:{port}/m"
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: ready_version(s, f"http://127.0.0.1:{admin}"), 15)
            assert await body_of(s, url) == "one"
            t0 = time.monotonic()
            write_doc(conf / "a.json", mock_doc("two"))
            await wait_for(lambda: _eq(body_of(s, url), "two"), 15)
            print(f"\n--watch: the new file served after {time.monotonic() - t0:.2f} s (polled every 1 s)")
    finally:
        assert gp.stop() == 0


async def test_sigterm_drains_inflight_request_and_exits_0(tmp_path: Path) -> None:
    backend = PortBackend(delay=1.5)
    server, hostport = await start_backend(backend)
    conf = tmp_path / "gw.json"
    write_doc(conf, snapshot([http_api("slow", "/slow", hostport, timeout=10000)]))
    port, admin = free_port(), free_port()
    gp = GatewayProcess(run_args(conf, port, admin))
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: ready_version(s, f"http://127.0.0.1:{admin}"), 15)
            inflight = asyncio.create_task(get_json(s, f"http://127.0.0.1:{port}/slow"))
            await asyncio.wait_for(backend.slow_started.wait(), 5)
            gp.signal(signal.SIGTERM)
            # the listener stops accepting new connections at once
            await asyncio.sleep(0.3)
            async with aiohttp.ClientSession() as fresh:
                status, _ = await get_json(fresh, f"http://127.0.0.1:{port}/slow")
                assert status == 0
            status, body = await inflight
            assert status == 200, body
            assert body["path"] == "/slow"
            rc = await asyncio.to_thread(gp.proc.wait, 15)
            assert rc == 0
            assert "draining 1 in-flight request" in gp.log_text()
    finally:
        gp.stop()
        await server.close()


async def test_workers_restart_and_keep_serving(tmp_path: Path) -> None:
    conf = tmp_path / "gw.json"
    write_doc(conf, mock_doc("one", "v1"))
    port, admin = free_port(), admin_port_pair()
    assert port not in (admin, admin + 1)
    gp = GatewayProcess(run_args(conf, port, admin, "--workers", "2"))
    url = f"http://127.0.0.1:{port}/m"
    try:
        async with aiohttp.ClientSession() as s:
            for k in range(2):
                assert await wait_for(lambda k=k: ready_version(s, f"http://127.0.0.1:{admin + k}"), 20) == "v1"
            workers = gp.children()
            assert len(workers) == 2
            # traffic while a worker is killed -9: the other keeps the port served, a new worker appears
            stats = {"ok": 0, "failed": 0}
            stop = asyncio.Event()

            async def traffic() -> None:
                while not stop.is_set():
                    async with aiohttp.ClientSession() as c:  # new connections: spread over workers
                        status, _ = await get_json(c, url)
                    stats["ok" if status == 200 else "failed"] += 1

            task = asyncio.create_task(traffic())
            await wait_for(lambda: stats["ok"] > 0, 20)
            victim = workers[0]
            import os

            os.kill(victim, signal.SIGKILL)
            new = await wait_for(lambda: [p for p in gp.children() if p not in workers], 10)
            for k in range(2):
                assert await wait_for(lambda k=k: ready_version(s, f"http://127.0.0.1:{admin + k}"), 20) == "v1"
            after = stats["ok"]
            await wait_for(lambda: stats["ok"] > after + 20, 30)  # traffic after the restart too
            stop.set()
            await task
            print(f"\nworker kill -9: {stats['ok']} ok, {stats['failed']} failed requests; new worker {new}")
            assert stats["ok"] > 20
            # connections queued on the killed worker's socket can be reset; afterwards everything succeeds
            for _ in range(20):
                async with aiohttp.ClientSession() as c:
                    assert (await get_json(c, url))[0] == 200
            assert "worker 0" in gp.log_text() or "worker 1" in gp.log_text()
            assert "restarting" in gp.log_text()
    finally:
        assert gp.stop() == 0
    assert not gp.children()


async def test_workers_share_pushes_through_the_supervisor(tmp_path: Path) -> None:
    """A push accepted by one worker (here: SIGHUP to that worker only) reaches the other through the relay,
    and a worker restarted later gets the latest pushed snapshot, not the older file."""
    conf = tmp_path / "gw.json"
    write_doc(conf, mock_doc("one", "v1"))
    port, admin = free_port(), admin_port_pair()
    assert port not in (admin, admin + 1)
    gp = GatewayProcess(run_args(conf, port, admin, "--workers", "2"))
    a0, a1 = f"http://127.0.0.1:{admin}", f"http://127.0.0.1:{admin + 1}"
    try:
        async with aiohttp.ClientSession() as s:
            await wait_for(lambda: ready_version(s, a0), 20)
            await wait_for(lambda: ready_version(s, a1), 20)
            pids = gp.children()
            write_doc(conf, mock_doc("two", "v2"))
            # find worker 1 (its admin port is admin + 1) and signal only it
            w1 = next(p for p in pids if "--worker-index 1" in Path(f"/proc/{p}/cmdline").read_text().replace(
                "\0", " "))
            import os

            os.kill(w1, signal.SIGHUP)
            await wait_for(lambda: _eq(ready_version(s, a1), "v2"), 5)
            await wait_for(lambda: _eq(ready_version(s, a0), "v2"), 5)  # relayed, no signal sent to worker 0
            # the file goes back to v1 (no reload); a restarted worker 0 must serve v2 like its sibling
            write_doc(conf, mock_doc("one", "v1"))
            w0 = next(p for p in pids if p != w1)
            os.kill(w0, signal.SIGKILL)
            await wait_for(lambda: [p for p in gp.children() if p not in pids], 10)
            await wait_for(lambda: _eq(ready_version(s, a0), "v2"), 15)
            assert "relayed snapshot v2" in gp.log_text()
    finally:
        rc = gp.stop()
        assert rc == 0, gp.log_text()[-3000:]


async def test_workers_bad_config_exits_instead_of_restarting(tmp_path: Path) -> None:
    conf = tmp_path / "gw.json"
    bad = mock_doc("one")
    bad["apis"][0]["req_method"] = "BREW"
    write_doc(conf, bad)
    gp = GatewayProcess(run_args(conf, free_port(), free_port(), "--workers", "2"))
    rc = await asyncio.to_thread(gp.proc.wait, 30)
    assert rc == 2
    assert "config error: apis[0].req_method" in gp.log_text()


async def _eq(coro: Any, expected: Any) -> bool:
    return bool(await coro == expected)
