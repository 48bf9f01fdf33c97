"""Backend policies: conditions that route a request to a policy backend instead of the default one.

Role in the pipeline: step 12 of spec 02 §11.2 (backend selection, ``chain.SELECT``). :func:`compile_policy`
turns a policy's ``conditions`` and ``effect_mode`` into one matcher ``ctx -> bool`` at config-load time
(values split, CIDRs parsed, regexes compiled once).
:meth:`gateway.model.runtime.Endpoint.select_backend` runs the matchers in order and the first policy that
matches replaces the default backend (with its own backend parameters, timeout, retries, authorizer).

Selection runs after every endpoint stage (authentication, frontend authorizer, request-parameter
validation, throttling), so ``ctx.params`` holds validated values with defaults applied and
``ctx.authorizer_frontend`` holds the frontend authorizer's context.

Condition origins (seed 002 T3-177): ``param`` (a request parameter by ``req_param_name``: its declared
location, else query string then header), ``source`` (client IP in a comma-separated list of IPs/CIDRs),
``system`` (``req_path`` / ``req_method`` and the deprecated ``reqPath`` / ``reqMethod``), ``cookie``
(``cookie_param_name``), ``frontend_authorizer`` (``frontend_authorizer_param_name`` or the vendor's
``frontend_auth_orizer_param_name``). Types: ``exact`` (``Equal``), ``enum`` (``Enumerated``: comma list),
``pattern`` (``Matching``: regular expression, searched; anchor it with ``^...$`` for a whole match).
A condition whose value is absent never holds. See docs/backend-policies.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.pipeline.spec import BuildContext, EndpointDraft

Matcher = Callable[["RequestContext"], bool]
Getter = Callable[["RequestContext"], "str | None"]

TYPE_ALIASES = {"exact": "exact", "equal": "exact", "enum": "enum", "enumerated": "enum", "pattern": "pattern",
                "matching": "pattern"}
SYSTEM_PARAMS: dict[str, Getter] = {
    "req_path": lambda c: c.path,
    "reqPath": lambda c: c.path,
    "req_method": lambda c: c.method,
    "reqMethod": lambda c: c.method,
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _param_getter(name: str, draft: EndpointDraft) -> Getter:
    declared = [p for p in draft.api.get("req_params") or [] if isinstance(p, dict) and p.get("name") == name]
    if declared:
        location = str(declared[0].get("location"))
        key = (location, name)

        def get_declared(c: RequestContext) -> str | None:
            value = c.params.get(key)
            if value is not None:
                return value
            if location == "QUERY":
                return c.query.get(name)
            if location == "HEADER":
                return c.headers.get(name)
            return c.path_params.get(name)

        return get_declared

    def get_raw(c: RequestContext) -> str | None:
        value = c.query.get(name)
        return value if value is not None else c.headers.get(name)

    return get_raw


def _cookie_getter(name: str) -> Getter:
    def get(c: RequestContext) -> str | None:
        if "Cookie" not in c.headers:
            return None
        return c.request.cookies.get(name)

    return get


def _authorizer_getter(name: str) -> Getter:
    return lambda c: _text(c.authorizer_frontend.get(name))


def _source_matcher(value: str, path: str, problems: list[str]) -> Matcher | None:
    nets = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            problems.append(f"{path}.condition_value: {item!r} is not an IP address or CIDR")
            return None
    if not nets:
        problems.append(f"{path}.condition_value: needs at least one IP address or CIDR")
        return None

    def match(c: RequestContext) -> bool:
        try:
            addr = ipaddress.ip_address(c.client_ip)
        except ValueError:
            return False
        return any(addr in net for net in nets)

    return match


def _value_matcher(kind: str, value: str, get: Getter, path: str, problems: list[str]) -> Matcher | None:
    if kind == "exact":
        def exact(c: RequestContext) -> bool:
            return get(c) == value

        return exact
    if kind == "enum":
        options = frozenset(v.strip() for v in value.split(",") if v.strip())

        def enum(c: RequestContext) -> bool:
            return get(c) in options

        return enum
    try:
        rx = re.compile(value)
    except re.error as exc:
        problems.append(f"{path}.condition_value: invalid regular expression: {exc}")
        return None

    def pattern(c: RequestContext) -> bool:
        v = get(c)
        return v is not None and rx.search(v) is not None

    return pattern


def compile_condition(cond: dict[str, Any], draft: EndpointDraft, path: str, problems: list[str]) -> Matcher | None:
    origin = cond.get("condition_origin")
    value = cond.get("condition_value")
    if value is None:
        problems.append(f"{path}.condition_value: is required")
        return None
    value = str(value)
    if origin == "source":
        return _source_matcher(value, path, problems)
    get: Getter
    if origin == "param":
        name = cond.get("req_param_name")
        if not name:
            problems.append(f"{path}.req_param_name: is required when condition_origin is param")
            return None
        get = _param_getter(str(name), draft)
    elif origin == "system":
        sname = cond.get("sys_param_name")
        if sname not in SYSTEM_PARAMS:
            problems.append(f"{path}.sys_param_name: must be one of {', '.join(SYSTEM_PARAMS)} when condition_origin "
                            "is system")
            return None
        get = SYSTEM_PARAMS[str(sname)]
    elif origin == "cookie":
        cname = cond.get("cookie_param_name")
        if not cname:
            problems.append(f"{path}.cookie_param_name: is required when condition_origin is cookie")
            return None
        get = _cookie_getter(str(cname))
    elif origin == "frontend_authorizer":
        aname = cond.get("frontend_authorizer_param_name") or cond.get("frontend_auth_orizer_param_name")
        if not aname:
            problems.append(f"{path}.frontend_authorizer_param_name: is required when condition_origin is "
                            "frontend_authorizer")
            return None
        prefix = "$context.authorizer.frontend."
        aname = str(aname)
        get = _authorizer_getter(aname[len(prefix):] if aname.startswith(prefix) else aname)
    else:
        problems.append(f"{path}.condition_origin: unsupported origin {origin!r}")
        return None
    raw_type = cond.get("condition_type")
    if not raw_type:
        problems.append(f"{path}.condition_type: is required when condition_origin is {origin}")
        return None
    kind = TYPE_ALIASES.get(str(raw_type).lower())
    if kind is None:
        problems.append(f"{path}.condition_type: must be one of exact, enum, pattern")
        return None
    return _value_matcher(kind, value, get, path, problems)


def _never(_: RequestContext) -> bool:
    return False


def compile_policy(policy: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str) -> Matcher:
    conditions = [c for c in policy.get("conditions") or [] if isinstance(c, dict)]
    if not conditions:
        build.problems.append(f"{path}.conditions: needs at least one condition")
        return _never
    matchers: list[Matcher] = []
    for k, cond in enumerate(conditions):
        m = compile_condition(cond, draft, f"{path}.conditions[{k}]", build.problems)
        if m is not None:
            matchers.append(m)
    if len(matchers) != len(conditions):
        return _never  # problems were reported: the snapshot is rejected
    if len(matchers) == 1:
        return matchers[0]
    checks = tuple(matchers)
    if policy.get("effect_mode") == "ANY":
        return lambda c: any(m(c) for m in checks)
    return lambda c: all(m(c) for m in checks)

