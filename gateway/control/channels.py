"""Admin route ``GET /v1/channels/health``: the health of every VPC channel member, as the gateway sees it.

Role: off the request path (admin listener, behind the admin token). One row per
``(channel id, host, port)``: ``healthy`` (selectable now), in-flight requests, active check counters,
passive ejections and the seconds left of a passive ejection.
"""

from __future__ import annotations

from aiohttp import web

from gateway.backends.channels.health import EXTRAS_KEY
from gateway.control.store import DocumentStore


def install(app: web.Application, store: DocumentStore) -> None:
    services = store.port.services

    async def channel_health(_: web.Request) -> web.Response:
        manager = services.extras.get(EXTRAS_KEY)
        return web.json_response({"members": manager.status() if manager is not None else []})

    app.router.add_get("/v1/channels/health", channel_health)
