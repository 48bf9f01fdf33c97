"""``POST apis/debug/{api_id}``: call an API through this gateway's own public listener and show the exchange.

Role: control plane, off the request path. The call goes to the public listener on loopback with the API's
group domain as Host (``domain`` when given) and ``X-Stage`` for the environment, so it is served exactly
like a client's call (the published definition, every policy). With ``app_key``/``app_secret`` it is signed
with SDK-HMAC-SHA256 like the vendor's SDKs sign. The answer carries the request and response as text, the
latency in milliseconds, and a short log line. Only published APIs can be called this way.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from gateway.control.common import AdminError, json_response, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.document import find, items
from gateway.lib import sdk_signer
from gateway.snapshot.collections import RELEASE_ENV_ID, served_definition

MAX_SHOWN = 64 * 1024


def _pairs(raw: Any) -> list[tuple[str, str]]:
    """The vendor's ``{name: [values]}`` (or ``{name: value}``) as pairs."""
    out: list[tuple[str, str]] = []
    for k, v in (raw or {}).items() if isinstance(raw, dict) else []:
        for one in v if isinstance(v, list) else [v]:
            out.append((str(k), str(one)))
    return out


def _host(store: DocumentStore, api: dict[str, Any], domain: Any) -> str:
    if isinstance(domain, str) and domain:
        return domain
    group = find(store.doc, "groups", str(api.get("group_id"))) or {}
    names = [group.get("sl_domain"), *[d.get("domain") for d in group.get("url_domains") or [] if isinstance(d, dict)]]
    return next((str(n) for n in names if n), "localhost")


async def debug_api(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    api_id = request.match_info["api_id"]
    api = find(store.doc, "apis", api_id)
    if api is None:
        raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api_id}")
    body = await read_body(request)
    stage = str(body.get("stage") or "RELEASE")
    envs = {str(e.get("name", "")).upper(): str(e.get("id")) for e in items(store.doc, "environments")}
    env_id = RELEASE_ENV_ID if stage.upper() == "RELEASE" else envs.get(stage.upper())
    pub = next((p for p in items(store.doc, "publishes") if p.get("api_id") == api_id and p.get("env_id") == env_id),
               None) if env_id is not None else None
    if pub is None:
        raise AdminError(400, "APIG.3015", f"The API is not published in environment {stage}")
    api = served_definition(api, pub)  # the method and path that environment serves
    port = store.port.public_port
    if port is None:
        raise AdminError(503, "APIG.9999", "The public listener is not running")
    method = str(body.get("method") or api.get("req_method") or "GET").upper()
    path = str(body.get("path") or api.get("req_uri") or "/")
    query = urlencode(_pairs(body.get("query")))
    target = f"{path}?{query}" if query else path
    host = _host(store, api, body.get("domain"))
    headers = {k: v for k, v in _pairs(body.get("header"))}
    headers["Host"] = host
    if stage.upper() != "RELEASE":
        headers["X-Stage"] = stage
    payload = str(body.get("body") or "").encode()
    if body.get("app_key") and body.get("app_secret"):
        headers = sdk_signer.sign_request(str(body["app_key"]), str(body["app_secret"]), method,
                                          f"http://{host}{target}", headers, payload)
    shown_request = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + \
        "\r\n" + payload.decode(errors="replace")
    started = time.perf_counter()
    async with aiohttp.ClientSession(auto_decompress=False) as session, session.request(
            method, f"http://127.0.0.1:{port}{target}", headers=headers, data=payload or None,
            allow_redirects=False) as resp:
        answer = await resp.read()
        latency = int((time.perf_counter() - started) * 1000)
        shown_response = f"HTTP/1.1 {resp.status} {resp.reason}\r\n" + \
            "".join(f"{k}: {v}\r\n" for k, v in resp.headers.items()) + "\r\n" + \
            answer[:MAX_SHOWN].decode(errors="replace")
        rid = resp.headers.get("X-Request-Id")
        log = f"{method} {host}{target} -> {resp.status} in {latency} ms (request id {rid})"
    return json_response({"request": shown_request, "response": shown_response, "latency": latency, "log": log})
