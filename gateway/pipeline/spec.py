"""What a pipeline stage is, and what it is given at compile time.

Role in the pipeline: config-load time. The compiler (:mod:`gateway.compiler`) walks the ordered lists of
:mod:`gateway.pipeline.chain` once per publication (an API in one environment) and asks each entry whether
it has work there. An endpoint stage's builder returns an async stage ``stage(ctx) -> None`` (raising
:class:`gateway.core.errors.GatewayError` to end the request) or ``None`` when it has nothing to do, so an
API without ACLs pays nothing for ACLs. A plan stage edits a :class:`PlanDraft` (a backend plan still being
built: add a stage, a request hook, wrap the target) before the compiler freezes it into a
:class:`gateway.model.plan.BackendPlan`.

Builders get an :class:`EndpointDraft` (the publication) and a :class:`BuildContext` (the whole validated
snapshot, the long-lived services, the problem list and the one per-compile memo, :meth:`BuildContext.once`).
Nothing here is reachable from the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.model.plan import MappingPlan, RequestHook, ResponseHook, Stage, Target, UriTemplate
from gateway.snapshot.validate import ENV_VAR_RX, Check, Index, Schema

if TYPE_CHECKING:
    from gateway.core.settings import Settings
    from gateway.model.context import RequestContext
    from gateway.model.runtime import CorsHook, PreRoute
    from gateway.model.services import Services

T = TypeVar("T")


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace every ``#name#`` with its value (validation guarantees the value exists)."""
    if "#" not in text:
        return text
    return ENV_VAR_RX.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


@dataclass(slots=True)
class EndpointDraft:
    """What a stage builder needs to know about the publication it is compiling."""

    api: dict[str, Any]
    path: str  # "apis[3]" for problem messages
    group: dict[str, Any]
    env_id: str
    env_name: str
    publish_id: str
    variables: dict[str, str]


@dataclass
class BuildContext:
    """Compile-time access to the whole snapshot and the long-lived services."""

    index: Index
    services: Services
    problems: list[str] = field(default_factory=list)
    # THE per-compile memo: state derived once per snapshot and shared by all its publications
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def once(self, key: str, factory: Callable[[], T]) -> T:
        """``factory()`` the first time ``key`` is asked for in this compile, the same value afterwards."""
        if key in self.memo:
            return self.memo[key]  # type: ignore[no-any-return,unused-ignore]
        value = self.memo[key] = factory()
        return value


@dataclass(slots=True)
class PlanDraft:
    """A backend plan while the plan stages edit it; the compiler freezes it into a BackendPlan."""

    name: str  # "default" or the policy name
    target: Target
    mapping: MappingPlan
    uri: UriTemplate | None
    method: str
    stages: list[tuple[str, Stage]] = field(default_factory=list)
    request_hooks: list[RequestHook] = field(default_factory=list)


StageBuilder = Callable[[EndpointDraft, BuildContext], "Stage | None"]
# (plan, backend record, draft, build, problem path) -> None: edits the plan draft
PlanBuilder = Callable[[PlanDraft, dict[str, Any], EndpointDraft, BuildContext, str], None]
ResponseBuilder = Callable[[EndpointDraft, BuildContext], "ResponseHook | None"]
CorsBuilder = Callable[[EndpointDraft, BuildContext], "CorsHook | None"]
PreRouteBuilder = Callable[[BuildContext], "PreRoute | None"]
LogPluginBuilder = Callable[[EndpointDraft, BuildContext], "tuple[str, Any] | None"]
# backend-policy conditions: (policy record, draft, build, problem path) -> matcher
PolicyCompiler = Callable[[dict[str, Any], EndpointDraft, BuildContext, str], Callable[["RequestContext"], bool]]


@dataclass(frozen=True, slots=True)
class StageSpec:
    """An endpoint stage: its name (metrics, tests, docs) and its builder."""

    name: str
    compile: StageBuilder


@dataclass(frozen=True, slots=True)
class PlanStageSpec:
    """A backend-plan stage: runs once per backend plan (default and every policy backend)."""

    name: str
    apply: PlanBuilder


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """A response stage: a hook run on every response of the endpoint just before its head is sent."""

    name: str
    compile: ResponseBuilder


@dataclass(frozen=True, slots=True)
class Chain:
    """The whole pipeline as data: what the compiler walks, in order (see :mod:`gateway.pipeline.chain`)."""

    schema: Schema  # snapshot collections (core + the stages' own) and every stage's validation check
    pre_route: tuple[PreRouteBuilder, ...]  # gateway-owned paths answered before routing
    cors: CorsBuilder  # the endpoint's CORS handler (preflight answer + headers), before any stage
    endpoint: tuple[StageSpec, ...]  # endpoint stages, in the order they run
    select: PolicyCompiler  # backend selection: backend-policy conditions
    plan: tuple[PlanStageSpec, ...]  # backend-plan stages, in the order they are applied
    response: tuple[ResponseSpec, ...]  # response hooks, in the order they run
    log: LogPluginBuilder | None = None  # after the response: a bound logging plug-in (kafka_log)

    def names(self) -> list[str]:
        return [s.name for s in self.endpoint]

    def with_stage(self, stage: StageSpec, *, after: str) -> Chain:
        """A copy with ``stage`` inserted after the endpoint stage named ``after`` (tests, embedders)."""
        names = self.names()
        if after not in names:
            raise KeyError(after)
        i = names.index(after) + 1
        return replace(self, endpoint=(*self.endpoint[:i], stage, *self.endpoint[i:]))


def merge_collections(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """Core collections refined by the stages' own (a later part replaces an earlier entry in place)."""
    out: dict[str, Any] = {}
    for part in parts:
        out.update(part)
    return out


__all__ = ["BuildContext", "Chain", "Check", "EndpointDraft", "PlanDraft", "PlanStageSpec", "ResponseSpec",
           "Stage", "StageSpec", "merge_collections", "substitute"]
