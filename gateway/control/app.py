"""The admin listener: health, readiness, and the control-plane API (route modules listed in :data:`ROUTES`).

Role: off the request path. Served on its own port (127.0.0.1:9080 by default). When it listens on a
non-loopback address a bearer token is mandatory (start-up fails without one); with
``admin_token_required`` the token is required on loopback too. ``/healthz`` is always open so probes
need no secret. The token is accepted as a bearer token or as the secret of an SDK signature
(:mod:`gateway.control.admin_auth`); comparisons are constant time. A path or method the admin API does not
implement answers the vendor's error body (``APIG.1001`` / ``APIG.1009``), never a bodiless 404/405.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from gateway.control import channels, snapshot, throttling
from gateway.control.admin_auth import authorized
from gateway.control.openapi import routes as openapi_routes
from gateway.control.port import ControlPort
from gateway.control.store import DocumentStore
from gateway.control.v2 import app as v2_app
from gateway.core.settings import split_listen

PORT_KEY: web.AppKey[ControlPort] = web.AppKey("control_port")
OPEN_PATHS = frozenset({"/healthz"})
Installer = Callable[[web.Application, DocumentStore], None]
# The admin route modules, in mounting order: fn(app, store) -> None
ROUTES: tuple[Installer, ...] = (
    snapshot.install,        # GET/PUT /v1/snapshot
    v2_app.install,          # the vendor's v2 management paths
    openapi_routes.install,  # Swagger/OpenAPI import and export
    throttling.install,      # GET /v1/throttling
    channels.install,        # GET /v1/channels/health
)


def is_loopback(listen: str) -> bool:
    host, _ = split_listen(listen)
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_admin_exposure(listen: str, token: str | None) -> None:
    if not is_loopback(listen) and not token:
        raise SystemExit(
            f"refusing to start: the admin API would listen on {listen} without a token "
            "(set --admin-token / GATEWAY_ADMIN_TOKEN, or listen on 127.0.0.1)"
        )


def _auth_middleware(gateway: ControlPort, listen: str | None = None) -> Callable[..., Awaitable[web.StreamResponse]]:
    settings = gateway.settings
    # the address actually bound decides (a worker's or a test's admin address may differ from settings)
    required = bool(settings.admin_token) and (
        settings.admin_token_required or not is_loopback(listen or settings.admin_listen)
    )
    token = settings.admin_token or ""
    expected = f"Bearer {token}".encode() if token else b""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if required and request.path not in OPEN_PATHS and not await authorized(request, expected, token):
            return web.json_response(
                {"error_code": "APIG.1002", "error_msg": "Incorrect token or token resolution failed"},
                status=401,
            )
        return await handler(request)

    return middleware


@web.middleware
async def _vendor_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    """The router's bodiless 404/405 become the vendor's error body (an unimplemented operation)."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        return web.json_response(
            {"error_code": "APIG.1009", "error_msg": f"The operation {request.method} {request.path} is not "
             f"supported by this gateway (allowed: {', '.join(sorted(exc.allowed_methods))})"},
            status=405, headers={"Allow": ",".join(sorted(exc.allowed_methods))})
    except web.HTTPNotFound:
        return web.json_response(
            {"error_code": "APIG.1001", "error_msg": f"The operation {request.method} {request.path} is not "
             "implemented by this gateway (see docs/admin-api.md)"}, status=404)


def create_admin_app(gateway: ControlPort, listen: str | None = None,
                     extra: Iterable[Callable[[web.Application], None]] = ()) -> web.Application:
    """The admin app for ``gateway``; ``extra`` lets the process mount its own routes (``/metrics``)."""
    app = web.Application(middlewares=[_auth_middleware(gateway, listen), _vendor_errors],
                          client_max_size=256 * 1024 * 1024)
    app[PORT_KEY] = gateway
    store = DocumentStore.of(gateway)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        rt = gateway.runtime
        if rt is None:
            return web.json_response({"status": "not ready", "reason": "no snapshot loaded"}, status=503)
        return web.json_response({"status": "ready", "version": rt.version, "counts": rt.counts})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for install in ROUTES:
        install(app, store)
    for mount in extra:
        mount(app)
    return app
