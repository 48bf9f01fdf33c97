"""The ``set_resp_headers`` plug-in (seed 002 §3.27.1 SetRespHeadersContent; spec 02 §8.4): edit response headers.

Role in the pipeline: step 18 of spec 02 §11.2. At config-load time the content is normalised and compiled
into one response hook installed on the endpoint (``Endpoint.response_hooks``, by :func:`build_hook`, a
``RESPONSE`` entry of the chain). The hook runs on every response of the endpoint just before its head is sent
— backend answers (relayed or streamed), mock and function answers, gateway errors, preflight answers — after
the gateway's own headers are in place, so ``override``/``delete`` see the backend's headers.

Content: ``response_headers: [{name, value, value_type, action}]``. The vendor's printed examples disagree
on the shape, all are accepted: an object instead of a list (one header), an item holding only ``action``
(applies to the items without one), a top-level ``action`` (same). Actions (case-insensitive, vendor user
guide): ``override`` replace every value or add (default) · ``append`` add ``, value`` to the existing value
or add · ``delete`` remove · ``skip`` keep an existing header, else add · ``add`` add one more header line.
``value_type: system_parameter`` takes the value from a gateway system parameter (``$context.requestId`` ...;
``add``/``append`` only, as the vendor restricts). Up to 10 headers, names unique (case-insensitive),
1-32 chars ``[A-Za-z][A-Za-z0-9-]*``, values ≤ 255 chars. Gateway-owned headers (``X-Request-Id``,
``X-Apig-*``), CORS headers (``Access-Control-*``) and framing headers cannot be named (vendor rule).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.core.urlpath import clean_header_value
from gateway.pipeline.stages.params import system_getter
from gateway.snapshot.plugins import bound_plugin
from gateway.snapshot.schema import L, Obj, S, check
from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.plan import ResponseHook
    from gateway.pipeline.spec import BuildContext, EndpointDraft

ACTIONS = ("override", "append", "delete", "skip", "add")
MAX_HEADERS = 10
HEADER = Obj({
    "name": S(min_len=1, max_len=32, pattern=r"[A-Za-z][A-Za-z0-9-]*"),
    "value": S(max_len=255),
    "value_type": S(enum=("custom_value", "system_parameter")),
    "action": S(),
})
CONTENT = Obj({"response_headers": L(HEADER, max_len=MAX_HEADERS + 1), "action": S()})
_FORBIDDEN = frozenset({"x-request-id", "content-length", "transfer-encoding", "connection", "keep-alive",
                        "upgrade", "trailer", "te", "proxy-connection"})

Getter = Callable[["RequestContext"], str | None]
Op = tuple[str, str, str, Getter | None]  # (action, name, value, system getter)


def _normalise(content: dict[str, Any], path: str, problems: list[str]) -> list[tuple[str, dict[str, Any]]] | None:
    raw = content.get("response_headers")
    if isinstance(raw, dict):
        raw = [raw]
        content = {**content, "response_headers": raw}
    if raw is None:
        problems.append(f"{path}.response_headers: is required")
        return None
    check(CONTENT, content, path, problems)
    if not isinstance(raw, list):
        return None
    default = content.get("action")
    items: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        if set(item) == {"action"}:  # the §3.27.1 example's sibling {"action": ...}
            default = item["action"]
            continue
        items.append((f"{path}.response_headers[{i}]", item))
    out = []
    for ipath, item in items:
        action = item.get("action") or default or "override"
        out.append((ipath, {**item, "action": str(action).lower()}))
    return out


def validate(content: dict[str, Any], path: str, problems: list[str], index: Index) -> tuple[Op, ...] | None:
    before = len(problems)
    items = _normalise(content, path, problems)
    if items is None or len(problems) > before:
        return None
    if len(items) > MAX_HEADERS:
        problems.append(f"{path}.response_headers: at most {MAX_HEADERS} headers")
    ops: list[Op] = []
    seen: dict[str, str] = {}
    for ipath, item in items:
        name = item.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{ipath}.name: is required")
            continue
        low = name.lower()
        if low in seen:
            problems.append(f"{ipath}.name: {name!r} is already set by {seen[low]}")
            continue
        seen[low] = ipath
        if low in _FORBIDDEN or low.startswith(("x-apig-", "access-control-")):
            problems.append(f"{ipath}.name: {name!r} is a gateway-owned or CORS header and cannot be changed")
            continue
        action = item["action"]
        if action not in ACTIONS:
            problems.append(f"{ipath}.action: must be one of {', '.join(ACTIONS)}")
            continue
        value = item.get("value")
        if action != "delete" and not isinstance(value, str):
            problems.append(f"{ipath}.value: is required unless action is delete")
            continue
        getter: Getter | None = None
        if item.get("value_type") == "system_parameter":
            getter = system_getter(str(value))
            if getter is None:
                problems.append(f"{ipath}.value: unknown system parameter {value!r}")
                continue
            if action not in ("add", "append"):
                problems.append(f"{ipath}.action: a system_parameter value allows add or append only")
                continue
        elif isinstance(value, str) and ("\r" in value or "\n" in value):
            problems.append(f"{ipath}.value: must not contain line breaks")
            continue
        ops.append((action, name, value or "", getter))
    if len(problems) > before:
        return None
    return tuple(ops)


def make_hook(ops: tuple[Op, ...]) -> Callable[[RequestContext, web.StreamResponse], None]:
    def hook(ctx: RequestContext, resp: web.StreamResponse) -> None:
        h = resp.headers
        for action, name, const, getter in ops:
            value = const
            if getter is not None:
                got = getter(ctx)
                if got is None:
                    continue
                value = clean_header_value(got)  # e.g. authorizer output derived from caller input
            if action == "override":
                h[name] = value
            elif action == "append":
                current = h.getall(name, ())
                h[name] = ", ".join([*current, value]) if current else value
            elif action == "delete":
                h.popall(name, None)
            elif action == "skip":
                h.setdefault(name, value)
            else:  # add
                h.add(name, value)

    return hook


def build_hook(draft: EndpointDraft, build: BuildContext) -> ResponseHook | None:
    """The response hook of the publication's set_resp_headers plug-in, if one is bound."""
    bp = bound_plugin(build.index, str(draft.api["id"]), draft.env_id, "set_resp_headers")
    return make_hook(bp.config) if bp is not None and bp.config else None
