"""Shared plumbing for the throttling benchmarks: a private redis-server, real gateway processes, wrk."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.redis_topologies import RedisClusterTopology, RedisSentinelTopology

ROOT = Path(__file__).resolve().parent.parent
HOST = "api.test.local"
RELEASE = "DEFAULT_ENVIRONMENT_RELEASE_ID"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def mock_api(api_id: str, uri: str) -> dict[str, Any]:
    return {"id": api_id, "group_id": "g1", "name": f"api_{api_id}", "type": 1, "req_protocol": "BOTH",
            "req_method": "GET", "req_uri": uri, "match_mode": "NORMAL", "auth_type": "NONE",
            "backend_type": "MOCK", "mock_info": {"result_content": '{"ok":true}'}}


def snapshot(apis: list[dict[str, Any]], **collections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "groups": [{"id": "g1", "name": "group_one", "sl_domain": HOST}],
        "apis": apis,
        "publishes": [{"publish_id": f"p-{a['id']}", "api_id": a["id"], "env_id": RELEASE} for a in apis],
    }
    doc.update(collections)
    return doc


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is required")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Deployment:
    """The Redis of a benchmark run (``--redis-mode``): one redis-server, a 3-master/3-replica cluster or
    1 primary + 1 replica + 3 sentinels (the topologies of the tests); ``env`` configures the gateways, and
    (cluster / sentinel) ``fail_over`` kills the master serving a key."""

    def __init__(self, mode: str) -> None:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from tests.support.redis_topologies import MASTER, RedisClusterTopology, RedisSentinelTopology

        self.mode = mode
        self.single: Redis | None = None
        self.cluster: RedisClusterTopology | None = None
        self.sentinel: RedisSentinelTopology | None = None
        if mode == "single":
            self.single = Redis()
            self.env = {"GATEWAY_REDIS_URL": self.single.url}
        elif mode == "cluster":
            self.cluster = RedisClusterTopology()
            self.env = {"GATEWAY_REDIS_MODE": "cluster", "GATEWAY_REDIS_NODES": self.cluster.nodes}
        else:
            self.sentinel = RedisSentinelTopology()
            self.env = {"GATEWAY_REDIS_MODE": "sentinel", "GATEWAY_REDIS_NODES": self.sentinel.nodes,
                        "GATEWAY_REDIS_SENTINEL_MASTER": MASTER}

    def fail_over(self, key: str) -> tuple[float, float]:
        """Kill the master serving ``key`` (cluster) / the primary (sentinel); (kill time, promotion time)."""
        if self.cluster is not None:
            slot = int(self.cluster.client(self.cluster.ports[0]).execute_command("CLUSTER KEYSLOT", key))
            owner = self.cluster.owner(slot)
            t_kill = time.monotonic()
            self.cluster.kill(owner)
            self.cluster.wait_promoted(slot, owner)
            return t_kill, time.monotonic()
        assert self.sentinel is not None
        old = self.sentinel.primary()
        t_kill = time.monotonic()
        self.sentinel.kill(old)
        self.sentinel.wait_promoted(old)
        return t_kill, time.monotonic()

    def heal(self) -> None:
        topo = self.cluster or self.sentinel
        if topo is not None:
            topo.heal()

    def stop(self) -> None:
        for topo in (self.single, self.cluster, self.sentinel):
            if isinstance(topo, Redis):
                topo.stop()
            elif topo is not None:
                topo.stop_all()


class Gateway:
    """A real ``python -m gateway run`` process."""

    def __init__(self, doc: dict[str, Any], redis_url: str | None = None, env: dict[str, str] | None = None,
                 extra: list[str] | None = None, wait_s: float = 20.0) -> None:
        fd, self._path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        self.port, self.admin_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "gateway", "run", "--config", self._path, "--listen",
               f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}", "--no-access-log",
               "--log-level", "WARNING", *(extra or [])]
        if redis_url:
            cmd += ["--redis-url", redis_url]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.admin_port, wait_s)
        wait_port(self.port, wait_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def throttle_stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/v1/throttling", timeout=5) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        Path(self._path).unlink(missing_ok=True)


_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(m?s)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_LAT = re.compile(r"Latency\s+([\d.]+)(us|ms|s)")


def start_wrk(url: str, seconds: float, connections: int = 16, threads: int = 1,
              headers: dict[str, str] | None = None) -> subprocess.Popen[str]:
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "-H", f"Host: {HOST}"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    args.append(url)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(proc: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = proc.communicate(timeout=120)
    total = _WRK_TOTAL.search(out)
    if total is None:
        raise RuntimeError(f"wrk failed: {out}")
    secs = float(total.group(2)) / (1000.0 if total.group(3) == "ms" else 1.0)
    non2xx = _WRK_NON2XX.search(out)
    rps = _WRK_RPS.search(out)
    lat = _WRK_LAT.search(out)
    lat_ms = 0.0
    if lat:
        lat_ms = float(lat.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[lat.group(2)]
    return {"total": int(total.group(1)), "seconds": secs, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "rps": float(rps.group(1)) if rps else 0.0, "latency_ms": lat_ms}
