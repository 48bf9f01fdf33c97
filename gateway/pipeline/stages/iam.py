"""IAM authentication (``auth_type: IAM``): the ``X-Auth-Token`` of the caller, checked by a verifier.

Role in the pipeline: a stage at order 20 for IAM APIs. It reads ``X-Auth-Token``, asks the process-wide
verifier (kept in ``services.extras``, so its caches and keys survive snapshot swaps) who the token
belongs to, and fills ``ctx.user_id`` (user id: ``$context.userId``), ``ctx.account_id`` (domain id, else user
id: USER throttling), ``ctx.user_name``
(account = domain name: DOMAIN ACLs) and ``ctx.identity`` (``domain_id`` for DOMAIN_ID ACLs, the claims).

Verifiers (chosen from :class:`gateway.core.settings.Settings`, docs/auth.md):

* :class:`JwtVerifier` (embedded default): RS256/ES256 tokens checked against PEM public keys
  (``iam_jwt_public_keys``) or a JWKS file (``iam_jwks_file``, keys chosen by ``kid``); ``exp`` required,
  ``exp``/``nbf`` checked with ``iam_jwt_leeway_s``; optional ``iam_jwt_issuer`` / ``iam_jwt_audience``.
  Key files are re-read when their mtime changes (checked at each snapshot compile).
* :class:`RemoteVerifier` (when ``iam_remote_url`` is set): a GET (token in ``X-Subject-Token``, and in
  ``X-Auth-Token`` unless ``iam_remote_service_token`` is set) or POST (JSON ``{"token": ...}``) to a
  token-validation endpoint; 200 with a JSON identity = valid, 401/403/404 = invalid, anything else =
  IAM unavailable (503, APIG.0613, not cached). Answers are cached ``iam_cache_ttl_s`` (never past the
  token's own expiry), failures for at most 10 s; concurrent checks of one token share one call.

A call without ``X-Auth-Token`` may instead be signed with an IAM access key (SDK-HMAC-SHA256, the
``iam_credentials`` collection): :mod:`gateway.pipeline.stages.iam_aksk`.

The caller's ``X-Auth-Token`` is not forwarded to the backend unless the account matches a pattern of the
``backend_token_allow`` feature.

Errors: no token -> ``AUTH_HEADER_MISSING`` (APIG.0301); invalid, expired, unknown key ->
``AUTH_FAILURE`` (APIG.0301) with a reason that never echoes the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import aiohttp
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.core.errors import GatewayError, iam_failure, iam_token_missing, service_unavailable
from gateway.pipeline.stages.iam_aksk import SCHEME as AKSK_SCHEME
from gateway.pipeline.stages.iam_aksk import AkSkVerifier, aksk_verifier
from gateway.snapshot.features import feature_config

if TYPE_CHECKING:
    from gateway.core.settings import Settings
    from gateway.model.context import RequestContext
    from gateway.model.plan import BackendRequest, Stage
    from gateway.model.services import Services
    from gateway.pipeline.spec import BuildContext, EndpointDraft, PlanDraft
    from gateway.snapshot.validate import Index

log = logging.getLogger("gateway.pipeline.stages.iam")

TOKEN_HEADER = "X-Auth-Token"
FORWARD_TOKEN = "iam_forward_token"
NEGATIVE_TTL_S = 10.0
MAX_VERIFY_ANSWER = 1024 * 1024  # bytes read from the remote verifier at most


@dataclass(frozen=True, slots=True)
class IamIdentity:
    user_id: str | None
    user_name: str | None
    domain_id: str | None
    domain_name: str | None
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict)


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def identity_from_claims(claims: dict[str, Any]) -> IamIdentity:
    """Accepts Keystone-like ``{"token": {"user": {"id", "name", "domain": {"id", "name"}}, "expires_at"}}``
    documents and flat ones (``sub``/``user_id``, ``user_name``, ``domain_id``, ``domain_name``, ``exp``)."""
    raw_body = claims.get("token")
    body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else claims
    raw_user = body.get("user")
    user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
    raw_domain = user.get("domain") if isinstance(user.get("domain"), dict) else body.get("domain")
    domain: dict[str, Any] = raw_domain if isinstance(raw_domain, dict) else {}

    def text(*values: Any) -> str | None:
        for v in values:
            if isinstance(v, str | int) and not isinstance(v, bool) and str(v):
                return str(v)
        return None

    return IamIdentity(
        user_id=text(user.get("id"), body.get("user_id"), body.get("sub")),
        user_name=text(user.get("name"), body.get("user_name"), body.get("preferred_username")),
        domain_id=text(domain.get("id"), body.get("domain_id")),
        domain_name=text(domain.get("name"), body.get("domain_name")),
        expires_at=_epoch(body.get("exp")) or _epoch(body.get("expires_at")),
        claims=claims,
    )


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> IamIdentity:
        """The identity of ``token``; raises GatewayError when it is not valid."""
        ...

    def refresh(self) -> list[str]:
        """Reload what may have changed (key files); returns problems."""
        ...


class TokenCache:
    """LRU of token digest -> (deadline, identity or error)."""

    def __init__(self, ttl_s: float, size: int) -> None:
        self.ttl_s = ttl_s
        self.size = max(1, size)
        self._items: OrderedDict[bytes, tuple[float, IamIdentity | GatewayError]] = OrderedDict()

    def get(self, key: bytes) -> IamIdentity | GatewayError | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= time.time():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def lookup(self, key: bytes) -> IamIdentity | None:
        """The cached identity, None on a miss; a cached verdict of failure is raised again."""
        hit = self.get(key)
        if isinstance(hit, GatewayError):
            raise hit
        return hit

    def put(self, key: bytes, value: IamIdentity | GatewayError) -> None:
        if self.ttl_s <= 0:
            return
        now = time.time()
        if isinstance(value, GatewayError):
            deadline = now + min(self.ttl_s, NEGATIVE_TTL_S)
        else:
            deadline = now + self.ttl_s
            if value.expires_at is not None:
                deadline = min(deadline, value.expires_at)
        self._items[key] = (deadline, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


# --- JWT --------------------------------------------------------------------------------------------

class JwtVerifier:
    """RS256/ES256 JWTs against configured public keys (PEM file and/or JWKS file)."""

    def __init__(self, settings: Settings) -> None:
        self.pem_file = settings.iam_jwt_public_keys
        self.jwks_file = settings.iam_jwks_file
        self.algorithms = [a for a in settings.iam_jwt_algorithms if a[:2] in ("RS", "ES", "PS")]
        self.issuer = settings.iam_jwt_issuer
        self.audience = settings.iam_jwt_audience
        self.leeway = float(settings.iam_jwt_leeway_s)
        self.cache = TokenCache(settings.iam_cache_ttl_s, settings.iam_cache_size)
        self.keys: list[tuple[str | None, Any]] = []
        self._mtimes: dict[str, float] = {}

    def refresh(self) -> list[str]:
        problems: list[str] = []
        files = [("iam_jwt_public_keys", self.pem_file), ("iam_jwks_file", self.jwks_file)]
        mtimes: dict[str, float] = {}
        for name, path in files:
            if path:
                try:
                    mtimes[name] = os.stat(path).st_mtime
                except OSError as exc:
                    problems.append(f"settings.{name}: cannot read {path}: {exc.strerror}")
        if problems or (mtimes == self._mtimes and self.keys):
            return problems
        keys: list[tuple[str | None, Any]] = []
        if self.pem_file:
            try:
                keys.extend((None, k) for k in _load_pem_keys(self.pem_file))
            except ValueError as exc:
                problems.append(f"settings.iam_jwt_public_keys: {exc}")
        if self.jwks_file:
            try:
                with open(self.jwks_file, encoding="utf-8") as fh:
                    jwks = jwt.PyJWKSet.from_json(fh.read())
                keys.extend((k.key_id, k.key) for k in jwks.keys)
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                problems.append(f"settings.iam_jwks_file: not a usable JWKS document ({exc})")
        if not keys and not problems:
            problems.append("settings.iam_jwt_public_keys: no public key found")
        if not problems:
            self.keys = keys
            self._mtimes = mtimes
            self.cache = TokenCache(self.cache.ttl_s, self.cache.size)  # keys changed: forget verdicts
        return problems

    async def verify(self, token: str) -> IamIdentity:
        key = _digest(token)
        hit = self.cache.lookup(key)
        if hit is not None:
            return hit
        try:
            identity = self._decode(token)
        except GatewayError as err:
            self.cache.put(key, err)
            raise
        self.cache.put(key, identity)
        return identity

    def _decode(self, token: str) -> IamIdentity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise iam_failure("decrypt token fail") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise iam_failure("token algorithm not accepted")
        kid = header.get("kid")
        family = rsa.RSAPublicKey if alg[:2] in ("RS", "PS") else ec.EllipticCurvePublicKey
        candidates = [k for kk, k in self.keys if isinstance(k, family) and (kid is None or kk in (None, kid))]
        if kid is not None and any(kk == kid for kk, _ in self.keys):
            candidates = [k for kk, k in self.keys if kk == kid]
        if not candidates:
            raise iam_failure("no key to verify the token")
        options: dict[str, Any] = {"require": ["exp"], "verify_aud": self.audience is not None}
        last: str = "verify signature fail"
        for candidate in candidates:
            try:
                claims = jwt.decode(token, candidate, algorithms=[alg], options=cast(Any, options), leeway=self.leeway,
                                    issuer=self.issuer, audience=self.audience)
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise iam_failure("token expired") from None
            except jwt.ImmatureSignatureError:
                raise iam_failure("token not yet valid") from None
            except jwt.MissingRequiredClaimError as exc:
                raise iam_failure(f"token has no {exc.claim} claim") from None
            except (jwt.InvalidIssuerError, jwt.InvalidAudienceError):
                raise iam_failure("token issued for another service") from None
            except jwt.PyJWTError:
                last = "decrypt token fail"
                continue
            return identity_from_claims(claims)
        raise iam_failure(last)


def _load_pem_keys(path: str) -> list[Any]:
    with open(path, "rb") as fh:
        data = fh.read()
    keys: list[Any] = []
    marker = b"-----BEGIN "
    blocks = [marker + b for b in data.split(marker)[1:]]
    for block in blocks:
        end = block.find(b"-----END ")
        stop = block.find(b"-----", end + 9) + 5 if end >= 0 else len(block)
        pem = block[:stop]
        try:
            if b"CERTIFICATE" in block[:40]:
                keys.append(x509.load_pem_x509_certificate(pem).public_key())
            else:
                keys.append(load_pem_public_key(pem))
        except ValueError as exc:
            raise ValueError(f"{path}: not a PEM public key or certificate ({exc})") from None
    return keys


# --- remote token validation ------------------------------------------------------------------------

class RemoteVerifier:
    """Tokens checked by an HTTP token-validation endpoint, answers cached with a TTL."""

    def __init__(self, settings: Settings, services: Services) -> None:
        self.url = str(settings.iam_remote_url)
        self.method = settings.iam_remote_method.upper()
        self.service_token = settings.iam_remote_service_token
        self.timeout = aiohttp.ClientTimeout(total=settings.iam_remote_timeout_s)
        self.services = services
        self.cache = TokenCache(settings.iam_cache_ttl_s, settings.iam_cache_size)
        self._inflight: dict[bytes, asyncio.Future[IamIdentity]] = {}
        self.calls = 0

    def refresh(self) -> list[str]:
        if self.method not in ("GET", "POST"):
            return ["settings.iam_remote_method: must be GET or POST"]
        return []

    async def verify(self, token: str) -> IamIdentity:
        key = _digest(token)
        hit = self.cache.lookup(key)
        if hit is not None:
            return hit
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[IamIdentity] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            identity = await self._call(token)
        except GatewayError as err:
            if err.error_type == "AUTH_FAILURE":
                self.cache.put(key, err)
            fut.set_exception(err)
            fut.exception()  # mark retrieved: waiters re-raise it
            raise
        finally:
            self._inflight.pop(key, None)
        self.cache.put(key, identity)
        fut.set_result(identity)
        return identity

    async def _call(self, token: str) -> IamIdentity:
        self.calls += 1
        headers = {"X-Subject-Token": token, "X-Auth-Token": self.service_token or token,
                   "Accept": "application/json"}
        session = self.services.http_session()
        try:
            # never follow a redirect: it would carry the caller's token (X-Subject-Token) to another host
            async with session.request(self.method, self.url, headers=headers, timeout=self.timeout,
                                       json={"token": token} if self.method == "POST" else None,
                                       allow_redirects=False) as resp:
                body = bytearray()
                async for chunk in resp.content.iter_any():
                    body += chunk
                    if len(body) > MAX_VERIFY_ANSWER:
                        break
                status = resp.status
            if len(body) > MAX_VERIFY_ANSWER:
                log.warning("IAM token validation at %s answered more than %d bytes", self.url, MAX_VERIFY_ANSWER)
                raise service_unavailable("IAM")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("IAM token validation at %s failed: %s", self.url, type(exc).__name__)
            raise service_unavailable("IAM") from None
        if status in (401, 403, 404):
            raise iam_failure("token validation failed")
        if status != 200:
            log.warning("IAM token validation at %s answered %s", self.url, status)
            raise service_unavailable("IAM")
        try:
            doc = json.loads(body)
        except ValueError:
            raise service_unavailable("IAM") from None
        if not isinstance(doc, dict):
            raise service_unavailable("IAM")
        identity = identity_from_claims(doc)
        if identity.expires_at is not None and identity.expires_at <= time.time():
            raise iam_failure("token expired")
        return identity


class _NotConfigured:
    def refresh(self) -> list[str]:
        return []

    async def verify(self, token: str) -> IamIdentity:
        raise service_unavailable("IAM")


def verifier_for(build: BuildContext) -> TokenVerifier:
    """The process-wide verifier (created on first use, key files re-checked at each compile)."""
    services = build.services
    verifier: TokenVerifier | None = services.extras.get("gateway.pipeline.stages.iam")
    if verifier is None:
        s = build.settings
        if s.iam_remote_url:
            verifier = RemoteVerifier(s, services)
        elif s.iam_jwt_public_keys or s.iam_jwks_file:
            verifier = JwtVerifier(s)
        else:
            log.warning("APIs with auth_type IAM are published but no IAM verifier is configured "
                        "(iam_jwt_public_keys, iam_jwks_file or iam_remote_url): their calls get 503")
            verifier = _NotConfigured()
        services.extras["gateway.pipeline.stages.iam"] = verifier
    return verifier


def token_allowlist(build: BuildContext) -> tuple[re.Pattern[str], ...] | None:
    """Account-name patterns of the ``backend_token_allow`` feature (None: feature off), once per snapshot."""
    return build.once("iam_token_allowlist", lambda: _compile_allowlist(build.index))


def _compile_allowlist(index: Index) -> tuple[re.Pattern[str], ...] | None:
    conf = feature_config(index, "backend_token_allow")
    patterns: tuple[re.Pattern[str], ...] | None = None
    if conf is not None:
        value = conf.get("value", conf)
        items = value if isinstance(value, list) else [value]
        found: list[re.Pattern[str]] = []
        for item in items:
            users = item.get("backend_token_allow_users") if isinstance(item, dict) else None
            for user in users if isinstance(users, list) else []:
                name = user.get("user_name") if isinstance(user, dict) else user
                if isinstance(name, str) and name:
                    try:
                        found.append(re.compile(name))
                    except re.error:
                        continue
        patterns = tuple(found)
    return patterns


def _iam_stage(verifier: TokenVerifier, allow: tuple[re.Pattern[str], ...] | None,
               aksk: AkSkVerifier | None = None) -> Stage:
    async def iam_auth(ctx: RequestContext) -> None:
        token = ctx.headers.get(TOKEN_HEADER)
        if not token or not token.strip():
            signed = ctx.headers.get("Authorization") if aksk is not None else None
            if signed and signed.lstrip().startswith(AKSK_SCHEME):  # an AK/SK-signed call (iam_aksk)
                key = await aksk.verify(ctx, signed)  # type: ignore[union-attr]
                ctx.user_id = key.user_id
                ctx.account_id = key.domain_id or key.user_id
                ctx.user_name = key.domain_name
                ctx.identity = {"user_id": key.user_id, "user_name": key.user_name, "domain_id": key.domain_id,
                                "domain_name": key.domain_name, "auth_mode": "iam_aksk"}
                return
            raise iam_token_missing()
        token = token.strip()
        if not token.isascii():  # JWTs and remote tokens are ASCII; raw non-UTF-8 bytes arrive as surrogates
            raise iam_failure("decrypt token fail")
        identity = await verifier.verify(token)
        ctx.user_id = identity.user_id
        # USER throttling counts per account (the spec's "account ID"); a token without one counts per user
        ctx.account_id = identity.domain_id or identity.user_id
        ctx.user_name = identity.domain_name
        ctx.identity = {"user_id": identity.user_id, "user_name": identity.user_name,
                        "domain_id": identity.domain_id, "domain_name": identity.domain_name,
                        "auth_mode": "iam"}
        if allow and identity.domain_name is not None and any(p.fullmatch(identity.domain_name) for p in allow):
            ctx.extras[FORWARD_TOKEN] = True

    return iam_auth


def build_iam_auth(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    if draft.api.get("auth_type") != "IAM":
        return None
    verifier = verifier_for(build)
    build.once("iam_checked", lambda: build.problems.extend(verifier.refresh()))
    return _iam_stage(verifier, token_allowlist(build), aksk_verifier(build))


def _strip_token(ctx: RequestContext, breq: BackendRequest) -> None:
    if not ctx.extras.get(FORWARD_TOKEN):
        breq.headers.popall(TOKEN_HEADER, None)


def apply_token_policy(plan: PlanDraft, backend: dict[str, Any], draft: EndpointDraft, build: BuildContext,
                       path: str) -> None:
    """IAM APIs do not pass the caller's X-Auth-Token to the backend, except for the accounts that the
    ``backend_token_allow`` feature lists (spec 02 §9.2)."""
    if draft.api.get("auth_type") != "IAM":
        return
    allow = token_allowlist(build)
    if not allow:
        plan.mapping = replace(plan.mapping, drop_headers=plan.mapping.drop_headers | {"x-auth-token"})
    else:
        plan.request_hooks.append(_strip_token)
