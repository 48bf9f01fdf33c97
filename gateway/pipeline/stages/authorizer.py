"""Custom authorizers (seed 002 §3.15; spec 02 §7, 03 §4): FRONTEND auth stage and BACKEND plan stages.

Role in the pipeline:

* config-load time: owns the ``authorizers`` collection (schema and cross-reference checks: the function
  URN resolves in ``functions``; an API with ``auth_type: AUTHORIZER`` names a FRONTEND authorizer; every
  backend ``authorizer_id`` — ``backend_api``, ``mock_info``, ``func_info`` and each backend policy — names
  a BACKEND authorizer) and compiles one :class:`AuthorizerRunner` per authorizer per snapshot;
* request time, order 20 (authentication) for ``auth_type: AUTHORIZER`` publications: collect the identity
  sources (missing / failing ``validation`` -> AUTHORIZER_IDENTITIES_FAILURE 401, no call), consult the
  decision cache (``ttl`` seconds, keyed by the identity values), else call the function with the vendor's
  authorizer event; ``allow`` -> the ``context`` map becomes ``ctx.authorizer_frontend``
  (``$context.authorizer.frontend.*``); ``deny`` -> AUTHORIZER_FAILURE (500 by default, 02 §7.4); a
  function error, timeout, non-200 ``statusCode`` or malformed answer -> AUTHORIZER_CONF_FAILURE 500;
* after backend selection, for a backend (default or policy) with ``authorizer_id``: the same call as a plan
  plan stage (``apply_backend_authorizer``); the context becomes ``ctx.authorizer_backend``.

The decision cache lives in ``services.extras`` (survives swaps; bounded LRU of
``authorizer_cache_entries``); its key includes a fingerprint of the authorizer and function records, so a
changed authorizer never reuses old decisions. Concurrent misses for the same key share one call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson

from gateway.backends import invokers as fn
from gateway.backends.function import request_event
from gateway.core.errors import GatewayError, authorizer_conf_failure, authorizer_denied, authorizer_identity_failure
from gateway.snapshot.collections import _COMMON_OUT
from gateway.snapshot.schema import B, I, L, Obj, S
from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.plan import Stage
    from gateway.model.services import Services
    from gateway.pipeline.spec import BuildContext, EndpointDraft, PlanDraft

log = logging.getLogger("gateway.pipeline.stages.authorizer")

IDENTITY = Obj({
    "name": S(True, min_len=1, max_len=128),
    "location": S(True, enum=("HEADER", "QUERY")),
    "validation": S(max_len=2048),
})

AUTHORIZER = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "name": S(True, min_len=3, max_len=64, pattern=r"[A-Za-z][A-Za-z0-9_]*"),
        "type": S(True, enum=("FRONTEND", "BACKEND")),
        "authorizer_type": S(True, enum=("FUNC",)),
        "authorizer_uri": S(True, min_len=1, max_len=255),
        "network_type": S(enum=("V1", "V2")),
        "authorizer_version": S(max_len=64),
        "authorizer_alias_uri": S(max_len=255),
        "identities": L(IDENTITY),
        "ttl": I(min=0, max=3600),
        "ttn": I(min=0, max=3600),  # the vendor's other spelling of ttl (T3-783)
        "user_data": S(max_len=2048),
        "need_body": B(),
        "timeout": I(min=1, max=600000),  # ours (02 §7.1 PROPOSAL): ms, default 5000
        "retry_count": I(min=0, max=10),  # ours (02 §7.1 PROPOSAL): default 0
        "ld_api_id": S(),
    },
    output_only=_COMMON_OUT | frozenset({"create_time", "roma_app_id", "roma_app_name"}),
)

COLLECTIONS = {"authorizers": (AUTHORIZER, "id")}

CONTEXT_KEY_RX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
MAX_ANSWER_BYTES = 1024 * 1024  # 03 §4: the authorizer's answer is at most 1 MB
DEFAULT_TIMEOUT_MS = 5000
_CACHE_KEY = "authorizers.cache"
_RUNNERS_ATTR = "_authorizer_runners"


# --- load-time checks ------------------------------------------------------------------------------

def _ttl(auth: dict[str, Any]) -> int:
    value = auth.get("ttl")
    if value is None:
        value = auth.get("ttn")
    return int(value or 0)


def _names_authorizer(info: Any) -> bool:
    return isinstance(info, dict) and bool(info.get("authorizer_id"))


def check_authorizers(index: Index, problems: list[str]) -> None:
    for i, auth in enumerate(index.items("authorizers")):
        path = f"authorizers[{i}]"
        idents = [x for x in auth.get("identities") or [] if isinstance(x, dict)]
        seen: set[tuple[str, str]] = set()
        for j, ident in enumerate(idents):
            loc, name = str(ident.get("location")), str(ident.get("name"))
            ident_key = (loc, name.lower() if loc == "HEADER" else name)
            if ident_key in seen:
                problems.append(f"{path}.identities[{j}]: duplicate identity source {loc} {name!r}")
            seen.add(ident_key)
            rx = ident.get("validation")
            if isinstance(rx, str) and rx:
                try:
                    re.compile(rx)
                except re.error as exc:
                    problems.append(f"{path}.identities[{j}].validation: invalid regular expression ({exc})")
        if auth.get("ttl") is not None and auth.get("ttn") is not None and auth["ttl"] != auth["ttn"]:
            problems.append(f"{path}.ttn: differs from ttl (they are the same field)")
        if _ttl(auth) > 0 and not idents:
            problems.append(f"{path}.identities: at least one identity source is required when ttl > 0")
        uri = auth.get("authorizer_uri")
        if isinstance(uri, str) and uri and fn.resolve(index, uri, auth.get("authorizer_version"),
                                                       auth.get("authorizer_alias_uri")) is None:
            problems.append(f"{path}.authorizer_uri: unknown function {uri!r} (add it to functions)")

    by_id = index.by_id.get("authorizers", {})

    def ref(path: str, aid: Any, want: str) -> None:
        if not aid:
            return
        auth = by_id.get(str(aid))
        if auth is None:
            problems.append(f"{path}: unknown authorizer {aid!r}")
        elif auth.get("type") != want:
            problems.append(f"{path}: authorizer {aid!r} is a {auth.get('type')} authorizer; {want} is required here")

    for i, api in enumerate(index.items("apis")):
        frontend = api.get("auth_type") == "AUTHORIZER"
        if not (frontend or api.get("backend_params") or api.get("policy_https") or api.get("policy_mocks")
                or api.get("policy_functions") or _names_authorizer(api.get("backend_api"))
                or _names_authorizer(api.get("mock_info")) or _names_authorizer(api.get("func_info"))):
            continue  # references no authorizer and has no backend parameter
        path = f"apis[{i}]"
        if frontend:
            ref(f"{path}.authorizer_id", api.get("authorizer_id"), "FRONTEND")
        for key in ("backend_api", "mock_info", "func_info"):
            info = api.get(key)
            if isinstance(info, dict):
                ref(f"{path}.{key}.authorizer_id", info.get("authorizer_id"), "BACKEND")
        params = [(f"{path}.backend_params", api.get("backend_params"))]
        for key in ("policy_https", "policy_mocks", "policy_functions"):
            for j, pol in enumerate(api.get(key) or []):
                if isinstance(pol, dict):
                    ref(f"{path}.{key}[{j}].authorizer_id", pol.get("authorizer_id"), "BACKEND")
                    params.append((f"{path}.{key}[{j}].backend_params", pol.get("backend_params")))
        if not frontend:
            for ppath, plist in params:
                for j, bp in enumerate(plist or []):
                    if (isinstance(bp, dict) and bp.get("origin") == "SYSTEM"
                            and str(bp.get("value", "")).startswith("$context.authorizer.frontend.")):
                        problems.append(f"{ppath}[{j}].value: $context.authorizer.frontend.* needs "
                                        "auth_type AUTHORIZER")



# --- decision cache --------------------------------------------------------------------------------

Decision = tuple[bool, dict[str, Any]]  # (allowed, context)


class DecisionCache:
    """A bounded LRU of authorizer decisions with per-entry expiry, plus the in-flight calls."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(1, max_entries)
        self._data: OrderedDict[tuple[Any, ...], tuple[float, Decision]] = OrderedDict()
        self.inflight: dict[tuple[Any, ...], asyncio.Future[tuple[bool, Any]]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...], now: float) -> Decision | None:
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        expires, decision = entry
        if expires <= now:
            del self._data[key]
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return decision

    def put(self, key: tuple[Any, ...], decision: Decision, expires: float) -> None:
        self._data[key] = (expires, decision)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def decision_cache(services: Services) -> DecisionCache:
    cache = services.extras.get(_CACHE_KEY)
    if cache is None:
        cache = DecisionCache(services.settings.authorizer_cache_entries)
        services.extras[_CACHE_KEY] = cache
    return cache


# --- runner ----------------------------------------------------------------------------------------

class AuthorizerRunner:
    """One authorizer compiled for one snapshot."""

    __slots__ = ("fingerprint", "id", "identities", "invoker", "kind", "need_body", "retries", "services",
                 "timeout_s", "ttl", "user_data", "word")

    def __init__(self, auth: dict[str, Any], record: dict[str, Any], invoker: fn.Invoker, services: Services) -> None:
        self.id = str(auth["id"])
        self.kind = str(auth["type"])
        self.word = "frontend" if self.kind == "FRONTEND" else "backend"
        self.invoker = invoker
        self.services = services
        self.identities = tuple(
            (str(x["name"]), str(x["location"]), re.compile(x["validation"]) if x.get("validation") else None)
            for x in auth.get("identities") or []
        )
        self.ttl = _ttl(auth)
        self.user_data = auth.get("user_data")
        self.need_body = bool(auth.get("need_body"))
        self.retries = int(auth.get("retry_count") or 0)
        self.timeout_s = fn.effective_timeout_ms(auth.get("timeout"), record, services.settings.max_backend_timeout_ms,
                                                 DEFAULT_TIMEOUT_MS) / 1000.0
        self.fingerprint = hashlib.blake2b(
            orjson.dumps([auth, record], option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()

    def identity_values(self, ctx: RequestContext) -> tuple[str, ...]:
        values = []
        for name, location, rx in self.identities:
            value = ctx.headers.get(name) if location == "HEADER" else ctx.query.get(name)
            if not value:
                raise authorizer_identity_failure(name, "missing")
            if rx is not None and rx.fullmatch(value) is None:
                raise authorizer_identity_failure(name, "invalid")
            values.append(value)
        return tuple(values)

    async def authorize(self, ctx: RequestContext, base64_body: bool = True) -> dict[str, Any]:
        """The authorizer's context for this request, or raise the spec's AUTHORIZER_* error."""
        values = self.identity_values(ctx)
        if self.ttl > 0 and values:
            cache = decision_cache(self.services)
            key = (self.fingerprint, values)
            decision = cache.get(key, time.monotonic())
            if decision is None:
                decision = await self._shared_call(ctx, cache, key, base64_body)
        else:
            decision = await self._call(ctx, base64_body)
        allowed, context = decision
        if not allowed:
            raise authorizer_denied(self.word)
        return dict(context)

    async def _shared_call(self, ctx: RequestContext, cache: DecisionCache, key: tuple[Any, ...],
                           base64_body: bool) -> Decision:
        waiting = cache.inflight.get(key)
        if waiting is not None:
            ok, value = await asyncio.shield(waiting)
            if ok:
                return value
            raise value
        fut: asyncio.Future[tuple[bool, Any]] = asyncio.get_running_loop().create_future()
        cache.inflight[key] = fut
        try:
            decision = await self._call(ctx, base64_body)
        except GatewayError as err:
            fut.set_result((False, err))
            raise
        except BaseException:
            fut.set_result((False, authorizer_conf_failure(self.word, "call was interrupted")))
            raise
        finally:
            cache.inflight.pop(key, None)
        fut.set_result((True, decision))
        cache.put(key, decision, time.monotonic() + self.ttl)
        return decision

    async def _call(self, ctx: RequestContext, base64_body: bool) -> Decision:
        body = await ctx.read_body() if self.need_body else None
        event = request_event(ctx, ctx.headers.items(), ctx.query.items(), ctx.method, body, base64_body)
        if not self.need_body:
            del event["body"], event["isBase64Encoded"]
        event["user_data"] = self.user_data or ""
        for attempt in range(self.retries + 1):
            try:
                result = await self.invoker.invoke(event, ctx.request_id, self.timeout_s)
                break
            except fn.FunctionTimeout as exc:
                failure = authorizer_conf_failure(self.word, f"function {exc.reason.removeprefix('function ')}")
            except fn.FunctionError as exc:
                failure = authorizer_conf_failure(self.word, f"call failed: {exc.reason}")
            log.warning("%s authorizer %s failed on request %s (attempt %d): %s", self.word, self.id,
                        ctx.request_id, attempt + 1, failure.message)
        else:
            raise failure
        return self._parse(result)

    def _parse(self, result: Any) -> Decision:
        if not isinstance(result, dict):
            raise authorizer_conf_failure(self.word, f"answer must be an object, got {type(result).__name__}")
        status = result.get("statusCode")
        if status != 200 or isinstance(status, bool):
            raise authorizer_conf_failure(self.word, f"answered statusCode {status!r}")
        body = result.get("body")
        if isinstance(body, str):
            if len(body) > MAX_ANSWER_BYTES:
                raise authorizer_conf_failure(self.word, "answer is larger than 1 MB")
            try:
                decoded = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise authorizer_conf_failure(self.word, "answer body is not JSON") from None
        elif isinstance(body, dict):  # ours: tolerate an already-decoded body object
            decoded = body
        else:
            raise authorizer_conf_failure(self.word, "answer body must be a JSON string")
        if not isinstance(decoded, dict):
            raise authorizer_conf_failure(self.word, "answer body must be a JSON object")
        verdict = decoded.get("status")
        if not isinstance(verdict, str) or verdict.lower() not in ("allow", "deny"):
            raise authorizer_conf_failure(self.word, "answer status must be allow or deny")
        context = decoded.get("context") or {}
        if not isinstance(context, dict):
            raise authorizer_conf_failure(self.word, "answer context must be an object")
        for k, v in context.items():
            if not CONTEXT_KEY_RX.fullmatch(k):
                raise authorizer_conf_failure(self.word, f"answer context key {k[:40]!r} is invalid")
            if not isinstance(v, str | int | float | bool):
                raise authorizer_conf_failure(
                    self.word, f"answer context value of {k} must be a string, number or boolean")
        return verdict.lower() == "allow", context


def runner_for(aid: str, build: BuildContext, path: str) -> AuthorizerRunner | None:
    """The compiled runner of authorizer ``aid`` (one per authorizer per compile)."""
    runners: dict[str, AuthorizerRunner] = build.once(_RUNNERS_ATTR, dict)
    if aid in runners:
        return runners[aid]
    auth = build.index.get("authorizers", aid)
    if auth is None:
        build.problems.append(f"{path}: unknown authorizer {aid!r}")
        return None
    compiled = fn.compile_invoker(build.index, build.services, str(auth["authorizer_uri"]),
                                  auth.get("authorizer_version"), auth.get("authorizer_alias_uri"), build.problems,
                                  f"{path}: authorizer {aid!r} has an unknown function", f"{path}: authorizer {aid!r}")
    if compiled is None:
        return None
    record, invoker = compiled
    runner = AuthorizerRunner(auth, record, invoker, build.services)
    runners[aid] = runner
    return runner


def build_frontend_stage(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    if draft.api.get("auth_type") != "AUTHORIZER":
        return None
    runner = runner_for(str(draft.api.get("authorizer_id")), build, f"{draft.path}.authorizer_id")
    if runner is None:
        return None

    base64_body = draft.api.get("is_send_fg_body_base64") is not False

    async def stage(ctx: RequestContext) -> None:
        ctx.authorizer_frontend = await runner.authorize(ctx, base64_body)

    return stage


def apply_backend_authorizer(plan: PlanDraft, backend: dict[str, Any], draft: EndpointDraft,
                             build: BuildContext, path: str) -> None:
    """A backend with ``authorizer_id`` gets a plan stage that calls that authorizer."""
    aid = backend.get("authorizer_id")
    if not aid:
        return
    runner = runner_for(str(aid), build, f"{path}.authorizer_id")
    if runner is None:
        return

    base64_body = draft.api.get("is_send_fg_body_base64") is not False

    async def stage(ctx: RequestContext) -> None:
        ctx.authorizer_backend = await runner.authorize(ctx, base64_body)

    plan.stages.append(("backend_authorizer", stage))
