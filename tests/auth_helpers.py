"""Helpers for the authentication / access-control tests: snapshot pieces and a signing client."""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from gateway.auth.sdk_signer import sign_request
from tests.helpers import GROUP_HOST, RELEASE, http_api

APP_KEY = "app_key_0001"
APP_SECRET = "app_secret_0001_xyz"
APP_CODE = "A" * 32 + "b/c+d=e" + "9" * 32  # 71 chars, base64-like

CONTEXT_PARAMS = [
    {"origin": "SYSTEM", "name": "X-Ctx-App-Id", "location": "HEADER", "value": "$context.appId"},
    {"origin": "SYSTEM", "name": "X-Ctx-App-Name", "location": "HEADER", "value": "$context.appName"},
    {"origin": "SYSTEM", "name": "X-Ctx-User-Id", "location": "HEADER", "value": "$context.userId"},
    {"origin": "SYSTEM", "name": "X-Ctx-Source-Ip", "location": "HEADER", "value": "$context.sourceIp"},
]


def auth_api(api_id: str, uri: str, backend: str, auth_type: str = "APP", **extra: Any) -> dict[str, Any]:
    """An HTTP API with ``auth_type`` whose backend receives $context.appId/appName/userId/sourceIp."""
    extra.setdefault("backend_params", CONTEXT_PARAMS)
    return http_api(api_id, uri, backend, auth_type=auth_type, **extra)


def app(app_id: str = "app1", key: str = APP_KEY, secret: str = APP_SECRET, **extra: Any) -> dict[str, Any]:
    rec = {"id": app_id, "name": f"app_{app_id}", "app_key": key, "app_secret": secret, "status": 1}
    rec.update(extra)
    return rec


def grant(app_id: str, api_id: str, env_id: str = RELEASE, auth_id: str | None = None) -> dict[str, Any]:
    return {"id": auth_id or f"auth-{app_id}-{api_id}-{env_id}", "app_id": app_id, "api_id": api_id,
            "env_id": env_id}


def signed_headers(method: str, path_qs: str, body: bytes = b"", key: str = APP_KEY, secret: str = APP_SECRET,
                   headers: dict[str, str] | None = None, date: str | None = None) -> dict[str, str]:
    """Headers of a request to ``http://GROUP_HOST<path_qs>`` signed like the vendor SDK."""
    hdrs = {"Host": GROUP_HOST, **(headers or {})}
    return sign_request(key, secret, method, f"http://{GROUP_HOST}{path_qs}", hdrs, body, date=date)


async def call(client: aiohttp.ClientSession, base: str, method: str, path_qs: str, body: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """Send ``path_qs`` exactly as written (no re-encoding) and return (status, JSON body, response)."""
    url = URL(base + path_qs, encoded=True)
    async with client.request(method, url, data=body, headers=headers) as resp:
        raw = await resp.read()
        try:
            import json

            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {"_raw": raw.decode("utf-8", "replace")}
        return resp.status, doc, resp


def error_of(doc: dict[str, Any]) -> tuple[str, str]:
    return doc.get("error_code", ""), doc.get("error_msg", "")
