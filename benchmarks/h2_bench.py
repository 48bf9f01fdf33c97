"""HTTP/2 and gRPC figures for ``make bench``: gRPC unary calls/s direct vs through the gateway, and the MOCK
API over HTTP/2 vs HTTP/1.1 on the gateway's HTTPS listener.

Load comes from ``h2load`` (nghttp2; ``make tools`` installs it when root); without it this part is skipped.
The gRPC backend is grpcio's asyncio server (benchmarks/grpc_backend.py) on h2c; the gateway reaches it over
h2c too, and is called over TLS (a throw-away self-signed certificate). One gateway process, loopback only.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.throttle_common import ROOT, free_port, wait_port

MESSAGE = b"\x0a\x20" + b"x" * 32  # a 34-byte protobuf-shaped message
RELEASE = "DEFAULT_ENVIRONMENT_RELEASE_ID"
BODY = '{"hello":"world","items":[1,2,3]}'


def _cert(tmp: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))
    cpath, kpath = tmp / "gw.crt", tmp / "gw.key"
    cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kpath.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return str(cpath), str(kpath)


def snapshot(grpc_port: int) -> dict[str, Any]:
    apis = [
        {"id": "mock", "group_id": "g", "name": "bench_mock", "type": 1, "req_protocol": "BOTH",
         "req_method": "GET", "req_uri": "/mock", "auth_type": "NONE", "backend_type": "MOCK",
         "mock_info": {"result_content": BODY}},
        {"id": "grpc", "group_id": "g", "name": "bench_grpc", "type": 1, "req_protocol": "GRPCS",
         "req_method": "POST", "req_uri": "/bench.Echo/Unary", "auth_type": "NONE", "backend_type": "GRPC",
         "backend_api": {"url_domain": f"127.0.0.1:{grpc_port}", "req_protocol": "HTTP", "req_method": "POST",
                         "req_uri": "/", "timeout": 5000}},
    ]
    return {"groups": [{"id": "g", "name": "bench", "sl_domain": "bench.local"}], "apis": apis,
            "publishes": [{"publish_id": f"p-{a['id']}", "api_id": a["id"], "env_id": RELEASE} for a in apis]}


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def h2load(url: str, duration: int, clients: int, streams: int, extra: list[str] | None = None,
           gateway_pid: int | None = None) -> dict[str, float]:
    """One h2load run; ``cpu_us``: the gateway's CPU time per answered request (robust on a busy machine)."""
    args = ["h2load", f"--duration={duration}", f"-c{clients}", f"-m{streams}", "-t1", *(extra or []), url]
    cpu0 = cpu_seconds(gateway_pid)
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60, check=False).stdout
    cpu = cpu_seconds(gateway_pid) - cpu0
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    ok = re.search(r"status codes: (\d+) 2xx", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    lat = 0.0
    if mean:
        lat = float(mean.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[mean.group(2)]
    n_ok = int(ok.group(1)) if ok else 0
    return {"rps": float(rps.group(1)) if rps else 0.0, "ok": n_ok, "failed": int(done.group(3)) if done else -1,
            "mean_ms": lat, "cpu_us": cpu / n_ok * 1e6 if gateway_pid and n_ok else 0.0}


def _grpc_ok(port: int) -> bool:
    """One real call through the gateway with the h2 client; True when it answered grpc-status 0."""
    import asyncio

    from gateway.lib.h2client import H2Pool

    async def call() -> bool:
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        pool = H2Pool()
        try:
            stream = await pool.open_stream("127.0.0.1", port, ctx, "bench.local", [
                (":method", "POST"), (":scheme", "https"), (":path", "/bench.Echo/Unary"),
                (":authority", "bench.local"), ("content-type", "application/grpc"), ("te", "trailers")])
            await stream.send(b"\x00" + struct.pack(">I", len(MESSAGE)) + MESSAGE, end=True)
            await stream.response()
            while await stream.read() is not None:
                pass
            return dict(stream.trailers or []).get("grpc-status") == "0"
        finally:
            await pool.close()

    return asyncio.run(call())


def run(duration: int) -> list[tuple[str, dict[str, float]]] | None:
    if shutil.which("h2load") is None:
        print("\nHTTP/2 and gRPC: skipped (h2load not installed; `make tools` as root installs nghttp2-client)")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="gw-h2bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        grpc_port, gw_port, https_port, admin_port = free_port(), free_port(), free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "grpc_backend.py"), str(grpc_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cert, key = _cert(tmp)
        cfg = tmp / "snapshot.json"
        cfg.write_bytes(orjson.dumps(snapshot(grpc_port)))
        python = os.environ.get("BENCH_GATEWAY_PYTHON", sys.executable)  # benchmarks/run.py --gateway-python
        gw = subprocess.Popen(
            [python, "-m", "gateway", "run", "--config", str(cfg), "--listen", f"127.0.0.1:{gw_port}",
             "--admin-listen", f"127.0.0.1:{admin_port}", "--no-access-log", "--log-level", "WARNING",
             "--set", f"https_listen=127.0.0.1:{https_port}", "--set", f"tls_cert_file={cert}",
             "--set", f"tls_key_file={key}", "--workers", "1"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(gw)
        wait_port(grpc_port)
        wait_port(https_port)
        if not _grpc_ok(https_port):
            print("\nHTTP/2 and gRPC: the gateway did not answer a gRPC call with OK; skipped")
            return None
        body = tmp / "unary.bin"
        body.write_bytes(b"\x00" + struct.pack(">I", len(MESSAGE)) + MESSAGE)
        grpc_args = ["-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers"]
        rows.append(("gRPC unary, direct (h2c)", h2load(f"http://127.0.0.1:{grpc_port}/bench.Echo/Unary",
                                                        duration, 8, 16, grpc_args)))
        rows.append(("gRPC unary, gateway (TLS)", h2load(f"https://127.0.0.1:{https_port}/bench.Echo/Unary",
                                                         duration, 8, 16, grpc_args, gw.pid)))
        mock = f"https://127.0.0.1:{https_port}/mock"
        rows.append(("MOCK api, HTTP/2 (TLS)", h2load(mock, duration, 8, 16, None, gw.pid)))
        rows.append(("MOCK api, HTTP/1.1 (TLS)", h2load(mock, duration, 32, 1, ["--h1"], gw.pid)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def print_rows(rows: list[tuple[str, dict[str, float]]] | None) -> None:
    if not rows:
        return
    print(f"\n{'HTTP/2 and gRPC (h2load)':<28}{'req/s':>10}{'mean ms':>9}{'2xx':>9}{'failed':>8}"
          f"{'gateway CPU us/req':>20}")
    for name, r in rows:
        cpu = f"{r['cpu_us']:.0f}" if r["cpu_us"] else "-"
        print(f"{name:<28}{r['rps']:>10.0f}{r['mean_ms']:>9.2f}{int(r['ok']):>9}{int(r['failed']):>8}{cpu:>20}")
    by = dict(rows)
    direct, through = by["gRPC unary, direct (h2c)"]["rps"], by["gRPC unary, gateway (TLS)"]["rps"]
    if direct:
        print(f"{'gRPC through the gateway / direct':<40}{through / direct:>6.2f}x")
    h1, h2 = by["MOCK api, HTTP/1.1 (TLS)"]["rps"], by["MOCK api, HTTP/2 (TLS)"]["rps"]
    if h1:
        print(f"{'MOCK over HTTP/2 / HTTP/1.1':<40}{h2 / h1:>6.2f}x")


if __name__ == "__main__":
    print_rows(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
