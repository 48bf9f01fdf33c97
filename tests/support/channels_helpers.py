"""Helpers for VPC channel and backend-policy tests: named real backends that can be stopped and restarted."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tests.support.helpers import http_api


class NamedBackend:
    """A real aiohttp backend on 127.0.0.1 that answers with its name; stop()/start() keep the port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.hits = 0
        self.inflight = 0
        self.max_inflight = 0
        self.health_status = 200
        self.health_hits = 0
        self.hosts: list[str] = []
        self.delay = 0.0
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def health(self, request: web.Request) -> web.Response:
        self.health_hits += 1
        return web.Response(status=self.health_status, text="health")

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        self.hosts.append(request.host)
        try:
            delay = float(request.query.get("delay", self.delay))
            if delay:
                await asyncio.sleep(delay)
            return web.json_response({"name": self.name, "path": request.path, "host": request.host})
        finally:
            self.inflight -= 1

    async def start(self) -> NamedBackend:
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server: Any = site._server
        self.port = int(server.sockets[0].getsockname()[1])
        self._runner = runner
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def channel(cid: str, backends: list[NamedBackend], *, strategy: int = 1, weights: list[int] | None = None,
            backups: list[bool] | None = None, health: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    members = []
    for i, b in enumerate(backends):
        m: dict[str, Any] = {"host": "127.0.0.1", "port": b.port, "weight": (weights or [1] * len(backends))[i]}
        if backups and backups[i]:
            m["is_backup"] = True
        members.append(m)
    ch: dict[str, Any] = {"id": cid, "name": f"chan_{cid}", "port": 80, "balance_strategy": strategy,
                          "member_type": "ip", "type": 2, "members": members}
    if health is not None:
        ch["vpc_health_config"] = health
    ch.update(extra)
    return ch


def tcp_check(interval: int = 2, timeout: int = 1, rise: int = 1, fall: int = 1) -> dict[str, Any]:
    return {"protocol": "TCP", "threshold_normal": rise, "threshold_abnormal": fall, "time_interval": interval,
            "timeout": timeout}


def channel_api(api_id: str, uri: str, cid: str, *, proxy_host: str | None = None, retry_count: str = "-1",
                method: str = "GET", **extra: Any) -> dict[str, Any]:
    api = http_api(api_id, uri, "", method=method, retry_count=retry_count, **extra)
    backend = api["backend_api"]
    del backend["url_domain"]
    backend["vpc_channel_status"] = 1
    backend["vpc_channel_info"] = {"vpc_channel_id": cid}
    if proxy_host:
        backend["vpc_channel_info"]["vpc_channel_proxy_host"] = proxy_host
    return api


async def start_backends(*names: str) -> list[NamedBackend]:
    return [await NamedBackend(n).start() for n in names]
