"""Builders for plug-in tests: plug-in records, bindings, and a real third-party auth server (aiohttp)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.helpers import RELEASE


def plugin(pid: str, ptype: str, content: dict[str, Any] | str, *, as_string: bool = True,
           name: str | None = None) -> dict[str, Any]:
    """A plug-in record; ``plugin_content`` is a JSON string (vendor shape) unless ``as_string`` is False."""
    body: Any = content
    if as_string and not isinstance(content, str):
        body = orjson.dumps(content).decode()
    return {"id": pid, "plugin_name": name or f"plugin_{pid}".replace("-", "_"), "plugin_type": ptype,
            "plugin_scope": "global", "plugin_content": body}


def bind(bid: str, pid: str, api_id: str, env_id: str = RELEASE) -> dict[str, Any]:
    """A binding in the snapshot shape (publish_id as built by tests.support.helpers.snapshot)."""
    return {"id": bid, "plugin_id": pid, "publish_id": f"p-{api_id}-{env_id}"}


class AuthServer:
    """A real third-party auth service: allows requests whose ``token`` header is ``good``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.delay = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import asyncio

        body = await request.read()
        self.calls.append({"method": request.method, "path": request.path, "query": dict(request.query),
                           "headers": dict(request.headers), "body": body.decode("utf-8", "replace")})
        if self.delay:
            await asyncio.sleep(self.delay)
        token = request.headers.get("token")
        if token == "good":
            return web.json_response({"ok": True}, headers={"x-message-result": "success", "x-user": "alice"})
        if token == "no-match":
            return web.json_response({"ok": True}, headers={"x-message-result": "nope"})
        return web.json_response({"reason": "bad token"}, status=403)


@asynccontextmanager
async def auth_server() -> AsyncIterator[tuple[AuthServer, str]]:
    srv = AuthServer()
    server = TestServer(srv.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield srv, f"127.0.0.1:{server.port}"
    finally:
        await server.close()


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
