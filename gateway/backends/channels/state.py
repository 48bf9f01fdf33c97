"""Per-member health state of VPC channel members, shared across config swaps.

Role in the pipeline: read on every member selection (``usable``), written by passive reports from the
HTTP target after each attempt and by the active health checker. One :class:`MemberState` exists per
``(channel id, host, port)`` in the long-lived :class:`gateway.backends.channels.health.HealthManager`, so a config
push that keeps a member keeps its health, its in-flight connection count and its failure streaks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

MemberKey = tuple[str, str, int]  # (channel id, host lower-case, port)


@dataclass(frozen=True, slots=True)
class HealthSpec:
    """One member's active check, compiled from ``vpc_health_config`` (hashable: compared on swaps)."""

    protocol: str  # TCP | HTTP | HTTPS
    host: str
    port: int
    path: str
    method: str
    interval_s: float
    timeout_s: float
    rise: int  # threshold_normal: consecutive successes to become healthy
    fall: int  # threshold_abnormal: consecutive failures to become unhealthy
    codes: frozenset[int]


class MemberState:
    """Mutable health of one member; all updates happen on the event loop."""

    __slots__ = (
        "active", "checks_failed", "checks_ok", "ejected_until", "ejections", "fail_streak", "healthy", "key",
        "ok_streak", "passive_fails",
    )

    def __init__(self, key: MemberKey) -> None:
        self.key = key
        self.healthy = True  # members start healthy (nothing is known against them yet)
        self.ok_streak = 0
        self.fail_streak = 0
        self.passive_fails = 0
        self.ejected_until = 0.0
        self.active = 0  # requests in flight (weighted least connections)
        self.checks_ok = 0
        self.checks_failed = 0
        self.ejections = 0

    def usable(self, now: float) -> bool:
        return self.healthy and self.ejected_until <= now

    def record_check(self, ok: bool, rise: int, fall: int) -> None:
        """Outcome of one active check (thresholds from the channel's health config)."""
        if ok:
            self.checks_ok += 1
            self.fail_streak = 0
            self.ok_streak += 1
            if not self.healthy and self.ok_streak >= rise:
                self.healthy = True
                self.passive_fails = 0
                self.ejected_until = 0.0
        else:
            self.checks_failed += 1
            self.ok_streak = 0
            self.fail_streak += 1
            if self.healthy and self.fail_streak >= fall:
                self.healthy = False

    def record_passive(self, ok: bool, actively_checked: bool, threshold: int, eject_s: float) -> None:
        """Outcome of a forwarded request: connection failures eject the member.

        With active checks the member is marked unhealthy until the checker sees ``rise`` successes;
        without them it is left out for ``eject_s`` seconds and then tried again.
        """
        if ok:
            self.passive_fails = 0
            return
        self.passive_fails += 1
        if self.passive_fails < threshold:
            return
        self.passive_fails = 0
        self.ejections += 1
        if actively_checked:
            self.healthy = False
            self.ok_streak = 0
        else:
            self.ejected_until = time.monotonic() + eject_s

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "channel_id": self.key[0], "host": self.key[1], "port": self.key[2], "healthy": self.usable(now),
            "active": self.active, "checks_ok": self.checks_ok, "checks_failed": self.checks_failed,
            "ejections": self.ejections,
            "ejected_for_s": round(max(0.0, self.ejected_until - now), 3),
        }
