"""The ``third_auth`` plug-in (seed 002 §3.27.1 ThirdAuthContent; spec 02 §8.7): ask a third-party service.

Role in the pipeline: step 8 of spec 02 §11.2, the endpoint stage after the app checks for every
publication the plug-in is bound to; its carried headers reach the backend through a request hook added to
each backend plan by the plan stage :func:`apply_carry_headers` (before signing, so signing covers them).

Per request:

1. ``rule_enabled``: when any rule of ``rules`` (over ``parameters``, see :mod:`gateway.pipeline.stages.rules`)
   matches, ``rule_type: allow`` skips the third-party call (whitelist), ``deny`` refuses the request with
   THIRD_AUTH_FAILURE 403 ``APIG.0314`` (blacklist).
2. ``custom_forbid_limit`` (> 0): a client IP with that many refused attempts in the current 5-minute window
   is refused (403 ``APIG.0314``) without calling the service until the next window (vendor: anti brute force).
3. identities (``headers`` / ``queries``): a missing one -> THIRD_AUTH_IDENTITIES_FAILURE 401 ``APIG.0313``
   without calling, unless ``essential: false`` (then missing ones are simply not sent).
4. the call: ``auth_request.method protocol://url_domain path`` (+ the caller's path when
   ``carry_path_enabled``), identity headers and queries, the caller's body when ``carry_body.enabled`` and it
   is at most ``max_body_size`` bytes; ``timeout`` in seconds (unit not documented; 10 ms would be absurd).
5. success = 2xx, plus ``match_auth`` (auth response header ``key`` equals ``value``) unless
   ``simple_auth_mode_enabled``. Then ``carry_resp_headers`` (or the vendor's ``carry_resp_header``) are copied
   from the auth response into the backend request.
   Refusal -> THIRD_AUTH_FAILURE 401 ``APIG.0312``; with ``return_resp_body_enabled`` the error message is
   the auth service's body (≤ 4 KB). Unreachable / timeout -> THIRD_AUTH_CONF_FAILURE 500 ``APIG.0616``
   unless ``auth_downgrade_enabled`` (relaxed mode: the request goes on).

VPC channels (``vpc_channel_enabled``) are rejected at load: not supported by this build yet.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict

from gateway.backends.http import parse_host_port
from gateway.core.errors import (
    third_auth_conf_failure,
    third_auth_denied,
    third_auth_identity_failure,
    third_auth_refused,
)
from gateway.model.plan import BackendRequest, RequestHook
from gateway.pipeline.stages import rules
from gateway.snapshot.plugins import bound_plugin
from gateway.snapshot.schema import B, Field, I, L, O, Obj, S, check
from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.plan import Stage
    from gateway.model.services import Services
    from gateway.pipeline.spec import BuildContext, EndpointDraft, PlanDraft

log = logging.getLogger("gateway.pipeline.stages.third_auth")

_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
AUTH_REQUEST = Obj({
    "method": S(enum=_METHODS),
    "protocol": S(enum=("HTTP", "HTTPS")),
    "url_domain": S(True, min_len=1, max_len=255),
    "path": S(True, min_len=1, max_len=1024, pattern=r"/[^\s?#]*"),
    "timeout": I(min=1, max=60),
    "vpc_channel_enabled": Field("any"),
    "vpc_channel_info": Field("any"),
})
NAMED = Obj({"name": S(True, min_len=1, max_len=128, pattern=r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")})
IDENTITIES = Obj({"headers": Field("any"), "queries": Field("any"), "query": Field("any"), "essential": B()})
CONTENT = Obj({
    "auth_request": O(AUTH_REQUEST, True),
    "identities": O(IDENTITIES),
    "carry_body": O(Obj({"enabled": B(), "max_body_size": I(min=1, max=12 * 1024 * 1024)})),
    "carry_path_enabled": B(),
    "return_resp_body_enabled": B(),
    "carry_resp_headers": L(S(min_len=1, max_len=64), max_len=10),
    "carry_resp_header": L(S(min_len=1, max_len=64), max_len=10),
    "simple_auth_mode_enabled": B(),
    "match_auth": O(Obj({"key": S(True, min_len=1, max_len=128), "value": S(True, max_len=1024)})),
    "rule_enabled": B(),
    "rule_type": S(enum=("allow", "deny")),
    "parameters": L(rules.PARAMETER, max_len=100),
    "rules": L(rules.RULE, max_len=100),
    "custom_forbid_limit": I(min=0, max=2147483647),
    "auth_downgrade_enabled": B(),
})
FORBID_WINDOW_S = 300
MAX_TRACKED_IPS = 100_000
MAX_ERROR_BODY = 4096
_EXTRA_KEY = "third_auth.headers"


def _names(raw: Any, path: str, problems: list[str]) -> list[str]:
    if raw is None:
        return []
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        problems.append(f"{path}: must be a list of {{name}} objects")
        return []
    out = []
    for i, item in enumerate(items):
        ipath = f"{path}[{i}]" if isinstance(raw, list) else path
        if not isinstance(item, dict):
            problems.append(f"{ipath}: must be an object with name")
            continue
        before = len(problems)
        check(NAMED, item, ipath, problems)
        if len(problems) == before:
            out.append(str(item["name"]))
    return out


class ThirdAuthConfig:
    __slots__ = ("body_max", "carry_body", "carry_headers", "carry_path", "downgrade", "essential",
                 "forbid_limit", "headers", "host", "match_key", "match_value", "method", "path", "port",
                 "queries", "return_body", "rule", "rule_type", "scheme", "simple", "timeout_s")

    def __init__(self, content: dict[str, Any], headers: list[str], queries: list[str],
                 rule: rules.Predicate | None) -> None:
        req = content["auth_request"]
        self.method = str(req.get("method") or "GET")
        self.scheme = "https" if req.get("protocol") == "HTTPS" else "http"
        self.host, self.port = parse_host_port(str(req["url_domain"]), self.scheme)
        self.path = str(req["path"])
        self.timeout_s = float(req.get("timeout") or 5)
        ident = content.get("identities") or {}
        self.headers = tuple(headers)
        self.queries = tuple(queries)
        self.essential = ident.get("essential") is not False
        body = content.get("carry_body") or {}
        self.carry_body = body.get("enabled") is True
        self.body_max = int(body.get("max_body_size") or 1024 * 1024)
        self.carry_path = content.get("carry_path_enabled") is True
        self.return_body = content.get("return_resp_body_enabled") is True
        self.carry_headers = tuple(content.get("carry_resp_headers") or content.get("carry_resp_header") or ())
        self.simple = content.get("simple_auth_mode_enabled") is True
        match = content.get("match_auth") or {}
        self.match_key: str | None = match.get("key") if not self.simple else None
        self.match_value = str(match.get("value") or "")
        self.rule = rule if content.get("rule_enabled") is True else None
        self.rule_type = str(content.get("rule_type") or "allow")
        self.forbid_limit = int(content.get("custom_forbid_limit") or 0)
        self.downgrade = content.get("auth_downgrade_enabled") is True


def validate(content: dict[str, Any], path: str, problems: list[str], index: Index) -> ThirdAuthConfig | None:
    before = len(problems)
    check(CONTENT, content, path, problems)
    if len(problems) > before:
        return None
    req = content["auth_request"]
    if req.get("vpc_channel_enabled") in (True, 1, "1", "true"):
        problems.append(f"{path}.auth_request.vpc_channel_enabled: VPC channels for third_auth are not "
                        f"supported by this build yet; give url_domain")
    scheme = "https" if req.get("protocol") == "HTTPS" else "http"
    try:
        parse_host_port(str(req["url_domain"]), scheme)
    except (ValueError, KeyError):
        problems.append(f"{path}.auth_request.url_domain: {req['url_domain']!r} is not host:port")
    ident = content.get("identities") or {}
    headers = _names(ident.get("headers"), f"{path}.identities.headers", problems)
    qkey = "queries" if ident.get("queries") is not None else "query"
    queries = _names(ident.get(qkey), f"{path}.identities.{qkey}", problems)
    rule = None
    if content.get("rule_enabled") is True:
        params = rules.compile_parameters(content.get("parameters") or [], f"{path}.parameters", problems)
        if not content.get("rules"):
            problems.append(f"{path}.rules: at least one rule is required when rule_enabled is true")
        else:
            rule = rules.compile_rules(content["rules"], params, f"{path}.rules", problems)
        if content.get("rule_type") is None:
            problems.append(f"{path}.rule_type: is required when rule_enabled is true")
    if len(problems) > before:
        return None
    return ThirdAuthConfig(content, headers, queries, rule)


def _forbid_counts(services: Services, plugin_id: str) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = services.extras.setdefault("plugins.third_auth.forbid", {})
    window = int(time.time() // FORBID_WINDOW_S)
    entry = table.get(plugin_id)
    if entry is None or entry["window"] != window:
        entry = table[plugin_id] = {"window": window, "ips": {}}
    return entry


def make_stage(cfg: ThirdAuthConfig, plugin_id: str, services: Services) -> Stage:
    base = f"{cfg.scheme}://{f'[{cfg.host}]' if ':' in cfg.host else cfg.host}:{cfg.port}"

    async def stage(ctx: RequestContext) -> None:
        if cfg.rule is not None and cfg.rule(ctx):
            if cfg.rule_type == "allow":
                return
            raise third_auth_denied()
        counts: dict[str, int] | None = None
        if cfg.forbid_limit:
            counts = _forbid_counts(services, plugin_id)["ips"]
            if counts.get(ctx.client_ip, 0) >= cfg.forbid_limit:
                raise third_auth_denied()
        headers: CIMultiDict[str] = CIMultiDict()
        for name in cfg.headers:
            value = ctx.headers.get(name)
            if value is None:
                if cfg.essential:
                    raise third_auth_identity_failure(f"header {name} is missing")
                continue
            headers[name] = value
        query: list[tuple[str, str]] = []
        for name in cfg.queries:
            qv = ctx.query.get(name)
            if qv is None:
                if cfg.essential:
                    raise third_auth_identity_failure(f"query parameter {name} is missing")
                continue
            query.append((name, qv))
        data: bytes | None = None
        if cfg.carry_body and (ctx.request.body_exists or ctx.body is not None):
            body = await ctx.read_body()
            if len(body) <= cfg.body_max:
                data = body
                ctype = ctx.headers.get("Content-Type")
                if ctype:
                    headers["Content-Type"] = ctype
        headers["X-Request-Id"] = ctx.request_id
        path = cfg.path
        if cfg.carry_path:
            path = path.rstrip("/") + ctx.request.raw_path.split("?", 1)[0]
        url = aiohttp.client.URL(base + path, encoded=True)
        try:
            async with asyncio.timeout(cfg.timeout_s):
                async with services.http_session().request(
                        cfg.method, url, params=query or None, headers=headers, data=data,
                        allow_redirects=False) as resp:
                    status = resp.status
                    resp_headers = resp.headers.copy()
                    text = await resp.content.read(MAX_ERROR_BODY) if cfg.return_body else b""
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if cfg.downgrade:
                log.warning("third-party auth unreachable (%s); relaxed mode lets request %s through",
                            type(exc).__name__, ctx.request_id)
                return
            raise third_auth_conf_failure() from None
        ok = 200 <= status < 300
        if ok and cfg.match_key is not None:
            got = resp_headers.get(cfg.match_key)
            ok = got is not None and hmac.compare_digest(got.encode(), cfg.match_value.encode())
        if not ok:
            if counts is not None and (ctx.client_ip in counts or len(counts) < MAX_TRACKED_IPS):
                counts[ctx.client_ip] = counts.get(ctx.client_ip, 0) + 1
            if cfg.return_body and text:
                raise third_auth_refused(text.decode("utf-8", "replace"))
            raise third_auth_refused()
        if cfg.carry_headers:
            carried = [(n, v) for n in cfg.carry_headers for v in resp_headers.getall(n, ())]
            if carried:
                ctx.extras[_EXTRA_KEY] = carried

    return stage


def carry_headers_hook(names: tuple[str, ...]) -> RequestHook:
    """Request hook: the configured headers come from the auth response only (a caller's copy is dropped)."""

    def hook(ctx: RequestContext, breq: BackendRequest) -> None:
        for name in names:
            breq.headers.popall(name, None)
        carried = ctx.extras.get(_EXTRA_KEY)
        if carried:
            for name, value in carried:
                breq.headers.add(name, value)

    return hook


def build_stage(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    bp = bound_plugin(build.index, str(draft.api["id"]), draft.env_id, "third_auth")
    if bp is None:
        return None
    return make_stage(bp.config, bp.id, build.services)


def apply_carry_headers(plan: PlanDraft, backend: dict[str, Any], draft: EndpointDraft, build: BuildContext,
                        path: str) -> None:
    bp = bound_plugin(build.index, str(draft.api["id"]), draft.env_id, "third_auth")
    if bp is not None and bp.config.carry_headers:
        plan.request_hooks.append(carry_headers_hook(bp.config.carry_headers))
