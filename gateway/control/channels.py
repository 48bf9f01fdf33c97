"""Admin route ``GET /v1/channels/health``: the health of every VPC channel member, as the gateway sees it.

Role: off the request path (admin listener, behind the admin token). One row per
``(channel id, host, port)``: ``healthy`` (selectable now), in-flight requests, active check counters,
passive ejections and the seconds left of a passive ejection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.backends.channels.health import EXTRAS_KEY
from gateway.control.app import ROUTE_INSTALLERS

if TYPE_CHECKING:
    from gateway.process.server import Gateway


def install(app: web.Application, gateway: Gateway) -> None:
    async def channel_health(_: web.Request) -> web.Response:
        manager = gateway.services.extras.get(EXTRAS_KEY)
        return web.json_response({"members": manager.status() if manager is not None else []})

    app.router.add_get("/v1/channels/health", channel_health)


ROUTE_INSTALLERS.append(install)
