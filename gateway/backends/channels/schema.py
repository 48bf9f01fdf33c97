"""Schema and cross-reference checks of the ``vpc_channels`` collection (seed 002 §3.17).

Role in the pipeline: config-load time only. :data:`COLLECTIONS` holds the ``vpc_channels`` schema with
the vendor's field tables (Tables 3-852..3-856), and :func:`check_channels` (listed in
:mod:`gateway.pipeline.chain`) checks member and health-check rules the field tables cannot
express, and every API backend / HTTP backend policy with ``vpc_channel_status: 1`` must name an existing
channel.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.snapshot.schema import B, I, L, O, Obj, S
from gateway.snapshot.validate import Index

_NAME = r"[A-Za-z][A-Za-z0-9_.-]*"
_OUT = frozenset({"create_time", "update_time", "status", "project_id", "instance_id"})

MEMBER_GROUP = Obj(
    {
        "member_group_name": S(True, min_len=3, max_len=64, pattern=_NAME),
        "member_group_remark": S(max_len=255),
        "member_group_weight": I(min=0, max=100),
        "dict_code": S(max_len=64),
        "microservice_version": S(max_len=64),
        "microservice_port": I(min=0, max=65535),
        "microservice_labels": L(Obj({"label_name": S(True, min_len=1, max_len=63),
                                      "label_value": S(True, min_len=1, max_len=63)})),
    },
    output_only=frozenset({"member_group_id", "create_time", "update_time"}),
)

MEMBER = Obj(
    {
        "host": S(max_len=64),
        "weight": I(min=0, max=10000),
        "is_backup": B(),
        "member_group_name": S(max_len=64),
        "status": I(enum=(1, 2), meanings=("enabled", "disabled (never selected, never checked)")),
        "port": I(min=0, max=65535),
        "ecs_id": S(max_len=255),
        "ecs_name": S(max_len=64),
    },
    output_only=frozenset({"id", "vpc_channel_id", "create_time", "member_group_id", "health_status"}),
)

HEALTH_CONFIG = Obj(
    {
        "protocol": S(True),  # TCP | HTTP | HTTPS, any case (the vendor's own example writes "http")
        "path": S(max_len=512),
        "method": S(enum=("GET", "HEAD")),
        "port": I(min=0, max=65535),
        "threshold_normal": I(True, min=1, max=10),
        "threshold_abnormal": I(True, min=1, max=10),
        "time_interval": I(True, min=1, max=300),
        "http_code": S(max_len=512),
        "enable_client_ssl": B(),
        "timeout": I(min=1, max=30),
        "time_out": I(min=1, max=30),  # spelling used by older vendor API versions
    },
    output_only=frozenset({"id", "status", "vpc_channel_id", "create_time"}),
)

VPC_CHANNEL = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "name": S(True, min_len=3, max_len=64, pattern=_NAME),
        "port": I(True, min=1, max=65535),
        "balance_strategy": I(True, enum=(1, 2, 3, 4),
                              meanings=("weighted round robin", "weighted least connections", "source IP hash",
                                        "URI hash")),
        "member_type": S(True, enum=("ip", "ecs")),
        "type": I(enum=(2, 3), meanings=("server channel", "microservice channel (not supported)")),
        "dict_code": S(max_len=64),
        "member_groups": L(MEMBER_GROUP),
        "members": L(MEMBER),
        "vpc_health_config": O(HEALTH_CONFIG),
        "microservice_info": O(Obj({}, open=True)),  # type 3 only, rejected below
    },
    output_only=_OUT,
)

COLLECTIONS = {"vpc_channels": (VPC_CHANNEL, "id")}

_CODE_RX = re.compile(r"^\d{3}(-\d{3})?$")


def parse_http_codes(text: str) -> frozenset[int]:
    """``"200,201,210-299"`` -> the set of codes; raises ValueError on a bad item or a code outside 100..599."""
    codes: set[int] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not _CODE_RX.match(item):
            raise ValueError(f"{item!r} is not a code or a range like 200-299")
        lo, _, hi = item.partition("-")
        low, high = int(lo), int(hi or lo)
        if not (100 <= low <= high <= 599):
            raise ValueError(f"{item!r} must be within 100-599 (low-high)")
        codes.update(range(low, high + 1))
    return frozenset(codes)


def health_timeout(cfg: dict[str, Any]) -> int | None:
    value = cfg.get("timeout")
    return value if value is not None else cfg.get("time_out")


def _check_health(cfg: dict[str, Any], path: str, problems: list[str]) -> None:
    protocol = str(cfg.get("protocol") or "").upper()
    if protocol not in ("TCP", "HTTP", "HTTPS"):
        problems.append(f"{path}.protocol: must be one of TCP, HTTP, HTTPS")
        return
    timeout = health_timeout(cfg)
    if timeout is None:
        problems.append(f"{path}.timeout: is required")
    elif isinstance(cfg.get("time_interval"), int) and timeout >= cfg["time_interval"]:
        problems.append(f"{path}.timeout: must be less than time_interval ({cfg['time_interval']})")
    if protocol in ("HTTP", "HTTPS"):
        hpath = cfg.get("path")
        if not hpath:
            problems.append(f"{path}.path: is required when protocol is {protocol}")
        elif not str(hpath).startswith("/"):
            problems.append(f"{path}.path: must start with /")
        code = cfg.get("http_code")
        if not code:
            problems.append(f"{path}.http_code: is required when protocol is {protocol}")
        else:
            try:
                parse_http_codes(str(code))
            except ValueError as exc:
                problems.append(f"{path}.http_code: {exc}")


def _check_channel(ch: dict[str, Any], path: str, problems: list[str]) -> None:
    if ch.get("type") == 3:
        problems.append(f"{path}.type: microservice channels (type 3) are not supported by this gateway")
    groups: dict[str, dict[str, Any]] = {}
    for j, g in enumerate(ch.get("member_groups") or []):
        if not isinstance(g, dict):
            continue
        name = g.get("member_group_name")
        if name in groups:
            problems.append(f"{path}.member_groups[{j}].member_group_name: duplicate group {name!r}")
        groups[str(name)] = g
    seen: dict[tuple[str, int], int] = {}
    members = [m for m in ch.get("members") or [] if isinstance(m, dict)]
    for j, m in enumerate(members):
        mpath = f"{path}.members[{j}]"
        host = m.get("host")
        if not host:
            problems.append(f"{mpath}.host: is required (the data plane connects to this address)")
            continue
        gname = m.get("member_group_name")
        if gname and gname not in groups:
            problems.append(f"{mpath}.member_group_name: unknown member group {gname!r}")
        port = m.get("port") or ch.get("port") or 0
        key = (str(host).lower(), int(port))
        if key in seen:
            problems.append(f"{mpath}: duplicate member {host}:{port} (first at members[{seen[key]}])")
        else:
            seen[key] = j
    cfg = ch.get("vpc_health_config")
    if isinstance(cfg, dict):
        _check_health(cfg, f"{path}.vpc_health_config", problems)


def _backends(api: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(api.get("backend_api"), dict):
        out.append(("backend_api", api["backend_api"]))
    for j, pol in enumerate(api.get("policy_https") or []):
        if isinstance(pol, dict):
            out.append((f"policy_https[{j}]", pol))
    return out


def check_channels(index: Index, problems: list[str]) -> None:
    for i, ch in enumerate(index.items("vpc_channels")):
        _check_channel(ch, f"vpc_channels[{i}]", problems)
    channels = index.by_id.get("vpc_channels", {})
    for i, api in enumerate(index.items("apis")):
        if api.get("backend_type") != "HTTP" and not api.get("policy_https"):
            continue
        for where, backend in _backends(api):
            bpath = f"apis[{i}].{where}"
            if backend.get("vpc_channel_status") == 1:
                info = backend.get("vpc_channel_info")
                if not isinstance(info, dict):
                    if where != "backend_api":  # the core check already reports backend_api
                        problems.append(f"{bpath}.vpc_channel_info: is required when vpc_channel_status is 1")
                    continue
                cid = info.get("vpc_channel_id")
                if cid not in channels:
                    problems.append(f"{bpath}.vpc_channel_info.vpc_channel_id: unknown VPC channel {cid!r}")
            elif where != "backend_api" and not backend.get("url_domain"):
                problems.append(f"{bpath}.url_domain: is required without a VPC channel")

