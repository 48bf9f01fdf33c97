"""HTTP/2 test helpers: a gateway with an HTTPS listener (test CA) and clients that speak h2 to it."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from tests.support.helpers import GROUP_HOST
from tests.support.tls_helpers import TestCA


def tls_files(ca: TestCA, directory: str) -> tuple[str, str]:
    return ca.issue("gateway", dns=["localhost", GROUP_HOST], ips=["127.0.0.1"]).write(directory, "gateway")


def h2_client(ca: TestCA, port: int, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that negotiates HTTP/2 with the gateway's HTTPS listener."""
    ctx = ssl.create_default_context(cadata=ca.pem)
    return httpx.AsyncClient(http2=True, http1=False, verify=ctx, base_url=f"https://127.0.0.1:{port}",
                             headers={"Host": GROUP_HOST}, timeout=30.0, **kwargs)


def h1_client(ca: TestCA, port: int) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cadata=ca.pem)
    return httpx.AsyncClient(http2=False, verify=ctx, base_url=f"https://127.0.0.1:{port}",
                             headers={"Host": GROUP_HOST}, timeout=30.0)
