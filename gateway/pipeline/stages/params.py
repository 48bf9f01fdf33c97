"""Request parameter validation and mapping onto the backend request.

Role in the pipeline: step 10 (validate ``req_params``) and step 15 (map ``backend_params``) of
spec 02 §11.2. Both are compiled into plans at config-load time: each plan is a tuple of small slotted
objects with pre-parsed limits and enum sets, so a request does one pass over its declared parameters.

Rules (seed 002 T3-171, T3-176; choices marked *ours* are documented in docs/parameters.md):
* A parameter is read from its location: PATH (the matched ``{name}``), QUERY (first value), HEADER.
* Missing and ``required`` = 1 -> REQUEST_PARAMETERS_FAILURE naming the parameter; missing with a
  ``default_value`` -> the default is used (and forwarded).
* With ``valid_enable`` = 1: NUMBER must parse as a number within ``min_num``/``max_num``; STRING length
  within ``min_size``/``max_size``; ``enumerations`` (comma-separated) restricts the value set.
* Backend parameters: REQUEST moves/renames a declared request parameter to the backend location and
  name (the original is removed); CONSTANT sets a fixed value (``#env#`` already substituted); SYSTEM
  sets a ``$context.*`` value.
* *Ours*: query parameters and headers that are not declared pass through unchanged; a declared
  parameter that no backend parameter maps passes through unless ``pass_through`` = 2, and when the caller
  omitted it its ``default_value`` is added under its own name.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.core.errors import GatewayError, bad_parameter
from gateway.core.urlpath import encode_param

if TYPE_CHECKING:
    from gateway.model.context import RequestContext

SERVER_NAME = socket.gethostname()
try:
    SERVER_ADDR = socket.gethostbyname(SERVER_NAME)
except OSError:  # pragma: no cover - hosts without a resolvable hostname
    SERVER_ADDR = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ReqParam:
    name: str
    location: str
    is_number: bool
    required: bool
    default: str | None
    validate: bool
    enum: frozenset[str] | None
    min_num: float | None
    max_num: float | None
    min_size: int | None
    max_size: int | None


def compile_req_params(req_params: list[dict[str, Any]]) -> tuple[ReqParam, ...]:
    out = []
    for p in req_params:
        enum_raw = p.get("enumerations")
        enum = None
        if isinstance(enum_raw, str) and enum_raw.strip():
            enum = frozenset(v.strip() for v in enum_raw.split(",") if v.strip())
        location = p["location"]
        required = p.get("required", 1 if location == "PATH" else 2) == 1
        out.append(
            ReqParam(
                name=p["name"],
                location=location,
                is_number=p["type"] == "NUMBER",
                required=required,
                default=p.get("default_value") if p.get("default_value") not in (None, "") else None,
                validate=p.get("valid_enable", 2) == 1,
                enum=enum,
                min_num=p.get("min_num"),
                max_num=p.get("max_num"),
                min_size=p.get("min_size"),
                max_size=p.get("max_size"),
            )
        )
    return tuple(out)


def _check_value(p: ReqParam, value: str) -> None:
    if p.enum is not None and value not in p.enum:
        raise bad_parameter(f"Invalid parameter value: parameter {p.name} must be one of {','.join(sorted(p.enum))}")
    if p.is_number:
        try:
            num = float(value)
        except ValueError:
            raise bad_parameter(f"Invalid parameter value: parameter {p.name} must be a number") from None
        if (p.min_num is not None and num < p.min_num) or (p.max_num is not None and num > p.max_num):
            raise bad_parameter(
                f"Invalid parameter value: parameter {p.name} must be between {p.min_num} and {p.max_num}"
            )
    else:
        n = len(value)
        if (p.min_size is not None and n < p.min_size) or (p.max_size is not None and n > p.max_size):
            raise bad_parameter(
                f"Invalid parameter value: parameter {p.name} length must be between {p.min_size} and {p.max_size}"
            )


def read_params(ctx: RequestContext, plan: tuple[ReqParam, ...]) -> None:
    """Read, default and validate the declared request parameters into ``ctx.params``."""
    values = ctx.params
    for p in plan:
        if p.location == "QUERY":
            value = ctx.query.get(p.name)
        elif p.location == "HEADER":
            value = ctx.headers.get(p.name)
        else:
            value = ctx.path_params.get(p.name)
        if value is None or (value == "" and p.location == "PATH"):
            if p.default is not None:
                value = p.default
            elif p.required:
                raise bad_parameter(f"Invalid parameter value: parameter {p.name} is required")
            else:
                continue
        if p.validate:
            _check_value(p, value)
        values[(p.location, p.name)] = value


# --- $context.* system parameters ------------------------------------------------------------------

def _handle_time(_: Any) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S %z")


SYSTEM_VALUES: dict[str, Callable[[RequestContext], str | None]] = {
    "$context.sourceIp": lambda c: c.client_ip,
    "$context.stage": lambda c: c.env_name,
    "$context.apiId": lambda c: c.endpoint.api_id if c.endpoint else None,
    "$context.apiName": lambda c: c.endpoint.api_name if c.endpoint else None,
    "$context.appId": lambda c: c.app_id,
    "$context.appName": lambda c: c.app_name,
    "$context.requestId": lambda c: c.request_id,
    "$context.serverAddr": lambda c: SERVER_ADDR,
    "$context.serverName": lambda c: SERVER_NAME,
    "$context.handleTime": _handle_time,
    "$context.reqPath": lambda c: c.path,
    "$context.reqMethod": lambda c: c.method,
    "$context.userId": lambda c: c.user_id,
}


# Spellings printed in the vendor's own API reference tables and examples, where text recognition read the
# capital I of "Id"/"Ip" as a lower-case l. Definitions copied from those examples must load and behave.
SYSTEM_ALIASES = {
    "$context.sourcelp": "$context.sourceIp",
    "$context.apild": "$context.apiId",
    "$context.appld": "$context.appId",
}


def system_getter(name: str) -> Callable[[RequestContext], str | None] | None:
    """The value getter for a SYSTEM backend parameter, or None when the name is unknown."""
    getter = SYSTEM_VALUES.get(SYSTEM_ALIASES.get(name, name))
    if getter is not None:
        return getter
    for prefix, attr in (("$context.authorizer.frontend.", "authorizer_frontend"),
                         ("$context.authorizer.backend.", "authorizer_backend")):
        if name.startswith(prefix):
            key = name[len(prefix):]

            def get(c: RequestContext, _k: str = key, _a: str = attr) -> str | None:
                v = getattr(c, _a).get(_k)
                return None if v is None else (v if isinstance(v, str) else str(v).lower()
                                               if isinstance(v, bool) else str(v))

            return get
    return None


@dataclass(frozen=True, slots=True)
class BackendParam:
    location: str  # PATH | QUERY | HEADER
    name: str
    constant: str | None
    source: tuple[str, str] | None  # (location, name) of a request parameter
    system: Callable[[RequestContext], str | None] | None


@dataclass(frozen=True, slots=True)
class MappingPlan:
    """How to turn the caller's request into the backend request's path params, query and headers."""

    params: tuple[BackendParam, ...]
    drop_query: frozenset[str]  # declared query params moved elsewhere or not passed through
    drop_headers: frozenset[str]  # lower-case
    # declared QUERY/HEADER parameters with a default_value that are forwarded under their own name: when the
    # caller omits one, the default is added to the backend request (docs/parameters.md)
    defaults: tuple[tuple[str, str], ...] = ()


def compile_mapping(req_params: list[dict[str, Any]], backend_params: list[dict[str, Any]],
                    problems: list[str] | None = None, path: str = "") -> MappingPlan:
    by_name = {p["name"]: p for p in req_params}
    mapped: set[str] = set()
    out = []
    for j, bp in enumerate(backend_params):
        origin = bp["origin"]
        src = None
        const = None
        system = None
        if origin == "REQUEST":
            rp = by_name.get(bp["value"])
            if rp is None:
                continue
            src = (rp["location"], rp["name"])
            mapped.add(rp["name"])
        elif origin == "CONSTANT":
            const = bp["value"]
        else:
            system = system_getter(bp["value"])
            if system is None and problems is not None:
                problems.append(f"{path}backend_params[{j}].value: unknown system parameter {bp['value']!r}")
                continue
        out.append(BackendParam(bp["location"], bp["name"], const, src, system))
    drop_q: set[str] = set()
    drop_h: set[str] = set()
    defaults: list[tuple[str, str]] = []
    for p in req_params:
        if p["name"] in mapped or p.get("pass_through") == 2:
            if p["location"] == "QUERY":
                drop_q.add(p["name"])
            elif p["location"] == "HEADER":
                drop_h.add(p["name"].lower())
        elif p["location"] in ("QUERY", "HEADER") and p.get("default_value") not in (None, ""):
            defaults.append((p["location"], p["name"]))
    # a backend param that writes a header/query replaces the caller's value of the same name
    for bpar in out:
        if bpar.location == "HEADER":
            drop_h.add(bpar.name.lower())
        elif bpar.location == "QUERY":
            drop_q.add(bpar.name)
    defaults = [(loc, name) for loc, name in defaults
                if (name.lower() if loc == "HEADER" else name) not in (drop_h if loc == "HEADER" else drop_q)]
    return MappingPlan(tuple(out), frozenset(drop_q), frozenset(drop_h), tuple(defaults))


def apply_mapping(
    ctx: RequestContext, plan: MappingPlan
) -> tuple[dict[str, str], list[tuple[str, str]], list[tuple[str, str]]]:
    """Backend path params, query pairs to add, headers to add (after the drops of the plan)."""
    path_params: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    values = ctx.params
    for bp in plan.params:
        if bp.constant is not None:
            value: str | None = bp.constant
        elif bp.source is not None:
            value = values.get(bp.source)
            if value is None:
                loc, name = bp.source
                value = (ctx.query.get(name) if loc == "QUERY" else ctx.headers.get(name) if loc == "HEADER"
                         else ctx.path_params.get(name))
        else:
            assert bp.system is not None
            value = bp.system(ctx)
        if value is None:
            continue
        if bp.location == "PATH":
            path_params[bp.name] = value
        elif bp.location == "QUERY":
            query.append((bp.name, value))
        else:
            headers.append((bp.name, value))
    for loc, name in plan.defaults:  # omitted by the caller, forwarded with its default_value
        if loc == "QUERY":
            if name not in ctx.query and (value := values.get((loc, name))) is not None:
                query.append((name, value))
        elif name not in ctx.headers and (value := values.get((loc, name))) is not None:
            headers.append((name, value))
    return path_params, query, headers


# --- backend URI templates -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UriTemplate:
    """A backend ``req_uri`` split into literal text and ``{param}`` slots (env vars already substituted)."""

    parts: tuple[tuple[bool, str], ...]  # (is_param, text_or_name)

    @classmethod
    def parse(cls, uri: str) -> UriTemplate:
        parts: list[tuple[bool, str]] = []
        i = 0
        while i < len(uri):
            start = uri.find("{", i)
            if start < 0:
                parts.append((False, uri[i:]))
                break
            end = uri.find("}", start)
            if end < 0:
                parts.append((False, uri[i:]))
                break
            if start > i:
                parts.append((False, uri[i:start]))
            parts.append((True, uri[start + 1:end].rstrip("+")))
            i = end + 1
        return cls(tuple(parts))

    def render(self, values: dict[str, str], fallback: dict[str, str]) -> str:
        out = []
        for is_param, text in self.parts:
            if not is_param:
                out.append(text)
                continue
            value = values.get(text)
            if value is None:
                value = fallback.get(text)
            if value is None:
                raise GatewayError("REQUEST_PARAMETERS_FAILURE", "APIG.0201",
                                   f"Invalid parameter value: backend path parameter {text} has no value")
            out.append(encode_param(value))  # never '/', '?', CR/LF or a '..' segment
        return "".join(out)
