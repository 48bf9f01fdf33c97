"""APP authentication (order 20) and app checks (order 30) for APIs with ``auth_type: APP``.

Role in the pipeline (spec 02 §5.6, spec 03 §1-§2):

order 20 ``app_auth`` identifies the app:
  * AppCode — when the API has ``auth_opt.app_code_auth_type: HEADER`` and the call carries
    ``X-Apig-AppCode``: the code is looked up by its SHA-256 digest; HTTPS only unless
    ``Settings.app_code_allow_http`` (behind a TLS-terminating trusted proxy, ``X-Forwarded-Proto: https``
    counts). The header is never forwarded to the backend.
  * signature — ``Authorization: SDK-HMAC-SHA256 Access=<app_key>, SignedHeaders=..., Signature=...``
    (the header name can be changed by the ``custom_auth_header.app_auth_header`` feature) with
    ``X-Sdk-Date`` within ``Settings.app_auth_clock_skew_s`` (900 s) of the gateway clock, verified with
    :mod:`gateway.lib.sdk_signer` and compared in constant time. The body is read only when the
    payload hash is needed (no ``x-sdk-content-sha256`` header): a call without a body is verified without a
    coroutine (the stage returns None), one with a body by the coroutine it returns.
  Missing credentials -> ``AUTH_HEADER_MISSING``; anything wrong -> ``AUTH_FAILURE`` (APIG.0303) with a
  reason that never contains the secret or the expected signature.

order 30 ``app_checks`` then: app status (2 = frozen -> APIG.0502, 405), the app's own IP ACL
(``ACCESS_DENIED`` APIG.0405), and the app's authorization for this API in this environment
(``UNAUTHORIZED`` APIG.0304, 403).
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING

from multidict import istr

from gateway.core.errors import app_auth_failure, app_frozen, app_header_missing, app_ip_denied, app_unauthorized
from gateway.lib import sdk_signer
from gateway.lib.ipset import ip_key
from gateway.pipeline.stages.app_credentials import credential_modes
from gateway.pipeline.stages.apps import App, app_registry
from gateway.snapshot.features import feature_config

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from multidict import CIMultiDictProxy

    from gateway.model.context import RequestContext
    from gateway.model.plan import Stage
    from gateway.pipeline.spec import BuildContext, EndpointDraft

APP_CODE_HEADER = "X-Apig-AppCode"
# header names looked up on every signed call, as case-insensitive keys made once (a plain str is case-folded
# on each lookup)
_DATE = istr(sdk_signer.HEADER_DATE)
_CONTENT_SHA256 = istr(sdk_signer.HEADER_CONTENT_SHA256)
_NONE: list[str] = []  # what a missing signed header gives (never changed)
_STAMPS = sdk_signer.DATE_STAMPS.data  # the remembered X-Sdk-Date instants (the memo's dict is never replaced)
_SIG_HEX = 64  # the hex digits of an SDK-HMAC-SHA256 signature
SIGNERS_MAX = 256  # signature prefixes remembered per compiled authenticator (emptied when full)


def _identify(ctx: RequestContext, app: App, mode: str) -> None:
    ctx.app_id = app.id
    ctx.app_name = app.name
    ctx.identity = {"app_id": app.id, "app_key": app.key, "app_name": app.name, "auth_mode": mode}


def _auth_header_name(build: BuildContext) -> str:
    conf = feature_config(build.index, "custom_auth_header")
    if isinstance(conf, dict):
        name = conf.get("app_auth_header")
        if isinstance(name, str) and name.strip():
            return name.strip()
    return "Authorization"


class AppAuthenticator:
    """The compiled APP authentication of one publication."""

    __slots__ = ("_signers", "allow_http", "app_code", "header", "modes", "registry", "skew", "trusted")

    def __init__(self, build: BuildContext, app_code: bool) -> None:
        s = build.settings
        self.registry = app_registry(build)
        self.header = istr(_auth_header_name(build))
        self.app_code = app_code
        self.allow_http = bool(s.app_code_allow_http)
        self.skew = float(s.app_auth_clock_skew_s)
        self.trusted = s.trusted_networks()
        self.modes = credential_modes(build)  # app_api_key, app_basic, app_secret, app_jwt, app_token
        # the text before the 64 signature digits (``SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=``)
        # -> (app, signed names, names as signed), for prefixes that parsed, name an app of this configuration
        # and sign ``host``: an app sends the same prefix call after call while every signature differs
        self._signers: dict[str, tuple[App, tuple[str, ...], str]] = {}

    def _https(self, ctx: RequestContext) -> bool:
        if ctx.request.scheme == "https":
            return True
        if not self.trusted:
            return False
        try:
            peer = ipaddress.ip_address(ctx.peer_ip)
        except ValueError:
            return False
        proto = ctx.headers.get("X-Forwarded-Proto", "")
        return any(peer in net for net in self.trusted) and proto.split(",")[0].strip().lower() == "https"

    def __call__(self, ctx: RequestContext) -> Awaitable[None] | None:
        if self.app_code or self.modes is not None:
            return self._other_modes(ctx)
        return self._signature(ctx)

    async def _other_modes(self, ctx: RequestContext) -> None:
        """AppCode and the credential modes first (a call that carries none of them: the signature)."""
        if self.app_code:
            code = ctx.headers.get(APP_CODE_HEADER)
            if code:
                if not self.allow_http and not self._https(ctx):
                    raise app_auth_failure("AppCode authentication is only accepted over HTTPS")
                app = self.registry.app_for_code(code.strip())
                if app is None:
                    raise app_auth_failure("AppCode not found")
                _identify(ctx, app, "app_code")
                return
        if self.modes is not None:
            found = await self.modes.identify(ctx)
            if found is not None:
                _identify(ctx, *found)
                return
        waiting = self._signature(ctx)
        if waiting is not None:
            await waiting

    def _signature(self, ctx: RequestContext) -> Awaitable[None] | None:
        """The SDK-HMAC-SHA256 signature: checked here when the payload hash needs no body read (a call
        without a body, the usual GET), else by the returned coroutine."""
        headers = ctx.headers
        value = headers.get(self.header)
        if not value:
            raise app_header_missing(f"{self.header.lower()} not found")
        known = self._signers.get(value[:-_SIG_HEX])
        signature = value[-_SIG_HEX:]
        if known is not None:  # a remembered prefix: the 64 characters after it must be hex digits, as parsed
            try:
                if len(bytes.fromhex(signature)) * 2 != _SIG_HEX:  # blanks inside shorten it
                    known = None
            except ValueError:
                known = None
        if known is None:
            known, signature = self._parse(headers, value)
        else:
            signature = signature.lower()
        app, names, signed = known
        raw_date = headers.get(_DATE)
        stamp = _STAMPS.get(raw_date) if raw_date else None  # remembered, so already stripped
        if stamp is not None and raw_date is not None and abs(time.time() - stamp) <= self.skew:
            sdk_date = raw_date  # what check_date would find
        else:
            sdk_date, problem = sdk_signer.check_date(raw_date, self.skew)
            if problem is not None:
                raise app_auth_failure(problem)
        header_lines = ""  # the canonical header lines, each signed header present exactly once
        for name in names:
            found = headers.getall(name, _NONE)
            try:
                (value,) = found
            except ValueError:  # a repeated signed header would be signed once but reach the backend twice
                raise app_auth_failure(f"signed header {name[:64]} not found" if not found
                                       else f"signed header {name[:64]} appears more than once") from None
            header_lines += f"{name}:{value.strip()}\n"
        if _CONTENT_SHA256 not in headers:
            body = ctx.body
            if body is None:
                if ctx.request.body_exists:
                    return self._with_body(ctx, app, ("", names, signed, signature), header_lines, sdk_date, ())
                body = ctx.body = b""  # a GET: what read_body would do, without awaiting
            digest = sdk_signer.payload_hash(body) if body else sdk_signer.EMPTY_SHA256
            # sdk_date passed the fixed-format check: it is exactly what format_date(when) would give
            if app.mac is not None:
                ok = sdk_signer.verify_lines(app.mac, signature, ctx.method, ctx.request.raw_path, header_lines,
                                             signed, digest, sdk_date)
            else:
                ok = self._verify_secret(ctx, app, signature, names, digest, sdk_date)
            if not ok:
                raise app_auth_failure("verify signature fail")
            ctx.app_id = app.id
            ctx.app_name = app.name
            ctx.identity = app.signed_identity
            return None
        claimed = headers.getall(sdk_signer.HEADER_CONTENT_SHA256)
        if len(claimed) > 1:
            raise app_auth_failure("x-sdk-content-sha256 appears more than once")
        return self._with_body(ctx, app, ("", names, signed, signature), header_lines, sdk_date, claimed)

    def _parse(self, headers: CIMultiDictProxy[str], value: str
               ) -> tuple[tuple[App, tuple[str, ...], str], str]:
        """A signature prefix not remembered: parsed and checked in full (the errors in their usual order),
        then remembered when the signature is the usual 64 digits at the very end."""
        creds = sdk_signer.parse_signature(value)
        if creds is None:
            raise app_auth_failure(f"{self.header.lower()} is not an SDK-HMAC-SHA256 signature "
                                   "(Access=..., SignedHeaders=..., Signature=...)")
        access, names, signed, signature = creds
        raw_date = headers.get(_DATE)
        stamp = _STAMPS.get(raw_date) if raw_date else None
        if stamp is None or abs(time.time() - stamp) > self.skew:
            _sdk_date, problem = sdk_signer.check_date(raw_date, self.skew)
            if problem is not None:
                raise app_auth_failure(problem)
        app = self.registry.by_key.get(access)
        if app is None:
            raise app_auth_failure(f"app not found, appkey {access[:200]}")
        if "host" not in names:  # else a signed call could be replayed on another domain
            raise app_auth_failure("SignedHeaders must include host")
        known = (app, names, signed)
        if len(signature) == _SIG_HEX and value[-_SIG_HEX:].lower() == signature:  # no blank after: remembered
            signers = self._signers
            if len(signers) >= SIGNERS_MAX:
                signers.clear()
            signers[value[:-_SIG_HEX]] = known
        return known, signature

    @staticmethod
    def _verify_secret(ctx: RequestContext, app: App, signature: str, names: tuple[str, ...], digest: str,
                       sdk_date: str) -> bool:
        """An app without a prepared key (not built by the registry): the reference verification."""
        path, query = sdk_signer.split_target(ctx.request.raw_path)
        return sdk_signer.verify(app.secret, signature, ctx.method, path, sdk_signer.parse_query(query),
                                 ctx.headers, names, digest, sdk_date)

    async def _with_body(self, ctx: RequestContext, app: App, creds: tuple[str, tuple[str, ...], str, str],
                         header_lines: str, sdk_date: str, claimed: list[str] | tuple[()]) -> None:
        """The signature of a call whose payload hash needs its body (or a claimed ``x-sdk-content-sha256``)."""
        _access, names, signed, signature = creds
        digest = claimed[0].strip() if claimed else sdk_signer.payload_hash(await ctx.read_body())
        target = ctx.request.raw_path
        digests = [digest]
        if digest == sdk_signer.UNSIGNED_PAYLOAD:
            # the two official signers differ here: the APIG SDK signs the literal; huaweicloudsdkcore sends
            # the literal header but signs sha256("") when the body is empty (docs/auth.md)
            digests.append(sdk_signer.EMPTY_SHA256)
        ok = False
        for candidate in digests:
            if candidate is not digest and await ctx.read_body():
                break  # the empty-body form only stands for an empty body
            if app.mac is not None:
                ok = sdk_signer.verify_lines(app.mac, signature, ctx.method, target, header_lines, signed,
                                             candidate, sdk_date)
            else:
                ok = self._verify_secret(ctx, app, signature, names, candidate, sdk_date)
            if ok:
                break
        if not ok:
            raise app_auth_failure("verify signature fail")
        # a claimed body hash must be the body's: else a captured request could be replayed with another body
        if claimed and digest != sdk_signer.UNSIGNED_PAYLOAD and \
                digest.lower() != sdk_signer.payload_hash(await ctx.read_body()):
            raise app_auth_failure("x-sdk-content-sha256 does not match the body")
        ctx.app_id = app.id
        ctx.app_name = app.name
        ctx.identity = app.signed_identity


def _app_checks(apps: dict[str, App], authorized: frozenset[str]) -> Stage:
    def app_checks(ctx: RequestContext) -> None:
        app_id = ctx.app_id
        if app_id is None:  # another mode let an unidentified call through: nothing to check
            return
        app = apps.get(app_id)
        if app is not None and app.status != 1:
            raise app_frozen()
        if app is not None and app.acl_ips is not None:
            key = ip_key(ctx.client_ip)
            hit = key is not None and app.acl_ips.contains_key(key)
            if hit is not app.acl_permit:
                raise app_ip_denied()
        if app_id not in authorized:
            raise app_unauthorized()

    return app_checks


def build_app_auth(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    if draft.api.get("auth_type") != "APP":
        return None
    opt = draft.api.get("auth_opt") or {}
    auth = AppAuthenticator(build, opt.get("app_code_auth_type") == "HEADER")
    # signatures only (the usual APP API): the check itself is the stage, one call less per request
    return auth if auth.app_code or auth.modes is not None else auth._signature


def build_app_checks(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    if draft.api.get("auth_type") != "APP":
        return None
    reg = app_registry(build)
    return _app_checks(reg.by_id, reg.authorized.get((str(draft.api["id"]), draft.env_id), frozenset()))
