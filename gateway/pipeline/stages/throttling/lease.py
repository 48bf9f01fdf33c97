"""Token leases: units of a large shared limit this node took from Redis ahead of use.

Role in the pipeline: inside the throttling service (:mod:`gateway.pipeline.stages.throttling.service`), with
the Redis store only. A call whose every check has a live lease is admitted here, without a Redis round
trip; any other call goes to Redis as before and, for the checks that have no usable lease, asks the script
to take a few more units for this node (:data:`gateway.pipeline.stages.throttling.redis_store.ADMIT_LUA`).

Why it stays exact enough (docs/throttling.md, "Token leases"):

* Only token buckets whose limit is large are leased: a lease is at most ``limit / (200 * nodes)`` units
  (``nodes`` = ``throttle_nodes``, else ``workers``) and at most ``throttle_lease_max``; below 2 units the
  key is never leased, so small limits (and every window: DAY throttles, credential quotas) are decided in
  Redis call by call, exactly as before. A call is served from leases only when *every* one of its checks
  is leasable, and only such calls ask for leases.
* A leased unit was taken from the shared bucket when it was granted, so the cluster never admits more than
  the bucket gives, give or take units spent a little after their grant (at most ``nodes * lease`` per key,
  0.5 % of the limit). What leasing can cost is the other way: units held by one node while another is
  refused (the same bound), and units dropped unspent when a lease expires or the key's limit changes (a
  lease is used only with the limit and period it was granted under). A lease lives ``period * lease *
  200 * nodes / limit`` (at least ``MIN_TTL_S``, at most one period), so a node dropping a whole lease
  each time still wastes at most 1/(200 * nodes) of the limit per period.
* One ask per key at a time: calls that find the key already being asked for go to Redis without asking.

Remaining-call headers of a leased decision show what Redis reported at the grant plus what is left of the
lease (this node's view; other nodes' use since the grant is not seen).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.pipeline.stages.throttling.store import BUCKET, Check, Decision

LEASE_SHARE = 200  # a lease is at most 1/200 of the limit, divided by the nodes sharing it
MIN_LEASE = 2  # smaller leases are not worth the inexactness: the key is decided call by call
MIN_TTL_S = 0.5  # a lease lives at least this long ...


class Leases:
    """This node's leases, by counter key. Not thread-safe by design (the event loop is the critical section)."""

    MAX_KEYS = 10_000  # leased keys kept (per-IP keys come and go); the table is emptied when full

    def __init__(self, lease_max: int, nodes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_max = max(0, int(lease_max))
        self.divisor = LEASE_SHARE * max(1, int(nodes))
        self._clock = clock
        # key -> [units left, expires at, limit, period_ms, remaining reported by Redis at the grant,
        #         top-up level (half the lease size)]
        self._held: dict[str, list[float]] = {}
        self._asking: set[str] = set()
        self.granted = 0  # units granted to this node so far
        self.spent = 0  # leased units spent (calls admitted here)

    def __len__(self) -> int:
        return len(self._held)

    def size(self, check: Check) -> int:
        """The lease to ask for on ``check`` (0: never leased)."""
        if check[3] != BUCKET:
            return 0
        n = min(self.lease_max, check[1] // self.divisor)
        return n if n >= MIN_LEASE else 0

    def ttl(self, lease: int, limit: int, period_ms: int) -> float:
        """Seconds a lease of ``lease`` units lives (see the module docstring)."""
        period = period_ms / 1000.0
        return min(period, max(MIN_TTL_S, period * lease * self.divisor / max(1, limit)))

    def take(self, checks: Sequence[Check]) -> Decision | None:
        """:meth:`take_units` as a decision."""
        remaining = self.take_units(checks)
        return None if remaining is None else Decision(True, -1, 0, remaining, "lease")

    def take_units(self, checks: Sequence[Check]) -> list[int] | None:
        """Admit the call from the leases when every check has a live one (one unit each), else None. A
        lease that has fallen below half its size (and is not being topped up) also answers None: that call
        goes to Redis and tops it up, while the calls after it keep spending what is left."""
        held = self._held
        asking = self._asking
        now = self._clock()
        remaining: list[int] = []  # one entry per lease taken from so far (undone when a later one cannot give)
        for key, limit, period, _mode, _anchor in checks:
            e = held.get(key)
            if e is not None:
                left = e[0]
                if left >= 1.0 and e[1] > now and e[2] == limit and e[3] == period and \
                        (left >= e[5] or key in asking):
                    e[0] = left - 1.0
                    remaining.append(int(e[4] + left - 1.0))
                    continue
            for taken in checks[:len(remaining)]:
                held[taken[0]][0] += 1.0
            return None
        self.spent += 1
        return remaining

    def asks(self, checks: Sequence[Check]) -> list[int] | None:
        """Lease sizes to ask for with this call's Redis decision (None: nothing to ask). Marks the keys as
        being asked for until :meth:`settle`."""
        sizes = [self.size(c) for c in checks]
        if not all(sizes):  # a call with an unleasable check always goes to Redis: leases would go unspent
            return None
        out: list[int] | None = None
        now = -1.0
        for i, check in enumerate(checks):
            key = check[0]
            if key in self._asking:
                continue
            n = sizes[i]
            e = self._held.get(key)
            if e is not None and e[0] >= 1.0 and e[0] >= e[5] and e[2] == check[1] and e[3] == check[2]:
                if now < 0.0:
                    now = self._clock()
                if e[1] > now:
                    continue  # a live lease above half its size: nothing to ask
            if out is None:
                out = [0] * len(checks)
            out[i] = n
            self._asking.add(key)
        return out

    def settle(self, checks: Sequence[Check], asked: Sequence[int], decision: Decision | None) -> None:
        """The Redis answer to a call that asked (``decision`` None: it failed or timed out). Granted units are
        added to what is left of a live lease of the same limit; the lease's life starts again."""
        granted = decision.granted if decision is not None else None
        held = self._held
        now = -1.0
        for i, n in enumerate(asked):
            if not n:
                continue
            key, limit, period, _mode, _anchor = checks[i]
            self._asking.discard(key)
            units = granted[i] if granted is not None and i < len(granted) else 0
            if units <= 0 or decision is None:
                e = held.get(key)
                if e is not None and decision is not None:
                    e[5] = 0.0  # the bucket had nothing more to lease: spend what is left before asking again
                continue
            if now < 0.0:
                now = self._clock()
            e = held.get(key)
            left = e[0] if e is not None and e[1] > now and e[2] == limit and e[3] == period else 0.0
            if e is None and len(held) >= self.MAX_KEYS:
                held.clear()
            held[key] = [left + units, now + self.ttl(n, limit, period), limit, period, float(decision.remaining[i]),
                         n / 2.0]
            self.granted += units

    def clear(self) -> None:
        """Drop every lease (Redis went down: its counters may be gone when it returns)."""
        self._held.clear()
        self._asking.clear()
