"""Token leases (gateway/pipeline/stages/throttling/lease.py): which keys are leased, when a call is served from
a lease, when it asks Redis for more, and what a lease is worth after expiry or a limit change."""

from __future__ import annotations

from gateway.pipeline.stages.throttling.lease import Leases
from gateway.pipeline.stages.throttling.store import BUCKET, WINDOW, Check, Decision

BIG = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def bucket(key: str, limit: int = BIG, period: int = 1000) -> Check:
    return (key, limit, period, BUCKET, 0)


def granted(asked: list[int], remaining: int = 500) -> Decision:
    """What the Redis store answers to a call that asked for ``asked``: all granted."""
    return Decision(True, -1, 0, [remaining] * len(asked), "redis", list(asked))


def lease_granted(leases: Leases, checks: list[Check]) -> list[int]:
    """Ask for a lease on ``checks`` and settle it as fully granted; what was asked."""
    asked = leases.asks(checks)
    assert asked is not None
    leases.settle(checks, asked, granted(asked))
    return asked


def test_only_large_bucket_limits_are_leased() -> None:
    leases = Leases(256, nodes=4)
    assert leases.size(bucket("a", BIG)) == 256  # capped at throttle_lease_max
    assert leases.size(bucket("a", 8000)) == 10  # 8000 / (200 * 4 nodes)
    assert leases.size(bucket("a", 1599)) == 0  # would be 1 unit: decided call by call
    assert leases.size(("w", BIG, 86_400_000, WINDOW, 0)) == 0  # windows (DAY, quotas) never
    assert Leases(0, nodes=1).size(bucket("a")) == 0  # throttle_lease_max 0: off


def test_a_call_is_served_from_leases_only_when_every_check_has_one() -> None:
    clock = Clock()
    leases = Leases(8, nodes=1, clock=clock)
    checks = [bucket("api"), bucket("ip:1")]
    assert leases.take(checks) is None
    asked = leases.asks(checks)
    assert asked == [8, 8]
    assert leases.asks(checks) is None  # already being asked for: no second ask
    leases.settle(checks, asked, granted(asked, remaining=900))
    d = leases.take(checks)
    assert d is not None and d.allowed and d.source == "lease" and d.remaining == [907, 907]
    assert leases.take([bucket("api"), bucket("ip:2")]) is None  # another IP has no lease yet
    assert leases.asks([bucket("api"), bucket("ip:2")]) == [0, 8]  # ask for the missing one only
    assert (leases.granted, leases.spent) == (16, 1)


def test_a_call_with_an_unleasable_check_never_asks() -> None:
    leases = Leases(8, nodes=1, clock=Clock())
    assert leases.asks([bucket("api"), bucket("small", 100)]) is None
    assert leases.asks([bucket("api"), ("q", BIG, 1000, WINDOW, 0)]) is None


def test_half_spent_lease_is_topped_up_by_one_call_while_others_keep_spending() -> None:
    clock = Clock()
    leases = Leases(8, nodes=1, clock=clock)
    checks = [bucket("api")]
    lease_granted(leases, checks)
    for _ in range(5):
        assert leases.take(checks) is not None
    assert leases.take(checks) is None  # 3 left, below half of 8: this call tops up
    top_up = leases.asks(checks)
    assert top_up == [8]
    for _ in range(3):  # while the top-up is in flight the rest of the lease is spent
        assert leases.take(checks) is not None
    assert leases.take(checks) is None  # empty now
    leases.settle(checks, top_up, granted(top_up))
    assert leases.take(checks) is not None  # 8 new units (0 were left)


def test_expired_or_changed_limit_lease_is_not_used() -> None:
    clock = Clock()
    leases = Leases(8, nodes=1, clock=clock)
    checks = [bucket("api")]
    lease_granted(leases, checks)
    assert leases.take([bucket("api", BIG // 2)]) is None  # the limit changed: the old lease is not used
    assert leases.take(checks) is not None
    clock.now += leases.ttl(8, BIG, 1000) + 0.001
    assert leases.take(checks) is None  # expired
    assert leases.asks(checks) == [8]


def test_lease_life_keeps_the_waste_under_the_share() -> None:
    leases = Leases(256, nodes=2)
    assert leases.ttl(256, BIG, 1000) == 0.5  # large per-second limit: the floor
    # an hourly limit: a lease of 256 units of 1,000,000/h lives 3600 * 256 * 400 / 1e6 s
    assert abs(leases.ttl(256, BIG, 3_600_000) - 3600 * 256 * 400 / BIG) < 1e-9
    assert leases.ttl(256, 256 * 400, 60_000) == 60.0  # never more than one period


def test_failed_or_ungranted_ask_leaves_nothing_and_can_ask_again() -> None:
    leases = Leases(8, nodes=1, clock=Clock())
    checks = [bucket("api")]
    asked = leases.asks(checks)
    assert asked is not None
    leases.settle(checks, asked, None)  # timed out / failed
    assert leases.take(checks) is None and leases.asks(checks) == [8]
    leases.settle(checks, [8], Decision(True, -1, 0, [0], "redis", [0]))  # nothing left to lease
    assert leases.take(checks) is None and len(leases) == 0


def test_table_is_bounded_and_cleared_when_redis_goes_down() -> None:
    leases = Leases(8, nodes=1, clock=Clock())
    leases.MAX_KEYS = 3
    for i in range(5):
        checks = [bucket(f"ip:{i}")]
        lease_granted(leases, checks)
        assert len(leases) <= 3
    leases.clear()
    assert len(leases) == 0 and leases.take([bucket("ip:4")]) is None


def test_a_refused_top_up_lets_the_rest_of_the_lease_be_spent() -> None:
    leases = Leases(8, nodes=1, clock=Clock())
    checks = [bucket("api")]
    lease_granted(leases, checks)
    for _ in range(5):
        assert leases.take(checks) is not None
    assert leases.take(checks) is None  # below half: this call tries to top up ...
    top_up = leases.asks(checks)
    assert top_up == [8]
    leases.settle(checks, top_up, Decision(False, 0, 10, [0], "redis"))  # ... and the bucket is empty
    for _ in range(3):  # the 3 units this node holds are spent, not left to expire while calls are refused
        assert leases.take(checks) is not None
    assert leases.take(checks) is None
    assert leases.asks(checks) == [8]  # empty: the next call asks again


def test_fallback_shadow_counts_leased_units_at_the_grant() -> None:
    from gateway.pipeline.stages.throttling.store import LocalStore

    now = [1000.0]
    store = LocalStore(clock=lambda: now[0])
    hour = 3_600_000
    checks = [("api", 100, hour, BUCKET, 0), ("day", 100, 86_400_000, WINDOW, 0)]
    store.record(checks)  # one call
    store.record(checks, [1 + 8, 1])  # a call that was granted a lease of 8 on the bucket
    assert round(store.used(checks[0])) == 10 and store.used(checks[1]) == 2
    store.record(checks, [500, 0])  # capped at the limit; 0 leaves the check alone
    assert round(store.used(checks[0])) == 100 and store.used(checks[1]) == 2


def test_a_call_one_lease_cannot_serve_takes_nothing_from_the_others() -> None:
    clock = Clock()
    leases = Leases(256, nodes=1, clock=clock)
    a, b = bucket("a"), bucket("b")
    lease_granted(leases, [a, b])
    held = leases._held
    left = (held["a"][0], held["b"][0])
    served = leases.take([a, b])
    assert served is not None and served.remaining == [int(held["a"][4] + held["a"][0]),
                                                        int(held["b"][4] + held["b"][0])]
    assert (held["a"][0], held["b"][0]) == (left[0] - 1, left[1] - 1)
    assert leases.take([a, bucket("c")]) is None  # no lease on "c": the unit taken from "a" is given back
    assert leases.take([a, b, bucket("c")]) is None
    assert (held["a"][0], held["b"][0]) == (left[0] - 1, left[1] - 1)
    clock.now += 10.0  # expired: nothing is served, nothing is taken
    assert leases.take([a, b]) is None
    assert (held["a"][0], held["b"][0]) == (left[0] - 1, left[1] - 1)
