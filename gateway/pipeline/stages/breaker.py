"""The ``breaker`` plug-in (seed 002 §3.27.1 BreakerContent; spec 02 §8.6): a circuit breaker per publication.

Role in the pipeline: steps 13 and 17 of spec 02 §11.2, "just before forwarding + after the backend answers"
(§8.2). The last plan stage of the chain (:func:`apply_breaker`): every backend plan (default and policy
backends) of a bound publication gets its target wrapped in a :class:`BreakerTarget` that shares one
:class:`CircuitState`:

* closed: forward; record the outcome in a sliding window of ``time_window`` one-second buckets; trip to
  open when ``breaker_mode`` ``counter`` sees ≥ ``unhealthy_threshold`` failures in the window, or
  ``percentage`` sees ≥ ``min_call_threshold`` calls of which ≥ ``unhealthy_percentage`` % failed;
* open: answer with ``downgrade_default`` (a mock answer) or DEFAULT_5XX 503 ``APIG.0202`` without calling
  the backend, for ``open_breaker_time`` seconds;
* half-open: one trial request is forwarded (another one if the trial has not reported within
  ``open_breaker_time``); success closes the circuit with a fresh window, failure re-opens it.

Failure = ``breaker_type: timeout``: the backend timed out (BACKEND_TIMEOUT). ``condition``: the response
status (the backend's, or 502/504 the gateway generated for an unreachable / slow backend) matches
``unhealthy_condition``: a list of codes ``"500,502,503"``, ``status >= 500`` (``> >= < <= == !=``) or
``status in 500,503``.

State lives in ``services.extras`` keyed by plug-in id (+ API and environment for ``scope: basic``; one
breaker for every bound API with ``scope: share``), so a config swap does not reset an open circuit.
``downgrade_parameters`` / ``downgrade_rules`` (conditional downgrades) are rejected at load: not supported by
this build yet.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.backends.mock import MockTarget
from gateway.core.errors import GatewayError, circuit_open
from gateway.model.plan import BackendPlan, BackendRequest
from gateway.snapshot.plugins import bound_plugin
from gateway.snapshot.schema import Field, I, L, O, Obj, S, check
from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.services import Services
    from gateway.pipeline.spec import BuildContext, EndpointDraft, PlanDraft

CONDITION = Obj({
    "breaker_type": S(True, enum=("timeout", "condition")),
    "breaker_mode": S(enum=("counter", "percentage")),
    "unhealthy_condition": S(max_len=1024),
    "unhealthy_threshold": I(min=1, max=2147483647),
    "min_call_threshold": I(min=1, max=2147483647),
    "unhealthy_percentage": I(min=1, max=100),
    "time_window": I(True, min=1, max=3600),
    "open_breaker_time": I(True, min=1, max=3600),
})
MOCK_HEADER = Obj({"key": S(True, min_len=1, max_len=128), "value": S(True, max_len=1024)})
MOCK_INFO = Obj({"status_code": I(min=200, max=599), "result_content": S(max_len=65535),
                 "headers": L(MOCK_HEADER, max_len=10)})
DOWNGRADE = Obj({
    "type": S(True, enum=("mock",)),
    "mock_info": O(MOCK_INFO),
    # the spec's flat shape (02 §8.6 PROPOSAL): {type: mock, status, body, headers}
    "status": I(min=200, max=599),
    "body": S(max_len=65535),
    "headers": L(MOCK_HEADER, max_len=10),
}, output_only=frozenset({"func_info", "http_info", "http_vpc_info", "passthrough_infos"}))
CONTENT = Obj({
    "breaker_condition": O(CONDITION, True),
    "downgrade_default": Field("any"),
    "downgrade_parameters": Field("any"),
    "downgrade_rules": Field("any"),
    "scope": S(enum=("basic", "share")),
})
_STATE_KEY = "plugins.breaker"
_CMP_RX = re.compile(r"\s*(?:status|ret_code|\$context\.statusCode)\s*(>=|<=|==|!=|>|<|=)\s*(\d{3})\s*")
_IN_RX = re.compile(r"\s*(?:status|ret_code|\$context\.statusCode)\s+in\s+([\d,\s]+)")
_LIST_RX = re.compile(r"\s*\d{3}(\s*,\s*\d{3})*\s*")
_OPS: dict[str, Callable[[int, int], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
    "==": lambda a, b: a == b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def compile_condition(text: str) -> Callable[[int], bool] | None:
    """``"500,502"`` / ``status >= 500`` / ``status in 500,503`` -> predicate on a status code."""
    if _LIST_RX.fullmatch(text):
        codes = frozenset(int(c) for c in text.split(","))
        return codes.__contains__
    m = _IN_RX.fullmatch(text)
    if m and _LIST_RX.fullmatch(m.group(1)):
        codes = frozenset(int(c) for c in m.group(1).split(","))
        return codes.__contains__
    m = _CMP_RX.fullmatch(text)
    if m:
        op, bound = _OPS[m.group(1)], int(m.group(2))
        return lambda status: op(status, bound)
    return None


class BreakerConfig:
    __slots__ = ("downgrade", "fails_on", "min_calls", "mode", "open_s", "percentage", "scope", "threshold",
                 "timeout_only", "window_s")

    def __init__(self, cond: dict[str, Any], fails_on: Callable[[int], bool] | None,
                 downgrade: MockTarget | None, scope: str) -> None:
        self.timeout_only = cond["breaker_type"] == "timeout"
        self.fails_on = fails_on
        self.mode = cond.get("breaker_mode") or "counter"
        self.threshold = int(cond.get("unhealthy_threshold") or 0)
        self.min_calls = int(cond.get("min_call_threshold") or 1)
        self.percentage = int(cond.get("unhealthy_percentage") or 0)
        self.window_s = int(cond["time_window"])
        self.open_s = float(cond["open_breaker_time"])
        self.downgrade = downgrade
        self.scope = scope

    def is_failure(self, status: int, error_type: str | None) -> bool:
        if self.timeout_only:
            return error_type == "BACKEND_TIMEOUT"
        return self.fails_on is not None and self.fails_on(status)


def validate(content: dict[str, Any], path: str, problems: list[str], index: Index) -> BreakerConfig | None:
    before = len(problems)
    check(CONTENT, content, path, problems)
    for key in ("downgrade_parameters", "downgrade_rules"):
        if content.get(key):
            problems.append(f"{path}.{key}: conditional downgrade rules are not supported by this build yet")
    if len(problems) > before:
        return None
    cond = content["breaker_condition"]
    cpath = f"{path}.breaker_condition"
    mode = cond.get("breaker_mode") or "counter"
    if mode == "counter" and cond.get("unhealthy_threshold") is None:
        problems.append(f"{cpath}.unhealthy_threshold: is required when breaker_mode is counter")
    if mode == "percentage":
        for key in ("min_call_threshold", "unhealthy_percentage"):
            if cond.get(key) is None:
                problems.append(f"{cpath}.{key}: is required when breaker_mode is percentage")
    fails_on = None
    if cond["breaker_type"] == "condition":
        text = str(cond.get("unhealthy_condition") or "")
        fails_on = compile_condition(text)
        if fails_on is None:
            problems.append(f"{cpath}.unhealthy_condition: {text!r} is not a status condition "
                            f"(\"500,502\", \"status >= 500\" or \"status in 500,503\")")
    downgrade = _downgrade(content.get("downgrade_default"), f"{path}.downgrade_default", problems)
    if len(problems) > before:
        return None
    return BreakerConfig(cond, fails_on, downgrade, str(content.get("scope") or "basic"))


def _downgrade(raw: Any, path: str, problems: list[str]) -> MockTarget | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be an object")
        return None
    if raw.get("type") not in (None, "mock") or any(raw.get(k) for k in DOWNGRADE.output_only):
        problems.append(f"{path}.type: only mock downgrades are supported by this build")
        return None
    before = len(problems)
    check(DOWNGRADE, raw, path, problems)
    if len(problems) > before:
        return None
    info = dict(raw.get("mock_info") or {})
    if raw.get("status") is not None:
        info["status_code"] = raw["status"]
    if raw.get("body") is not None:
        info["result_content"] = raw["body"]
    if raw.get("headers") is not None:
        info["headers"] = raw["headers"]
    return MockTarget(info)


class CircuitState:
    """Long-lived (survives swaps): the sliding window and the open/half-open timestamps."""

    __slots__ = ("buckets", "calls", "failures", "opened_at", "state", "trial_deadline")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()  # [second, calls, failures]
        self.calls = 0
        self.failures = 0
        self.state = "closed"
        self.opened_at = 0.0
        self.trial_deadline = 0.0

    def reset(self) -> None:
        self.buckets.clear()
        self.calls = self.failures = 0

    def admit(self, cfg: BreakerConfig, now: float) -> str | None:
        """"forward" / "trial", or None when the circuit is open."""
        if self.state == "closed":
            return "forward"
        if now - self.opened_at < cfg.open_s:
            return None
        if self.state == "open" or now >= self.trial_deadline:
            self.state = "half_open"
            self.trial_deadline = now + cfg.open_s
            return "trial"
        return None

    def record(self, cfg: BreakerConfig, failed: bool, trial: bool, now: float) -> None:
        if trial or self.state == "half_open":
            if not trial:
                return  # a late answer from before the circuit opened says nothing about recovery
            if failed:
                self._open(now)
            else:
                self.state = "closed"
                self.reset()
            return
        if self.state != "closed":
            return
        second = int(now)
        horizon = second - cfg.window_s
        b = self.buckets
        while b and b[0][0] <= horizon:
            old = b.popleft()
            self.calls -= old[1]
            self.failures -= old[2]
        if not b or b[-1][0] != second:
            b.append([second, 0, 0])
        last = b[-1]
        last[1] += 1
        self.calls += 1
        if failed:
            last[2] += 1
            self.failures += 1
        if cfg.mode == "counter":
            tripped = self.failures >= cfg.threshold
        else:
            tripped = self.calls >= cfg.min_calls and self.failures * 100 >= cfg.percentage * self.calls
        if tripped:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
        self.reset()


class BreakerTarget:
    """Wraps a plan's target: admission before forwarding, outcome after the backend answered."""

    __slots__ = ("cfg", "inner", "kind", "state")

    def __init__(self, inner: Any, cfg: BreakerConfig, state: CircuitState) -> None:
        self.inner = inner
        self.kind = inner.kind  # the pipeline skips building a backend request for MOCK
        self.cfg = cfg
        self.state = state

    def __getattr__(self, name: str) -> Any:  # e.g. an HttpTarget's upstream, for admin/metrics code
        return getattr(self.inner, name)

    async def invoke(self, ctx: RequestContext, breq: BackendRequest | None, plan: BackendPlan
                     ) -> web.StreamResponse:
        cfg, st = self.cfg, self.state
        decision = st.admit(cfg, time.monotonic())
        if decision is None:
            ctx.extras["breaker"] = "open"
            if cfg.downgrade is not None:
                return await cfg.downgrade.invoke(ctx, breq, plan)
            raise circuit_open()
        trial = decision == "trial"
        try:
            resp = await self.inner.invoke(ctx, breq, plan)
        except GatewayError as err:
            st.record(cfg, cfg.is_failure(err.status, err.error_type), trial, time.monotonic())
            raise
        except BaseException:
            if trial:  # cancelled / crashed trial: let the next request try again
                st.trial_deadline = 0.0
            raise
        st.record(cfg, cfg.is_failure(resp.status, None), trial, time.monotonic())
        return resp


def _states(services: Services) -> dict[tuple[str, ...], CircuitState]:
    states: dict[tuple[str, ...], CircuitState] | None = services.extras.get(_STATE_KEY)
    if states is None:
        states = services.extras[_STATE_KEY] = {}
    return states


def apply_breaker(plan: PlanDraft, backend: dict[str, Any], draft: EndpointDraft, build: BuildContext,
                  path: str) -> None:
    """Wrap the finished target of every backend plan of a publication with a bound breaker plug-in."""
    bp = bound_plugin(build.index, str(draft.api["id"]), draft.env_id, "breaker")
    if bp is None:
        return
    cfg: BreakerConfig = bp.config
    key = (bp.id,) if cfg.scope == "share" else (bp.id, str(draft.api["id"]), draft.env_id)
    states = _states(build.services)
    state = states.get(key)
    if state is None:
        state = states[key] = CircuitState()
    plan.target = BreakerTarget(plan.target, cfg, state)
