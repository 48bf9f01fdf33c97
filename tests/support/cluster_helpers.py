"""Helpers for the cluster tests: real gateway subprocesses, a backend that reports connection ports."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import free_port
from tests.support.helpers import GROUP_HOST

ROOT = Path(__file__).resolve().parents[2]


class PortBackend:
    """Answers ``{"path", "peer_port", "name"}``; ``/slow/...`` paths sleep ``delay`` seconds first."""

    def __init__(self, name: str = "b", delay: float = 1.0) -> None:
        self.name = name
        self.delay = delay
        self.received: list[str] = []
        self.slow_started = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(request.path)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if request.path.startswith("/slow"):
            self.slow_started.set()
            await asyncio.sleep(self.delay)
        return web.json_response({"path": request.path, "peer_port": peer[1] if peer else None, "name": self.name})


async def start_backend(backend: PortBackend) -> tuple[TestServer, str]:
    server = TestServer(backend.app(), host="127.0.0.1")
    await server.start_server()
    return server, f"127.0.0.1:{server.port}"


def write_doc(path: Path, doc: dict[str, Any]) -> None:
    """Write atomically (rename) so a watcher or a SIGHUP never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(doc))
    os.replace(tmp, path)


class GatewayProcess:
    """``python -m gateway run`` as a real subprocess; logs go to a temp file (``log_text()``)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        # a private directory: other tools on a shared machine clean up /tmp/gw-* files
        log_dir = tempfile.mkdtemp(prefix="apigw-proc-logs-")
        self.log = tempfile.NamedTemporaryFile(dir=log_dir, suffix=".log", delete=False)  # noqa: SIM115
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", *args], cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=full_env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def children(self) -> list[int]:
        """Worker pids (the supervisor's direct children)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)], capture_output=True, text=True)
        return sorted(int(x) for x in out.stdout.split())


# A deadline is a correctness bound, not a latency claim: on a busy 2-core machine a process can be descheduled for
# seconds. Every wait gets at least this long; tests that care about speed print the measured time instead.
DEADLINE_FLOOR_S = 15.0


async def wait_for(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``cond`` (sync or async) until it returns a truthy value; fail after ``timeout`` (at least
    :data:`DEADLINE_FLOOR_S`)."""
    timeout = max(timeout, DEADLINE_FLOOR_S)
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = cond()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value {last!r})")


async def get_json(session: aiohttp.ClientSession, url: str, host: str = GROUP_HOST) -> tuple[int, Any]:
    try:
        async with session.get(url, headers={"Host": host}, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            body = await resp.read()
            try:
                return resp.status, orjson.loads(body)
            except orjson.JSONDecodeError:
                return resp.status, body.decode(errors="replace")
    except (TimeoutError, aiohttp.ClientError, OSError):
        return 0, None


async def ready_version(session: aiohttp.ClientSession, admin_url: str) -> str | None:
    status, body = await get_json(session, f"{admin_url}/readyz")
    if status == 200 and isinstance(body, dict):
        return str(body.get("version"))
    return None


def admin_port_pair() -> int:
    """A port P such that P and P + 1 are both free (worker k's admin listener is P + k)."""
    while True:
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
