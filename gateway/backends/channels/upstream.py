"""Load-balanced upstream over the members of a VPC channel (built by :mod:`gateway.compiler.targets`).

Role in the pipeline: step 17 of spec 02 §11.2, member selection. :class:`ChannelUpstream` implements the
``Upstream`` protocol of :mod:`gateway.backends.http` (``choose`` / ``report`` / ``host_header`` /
``release``), so the HTTP target's timeouts, retries and streaming apply unchanged.

Selection (per attempt): usable primaries (enabled, healthy, not ejected) minus members this request already
tried; when no primary is usable, the usable backups (``is_backup``); when every usable member was tried,
the usable ones again; when none is usable, BACKEND_UNAVAILABLE APIG.0610 "No backend available.".
Among the candidates, ``balance_strategy``:

1. weighted round robin, smooth (nginx's algorithm: no bursts to the heaviest member);
2. weighted least connections: fewest in-flight requests per unit of weight, ties in rotation;
3. source-IP hash and 4. URI hash: weighted rendezvous hashing of the client IP / the request path, so a key
   sticks to its member and only the keys of a member that goes away move (hashes are stable across
   processes and nodes: blake2b, not Python's salted ``hash``).

Everything here is compiled once per snapshot; a request does O(members) work with no allocation beyond
the candidate list.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import TYPE_CHECKING, Any

from gateway.backends.channels.health import HealthManager, manager_for
from gateway.backends.channels.health import Member as CheckedMember
from gateway.backends.channels.schema import health_timeout, parse_http_codes
from gateway.backends.channels.state import HealthSpec, MemberState
from gateway.backends.http import DEFAULT_PORTS, HttpTarget, Member
from gateway.core.errors import no_backend

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.model.context import RequestContext
    from gateway.model.runtime import Runtime
    from gateway.model.services import Services
    from gateway.snapshot.validate import Index

WRR, WLC, SOURCE_HASH, URI_HASH = 1, 2, 3, 4
_U64 = float(2**64)


class ChannelMember:
    """One member as compiled from a snapshot (its mutable health lives in ``state``)."""

    __slots__ = ("backup", "health", "host", "host_header", "idx", "port", "seed", "state", "weight")

    def __init__(self, idx: int, host: str, port: int, weight: int, backup: bool, state: MemberState,
                 health: HealthSpec | None, scheme: str) -> None:
        self.idx = idx
        self.host = host
        self.port = port
        self.weight = weight
        self.backup = backup
        self.state = state
        self.health = health
        shown = f"[{host}]" if ":" in host else host
        self.host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
        self.seed = key_hash(f"{host}:{port}")

    def __repr__(self) -> str:
        return f"ChannelMember({self.host}:{self.port} w={self.weight}{' backup' if self.backup else ''})"


_M64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit value from any 64-bit input."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _score(h: int, member: ChannelMember) -> float:
    """Weighted rendezvous score: -w / ln(u), u uniform in (0, 1) from a stable hash of (key, member)."""
    u = (_mix64(h ^ member.seed) + 1) / (_U64 + 1)
    return -member.weight / math.log(u)


class ChannelUpstream:
    __slots__ = ("_cw", "_rr", "actively_checked", "all_members", "backups", "channel_id", "eject_s", "manager",
                 "passive_threshold", "primaries", "proxy_host", "strategy")

    def __init__(self, manager: HealthManager, channel_id: str, members: list[ChannelMember], strategy: int,
                 proxy_host: str | None, actively_checked: bool, passive_threshold: int, eject_s: float) -> None:
        self.manager = manager
        self.channel_id = channel_id
        self.all_members = members
        self.primaries = [m for m in members if not m.backup]
        self.backups = [m for m in members if m.backup]
        self.strategy = strategy
        self.proxy_host = proxy_host
        self.actively_checked = actively_checked
        self.passive_threshold = passive_threshold
        self.eject_s = eject_s
        self._cw = [0] * len(members)  # smooth WRR current weights, by member index
        self._rr = 0

    # --- Upstream protocol ------------------------------------------------------------------------
    def choose(self, ctx: RequestContext, tried: list[Member]) -> Member:
        self.manager.ensure_started()
        now = time.monotonic()
        pool = [m for m in self.primaries if m.state.usable(now)]
        if not pool:
            pool = [m for m in self.backups if m.state.usable(now)]
            if not pool:
                raise no_backend()
        candidates = [m for m in pool if m not in tried] if tried else pool
        if not candidates:
            candidates = pool
        member = self._pick(ctx, candidates) if len(candidates) > 1 else candidates[0]
        member.state.active += 1
        return member

    def report(self, member: Member, ok: bool) -> None:
        assert isinstance(member, ChannelMember)
        member.state.record_passive(ok, self.actively_checked, self.passive_threshold, self.eject_s)

    def host_header(self, member: Member) -> str:
        if self.proxy_host:
            return self.proxy_host
        assert isinstance(member, ChannelMember)
        return member.host_header

    def release(self, member: Member) -> None:
        assert isinstance(member, ChannelMember)
        if member.state.active > 0:
            member.state.active -= 1

    # --- strategies -------------------------------------------------------------------------------
    def _pick(self, ctx: RequestContext, candidates: list[ChannelMember]) -> ChannelMember:
        if self.strategy == WRR:
            cw = self._cw
            total = 0
            best = candidates[0]
            for m in candidates:
                cw[m.idx] += m.weight
                total += m.weight
                if cw[m.idx] > cw[best.idx]:
                    best = m
            cw[best.idx] -= total
            return best
        if self.strategy == WLC:
            n = len(candidates)
            self._rr = (self._rr + 1) % n
            best = candidates[self._rr]
            best_load = best.state.active / best.weight
            for k in range(1, n):
                m = candidates[(self._rr + k) % n]
                load = m.state.active / m.weight
                if load < best_load:
                    best, best_load = m, load
            return best
        h = key_hash(ctx.client_ip if self.strategy == SOURCE_HASH else ctx.path)
        return max(candidates, key=lambda m: _score(h, m))


def channel_upstreams(runtime: Runtime) -> list[ChannelUpstream]:
    """Every channel upstream the runtime's endpoints forward through (deduplicated)."""
    seen: dict[int, ChannelUpstream] = {}
    for ep in runtime.endpoints.values():
        for plan in (ep.backend, *(p for _m, p in ep.policies)):
            target = plan.target
            if isinstance(target, HttpTarget) and isinstance(target.upstream, ChannelUpstream):
                seen.setdefault(id(target.upstream), target.upstream)
    return list(seen.values())


def _health_spec(cfg: dict[str, Any] | None, host: str, port: int) -> HealthSpec | None:
    if not isinstance(cfg, dict):
        return None
    protocol = str(cfg["protocol"]).upper()
    codes = parse_http_codes(str(cfg["http_code"])) if protocol != "TCP" else frozenset()
    return HealthSpec(
        protocol=protocol, host=host, port=int(cfg.get("port") or port), path=str(cfg.get("path") or "/"),
        method=str(cfg.get("method") or "GET"), interval_s=float(cfg["time_interval"]),
        timeout_s=float(health_timeout(cfg) or 1), rise=int(cfg["threshold_normal"]),
        fall=int(cfg["threshold_abnormal"]), codes=codes,
    )


def runtime_members(runtime: Runtime) -> list[CheckedMember]:
    """Every member of every channel upstream the runtime forwards through."""
    return [(m.state.key, m.health, m.state) for up in channel_upstreams(runtime) for m in up.all_members]


def _reconcile_on_swap(manager: HealthManager) -> Callable[[Runtime], None]:
    def on_swap(runtime: Runtime) -> None:
        manager.reconcile(runtime_members(runtime))

    return on_swap


def build_channel_upstream(backend: dict[str, Any], index: Index, services: Services, problems: list[str],
                           path: str, scheme: str,
                           cache: dict[tuple[str, str | None, str], ChannelUpstream]) -> ChannelUpstream | None:
    """The upstream of a backend with ``vpc_channel_status: 1`` (one per channel, proxy host and scheme per
    compile: ``cache``), or None after appending a problem."""
    info = backend.get("vpc_channel_info") or {}
    cid = str(info.get("vpc_channel_id"))
    channel = index.by_id.get("vpc_channels", {}).get(cid)
    if channel is None:
        problems.append(f"{path}.vpc_channel_info.vpc_channel_id: unknown VPC channel {cid!r}")
        return None
    proxy_host = info.get("vpc_channel_proxy_host") or None
    key = (cid, proxy_host, scheme)
    if key in cache:
        return cache[key]
    manager = manager_for(services, _reconcile_on_swap)
    settings = services.settings
    group_weights = {g["member_group_name"]: g.get("member_group_weight")
                     for g in channel.get("member_groups") or [] if isinstance(g, dict)}
    members: list[ChannelMember] = []
    cfg = channel.get("vpc_health_config")
    for m in channel.get("members") or []:
        if not isinstance(m, dict) or m.get("status") == 2:  # status 2: disabled member
            continue
        weight = m.get("weight")
        gw = group_weights.get(m.get("member_group_name") or "")
        if gw is not None:
            weight = gw  # vendor: a group's weight is assigned to the servers in the group
        weight = 1 if weight is None else int(weight)
        if weight <= 0:
            continue  # weight 0: drained, receives no traffic
        host = str(m["host"])
        port = int(m.get("port") or channel["port"])
        state = manager.state_for((cid, host.lower(), port))
        members.append(ChannelMember(len(members), host, port, weight, bool(m.get("is_backup")), state,
                                     _health_spec(cfg, host, port), scheme))
    upstream = ChannelUpstream(manager, cid, members, int(channel.get("balance_strategy") or WRR), proxy_host,
                               isinstance(cfg, dict), settings.channel_passive_failures, settings.channel_eject_s)
    cache[key] = upstream
    return upstream
