"""The registry of request stages and the order they run in.

Role in the pipeline: at config-load time the compiler asks every registered *stage builder* whether
it has work for one published API (an API in one environment). A builder returns an async stage
``stage(ctx) -> None`` (raising :class:`gateway.core.errors.GatewayError` to end the request) or ``None``
when it has nothing to do there, so an API without ACLs pays nothing for ACLs. The resulting tuple,
sorted by the ``order`` numbers below (spec 02 §11.2), is the endpoint's stage list; the request
handler just awaits each in turn.

Orders (lower runs first):
    10 API IP ACL · 20 authentication · 30 app checks (status, app ACL, authorization)
    40 third-party auth · 50 account (DOMAIN) ACL · 60 request parameter validation
    70 throttling and quotas · (backend selection) · 90 backend authorizer (per backend plan)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.runtime import BuildContext, EndpointDraft

Stage = Callable[["RequestContext"], Awaitable[None]]
StageBuilder = Callable[["EndpointDraft", "BuildContext"], Stage | None]

ORDER_IP_ACL = 10
ORDER_AUTH = 20
ORDER_APP_CHECKS = 30
ORDER_THIRD_AUTH = 40
ORDER_DOMAIN_ACL = 50
ORDER_VALIDATION = 60
ORDER_THROTTLE = 70


@dataclass(frozen=True)
class Registered:
    order: int
    name: str
    builder: StageBuilder


_REGISTRY: list[Registered] = []


def register_stage(order: int, name: str) -> Callable[[StageBuilder], StageBuilder]:
    """Decorator: register ``builder`` to run at ``order`` for every endpoint it returns a stage for."""

    def deco(builder: StageBuilder) -> StageBuilder:
        _REGISTRY[:] = [r for r in _REGISTRY if r.name != name]
        _REGISTRY.append(Registered(order, name, builder))
        _REGISTRY.sort(key=lambda r: r.order)
        return builder

    return deco


def build_stages(draft: EndpointDraft, build: BuildContext) -> tuple[tuple[str, Stage], ...]:
    out: list[tuple[str, Stage]] = []
    for reg in _REGISTRY:
        stage = reg.builder(draft, build)
        if stage is not None:
            out.append((reg.name, stage))
    return tuple(out)


def registered_names() -> list[str]:
    return [r.name for r in _REGISTRY]

