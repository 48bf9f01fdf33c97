"""The in-process store: the in-place fast path decides exactly as the check-all-then-take algorithm."""

from __future__ import annotations

import random

from gateway.pipeline.stages.throttling.store import BUCKET, WINDOW, Check, Decision, LocalStore


class ExactStore(LocalStore):
    """The reference: every call through the two-phase algorithm (check every limit, then take from each)."""

    def admit(self, checks: list[Check]) -> Decision:  # type: ignore[override]
        now = self._clock() * 1000.0
        if now >= self._next_sweep:
            self._sweep(now)
        return self._admit_exact(checks, now)


def test_fast_path_matches_the_exact_algorithm_call_by_call() -> None:
    rng = random.Random(7)
    now = [1000.0]
    fast, exact = LocalStore(clock=lambda: now[0]), ExactStore(clock=lambda: now[0])
    pool: list[Check] = [("app", 5, 1000, BUCKET, 0), ("ip", 3, 2000, BUCKET, 0), ("api", 8, 1000, BUCKET, 0),
                         ("one", 1, 500, BUCKET, 0), ("day", 6, 3000, WINDOW, 0), ("first", 4, 1500, WINDOW, -1)]
    refused = 0
    for _ in range(3000):
        now[0] += rng.choice((0.0, 0.0, 0.05, 0.2, 1.3))  # seconds: bursts, then pauses that refill buckets
        checks = rng.sample(pool, rng.randint(1, 4))
        a, b = fast.admit(checks), exact.admit(checks)
        assert (a.allowed, a.failed, a.retry_ms, a.remaining) == (b.allowed, b.failed, b.retry_ms, b.remaining)
        refused += not a.allowed
        for c in pool:  # a refused call took nothing: the levels stay the same on both
            assert abs(fast.used(c) - exact.used(c)) < 1e-6
    assert 300 < refused < 2700  # both outcomes were exercised


def test_a_refused_call_takes_nothing_from_the_buckets_checked_before() -> None:
    now = [50.0]
    store = LocalStore(clock=lambda: now[0])
    roomy, tight = ("roomy", 10, 1000, BUCKET, 0), ("tight", 1, 60_000, BUCKET, 0)
    assert store.admit([roomy, tight]).allowed
    d = store.admit([roomy, tight])
    assert not d.allowed and d.failed == 1 and d.remaining == [9, 0]  # what is left now
    assert round(store.used(roomy), 6) == 1.0  # only the admitted call counted


def test_take_answers_the_calls_left_or_takes_nothing() -> None:
    now = [50.0]
    store = LocalStore(clock=lambda: now[0])
    a, b, day = ("a", 5, 1000, BUCKET, 0), ("b", 1, 60_000, BUCKET, 0), ("day", 9, 86_400_000, WINDOW, 0)
    assert store.take([a, b]) == [4, 0]
    assert store.take([a, b]) is None  # "b" is empty: "a" gives its unit back
    assert round(store.used(a), 6) == 1.0
    assert store.take([a, day]) is None  # a window counter: admit decides
    assert round(store.used(a), 6) == 1.0 and store.used(day) == 0
    d = store.admit_exact([a, day])
    assert d.allowed and d.remaining == [3, 8]


async def test_the_service_fast_decision_is_a_list_when_admitted() -> None:
    from gateway.core.settings import load_settings
    from gateway.model.services import Services
    from gateway.pipeline.stages.throttling.service import ThrottleService

    svc = ThrottleService(Services(load_settings({}, environ={})))
    check = ("k", 2, 60_000, BUCKET, 0)
    assert svc.decide_fast([check]) == [1]
    assert svc.decide_fast([check]) == [0]
    refused = svc.decide_fast([check])
    assert isinstance(refused, Decision) and not refused.allowed and refused.failed == 0
    assert (svc.stats["decisions_local"], svc.stats["admitted"], svc.stats["rejected"]) == (3, 2, 1)
