"""The app-authentication modes switched on by gateway features, besides the signature and the AppCode.

Role in the pipeline: compiled once per snapshot from the ``features`` records; called by APP
authentication (:mod:`gateway.pipeline.stages.app_auth`, order 20) before the signature check. Each mode
is off unless its feature is enabled, and every mode ends in the same app checks as the signature (app
status, app ACL, authorization for the API in the environment, credential quotas, app throttling):

=============== ======================================================================================
feature         what the caller sends (the vendor's documented wire format, see docs/auth.md)
=============== ======================================================================================
``app_api_key`` ``apikey: <AppKey>``
``app_basic``   ``Authorization: Basic base64(<AppKey>:<AppSecret>)``
``app_secret``  ``X-HW-ID: <AppKey>`` and ``X-HW-AppKey: <AppSecret>``
``app_jwt``     ``X-HW-ID: <AppKey>``, ``Timestamp: <Unix time, ms or s>`` and, in ``auth_header`` (default
                ``Authorization``), ``hex(sha256(<AppKey> + <AppSecret> + <Timestamp>))``; the timestamp
                must be within ``app_auth_clock_skew_s`` (900 s) of the gateway clock
``app_token``   ``Authorization: Bearer <access_token>`` from the token endpoint
                (:mod:`gateway.pipeline.stages.app_tokens`)
=============== ======================================================================================

Every secret is compared in constant time (an ``apikey`` is found by its SHA-256 digest, as AppCodes are)
and never logged or echoed; the headers that carried a credential are removed before the request is
forwarded. The vendor requires ``app_api_key`` to be off when ``app_secret`` is on: such a snapshot is
rejected at load, as are out-of-range token lifetimes and a token path that is not absolute.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.core.errors import app_auth_failure
from gateway.pipeline.stages.app_tokens import (
    DEFAULT_EXPIRE_S,
    DEFAULT_REFRESH_S,
    DEFAULT_URI,
    MAX_EXPIRE_S,
    TokenConfig,
    TokenService,
    access_app,
    token_endpoint,
)
from gateway.pipeline.stages.apps import App, AppRegistry, app_registry, code_digest
from gateway.snapshot.features import feature_config, feature_record

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from aiohttp import web

    from gateway.model.context import RequestContext
    from gateway.model.plan import BackendRequest
    from gateway.pipeline.spec import BuildContext, EndpointDraft, PlanDraft
    from gateway.snapshot.validate import Index

API_KEY_HEADER = "apikey"
ID_HEADER = "X-HW-ID"
SECRET_HEADER = "X-HW-AppKey"
TIMESTAMP_HEADER = "Timestamp"
USED_KEY = "app_credential_headers"  # ctx.extras: the headers that carried the credential (not forwarded)
_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


TokenEndpoint = Callable[["RequestContext"], "Awaitable[web.StreamResponse] | None"]


def _on(index: Index, name: str) -> dict[str, Any] | None:
    """The config of an enabled on/off feature (``"on"``, ``true``, ``{"enable": true}`` ...), else None."""
    conf = feature_config(index, name)
    if conf is None:
        return None
    value = conf.get("value", True)
    if value is False or str(value).strip().lower() in ("false", "0", "off", "disable", "disabled", "no"):
        return None
    return conf


def _int(conf: dict[str, Any], key: str, default: int) -> int | None:
    value = conf.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def token_config(index: Index) -> TokenConfig | None:
    conf = _on(index, "app_token")
    if conf is None:
        return None
    return TokenConfig(uri=str(conf.get("app_token_uri") or DEFAULT_URI),
                       expire_s=_int(conf, "app_token_expire_time", DEFAULT_EXPIRE_S) or DEFAULT_EXPIRE_S,
                       refresh_s=_int(conf, "refresh_token_expire_time", DEFAULT_REFRESH_S) or DEFAULT_REFRESH_S,
                       key=str(conf.get("app_token_key") or ""))


def jwt_header(index: Index) -> str | None:
    conf = _on(index, "app_jwt")
    if conf is None:
        return None
    name = conf.get("auth_header")
    return name.strip() if isinstance(name, str) and name.strip() else "Authorization"


def check_features(index: Index, problems: list[str]) -> None:
    """Load-time checks of the app-credential features (``features[i].config.<field>: reason``)."""
    found = feature_record(index, "app_token")
    if found is not None and _on(index, "app_token") is not None:
        i = found[0]
        conf = feature_config(index, "app_token") or {}
        for key, default in (("app_token_expire_time", DEFAULT_EXPIRE_S),
                             ("refresh_token_expire_time", DEFAULT_REFRESH_S)):
            v = _int(conf, key, default)
            if v is None or not 1 <= v <= MAX_EXPIRE_S:
                problems.append(f"features[{i}].config.{key}: must be 1..{MAX_EXPIRE_S} seconds")
        uri = conf.get("app_token_uri", DEFAULT_URI)
        if not isinstance(uri, str) or not uri.startswith("/") or len(uri) > 255 or "?" in uri or " " in uri:
            problems.append(f"features[{i}].config.app_token_uri: must be an absolute path such as {DEFAULT_URI}")
    found = feature_record(index, "app_jwt")
    if found is not None and _on(index, "app_jwt") is not None:
        name = (feature_config(index, "app_jwt") or {}).get("auth_header")
        if name is not None and (not isinstance(name, str) or not _HEADER_NAME.fullmatch(name.strip())):
            problems.append(f"features[{found[0]}].config.auth_header: must be a header name "
                            "(letters, digits, _ and -, starting with a letter, at most 64)")
    if _on(index, "app_secret") is not None and _on(index, "app_api_key") is not None:
        found = feature_record(index, "app_secret")
        problems.append(f"features[{found[0] if found else 0}]: app_secret authentication needs app_api_key "
                        "to be off (the vendor's rule: the two use the same AppKey as a bare credential)")


class CredentialModes:
    """The enabled modes of one snapshot; :meth:`identify` is called for every APP-authenticated call."""

    __slots__ = ("api_keys", "basic", "jwt_header", "registry", "secret", "skew", "token_cfg", "tokens")

    def __init__(self, registry: AppRegistry, *, api_key: bool, basic: bool, secret: bool, jwt: str | None,
                 token_cfg: TokenConfig | None, tokens: TokenService | None, skew: float) -> None:
        self.registry = registry
        self.api_keys: dict[bytes, App] | None = (
            {code_digest(a.key): a for a in registry.by_id.values()} if api_key else None)
        self.basic = basic
        self.secret = secret
        self.jwt_header = jwt
        self.token_cfg = token_cfg
        self.tokens = tokens
        self.skew = skew

    def credential_headers(self) -> frozenset[str]:
        """Lower-case names of every header an enabled mode reads (never forwarded when used)."""
        names = set()
        if self.api_keys is not None:
            names.add(API_KEY_HEADER)
        if self.secret:
            names.update((ID_HEADER.lower(), SECRET_HEADER.lower()))
        if self.jwt_header:
            names.update((ID_HEADER.lower(), TIMESTAMP_HEADER.lower(), self.jwt_header.lower()))
        if self.basic or self.tokens is not None:
            names.add("authorization")
        return frozenset(names)

    async def identify(self, ctx: RequestContext) -> tuple[App, str] | None:
        """(app, mode) when the call carries the credential of an enabled mode; None when it carries none
        (the signature check follows); raises AUTH_FAILURE when the credential is wrong."""
        h = ctx.headers
        auth = h.get("Authorization")
        if auth:
            low = auth[:7].lower()
            if self.tokens is not None and low == "bearer ":
                return self._bearer(ctx, auth[7:].strip()), "app_token"
            if self.basic and low[:6] == "basic ":
                return self._basic(ctx, auth[6:].strip()), "app_basic"
        if self.secret or self.jwt_header:
            key = h.get(ID_HEADER)
            if key:
                if self.secret and SECRET_HEADER in h:
                    return self._secret(ctx, key, h[SECRET_HEADER]), "app_secret"
                if self.jwt_header and TIMESTAMP_HEADER in h:
                    return self._jwt(ctx, key), "app_jwt"
        if self.api_keys is not None:
            value = h.get(API_KEY_HEADER)
            if value:
                app = self.api_keys.get(code_digest(value.strip()))
                if app is None:
                    raise app_auth_failure("apikey not found")
                ctx.extras[USED_KEY] = (API_KEY_HEADER,)
                return app, "app_api_key"
        return None

    def _check_secret(self, key: str, secret: str) -> App:
        app = self.registry.by_key.get(key)
        expected = app.secret if app is not None else "\0" * 32  # compare anyway: same timing
        same = hmac.compare_digest(secret.encode("utf-8", "surrogateescape"),
                                   expected.encode("utf-8", "surrogateescape"))
        if app is None or not same:
            raise app_auth_failure("app key or app secret is incorrect")
        return app

    def _basic(self, ctx: RequestContext, value: str) -> App:
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise app_auth_failure("authorization is not Basic base64(appkey:appsecret)") from None
        key, sep, secret = text.partition(":")
        if not sep:
            raise app_auth_failure("authorization is not Basic base64(appkey:appsecret)")
        ctx.extras[USED_KEY] = ("Authorization",)
        return self._check_secret(key, secret)

    def _secret(self, ctx: RequestContext, key: str, secret: str) -> App:
        ctx.extras[USED_KEY] = (ID_HEADER, SECRET_HEADER)
        return self._check_secret(key.strip(), secret.strip())

    def _jwt(self, ctx: RequestContext, key: str) -> App:
        h = ctx.headers
        header = self.jwt_header or "Authorization"
        ctx.extras[USED_KEY] = (ID_HEADER, TIMESTAMP_HEADER, header)
        stamp = h.get(TIMESTAMP_HEADER, "").strip()
        sent = h.get(header, "").strip()
        if not sent:
            raise app_auth_failure(f"{header.lower()} not found")
        if not stamp.isdigit() or len(stamp) > 16:
            raise app_auth_failure("timestamp must be a Unix time in milliseconds or seconds")
        when = int(stamp) / (1000.0 if len(stamp) > 11 else 1.0)
        if abs(time.time() - when) > self.skew:
            raise app_auth_failure("timestamp expired")
        app = self.registry.by_key.get(key.strip())
        secret = app.secret if app is not None else "\0" * 32
        expected = hashlib.sha256(f"{key.strip()}{secret}{stamp}".encode("utf-8", "surrogateescape")).hexdigest()
        if not hmac.compare_digest(sent.lower().encode("utf-8", "surrogateescape"), expected.encode()) or app is None:
            raise app_auth_failure("verify signature fail")
        return app

    def _bearer(self, ctx: RequestContext, token: str) -> App:
        ctx.extras[USED_KEY] = ("Authorization",)
        app = access_app(token, self.registry, self.token_cfg.key if self.token_cfg else "") if token else None
        if app is None:
            raise app_auth_failure("token invalid or expired")
        return app


def credential_modes(build: BuildContext) -> CredentialModes | None:
    """The snapshot's enabled modes (None when none is on), compiled once per snapshot."""
    return _compiled(build)[0]


def _compiled(build: BuildContext) -> tuple[CredentialModes | None, TokenEndpoint | None]:
    return build.once("app_credentials", lambda: _compile(build))


def _compile(build: BuildContext) -> tuple[CredentialModes | None, TokenEndpoint | None]:
    index = build.index
    endpoint: TokenEndpoint | None = None
    api_key = _on(index, "app_api_key") is not None
    basic = _on(index, "app_basic") is not None
    secret = _on(index, "app_secret") is not None
    jwt = jwt_header(index)
    cfg = token_config(index)
    modes: CredentialModes | None = None
    if api_key or basic or secret or jwt or cfg is not None:
        tokens = TokenService.of(build.services) if cfg is not None else None
        modes = CredentialModes(app_registry(build), api_key=api_key, basic=basic, secret=secret, jwt=jwt,
                                token_cfg=cfg, tokens=tokens, skew=float(build.settings.app_auth_clock_skew_s))
        if cfg is not None and tokens is not None:
            endpoint = token_endpoint(cfg, modes.registry, tokens)
    return modes, endpoint


def drop_credential_headers(ctx: RequestContext, breq: BackendRequest) -> None:
    """Request hook: the headers that carried an app credential never reach the backend."""
    used = ctx.extras.get(USED_KEY)
    if used:
        for name in used:
            breq.headers.popall(name, None)


# --- the plan stage and the pre-route handler (config-load time; listed in gateway.pipeline.chain) -----------

def apply_drop_credentials(plan: PlanDraft, backend: dict[str, Any], draft: EndpointDraft, build: BuildContext,
                           path: str) -> None:
    """APP APIs of a snapshot with any of these modes on remove the credential headers before forwarding."""
    if draft.api.get("auth_type") == "APP" and credential_modes(build) is not None:
        plan.request_hooks.append(drop_credential_headers)


def build_token_endpoint(build: BuildContext) -> TokenEndpoint | None:
    """Pre-route: the ``app_token`` endpoint of the snapshot, if the feature is on."""
    return _compiled(build)[1]
