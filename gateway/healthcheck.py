"""Container health check: ``python -m gateway.healthcheck`` exits 0 when the gateway is ready, 1 otherwise.

Role: the Dockerfile's ``HEALTHCHECK`` (no curl in slim images). It asks the admin listener's ``/readyz``
(readiness: a snapshot is active), not ``/healthz`` (liveness only), so a container that cannot load its config
is reported unhealthy. It honours ``GATEWAY_ADMIN_LISTEN`` and sends ``GATEWAY_ADMIN_TOKEN`` when set (the
admin API requires it when the admin listener is not on loopback).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def readiness_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/readyz"


def main() -> int:
    url = readiness_url(os.environ.get("GATEWAY_ADMIN_LISTEN") or "127.0.0.1:9080")
    request = urllib.request.Request(url)
    token = os.environ.get("GATEWAY_ADMIN_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
