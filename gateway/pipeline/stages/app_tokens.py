"""App tokens (the ``app_token`` feature): an OAuth2 client-credentials token endpoint and token checks.

Role in the pipeline: the token endpoint is a gateway-owned path answered before routing (at
``app_token_uri``, default ``/v1/apigw/oauth2/token``); the Bearer check runs inside APP authentication
(:mod:`gateway.pipeline.stages.app_credentials`).

Tokens are self-contained, so every worker and every node that has the same apps accepts them without any
shared store: ``<payload>.<mac>``, both base64url without padding, where the payload is the JSON object
``{"a": app id, "k": "a" (access) | "r" (refresh), "e": expiry (Unix seconds), "n": random nonce}`` and the
mac is HMAC-SHA256 over ``apig-app-token-v1.<payload>`` with a key derived from the app's secret and the
feature's ``app_token_key`` (HMAC-SHA256(AppSecret, ``apig-app-token-key`` NUL app id NUL app_token_key)).
Hence:

* tokens survive config pushes and restarts, and are valid on every node with the same config;
* resetting the app's secret revokes all its tokens, changing ``app_token_key`` revokes every token (the
  key changes); deleting or freezing the app makes them useless (the app checks run on every call);
* macs are compared in constant time; tokens are never logged or stored.

Refresh tokens are single use. The used ones are remembered until they expire: in Redis (``redis_url`` /
``redis_mode``) when configured, so a refresh token is spent on every node at once; else in the process
(a refresh token replayed on another worker or node within its lifetime would be accepted there once more).

The endpoint (RFC 6749 §4.4 and §6): ``POST`` with a form (or JSON) body. ``grant_type=client_credentials``
with ``client_id`` = AppKey and ``client_secret`` = AppSecret (in the body or as HTTP Basic) answers
``{access_token, token_type: "Bearer", expires_in, refresh_token, refresh_expires_in}``;
``grant_type=refresh_token`` with ``refresh_token`` (and the same client) answers a new pair and spends the
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
MAX_TOKEN = 512
ACCESS, REFRESH = "a", "r"
_MAC_LABEL = b"apig-app-token-v1."
_KEY_LABEL = b"apig-app-token-key\0"


@dataclass(frozen=True)
class TokenConfig:
    uri: str = DEFAULT_URI
    expire_s: int = DEFAULT_EXPIRE_S
    refresh_s: int = DEFAULT_REFRESH_S
    key: str = ""  # the feature's app_token_key (mixed into every app's token key when set)


@dataclass(frozen=True, slots=True)
class Claims:
    app_id: str
    kind: str
    expires: int
    nonce: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_key(app: App, gateway_key: str = "") -> bytes:
    """The app's token-signing key: changes when the app's secret (or the feature's ``app_token_key``)
    changes, so a secret reset revokes the app's tokens."""
    msg = b"\0".join((_KEY_LABEL + app.id.encode("utf-8", "surrogateescape"),
                      gateway_key.encode("utf-8", "surrogateescape")))
    return hmac.new(app.secret.encode("utf-8", "surrogateescape"), msg, hashlib.sha256).digest()


def mint(app: App, kind: str, lifetime_s: int, *, gateway_key: str = "", now: float | None = None) -> str:
    """A new self-contained token of ``kind`` for ``app``, valid for ``lifetime_s`` seconds."""
    expires = int(now if now is not None else time.time()) + lifetime_s
    payload = _b64(orjson.dumps({"a": app.id, "k": kind, "e": expires, "n": secrets.token_urlsafe(12)}))
    mac = hmac.new(token_key(app, gateway_key), _MAC_LABEL + payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify(token: str, kind: str, registry: AppRegistry, *, gateway_key: str = "",
           now: float | None = None) -> tuple[App, Claims] | None:
    """(app, claims) of a genuine, unexpired token of ``kind`` whose app still exists; else None."""
    if len(token) > MAX_TOKEN or not token.isascii():
        return None
    payload, sep, mac_text = token.partition(".")
    if not sep or not payload or not mac_text:
        return None
    try:
        doc = orjson.loads(_unb64(payload))
        mac = _unb64(mac_text)
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        return None
    if not isinstance(doc, dict):
        return None
    app_id, expires, nonce = doc.get("a"), doc.get("e"), doc.get("n")
    if not isinstance(app_id, str) or not isinstance(expires, int) or not isinstance(nonce, str):
        return None
    app = registry.by_id.get(app_id)
    if app is None:
        return None
    expected = hmac.new(token_key(app, gateway_key), _MAC_LABEL + payload.encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        return None
    if doc.get("k") != kind or expires <= (now if now is not None else time.time()):
        return None
    return app, Claims(app_id, kind, expires, nonce)


def access_app(token: str, registry: AppRegistry, gateway_key: str = "") -> App | None:
    """The app a live access token was issued to (None: forged, expired, revoked or another kind)."""
    found = verify(token, ACCESS, registry, gateway_key=gateway_key)
    return found[0] if found is not None else None


class TokenStoreUnavailable(Exception):
    """The shared store of spent refresh tokens (Redis) did not answer."""


class LocalSpent:
    """Spent refresh-token nonces of this process: nonce -> expiry, swept as the table grows."""

    def __init__(self) -> None:
        self._items: dict[str, float] = {}
        self._sweep_at = 1024

    async def spend(self, nonce: str, expires: float) -> bool:
        """True when ``nonce`` was not spent yet (it is now)."""
        now = time.time()
        if len(self._items) >= self._sweep_at:
            self._items = {k: v for k, v in self._items.items() if v > now}
            self._sweep_at = max(1024, 2 * len(self._items))
        if nonce in self._items and self._items[nonce] > now:
            return False
        self._items[nonce] = expires
        return True

    async def close(self) -> None:
        return None


class RedisSpent:
    """The same in Redis, shared by every node: ``<prefix>:rtok:<sha256(nonce)>`` set once, with a TTL."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = f"{prefix}:rtok:"

    async def spend(self, nonce: str, expires: float) -> bool:
        ttl = max(1, int(expires - time.time()) + 1)
        key = self.prefix + hashlib.sha256(nonce.encode("ascii")).hexdigest()
        try:
            return bool(await self.client.set(key, b"1", nx=True, ex=ttl))
        except Exception as exc:  # redis errors and timeouts alike
            raise TokenStoreUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        await redis_conn.close(self.client)


class TokenService:
    """Issues and checks app tokens; lives in ``services.extras`` so spent refresh tokens outlive pushes."""

    def __init__(self, services: Services) -> None:
        try:
            target = redis_conn.target_from_settings(services.settings)
        except ValueError:
            target = None
        self.spent: LocalSpent | RedisSpent
        if target is not None:
            client = redis_conn.make_client(target, socket_timeout=1.0, connect_timeout=1.0, retries=1,
                                            max_connections=16)
            self.spent = RedisSpent(client, services.settings.throttle_key_prefix)
            self.shared = True
        else:
            self.spent = LocalSpent()
            self.shared = False
        services.close_hooks.append(self.spent.close)

    @classmethod
    def of(cls, services: Services) -> TokenService:
        svc = services.extras.get(EXTRAS_KEY)
        if not isinstance(svc, TokenService):
            svc = services.extras[EXTRAS_KEY] = cls(services)
        return svc

    @staticmethod
    def issue(app: App, cfg: TokenConfig) -> dict[str, Any]:
        return {"access_token": mint(app, ACCESS, cfg.expire_s, gateway_key=cfg.key), "token_type": "Bearer",
                "expires_in": cfg.expire_s, "refresh_token": mint(app, REFRESH, cfg.refresh_s, gateway_key=cfg.key),
                "refresh_expires_in": cfg.refresh_s}

    @staticmethod
    def access_app(token: str, registry: AppRegistry) -> App | None:
        """The app a live access token was issued to (None: forged, expired, revoked or another kind)."""
        found = verify(token, ACCESS, registry)
        return found[0] if found is not None else None

    async def spend(self, claims: Claims) -> bool:
        """Spend a refresh token (by its nonce): False when it was spent already."""
        return await self.spent.spend(claims.nonce, claims.expires)


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
                found = verify(refresh, REFRESH, registry, gateway_key=cfg.key)
                if found is None:
                    return _oauth_error(ctx, 400, "invalid_grant", "APIG.2202",
                                        "Refresh token is invalid (unknown, expired or already used)")
                if found[0].id != app.id:
                    return _oauth_error(ctx, 401, "invalid_grant", "APIG.1003", "App not match refresh token")
                if not await service.spend(found[1]):
                    return _oauth_error(ctx, 400, "invalid_grant", "APIG.2202",
                                        "Refresh token is invalid (unknown, expired or already used)")
            return _json(ctx, 200, service.issue(app, cfg))
        except TokenStoreUnavailable as exc:
            log.warning("app token store unavailable (%s)", exc)
            raise service_unavailable("token") from None

    return handler
