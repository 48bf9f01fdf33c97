"""Client-IP resolution from the snapshot's ``real_ip_*`` features (spec 02 §9.2, §9.3).

Role in the pipeline: this module owns client-IP resolution. :class:`ProxyResolver` resolves
``ctx.client_ip`` from the socket peer when the request arrives, trusting ``X-Forwarded-For`` / ``X-Real-IP``
only from ``Settings.trusted_proxies`` (the server calls it before routing, so 404s and their log lines have
it too). When the snapshot enables one of the features below, the ``client_ip`` stage (the first endpoint
stage, before the IP ACL) refines it; everything downstream — IP ACL, app ACL, throttling,
``source`` backend-policy conditions, ``$context.sourceIp``, the access log — reads ``ctx.client_ip``.

Precedence (spec 02 §9.3):
1. ``real_ip_header_getter`` (``{"enable": true, "header_getter": "header:X-Client-IP"}``): that header,
   when present and a valid IP;
2. ``real_ip_from_xff`` (``{"enable": true, "xff_index": -1}``): the ``X-Forwarded-For`` entry at
   ``xff_index`` (0 = leftmost, -1 = rightmost), when in range and a valid IP;
3. otherwise the server's resolution is kept.

Trust: enabling a feature is the operator saying the gateway sits behind proxies that set these headers.
When ``trusted_proxies`` is configured the features are additionally honoured only on connections whose
socket peer is one of those proxies, so a direct caller cannot choose its own address.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from gateway.lib.ipset import ip_key
from gateway.snapshot.features import feature_config

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.plan import Stage
    from gateway.pipeline.spec import BuildContext, EndpointDraft


def _valid_ip(text: str) -> str | None:
    value = text.strip()
    if value.startswith("[") and "]" in value:
        value = value[1:value.index("]")]
    return value if ip_key(value) is not None else None


def _header_name(config: Any) -> str | None:
    getter = config.get("header_getter", config.get("value")) if isinstance(config, dict) else config
    if not isinstance(getter, str) or not getter.strip():
        return None
    getter = getter.strip()
    if getter.lower().startswith("header:"):
        getter = getter[len("header:"):].strip()
    return getter or None


def _xff_index(config: Any) -> int | None:
    raw = config.get("xff_index", -1) if isinstance(config, dict) else -1
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


class ProxyResolver:
    """Step 1 of client-IP resolution, at connection level (before routing, so every response and log line
    has it): ``(peer ip, client ip)``, trusting ``X-Forwarded-For`` (rightmost address that is not one of
    our proxies) and ``X-Real-IP`` only when the socket peer is in ``Settings.trusted_proxies``."""

    __slots__ = ("trusted",)

    def __init__(self, trusted: list[Any]) -> None:
        self.trusted = trusted

    def __call__(self, peer: str, headers: Any) -> str:
        trusted = self.trusted
        if not trusted:
            return peer
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return peer
        if not any(addr in net for net in trusted):
            return peer
        xff = headers.get("X-Forwarded-For")
        if xff:
            hops = [h.strip() for h in xff.split(",") if h.strip()]
            for hop in reversed(hops):  # rightmost address that is not one of our proxies
                try:
                    hop_addr = ipaddress.ip_address(hop)
                except ValueError:
                    break
                if not any(hop_addr in net for net in trusted):
                    return hop
        real = headers.get("X-Real-IP")
        if real:
            try:
                return str(ipaddress.ip_address(real.strip()))
            except ValueError:
                pass
        return peer


def make_stage(header: str | None, xff_index: int | None, trusted: list[Any]) -> Stage:
    def client_ip(ctx: RequestContext) -> None:
        if trusted:
            try:
                peer = ipaddress.ip_address(ctx.peer_ip)
            except ValueError:
                return
            if not any(peer in net for net in trusted):
                return
        if header is not None:
            raw = ctx.headers.get(header)
            if raw:
                ip = _valid_ip(raw)
                if ip is not None:
                    ctx.client_ip = ip
                    return
        if xff_index is not None:
            xff = ctx.headers.get("X-Forwarded-For")
            if xff:
                hops = [h.strip() for h in xff.split(",")]
                if -len(hops) <= xff_index < len(hops):
                    ip = _valid_ip(hops[xff_index])
                    if ip is not None:
                        ctx.client_ip = ip

    return client_ip


def build_client_ip(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    """One stage for the whole snapshot (the features are snapshot-wide), or None when none is enabled."""
    return build.once("client_ip", lambda: _compile(build))


def _compile(build: BuildContext) -> Stage | None:
    header = _header_name(feature_config(build.index, "real_ip_header_getter"))
    xff_conf = feature_config(build.index, "real_ip_from_xff")
    xff_index = _xff_index(xff_conf) if xff_conf is not None else None
    if xff_conf is not None and xff_index is None:
        build.problems.append("features.real_ip_from_xff.config.xff_index: must be an integer")
    stage = None
    if header is not None or xff_index is not None:
        stage = make_stage(header, xff_index, build.settings.trusted_networks())
    return stage
