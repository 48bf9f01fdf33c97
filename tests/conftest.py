"""Shared fixtures: a real gateway on real sockets, real echo backends, a real redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.core.settings import load_settings
from gateway.pipeline.spec import Chain
from gateway.process.server import Gateway
from tests.support.functions_helpers import FunctionEndpoint
from tests.support.helpers import GROUP_HOST, EchoBackend


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> bool:
    """Poll until something accepts connections on 127.0.0.1:port; False after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class RunningGateway:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gw.public_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.gw.admin_port}"


@pytest.fixture
async def make_gateway() -> AsyncIterator[Callable[..., Awaitable[RunningGateway]]]:
    started: list[Gateway] = []

    async def factory(doc: dict[str, Any] | None = None, chain: Chain | None = None,
                      **overrides: Any) -> RunningGateway:
        settings = load_settings({"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", **overrides}, environ={})
        gw = Gateway(settings, chain)
        if doc is not None:
            gw.apply_document(doc)
        await gw.start()
        started.append(gw)
        return RunningGateway(gw)

    yield factory
    for gw in started:
        await gw.stop()


@pytest.fixture
async def echo_backend() -> AsyncIterator[tuple[EchoBackend, str]]:
    """(backend, "127.0.0.1:port")"""
    backend = EchoBackend()
    server = TestServer(backend.app(), host="127.0.0.1")
    await server.start_server()
    yield backend, f"127.0.0.1:{server.port}"
    await server.close()


@pytest.fixture
async def fn_server() -> AsyncIterator[tuple[FunctionEndpoint, str]]:
    """A real HTTP function endpoint (tests/functions_helpers.py): (endpoint, "http://127.0.0.1:<port>")."""
    ep = FunctionEndpoint()
    server = TestServer(ep.app(), host="127.0.0.1")
    await server.start_server()
    yield ep, f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}, auto_decompress=False) as session:
        yield session


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free port. Missing redis-server is a failure, never a skip."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: `make test` installs it (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    if not wait_port(port):
        proc.kill()
        pytest.fail("redis-server did not start")
    os.environ.setdefault("GATEWAY_TEST_REDIS", f"redis://127.0.0.1:{port}/0")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)
