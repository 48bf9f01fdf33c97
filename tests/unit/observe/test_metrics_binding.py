"""Per-request metrics (gateway.observe.metrics): the label binding found by the compiled endpoint, forgotten on
a snapshot swap; a MOCK answer (no backend time) counted in the total and the overhead histograms alike."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gateway.core.settings import Settings
from gateway.model.services import Services
from gateway.observe import metrics


class Ep:
    """A compiled endpoint's label fields (hashable by identity, like gateway.model.runtime.Endpoint)."""

    def __init__(self) -> None:
        self.group_id, self.api_id, self.api_name, self.env_name = "g", "a", "api_a", "RELEASE"


def ctx_for(ep: Any, started: float, backend_ms: float | None = None) -> Any:
    return SimpleNamespace(endpoint=ep, group=None, env_name="RELEASE", status=200, started=started,
                           backend_ms=backend_ms, backend_body_ms=0.0, retries=0, error=None, extras={})


def test_endpoint_binding_and_swap() -> None:
    from time import perf_counter

    services = Services(Settings())
    metrics.setup(services)
    m = services.extras[metrics.EXTRAS_KEY]
    ep = Ep()
    m.observe(ctx_for(ep, perf_counter()))
    m.observe(ctx_for(ep, perf_counter() - 0.002))
    bound = m._bound[("g", "a", "api_a", "RELEASE")]
    assert m._by_endpoint[ep] is bound and bound.by_class == {2: 2}
    assert sum(bound.total.counts) == sum(bound.overhead.counts) == 2 and bound.total.total == bound.overhead.total
    for hook in services.swap_hooks:
        hook(None)  # type: ignore[arg-type]
    assert not m._by_endpoint
    rebuilt = Ep()  # the same API compiled again: same labels
    m.observe(ctx_for(rebuilt, perf_counter(), backend_ms=1.0))
    assert m._by_endpoint[rebuilt] is bound and bound.by_class == {2: 3}
    assert sum(bound.backend.counts) == 1 and sum(bound.overhead.counts) == 3
    rendered = metrics.render(services)
    assert rendered is not None
    line = next(x for x in rendered[0].decode().splitlines() if x.startswith("apig_requests_total{"))
    assert 'api="a"' in line and line.endswith(" 3.0")


def test_a_forwarded_request_lands_in_the_buckets_of_its_three_times() -> None:
    """Total, backend and overhead (total minus backend head and body time) each in the first bucket whose
    bound is at least the value; an overhead that rounds below zero counts as zero."""
    from time import perf_counter

    services = Services(Settings())
    metrics.setup(services)
    m = services.extras[metrics.EXTRAS_KEY]
    ep = Ep()
    ctx = ctx_for(ep, perf_counter() - 0.040, backend_ms=30.0)  # 40 ms in all, 30 ms backend head
    ctx.backend_body_ms = 3.0
    m.observe(ctx)
    bound = m._by_endpoint[ep]
    buckets = metrics.LATENCY_BUCKETS
    assert bound.total.counts[buckets.index(0.05)] == 1  # 40 ms: the 50 ms bucket
    assert bound.backend.counts[buckets.index(0.05)] == 1 and bound.backend.total == 0.03
    assert bound.overhead.counts[buckets.index(0.01)] == 1  # about 7 ms: the 10 ms bucket
    assert 0.006 < bound.overhead.total < 0.02
    m.observe(ctx_for(ep, perf_counter(), backend_ms=5.0))  # backend time above the total (clock skew)
    assert bound.overhead.counts[0] == 1 and bound.backend.counts[buckets.index(0.005)] == 1
    assert bound.total.counts[0] == 1 and bound.overhead.total < 0.02
