"""Helpers for the throttling tests: snapshot builders, a test-only identity stage, a load generator,
and a way to run real gateway processes.

The identity stage exists because the authentication stage (order 20) belongs to another module: it
reads ``X-Test-App`` / ``X-Test-User`` into ``ctx.app_id`` / ``ctx.user_id`` and ``ctx.account_id`` so per-app
and per-user limits can be tested over real sockets. Only the tests that take the ``identity_stage`` fixture (a
pipeline with the stage added) get it; it never ships in the gateway.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from gateway.pipeline import chain
from gateway.pipeline.spec import Chain, StageSpec
from tests.support.helpers import GROUP_HOST, RELEASE

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.pipeline.spec import BuildContext, EndpointDraft

IDENTITY_STAGE = "test_identity"


async def _identity(ctx: RequestContext) -> None:
    app = ctx.headers.get("X-Test-App")
    if app:
        ctx.app_id = app
    user = ctx.headers.get("X-Test-User")
    if user:
        ctx.user_id = ctx.account_id = user


def _identity_builder(draft: EndpointDraft, build: BuildContext) -> Any:
    return _identity


@pytest.fixture
def identity_stage() -> Chain:
    """The default pipeline plus the identity stage after authentication: make_gateway(doc, chain=...)."""
    return chain.DEFAULT.with_stage(StageSpec(IDENTITY_STAGE, _identity_builder), after="iam_auth")


def policy(pid: str, api: int, *, user: int | None = None, app: int | None = None, ip: int | None = None,
           interval: int = 1, unit: str = "SECOND", type: int = 1) -> dict[str, Any]:
    p: dict[str, Any] = {"id": pid, "name": f"policy_{pid}".replace("-", "_"), "api_call_limits": api,
                         "time_interval": interval, "time_unit": unit, "type": type}
    for key, value in (("user_call_limits", user), ("app_call_limits", app), ("ip_call_limits", ip)):
        if value is not None:
            p[key] = value
    return p


def pub(api_id: str, env: str = RELEASE) -> str:
    """The publish id tests.support.helpers.snapshot gives an API in an environment."""
    return f"p-{api_id}-{env}"


def binding(pid: str, api_id: str, env: str = RELEASE, *, vendor: bool = False) -> dict[str, Any]:
    key = "strategy_id" if vendor else "policy_id"
    return {"id": f"b-{pid}-{api_id}-{env}", key: pid, "publish_id": pub(api_id, env)}


def app(app_id: str) -> dict[str, Any]:
    return {"id": app_id, "name": f"app_{app_id}".replace("-", "_"), "app_key": f"key-{app_id}-0123456789",
            "app_secret": f"secret-{app_id}-0123456789"}


async def get(client: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    async with client.get(url, headers=headers) as resp:
        body = await resp.read()
        try:
            data = json.loads(body)
        except ValueError:
            data = body.decode()
        return resp.status, dict(resp.headers), data


class Window(float):
    """The load duration (last send - first send, what the float is) plus bounds on the span during which the
    limiter really decided: ``lo`` = last send of an accepted call - first answer; ``hi`` = last answer - first
    send. On an idle machine both are within a few ms of the float; under load (a descheduled client or
    gateway) answers lag their sends, and an accuracy check must allow for exactly that lag, no more."""

    lo: float
    hi: float
    sends: list[float]  # every send time (seconds since the start), ascending

    def busy_span(self, refill_cap_s: float) -> float:
        """Seconds of the accepted-calls span during which the limiter could refill: a pause in the load (a
        descheduled client) longer than ``refill_cap_s`` (bucket capacity / rate) refills no more than that."""
        sends = [t for t in self.sends if t <= self.last_ok]
        return sum(min(b - a, refill_cap_s) for a, b in itertools.pairwise(sends))

    last_ok: float


async def hammer(urls: list[str], seconds: float, concurrency: int = 16,
                 headers: dict[str, str] | None = None) -> tuple[Counter[int], Window]:
    """Send requests as fast as ``concurrency`` workers can for ``seconds``, spread round-robin over
    ``urls``. Returns (status counts, :class:`Window`)."""
    counts: Counter[int] = Counter()
    hdrs = {"Host": GROUP_HOST, **(headers or {})}
    stop_at = time.perf_counter() + seconds
    last_send = [0.0]
    last_ok_send = [0.0]
    sends: list[float] = []
    first_done = [float("inf")]
    last_done = [0.0]
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=conn, headers=hdrs) as session:
        started = time.perf_counter()

        async def worker(i: int) -> None:
            n = i
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                last_send[0] = max(last_send[0], now)
                sends.append(now)
                url = urls[n % len(urls)]
                n += 1
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        counts[resp.status] += 1
                        if resp.status == 200:
                            last_ok_send[0] = max(last_ok_send[0], now)
                except aiohttp.ClientError:
                    counts[-1] += 1
                done = time.perf_counter()
                first_done[0] = min(first_done[0], done)
                last_done[0] = max(last_done[0], done)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    window = Window(last_send[0] - started)
    window.lo = max(0.0, last_ok_send[0] - first_done[0])
    window.hi = max(last_done[0] - started, float(window))
    window.sends = sorted(t - started for t in sends)
    window.last_ok = last_ok_send[0] - started
    return counts, window


class GatewayProcess:
    """A real ``python -m gateway run`` process on its own ports."""

    def __init__(self, config_path: str, port: int, admin_port: int, redis_url: str | None,
                 env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "gateway", "run", "--config", config_path, "--listen", f"127.0.0.1:{port}",
               "--admin-listen", f"127.0.0.1:{admin_port}", "--no-access-log", "--log-level", "WARNING"]
        if redis_url:
            cmd += ["--redis-url", redis_url]
        full_env = {**os.environ, **(env or {})}
        self.port = port
        self.admin_port = admin_port
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"gateway exited: {err}")
                try:
                    async with s.get(f"http://127.0.0.1:{self.admin_port}/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("gateway did not become ready")

    async def throttle_stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.admin_port}/v1/throttling") as r:
            data: dict[str, Any] = await r.json()
            return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
