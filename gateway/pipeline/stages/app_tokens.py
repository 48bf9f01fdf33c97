"""App tokens (the ``app_token`` feature): an OAuth2 client-credentials token endpoint and token lookup.

Role in the pipeline: the token endpoint is a gateway-owned path answered before routing (at
``app_token_uri``, default ``/v1/apigw/oauth2/token``); the Bearer check runs inside APP authentication
(:mod:`gateway.pipeline.stages.app_credentials`). Tokens are random (256 bits), handed out once and stored
only as their SHA-256 digest with the app id, the kind (access / refresh), a fingerprint of the app's
secret and a TTL, in:

* Redis (``redis_url`` / ``redis_mode``), when configured: every node accepts every token, and tokens
  survive restarts and config pushes;
* else a per-process table kept in ``services.extras`` (survives config pushes, not restarts; with
  ``--workers N`` each worker knows only the tokens it issued — configure Redis for several processes).

Resetting an app's secret revokes its tokens (the fingerprint no longer matches); deleting or freezing the
app makes them useless (the app checks run on every call).

The endpoint (RFC 6749 §4.4 and §6): ``POST`` with a form (or JSON) body. ``grant_type=client_credentials``
with ``client_id`` = AppKey and ``client_secret`` = AppSecret (in the body or as HTTP Basic) answers
``{access_token, token_type: "Bearer", expires_in, refresh_token, refresh_expires_in}``;
``grant_type=refresh_token`` with ``refresh_token`` (and the same client) answers a new pair and revokes the
used refresh token. Errors carry the vendor's codes (``APIG.2201``-``APIG.2213``, ``APIG.1003``/``1004``) and
the OAuth 2.0 ``error`` (``invalid_request``, ``unsupported_grant_type``, ``invalid_grant``,
``invalid_client``). Answers carry ``Cache-Control: no-store``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from gateway.core.errors import service_unavailable
from gateway.lib import redis_conn
from gateway.model.context import BODY_ERRORS, set_latency_headers

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.services import Services
    from gateway.pipeline.stages.apps import App, AppRegistry

log = logging.getLogger("gateway.pipeline.stages.app_tokens")

EXTRAS_KEY = "app_tokens"
DEFAULT_URI = "/v1/apigw/oauth2/token"
DEFAULT_EXPIRE_S = 3600
DEFAULT_REFRESH_S = 7200
MAX_EXPIRE_S = 72000
MAX_BODY = 8192
ACCESS, REFRESH = "a", "r"


@dataclass(frozen=True)
class TokenConfig:
    uri: str = DEFAULT_URI
    expire_s: int = DEFAULT_EXPIRE_S
    refresh_s: int = DEFAULT_REFRESH_S


def secret_fingerprint(app: App) -> str:
    """Changes when the app's secret changes (so a secret reset revokes the app's tokens)."""
    return hashlib.sha256(b"apig-token\0" + app.secret.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class TokenStoreUnavailable(Exception):
    """The shared token store (Redis) did not answer."""


class LocalTokens:
    """digest -> (expires_at, record); expired entries are swept as the table grows."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, dict[str, str]]] = {}
        self._sweep_at = 1024

    async def put(self, digest: str, record: dict[str, str], ttl_s: int) -> None:
        now = time.time()
        if len(self._items) >= self._sweep_at:
            self._items = {k: v for k, v in self._items.items() if v[0] > now}
            self._sweep_at = max(1024, 2 * len(self._items))
        self._items[digest] = (now + ttl_s, record)

    async def get(self, digest: str) -> dict[str, str] | None:
        item = self._items.get(digest)
        if item is None:
            return None
        if item[0] <= time.time():
            del self._items[digest]
            return None
        return item[1]

    async def delete(self, digest: str) -> bool:
        return self._items.pop(digest, None) is not None

    async def close(self) -> None:
        return None


class RedisTokens:
    """The same table in Redis: ``<prefix>:tok:<digest>`` -> JSON record, with a TTL."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = f"{prefix}:tok:"

    async def put(self, digest: str, record: dict[str, str], ttl_s: int) -> None:
        try:
            await self.client.set(self.prefix + digest, orjson.dumps(record), ex=ttl_s)
        except Exception as exc:  # redis errors and timeouts alike
            raise TokenStoreUnavailable(type(exc).__name__) from None

    async def get(self, digest: str) -> dict[str, str] | None:
        try:
            raw = await self.client.get(self.prefix + digest)
        except Exception as exc:
            raise TokenStoreUnavailable(type(exc).__name__) from None
        if raw is None:
            return None
        value = orjson.loads(raw)
        return value if isinstance(value, dict) else None

    async def delete(self, digest: str) -> bool:
        try:
            return bool(await self.client.delete(self.prefix + digest))
        except Exception as exc:
            raise TokenStoreUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        await redis_conn.close(self.client)


class TokenService:
    """Issues and checks app tokens; lives in ``services.extras`` so tokens outlive config pushes."""

    def __init__(self, services: Services) -> None:
        s = services.settings
        target = None
        try:
            target = redis_conn.target_from_settings(s)
        except ValueError:
            target = None
        self.store: LocalTokens | RedisTokens
        if target is not None:
            client = redis_conn.make_client(target, socket_timeout=1.0, connect_timeout=1.0, retries=1,
                                            max_connections=16)
            self.store = RedisTokens(client, s.throttle_key_prefix)
            self.shared = True
        else:
            self.store = LocalTokens()
            self.shared = False
        services.close_hooks.append(self.store.close)

    @classmethod
    def of(cls, services: Services) -> TokenService:
        svc = services.extras.get(EXTRAS_KEY)
        if not isinstance(svc, TokenService):
            svc = services.extras[EXTRAS_KEY] = cls(services)
        return svc

    async def issue(self, app: App, cfg: TokenConfig) -> dict[str, Any]:
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        fp = secret_fingerprint(app)
        await self.store.put(_digest(access), {"app": app.id, "k": ACCESS, "fp": fp}, cfg.expire_s)
        await self.store.put(_digest(refresh), {"app": app.id, "k": REFRESH, "fp": fp}, cfg.refresh_s)
        return {"access_token": access, "token_type": "Bearer", "expires_in": cfg.expire_s,
                "refresh_token": refresh, "refresh_expires_in": cfg.refresh_s}

    async def app_of(self, token: str, kind: str, registry: AppRegistry) -> App | None:
        """The app a live token of ``kind`` was issued to (None: unknown, expired, revoked)."""
        rec = await self.store.get(_digest(token))
        if rec is None or rec.get("k") != kind:
            return None
        app = registry.by_id.get(str(rec.get("app")))
        if app is None or not hmac.compare_digest(str(rec.get("fp", "")), secret_fingerprint(app)):
            return None
        return app

    async def revoke(self, token: str) -> bool:
        return await self.store.delete(_digest(token))


# --- the token endpoint ----------------------------------------------------------------------------

def _oauth_error(ctx: RequestContext, status: int, error: str, code: str, message: str) -> web.Response:
    """The vendor's error fields (``error_code``, ``error_msg``) plus OAuth 2.0's (``error``)."""
    doc = {"error_code": code, "error_msg": message, "request_id": ctx.request_id, "error": error,
           "error_description": message}
    return _json(ctx, status, doc, {"WWW-Authenticate": 'Basic realm="apig"'} if status == 401 else None)


def _json(ctx: RequestContext, status: int, doc: dict[str, Any], extra: dict[str, str] | None = None) -> web.Response:
    body = orjson.dumps(doc)
    headers = dict(ctx.response_headers)
    headers["X-Request-Id"] = ctx.request_id
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    if extra:
        headers.update(extra)
    set_latency_headers(ctx, headers)
    ctx.status = status
    ctx.bytes_sent = len(body)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


async def _form(ctx: RequestContext) -> dict[str, str] | None:
    length = ctx.request.content_length
    if length is not None and length > MAX_BODY:
        return None
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in ctx.request.content.iter_chunked(4096):
            total += len(chunk)
            if total > MAX_BODY:
                return None
            chunks.append(chunk)
    except BODY_ERRORS:
        return None
    raw = b"".join(chunks)
    ctype = (ctx.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    try:
        if ctype == "application/json":
            doc = orjson.loads(raw or b"{}")
            return {str(k): str(v) for k, v in doc.items() if isinstance(v, str | int)} if isinstance(doc, dict) \
                else None
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except (orjson.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def _basic_client(value: str | None) -> tuple[str, str] | None:
    if not value or value[:6].lower() != "basic ":
        return None
    try:
        text = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, secret = text.partition(":")
    return (key, secret) if sep else None


def token_endpoint(cfg: TokenConfig, registry: AppRegistry,
                   service: TokenService) -> Callable[[RequestContext], Awaitable[web.StreamResponse] | None]:
    """The pre-route handler: None for every other path (one string compare), else the answer."""
    uri = cfg.uri

    def handler(ctx: RequestContext) -> Awaitable[web.StreamResponse] | None:
        if ctx.path != uri:
            return None
        return _answer(ctx)

    async def _answer(ctx: RequestContext) -> web.StreamResponse:
        if ctx.method != "POST":
            resp = _oauth_error(ctx, 405, "invalid_request", "APIG.2206", "Auth method invalid")
            resp.headers["Allow"] = "POST"
            return resp
        form = await _form(ctx)
        if form is None:
            return _oauth_error(ctx, 400, "invalid_request", "APIG.2204",
                                f"ContentType invalid (a form or JSON object of at most {MAX_BODY} bytes)")
        grant = form.get("grant_type", "")
        if not grant:
            return _oauth_error(ctx, 400, "invalid_request", "APIG.2210", "Lack of grant_type")
        if grant not in ("client_credentials", "refresh_token"):
            return _oauth_error(ctx, 400, "unsupported_grant_type", "APIG.2209",
                                "The value of grant_type is not in enum List")
        if len(form.get("through_data", "")) > 300:
            return _oauth_error(ctx, 400, "invalid_request", "APIG.2208", "The length of through_data is out of range")
        client = _basic_client(ctx.headers.get("Authorization"))
        key, secret = client if client else (form.get("client_id", ""), form.get("client_secret", ""))
        if not key:
            return _oauth_error(ctx, 400, "invalid_request", "APIG.2211", "Lack of client_id")
        if not secret:
            return _oauth_error(ctx, 400, "invalid_request", "APIG.2212", "Lack of client_secret")
        app = registry.by_key.get(key)
        # compare with something even for an unknown key, so timing does not tell keys apart
        expected = app.secret if app is not None else "\0" * 32
        if not hmac.compare_digest(secret.encode("utf-8", "surrogateescape"),
                                   expected.encode("utf-8", "surrogateescape")) or app is None:
            return _oauth_error(ctx, 401, "invalid_client", "APIG.2201", "Appkey or SecretKey is invalid")
        if app.status != 1:
            return _oauth_error(ctx, 401, "invalid_client", "APIG.1004", "App not exist (frozen)")
        try:
            if grant == "refresh_token":
                refresh = form.get("refresh_token", "")
                if not refresh:
                    return _oauth_error(ctx, 400, "invalid_request", "APIG.2213", "Lack of refresh_token")
                owner = await service.app_of(refresh, REFRESH, registry)
                if owner is None or not await service.revoke(refresh):
                    return _oauth_error(ctx, 400, "invalid_grant", "APIG.2202",
                                        "Refresh token is invalid (unknown, expired or already used)")
                if owner.id != app.id:
                    return _oauth_error(ctx, 401, "invalid_grant", "APIG.1003", "App not match refresh token")
            return _json(ctx, 200, await service.issue(app, cfg))
        except TokenStoreUnavailable as exc:
            log.warning("app token store unavailable (%s)", exc)
            raise service_unavailable("token") from None

    return handler
