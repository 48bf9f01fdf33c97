"""Side-by-side benchmark: direct backend vs nginx reverse proxy vs this gateway (mock and HTTP APIs),
plus route-match and compile cost for 10 / 1,000 / 100,000 APIs.

Usage: ``python benchmarks/run.py [--duration 5] [--connections 32] [--skip-route]``

Everything runs on this machine on loopback, bounded in time. The backend is nginx answering a fixed
small JSON body (fast, so the numbers show the proxies' own cost); with no nginx installed the
aiohttp backend in benchmarks/backend.py is used instead and nginx is skipped. Load comes from ``wrk``
(one thread, keep-alive) when installed, else from a small aiohttp client loop (much slower: the
ratios are then only indicative). All servers run one process / one worker, so the comparison is
per core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.throttle_common import free_port, wait_port  # noqa: E402

BODY = '{"hello":"world","items":[1,2,3]}'


class Procs:
    def __init__(self) -> None:
        self.items: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.items.append(p)
        return p

    def stop(self) -> None:
        for p in self.items:
            p.terminate()
        for p in self.items:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def nginx_conf(tmp: Path, name: str, port: int, body: str | None, upstream: int | None) -> Path:
    prefix = tmp / name
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    if upstream is not None:
        location = ("proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\";"
                    " proxy_set_header Host $host;")
        ups = f"upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}"
    else:
        location = f"default_type application/json; return 200 '{body}';"
        ups = ""
    conf = f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log crit;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  {ups}
  server {{ listen 127.0.0.1:{port}; location / {{ {location} }} }}
}}
"""
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


def gateway_snapshot(backend_port: int) -> dict[str, Any]:
    apis = [
        {"id": "mock", "group_id": "g", "name": "bench_mock", "type": 1, "req_protocol": "BOTH",
         "req_method": "GET", "req_uri": "/mock", "auth_type": "NONE", "backend_type": "MOCK",
         "mock_info": {"result_content": BODY}},
        {"id": "http", "group_id": "g", "name": "bench_http", "type": 1, "req_protocol": "BOTH",
         "req_method": "GET", "req_uri": "/http", "auth_type": "NONE", "backend_type": "HTTP",
         "backend_api": {"url_domain": f"127.0.0.1:{backend_port}", "req_protocol": "HTTP",
                         "req_method": "GET", "req_uri": "/", "timeout": 5000}},
    ]
    return {
        "groups": [{"id": "g", "name": "bench", "sl_domain": "bench.local"}],
        "apis": apis,
        "publishes": [{"publish_id": f"p-{a['id']}", "api_id": a["id"],
                       "env_id": "DEFAULT_ENVIRONMENT_RELEASE_ID"} for a in apis],
    }


WRK_LAT = re.compile(r"^\s+(50|75|90|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", "Host: bench.local", url],
        capture_output=True, text=True, timeout=duration + 30, check=False,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(v, u) for p, v, u in WRK_LAT.findall(out)}
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_err = int(errors.group(1)) if errors else 0
    if socket_errors:
        n_err += sum(int(x) for x in socket_errors.groups())
    return {"rps": rps, "p50": lat.get("50", 0.0), "p99": lat.get("99", 0.0), "errors": n_err}


async def _client_loop(url: str, duration: int, connections: int) -> dict[str, float]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < end:
            t = time.perf_counter()
            async with session.get(url, headers={"Host": "bench.local"}) as r:
                await r.read()
                if r.status >= 300:
                    errors += 1
            lat.append((time.perf_counter() - t) * 1000)

    async with aiohttp.ClientSession() as s:
        await asyncio.gather(*(worker(s) for _ in range(connections)))
    lat.sort()
    return {"rps": len(lat) / duration, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
            "errors": errors}


def measure(url: str, duration: int, connections: int) -> dict[str, float]:
    if shutil.which("wrk"):
        run_wrk(url, 1, connections)  # warm-up (pools, caches)
        return run_wrk(url, duration, connections)
    return asyncio.run(_client_loop(url, duration, connections))


def proxy_bench(duration: int, connections: int) -> list[tuple[str, dict[str, float]]]:
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    results: list[tuple[str, dict[str, float]]] = []
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    try:
        backend_port = free_port()
        if nginx:
            procs.start([nginx, "-c", str(nginx_conf(tmp, "backend", backend_port, BODY, None)),
                         "-g", "daemon off;"])
            backend_kind = "nginx (static 200)"
        else:
            procs.start([sys.executable, str(ROOT / "benchmarks" / "backend.py"), str(backend_port)])
            backend_kind = "aiohttp"
        wait_port(backend_port)
        print(f"backend: {backend_kind} on :{backend_port}; load: "
              f"{'wrk -t1 -c' + str(connections) if shutil.which('wrk') else 'aiohttp client loop'}, {duration}s each")
        results.append(("direct backend", measure(f"http://127.0.0.1:{backend_port}/", duration, connections)))
        if nginx:
            proxy_port = free_port()
            procs.start([nginx, "-c", str(nginx_conf(tmp, "proxy", proxy_port, None, backend_port)),
                         "-g", "daemon off;"])
            wait_port(proxy_port)
            results.append(("nginx reverse proxy", measure(f"http://127.0.0.1:{proxy_port}/", duration,
                                                           connections)))
        cfg = tmp / "snapshot.json"
        cfg.write_bytes(orjson.dumps(gateway_snapshot(backend_port)))
        gw_port, admin_port = free_port(), free_port()
        procs.start([sys.executable, "-m", "gateway", "run", "--config", str(cfg), "--listen",
                     f"127.0.0.1:{gw_port}", "--admin-listen", f"127.0.0.1:{admin_port}", "--no-access-log",
                     "--log-level", "WARNING"], cwd=ROOT)
        wait_port(gw_port)
        results.append(("gateway MOCK api", measure(f"http://127.0.0.1:{gw_port}/mock", duration, connections)))
        results.append(("gateway HTTP api", measure(f"http://127.0.0.1:{gw_port}/http", duration, connections)))
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def route_bench() -> list[tuple[int, float, float, float]]:
    """(n_apis, compile ms, static lookup ns, param lookup ns) through the real compiler and router."""
    from gateway.core.settings import Settings
    from gateway.model.services import Services
    from gateway.pipeline import chain as features
    from gateway.process.server import build_runtime

    features.load_all()
    rows = []
    for n in (10, 1000, 100000):
        apis = []
        for i in range(n):
            uri = f"/svc{i}/items/{{id}}" if i % 2 else f"/svc{i}/status"
            apis.append({"id": f"a{i}", "group_id": "g", "name": f"api{i}", "type": 1, "req_protocol": "BOTH",
                         "req_method": "GET", "req_uri": uri, "auth_type": "NONE", "backend_type": "MOCK",
                         "mock_info": {"result_content": "x"}})
        doc = {"groups": [{"id": "g", "name": "bench"}], "apis": apis,
               "publishes": [{"publish_id": f"p{i}", "api_id": f"a{i}",
                              "env_id": "DEFAULT_ENVIRONMENT_RELEASE_ID"} for i in range(n)]}
        t = time.perf_counter()
        rt = build_runtime(doc, Services(Settings()))
        compile_ms = (time.perf_counter() - t) * 1000
        router = rt.groups["g"].routers["DEFAULT_ENVIRONMENT_RELEASE_ID"]
        rnd = random.Random(1)
        static_paths = [f"/svc{rnd.randrange(0, n, 2) if n > 1 else 0}/status" for _ in range(2000)]
        param_paths = [f"/svc{rnd.randrange(1, n, 2)}/items/{k}" for k in range(2000)]
        reps = 20
        t = time.perf_counter()
        for _ in range(reps):
            for p in static_paths:
                router.lookup("GET", p)
        static_ns = (time.perf_counter() - t) / (reps * len(static_paths)) * 1e9
        t = time.perf_counter()
        for _ in range(reps):
            for p in param_paths:
                router.lookup("GET", p)
        param_ns = (time.perf_counter() - t) / (reps * len(param_paths)) * 1e9
        rows.append((n, compile_ms, static_ns, param_ns))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--skip-route", action="store_true")
    ap.add_argument("--skip-proxy", action="store_true")
    args = ap.parse_args()
    if not args.skip_proxy:
        results = proxy_bench(args.duration, args.connections)
        base = results[0][1]["rps"]
        print(f"\n{'target':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs direct':>11}")
        for name, r in results:
            print(f"{name:<22}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{int(r['errors']):>8}"
                  f"{r['rps'] / base:>10.2f}x")
        by = dict(results)
        if "nginx reverse proxy" in by:
            ratio = by["gateway HTTP api"]["rps"] / by["nginx reverse proxy"]["rps"]
            print(f"gateway HTTP / nginx proxy: {ratio:.2f}x")
    if not args.skip_route:
        print(f"\n{'APIs':>8}{'compile ms':>12}{'static lookup ns':>18}{'param lookup ns':>17}")
        for n, c, s, p in route_bench():
            print(f"{n:>8}{c:>12.0f}{s:>18.0f}{p:>17.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
