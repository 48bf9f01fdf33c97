"""Helpers for the admin API tests: a small client for the admin listener and v2 paths."""

from __future__ import annotations

from typing import Any

import aiohttp

V2 = "/v2/proj1/apigw/instances/inst1"


async def call(session: aiohttp.ClientSession, base: str, method: str, path: str, *, json: Any = None,
               data: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """(status, parsed JSON body or text or None, response headers)"""
    async with session.request(method, base + path, json=json, data=data, headers=headers) as resp:
        raw = await resp.read()
        body: Any = None
        if raw:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = raw.decode()
        return resp.status, body, resp.headers


async def public_get(session: aiohttp.ClientSession, url: str, path: str, **headers: str) -> tuple[int, str]:
    async with session.get(url + path, headers=headers or None) as resp:
        return resp.status, (await resp.read()).decode()
