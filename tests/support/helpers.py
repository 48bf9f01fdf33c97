"""Test helpers: snapshot builders and a real echo backend (aiohttp app on a real socket)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from aiohttp import web

RELEASE = "DEFAULT_ENVIRONMENT_RELEASE_ID"
GROUP_HOST = "api.test.local"


def http_api(api_id: str, uri: str, backend: str, *, method: str = "GET", backend_uri: str | None = None,
             backend_method: str | None = None, match_mode: str = "NORMAL", timeout: int = 5000,
             retry_count: str = "-1", **extra: Any) -> dict[str, Any]:
    api: dict[str, Any] = {
        "id": api_id, "group_id": "g1", "name": f"api_{api_id}".replace("-", "_"), "type": 1,
        "req_protocol": "BOTH", "req_method": method, "req_uri": uri, "match_mode": match_mode,
        "auth_type": "NONE", "backend_type": "HTTP",
        "backend_api": {"url_domain": backend, "req_protocol": "HTTP", "req_method": backend_method or method,
                        "req_uri": backend_uri or uri, "timeout": timeout, "retry_count": retry_count},
    }
    api.update(extra)
    return api


def mock_api(api_id: str, uri: str, content: str = "mock", *, method: str = "GET", match_mode: str = "NORMAL",
             **extra: Any) -> dict[str, Any]:
    api: dict[str, Any] = {
        "id": api_id, "group_id": "g1", "name": f"api_{api_id}".replace("-", "_"), "type": 1,
        "req_protocol": "BOTH", "req_method": method, "req_uri": uri, "match_mode": match_mode,
        "auth_type": "NONE", "backend_type": "MOCK", "mock_info": {"result_content": content},
    }
    api.update(extra)
    return api


def snapshot(apis: list[dict[str, Any]], *, envs: list[str] | None = None, publish_in: list[str] | None = None,
             **collections: Any) -> dict[str, Any]:
    """A one-group snapshot publishing every API in RELEASE (and in ``publish_in`` env ids)."""
    env_ids = [RELEASE, *(publish_in or [])]
    doc: dict[str, Any] = {
        "groups": [{"id": "g1", "name": "group_one", "sl_domain": GROUP_HOST}],
        "environments": [{"id": f"env-{e.lower()}", "name": e} for e in envs or []],
        "apis": copy.deepcopy(apis),
        "publishes": [
            {"publish_id": f"p-{a['id']}-{e}", "api_id": a["id"], "env_id": e} for a in apis for e in env_ids
        ],
    }
    for key, value in collections.items():
        doc[key] = value
    return doc


class EchoBackend:
    """A real HTTP backend that echoes what it received and counts hits."""

    def __init__(self) -> None:
        self.hits = 0
        self.delay = 0.0
        self.status = 200
        self.requests: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        body = await request.read()
        record = {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query": [[k, v] for k, v in request.query.items()],
            "headers": {k: v for k, v in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        self.requests.append(record)
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.path.startswith("/big/"):
            size = int(request.path.rsplit("/", 1)[1])
            resp = web.StreamResponse(status=200)
            resp.content_type = "application/octet-stream"
            await resp.prepare(request)
            chunk = b"x" * 65536
            sent = 0
            while sent < size:
                part = chunk[: min(len(chunk), size - sent)]
                await resp.write(part)
                sent += len(part)
            await resp.write_eof()
            return resp
        return web.json_response(record, status=self.status, headers={"X-Backend": "echo"})
