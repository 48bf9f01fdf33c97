"""The throttling stage (the last endpoint stage): one atomic admission over every limit that applies to a request.

Role in the pipeline: runs after authentication, app checks and parameter validation (so identities are
known and invalid calls consume nothing). For the request's publication it builds the list of checks,
in the order that decides which limit is reported: excluded/app -> user -> ip -> api (policy) ->
default per-API ceiling -> credential quota; asks the store to admit all of them at once; adds the
``X-Apig-RateLimit-*`` headers; and on rejection raises THROTTLED (429, APIG.0308) with ``Retry-After``.

Built only for publications that need it: a bound policy or ``rate_limit`` plug-in, a non-zero default
ceiling, or any credential quota in the snapshot. Everything static (keys, limits, header labels) is
computed here at load time; without parameter rules the checks of a call depend only on (app, account,
client IP), so they are remembered per such triple (bounded). The stage is a plain function when the store
decides without waiting (in-process store, token leases) and returns a coroutine only for a Redis call.

A ``rate_limit`` plug-in bound to the publication replaces its classic policy (the vendor: "a request
throttling policy becomes invalid if a request throttling 2.0 policy is bound to the same API"); its basic
limits are checked exactly like a policy's (own counter keys, ``:r:`` instead of ``:t:``), and the first of
its parameter rules that matches the request adds one more check (label ``rule``) before the API limit.
The default ceiling and credential quotas apply either way.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from gateway.core.errors import throttled
from gateway.pipeline.stages.throttling.plan import PolicyPlan, QuotaPlan, SnapshotPlan, snapshot_plan
from gateway.pipeline.stages.throttling.plugin import RateLimitPlan
from gateway.pipeline.stages.throttling.service import ThrottleService
from gateway.pipeline.stages.throttling.store import BUCKET, WINDOW, Check, Decision
from gateway.snapshot.plugins import bound_plugin

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from gateway.model.context import RequestContext
    from gateway.model.plan import Stage
    from gateway.pipeline.spec import BuildContext, EndpointDraft
    from gateway.pipeline.stages.rules import Predicate

HEADER = "X-Apig-RateLimit-"
T = TypeVar("T")
K = TypeVar("K")

# a label per check: (header name, message subject, limit shown, time text, header value after the remaining count)
Label = tuple[str, str, int, str, str]


def _label(name: str, subject: str, limit: int, time: str) -> Label:
    return HEADER + name, subject, limit, time, f",limit:{limit},time:{time}"


def _mode_tag(mode: int, period_ms: int) -> str:
    return "b" if mode == BUCKET else f"w{period_ms}"


class EndpointThrottle:
    """The compiled throttling of one publication; :meth:`run` is the stage."""

    __slots__ = (
        "_combos",
        "_per_app",
        "_per_ip",
        "api_check",
        "api_label",
        "app_generic",
        "app_special",
        "ceiling_check",
        "ceiling_label",
        "headers",
        "ip_label",
        "ip_limit",
        "policy",
        "prefix",
        "quota_prefix",
        "quotas",
        "rules",
        "service",
        "shared",
        "user_generic",
        "user_special",
    )

    def __init__(self, draft: EndpointDraft, plan: SnapshotPlan, policy: PolicyPlan | None,
                 service: ThrottleService, key_prefix: str, headers: str,
                 plugin: RateLimitPlan | None = None) -> None:
        self.service = service
        self.shared = plan.shared and not (plugin is not None and plugin.local)
        self.headers = headers
        self.policy = policy
        self.prefix = ""
        self.api_check: Check | None = None
        self.api_label: Label | None = None
        self.ip_limit = 0
        self.ip_label: Label = ("", "", 0, "", "")
        self.app_generic: tuple[int, Label] = (0, self.ip_label)
        self.user_generic: tuple[int, Label] = (0, self.ip_label)
        self.app_special: dict[str, tuple[int, Label]] = {}
        self.user_special: dict[str, tuple[int, Label]] = {}
        self.rules: tuple[tuple[Predicate, Check, Label], ...] = ()
        api_id = str(draft.api["id"])
        if policy is not None:
            scope = policy.policy_id if policy.type == 2 else f"{policy.policy_id}:{api_id}:{draft.env_id}"
            kind = "t" if plugin is None else "r"
            self.prefix = f"{key_prefix}:{kind}:{{{scope}}}:{_mode_tag(policy.mode, policy.period_ms)}:"
            if policy.api_limit > 0:  # a rate_limit plug-in's api_limit -1: no API limit
                self.api_check = (self.prefix + "api", policy.api_limit, policy.period_ms, policy.mode,
                                  policy.anchor_ms)
                self.api_label = _label("api", "policy api", policy.api_limit, policy.time)
            if plugin is not None:
                rp = f"{key_prefix}:{kind}:{{{scope}}}:"
                self.rules = tuple(
                    (r.match, (f"{rp}{_mode_tag(r.mode, r.period_ms)}:r{r.index}", r.limit, r.period_ms, r.mode,
                               policy.anchor_ms),
                     _label("rule", f"policy rule {r.name}", r.limit, r.time))
                    for r in plugin.rules)
            self.ip_limit = policy.ip_limit or 0
            t = policy.time
            self.ip_label = _label("ip", "policy ip", self.ip_limit, t)
            self.app_generic = (policy.app_limit or 0, _label("app", "policy app", policy.app_limit or 0, t))
            self.user_generic = (policy.user_limit or 0, _label("user", "policy user", policy.user_limit or 0, t))
            self.app_special = {k: (v, _label("app", "policy app", v, t)) for k, v in policy.special_app.items()}
            self.user_special = {k: (v, _label("user", "policy user", v, t)) for k, v in policy.special_user.items()}
        self.ceiling_check: Check | None = None
        self.ceiling_label: Label | None = None
        if plan.ceiling > 0:
            self.ceiling_check = (f"{key_prefix}:c:{{{api_id}}}:b", plan.ceiling, 1000, BUCKET, 0)
            self.ceiling_label = _label("api-allenv", "policy api-allenv", plan.ceiling, "1 second")
        self.quotas: dict[str, QuotaPlan] = plan.quota_by_app
        self.quota_prefix = f"{key_prefix}:q:"
        # per app id / client IP: the check and its label, built on first sight (bounded, see _memo)
        self._per_app: dict[str, tuple[Check, Label] | None] = {}
        self._per_ip: dict[str, Check] = {}
        # (app id, account id, client IP) -> every check and label of such a call, made on first sight (bounded,
        # see _memo): without parameter rules nothing else about a request changes what is checked
        self._combos: dict[tuple[str | None, str | None, str], tuple[tuple[Check, ...], tuple[Label, ...]]] = {}

    def _app_entry(self, app: str) -> tuple[Check, Label] | None:
        limit, label = self.app_special.get(app, self.app_generic)
        p = self.policy
        entry = None
        if limit and p is not None:
            entry = ((f"{self.prefix}a:{app}", limit, p.period_ms, p.mode, p.anchor_ms), label)
        return _memo(self._per_app, app, entry)

    def _ip_check(self, ip: str) -> Check:
        p = self.policy
        assert p is not None
        return _memo(self._per_ip, ip, (f"{self.prefix}i:{ip}", self.ip_limit, p.period_ms, p.mode, p.anchor_ms))

    def run(self, ctx: RequestContext) -> Awaitable[None] | None:
        """The stage: decided here when the store needs no wait (in-process store, token leases), else by the
        returned coroutine (a Redis call)."""
        checks: Sequence[Check]
        labels: Sequence[Label]
        if self.rules:  # a parameter rule matches the request itself: collect per call
            checks, labels = self._collect(ctx)
        else:
            key = (ctx.app_id, ctx.account_id, ctx.client_ip)
            combo = self._combos.get(key)
            if combo is None:
                got = self._collect(ctx)
                combo = _memo(self._combos, key, (tuple(got[0]), tuple(got[1])))
            checks, labels = combo
        if not checks:
            return None
        d = self.service.decide_fast(checks, self.shared)  # in-process store or token leases: no coroutine
        if isinstance(d, Decision):  # refused, or decided the general way
            self._apply(ctx, d, labels)
        elif d is None:
            return self._admit(ctx, checks, labels)
        elif self.headers == "always":  # admitted (the usual answer), ``d`` the calls left per check
            rh = ctx.response_headers
            for label, remain in zip(labels, d, strict=False):
                rh[label[0]] = f"remain:{remain}{label[4]}"
        else:
            self._apply(ctx, Decision(True, -1, 0, d), labels)
        return None

    async def _admit(self, ctx: RequestContext, checks: Sequence[Check], labels: Sequence[Label]) -> None:
        self._apply(ctx, await self.service.admit(checks, self.shared, leases_tried=True), labels)

    def _apply(self, ctx: RequestContext, d: Decision, labels: Sequence[Label]) -> None:
        """The ``X-Apig-RateLimit-*`` headers, and THROTTLED when the decision refused the call."""
        if self.headers == "always" or (self.headers == "debug" and
                                        ctx.headers.get("X-Apig-Mode", "").lower() == "debug"):
            rh = ctx.response_headers
            for (name, _subject, _limit, _time, tail), remain in zip(labels, d.remaining, strict=False):
                rh[name] = f"remain:{remain}{tail}"
        if not d.allowed:
            retry = str(max(1, math.ceil(d.retry_ms / 1000.0)))
            if d.source == "closed":
                raise throttled("throttling store unavailable", retry)
            _name, subject, limit, time, _tail = labels[d.failed]
            raise throttled(f"{subject} over ratelimit,limit:{limit},time:{time}", retry)

    def _collect(self, ctx: RequestContext) -> tuple[list[Check], list[Label]]:
        """The checks of one call and their labels, in the order that decides which limit is reported."""
        checks: list[Check] = []
        labels: list[Label] = []
        p = self.policy
        if p is not None:
            app = ctx.app_id
            if app is not None:
                entry = self._per_app.get(app, _MISSING)
                if entry is _MISSING:
                    entry = self._app_entry(app)
                if entry is not None:
                    checks.append(entry[0])  # type: ignore[index]
                    labels.append(entry[1])  # type: ignore[index]
            user = ctx.account_id  # the USER object is the caller's account (docs/throttling.md)
            if user is not None:
                limit, label = self.user_special.get(user, self.user_generic)
                if limit:
                    checks.append((f"{self.prefix}u:{user}", limit, p.period_ms, p.mode, p.anchor_ms))
                    labels.append(label)
            if self.ip_limit:
                ip = ctx.client_ip
                check = self._per_ip.get(ip)
                checks.append(check if check is not None else self._ip_check(ip))
                labels.append(self.ip_label)
            for match, check, label in self.rules:
                if match(ctx):  # the first matching parameter rule only
                    checks.append(check)
                    labels.append(label)
                    break
            if self.api_check is not None:
                checks.append(self.api_check)
                labels.append(self.api_label)  # type: ignore[arg-type]
        if self.ceiling_check is not None:
            checks.append(self.ceiling_check)
            labels.append(self.ceiling_label)  # type: ignore[arg-type]
        if self.quotas and ctx.app_id is not None:
            q = self.quotas.get(ctx.app_id)
            if q is not None:
                checks.append((f"{self.quota_prefix}{{{q.quota_id}:{ctx.app_id}}}:w{q.period_ms}", q.limit,
                               q.period_ms, WINDOW, q.anchor_ms))
                labels.append(_label("quota", "credential quota", q.limit, q.time))
        return checks, labels


_MISSING = object()
MEMO_MAX = 4096  # per-app / per-IP entries remembered by one publication's stage


def _memo(table: dict[K, T], key: K, value: T) -> T:
    """Remember ``value`` under ``key`` (the table is emptied when full: many distinct callers cost bounded
    memory, and only the formatting of a key is saved)."""
    if len(table) >= MEMO_MAX:
        table.clear()
    table[key] = value
    return value


def _plan_for(build: BuildContext) -> SnapshotPlan:
    """The snapshot-wide plan, computed once per compile."""
    return build.once("throttling", lambda: snapshot_plan(build.index, build.settings.throttle_default_api_limit))


def build_throttle_stage(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    plan = _plan_for(build)
    policy = plan.by_publish.get(draft.publish_id)
    bound = bound_plugin(build.index, str(draft.api["id"]), draft.env_id, "rate_limit")
    plugin: RateLimitPlan | None = None
    if bound is not None:  # the plug-in replaces a classic policy on the same API and environment
        plugin = bound.config
        policy = replace(plugin.policy, policy_id=bound.id)
    if policy is None and plan.ceiling <= 0 and not plan.quota_by_app:
        return None
    s = build.settings
    service = ThrottleService.of(build.services)
    headers = s.throttle_headers if s.throttle_headers in ("always", "debug", "off") else "always"
    return EndpointThrottle(draft, plan, policy, service, s.throttle_key_prefix, headers, plugin).run
