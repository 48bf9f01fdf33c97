"""Side-by-side benchmark: direct backend vs nginx reverse proxy vs this gateway (mock and HTTP APIs),
HTTP/2 and gRPC (benchmarks/h2_bench.py), plus route-match and compile cost for 10 / 1,000 / 100,000 APIs.

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
import gc
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


APP_KEY, APP_SECRET = "bench_app_key", "bench_app_secret_0123456789"
FULL_PATH = "/full/42?q=abc"


def gateway_snapshot(backend_port: int) -> dict[str, Any]:
    """MOCK, HTTP (one path parameter mapped) and the full pipeline: APP signature + IP ACL permit +
    throttling with api/user/app/ip limits + validated path/query parameters + 4 mapped backend
    parameters (REQUEST, CONSTANT, SYSTEM) + HTTP backend."""
    backend = f"127.0.0.1:{backend_port}"
    full = {"id": "full", "group_id": "g", "name": "bench_full", "type": 1, "req_protocol": "BOTH",
            "req_method": "GET", "req_uri": "/full/{oid}", "auth_type": "APP", "backend_type": "HTTP",
            "req_params": [
                {"name": "oid", "location": "PATH", "type": "NUMBER", "required": 1, "valid_enable": 1,
                 "min_num": 1, "max_num": 100000},
                {"name": "q", "location": "QUERY", "type": "STRING", "required": 1, "valid_enable": 1,
                 "min_size": 1, "max_size": 32}],
            "backend_params": [
                {"name": "item", "location": "PATH", "origin": "REQUEST", "value": "oid"},
                {"name": "query", "location": "QUERY", "origin": "REQUEST", "value": "q"},
                {"name": "X-Const", "location": "HEADER", "origin": "CONSTANT", "value": "c1"},
                {"name": "X-App-Id", "location": "HEADER", "origin": "SYSTEM", "value": "$context.appId"}],
            "backend_api": {"url_domain": backend, "req_protocol": "HTTP", "req_method": "GET",
                            "req_uri": "/items/{item}", "timeout": 5000}}
    apis = [
        {"id": "mock", "group_id": "g", "name": "bench_mock", "type": 1, "req_protocol": "BOTH",
         "req_method": "GET", "req_uri": "/mock", "auth_type": "NONE", "backend_type": "MOCK",
         "mock_info": {"result_content": BODY}},
        {"id": "http", "group_id": "g", "name": "bench_http", "type": 1, "req_protocol": "BOTH",
         "req_method": "GET", "req_uri": "/http/{id}", "auth_type": "NONE", "backend_type": "HTTP",
         "backend_api": {"url_domain": backend, "req_protocol": "HTTP",
                         "req_method": "GET", "req_uri": "/{id}", "timeout": 5000}},
        full,
    ]
    big = 1_000_000_000
    return {
        "groups": [{"id": "g", "name": "bench", "sl_domain": "bench.local"}],
        "apis": apis,
        "publishes": [{"publish_id": f"p-{a['id']}", "api_id": a["id"],
                       "env_id": "DEFAULT_ENVIRONMENT_RELEASE_ID"} for a in apis],
        "apps": [{"id": "app1", "name": "bench_app", "app_key": APP_KEY, "app_secret": APP_SECRET, "status": 1}],
        "app_auths": [{"id": "aa1", "app_id": "app1", "api_id": "full", "env_id": "DEFAULT_ENVIRONMENT_RELEASE_ID"}],
        "acls": [{"id": "acl1", "acl_name": "local_only", "acl_type": "PERMIT", "entity_type": "IP",
                  "acl_value": "127.0.0.0/8,::1"}],
        "acl_bindings": [{"id": "ab1", "acl_id": "acl1", "publish_id": "p-full"}],
        "throttles": [{"id": "t1", "name": "bench_limits", "api_call_limits": big, "user_call_limits": big,
                       "app_call_limits": big, "ip_call_limits": big, "time_interval": 1, "time_unit": "SECOND",
                       "type": 1}],
        "throttle_bindings": [{"id": "tb1", "policy_id": "t1", "publish_id": "p-full"}],
    }


def signed_full_headers() -> list[str]:
    """wrk -H arguments for the full-pipeline API, signed once (a signature stays valid for 15 minutes)."""
    from gateway.lib.sdk_signer import sign_request

    hdrs = sign_request(APP_KEY, APP_SECRET, "GET", f"http://bench.local{FULL_PATH}", {"Host": "bench.local"})
    return [f"{k}: {v}" for k, v in hdrs.items() if k.lower() != "host"]


WRK_LAT = re.compile(r"^\s+(50|75|90|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, duration: int, connections: int, headers: list[str] | None = None, threads: int = 1
            ) -> dict[str, float]:
    hdr_args = [a for h in headers or [] for a in ("-H", h)]
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-H", "Host: bench.local",
         *hdr_args, url],
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


async def _client_loop(url: str, duration: int, connections: int, headers: list[str] | None = None
                       ) -> dict[str, float]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + duration
    hdrs = {"Host": "bench.local", **dict(h.split(": ", 1) for h in headers or [])}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < end:
            t = time.perf_counter()
            async with session.get(url, headers=hdrs) as r:
                await r.read()
                if r.status >= 300:
                    errors += 1
            lat.append((time.perf_counter() - t) * 1000)

    async with aiohttp.ClientSession() as s:
        await asyncio.gather(*(worker(s) for _ in range(connections)))
    lat.sort()
    return {"rps": len(lat) / duration, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
            "errors": errors}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` and their child processes (nginx workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def measure(url: str, duration: int, connections: int, headers: list[str] | None = None,
            pids: list[int] | None = None, threads: int = 1) -> dict[str, float]:
    """wrk (or the fallback client) against ``url``; with ``pids``, also the CPU those processes spent per
    request (µs): on a shared machine this is steadier than req/s, which also measures the neighbours."""
    if shutil.which("wrk"):
        run_wrk(url, 1, connections, headers, threads)  # warm-up (pools, caches)
        before = cpu_seconds(pids or [])
        out = run_wrk(url, duration, connections, headers, threads)
    else:
        before = cpu_seconds(pids or [])
        out = asyncio.run(_client_loop(url, duration, connections, headers))
    if pids:
        used = cpu_seconds(pids) - before
        out["cpu_us"] = used / max(1.0, out["rps"] * duration) * 1e6
    return out


HEY_P99 = re.compile(r"99%+ in ([\d.]+) secs")


def fixed_rate_p99(url: str, rate: float, duration: int) -> tuple[float, float] | None:
    """(p99 ms, achieved req/s) at a fixed offered rate (``hey -q``: per-worker rate, 8 workers)."""
    hey = shutil.which("hey")
    if hey is None:
        return None
    workers = 8
    out = subprocess.run(
        [hey, "-z", f"{duration}s", "-c", str(workers), "-q", str(max(1, int(rate / workers))),
         "-host", "bench.local", url],
        capture_output=True, text=True, timeout=duration + 30, check=False,
    ).stdout
    m = HEY_P99.search(out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None or rps is None:
        return None
    return float(m.group(1)) * 1000.0, float(rps.group(1))


def idle_rss_mb(pid: int, port: int, n: int) -> tuple[float, float, int]:
    """(RSS MB before, RSS MB with ``n`` idle keep-alive connections that each made one request, open)."""

    def rss() -> float:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    async def run() -> tuple[float, float, int]:
        before = rss()
        conns: list[asyncio.StreamWriter] = []
        ok = 0
        req = b"GET /mock HTTP/1.1\r\nHost: bench.local\r\n\r\n"

        async def one() -> None:
            nonlocal ok
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return
            conns.append(writer)
            writer.write(req)
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if head.startswith(b"HTTP/1.1 200"):
                ok += 1

        for start in range(0, n, 500):
            await asyncio.gather(*(one() for _ in range(min(500, n - start))))
        await asyncio.sleep(1.0)  # let the server settle (buffers, timers)
        after = rss()
        for w in conns:
            w.close()
        return before, after, ok

    return asyncio.run(run())


# the interpreter that runs the gateway processes (--gateway-python; default: this one)
GATEWAY_PYTHON = [sys.executable]


def interpreter_info(python: str) -> str:
    """One line naming the gateway's interpreter: version, and whether libpython is a shared library or linked
    into the executable (how CPython was built changes the gateway's speed: see docs/performance.md)."""
    code = ("import sys; print(sys.version.split()[0], 'shared-libpython' if any('libpython' in line for line in "
            "open('/proc/self/maps')) else 'libpython-linked-in')")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return f"{python} (CPython {out[0]}, {out[1]})"


def start_gateway(procs: Procs, cfg: Path, redis_url: str | None, listener: str | None, workers: str = "1"
                  ) -> tuple[int, int]:
    gw_port = free_port()
    admin_port = free_port() if workers == "1" else 0  # workers take admin port + K: 0 gives each a free one
    args = [GATEWAY_PYTHON[0], "-m", "gateway", "run", "--config", str(cfg), "--listen", f"127.0.0.1:{gw_port}",
            "--admin-listen", f"127.0.0.1:{admin_port}", "--no-access-log", "--log-level", "WARNING",
            "--workers", workers]
    if redis_url:
        args += ["--redis-url", redis_url]
    if listener:
        args += ["--set", f"public_listener={listener}"]
    p = procs.start(args, cwd=ROOT)
    wait_port(gw_port)
    return gw_port, p.pid


def proxy_bench(duration: int, connections: int, listener: str | None, idle: int, rounds: int = 2,
                compare_listener: bool = True) -> tuple[list[tuple[str, dict[str, float]]], dict[str, Any]]:
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    results: list[tuple[str, dict[str, float]]] = []
    extra: dict[str, Any] = {}
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    try:
        backend_port = free_port()
        if nginx:
            backend_pid = procs.start([nginx, "-c", str(nginx_conf(tmp, "backend", backend_port, BODY, None)),
                                       "-g", "daemon off;"]).pid
            backend_kind = "nginx (static 200)"
        else:
            backend_pid = procs.start([sys.executable, str(ROOT / "benchmarks" / "backend.py"), str(backend_port)]).pid
            backend_kind = "aiohttp"
        wait_port(backend_port)
        print(f"backend: {backend_kind} on :{backend_port}; load: "
              f"{'wrk -t1 -c' + str(connections) if shutil.which('wrk') else 'aiohttp client loop'}, {duration}s each, "
              f"best of {rounds} alternating rounds")
        direct_url = f"http://127.0.0.1:{backend_port}/"
        targets: list[tuple[str, str, list[str] | None, list[int]]] = [
            ("direct backend", direct_url, None, [backend_pid])]
        if nginx:
            proxy_port = free_port()
            proxy_pid = procs.start([nginx, "-c", str(nginx_conf(tmp, "proxy", proxy_port, None, backend_port)),
                                     "-g", "daemon off;"]).pid
            wait_port(proxy_port)
            targets.append(("nginx reverse proxy", f"http://127.0.0.1:{proxy_port}/", None, [proxy_pid]))
        cfg = tmp / "snapshot.json"
        cfg.write_bytes(orjson.dumps(gateway_snapshot(backend_port)))
        gw_port, gw_pid = start_gateway(procs, cfg, None, listener)
        base = f"http://127.0.0.1:{gw_port}"
        signed = signed_full_headers()
        targets += [("gateway MOCK api", f"{base}/mock", None, [gw_pid]),
                    ("gateway HTTP api", f"{base}/http/7", None, [gw_pid]),
                    ("full pipeline, local", base + FULL_PATH, signed, [gw_pid])]
        redis = shutil.which("redis-server")
        if redis:
            redis_port = free_port()
            redis_pid = procs.start([redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no"]).pid
            wait_port(redis_port)
            rgw_port, rgw_pid = start_gateway(procs, cfg, f"redis://127.0.0.1:{redis_port}/0", listener)
            # the gateway's CPU plus Redis's
            targets.append(("full pipeline, Redis", f"http://127.0.0.1:{rgw_port}{FULL_PATH}", signed,
                            [rgw_pid, redis_pid]))
        if compare_listener:  # the previous aiohttp-based public listener, same snapshot, same run
            old_port, old_pid = start_gateway(procs, cfg, None, "aiohttp")
            targets += [("MOCK, aiohttp listener", f"http://127.0.0.1:{old_port}/mock", None, [old_pid]),
                        ("HTTP, aiohttp listener", f"http://127.0.0.1:{old_port}/http/7", None, [old_pid])]
        # every target once per round, alternating; the best round of each is kept (a noisy neighbour on a
        # shared machine lowers a round, it never raises one)
        best: dict[str, dict[str, float]] = {}
        for _ in range(max(1, rounds)):
            for name, url, hdrs, pids in targets:
                r = measure(url, duration, connections, hdrs, pids)
                if name not in best or r["rps"] > best[name]["rps"]:
                    best[name] = r
        results.extend((name, best[name]) for name, _, _, _ in targets)
        # fixed-rate latency: half of the gateway's own HTTP peak, direct backend vs gateway HTTP API
        peak = dict(results)["gateway HTTP api"]["rps"]
        rate = peak / 2
        direct = fixed_rate_p99(direct_url, rate, duration)
        gw = fixed_rate_p99(f"{base}/http/7", rate, duration)
        if direct and gw:
            extra["latency"] = {"rate": rate, "direct_p99": direct[0], "gateway_p99": gw[0],
                                "direct_rps": direct[1], "gateway_rps": gw[1]}
        if idle:
            extra["idle"] = (idle, *idle_rss_mb(gw_pid, gw_port, idle))
        # scaling: one worker vs --workers auto (one per core), wrk with 2 threads and 64 connections; on a
        # 2-core machine the load generator and the backend share those cores
        scaling = []
        one = measure(f"{base}/mock", duration, 64, threads=2)
        auto_port, _ = start_gateway(procs, cfg, None, listener, workers="auto")
        many = measure(f"http://127.0.0.1:{auto_port}/mock", duration, 64, threads=2)
        scaling.append(("MOCK", one["rps"], many["rps"]))
        one = measure(f"{base}/http/7", duration, 64, threads=2)
        many = measure(f"http://127.0.0.1:{auto_port}/http/7", duration, 64, threads=2)
        scaling.append(("HTTP", one["rps"], many["rps"]))
        extra["scaling"] = scaling
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return results, extra


def print_proxy(results: list[tuple[str, dict[str, float]]], extra: dict[str, Any]) -> None:
    by = dict(results)
    nginx = by.get("nginx reverse proxy", results[0][1])["rps"]
    ref = "nginx proxy" if "nginx reverse proxy" in by else "direct"
    ncpu = by.get("nginx reverse proxy", results[0][1]).get("cpu_us")
    print(f"\n{'target':<24}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs ' + ref:>16}"
          f"{'CPU us/req':>12}{'CPU vs ' + ref:>20}")
    for name, r in results:
        cpu = r.get("cpu_us")
        cpu_txt = f"{cpu:>12.1f}" if cpu is not None else f"{'-':>12}"
        cpu_ratio = f"{ncpu / cpu:>19.2f}x" if cpu and ncpu else f"{'-':>20}"
        print(f"{name:<24}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{int(r['errors']):>8}"
              f"{r['rps'] / nginx:>15.2f}x{cpu_txt}{cpu_ratio}")
    print("(CPU us/req: CPU time of the server processes per request; 'CPU vs' = nginx's CPU per request over "
          "this one's, the throughput ratio of one dedicated core each. Redis rows include redis-server.)")
    print()
    goals = (("gateway MOCK api", 0.9), ("gateway HTTP api", 0.4), ("full pipeline, Redis", 0.3))
    for name, goal in goals:
        if name in by:
            ratio = by[name]["rps"] / nginx
            print(f"{name + ' / ' + ref:<40}{ratio:>6.2f}x  (goal >= {goal}x: {'met' if ratio >= goal else 'NOT met'})")
    if "full pipeline, Redis" in by:
        cost = 1.0 - by["full pipeline, Redis"]["rps"] / by["full pipeline, local"]["rps"]
        print(f"{'Redis store cost vs in-process':<40}{cost * 100:>5.1f}%  (goal <= 10%: "
              f"{'met' if cost <= 0.10 else 'NOT met'})")
    if "full pipeline, Redis" in by and by["full pipeline, Redis"].get("cpu_us"):
        local_cpu = by["full pipeline, local"]["cpu_us"]
        extra_cpu = by["full pipeline, Redis"]["cpu_us"] / local_cpu - 1.0
        print(f"{'Redis store extra CPU vs in-process':<40}{extra_cpu * 100:>5.1f}%  (gateway + redis-server)")
    lat = extra.get("latency")
    if lat:
        delta = lat["gateway_p99"] - lat["direct_p99"]
        print(f"{'fixed rate ' + str(int(lat['rate'])) + ' req/s (half the HTTP peak), p99':<40} "
              f"direct {lat['direct_p99']:.2f} ms, gateway HTTP {lat['gateway_p99']:.2f} ms, "
              f"+{delta:.2f} ms (goal <= +1 ms: {'met' if delta <= 1.0 else 'NOT met'})")
    for name, one, many in extra.get("scaling", []):
        print(f"{'--workers auto (' + str(len(os.sched_getaffinity(0))) + ' cores), ' + name + ', wrk -t2 -c64':<40}"
              f" 1 worker {one:.0f} req/s, auto {many:.0f} req/s ({many / one:.2f}x)")
    idle = extra.get("idle")
    if idle:
        n, before, after, ok = idle
        print(f"{'RSS with ' + str(ok) + '/' + str(n) + ' idle keep-alive conns':<40}{after:>6.0f} MB "
              f"(before {before:.0f} MB; goal <= 200 MB: {'met' if after <= 200 else 'NOT met'})")


def route_bench() -> list[tuple[int, float, float, float]]:
    """(n_apis, compile ms, static lookup ns, param lookup ns) through the real compiler and router."""
    from gateway.compiler import build_runtime
    from gateway.core.gcquiet import quiet_gc
    from gateway.core.settings import Settings
    from gateway.model.services import Services
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
        gc.collect()
        # as the gateway compiles: the cyclic collector paused, the result frozen (gateway/core/gcquiet.py)
        with quiet_gc(freeze=True):
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
    ap.add_argument("--idle-connections", type=int, default=10000, help="0 skips the idle-RSS figure")
    ap.add_argument("--listener", choices=("fast", "aiohttp"), default=None,
                    help="the gateway's public listener (default: the gateway's default)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each target is kept")
    ap.add_argument("--no-compare-listener", action="store_true",
                    help="skip the rows of the previous aiohttp-based public listener")
    ap.add_argument("--skip-route", action="store_true")
    ap.add_argument("--skip-proxy", action="store_true")
    ap.add_argument("--skip-h2", action="store_true", help="skip HTTP/2 and gRPC (benchmarks/h2_bench.py)")
    ap.add_argument("--gateway-python", default=sys.executable,
                    help="the Python interpreter that runs the gateway (with the gateway installed; `make bench` "
                         "passes the one of BENCH_PYTHON)")
    args = ap.parse_args()
    GATEWAY_PYTHON[0] = args.gateway_python
    os.environ["BENCH_GATEWAY_PYTHON"] = args.gateway_python  # benchmarks/h2_bench.py starts its gateway with it
    print(f"gateway interpreter: {interpreter_info(args.gateway_python)}")
    if not args.skip_proxy:
        print_proxy(*proxy_bench(args.duration, args.connections, args.listener, args.idle_connections, args.rounds,
                                 not args.no_compare_listener))
    if not args.skip_h2:
        from benchmarks import h2_bench

        h2_bench.print_rows(h2_bench.run(min(args.duration, 3)))
    if not args.skip_route:
        print(f"\n{'APIs':>8}{'compile ms':>12}{'static lookup ns':>18}{'param lookup ns':>17}")
        for n, c, s, p in route_bench():
            print(f"{n:>8}{c:>12.0f}{s:>18.0f}{p:>17.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
