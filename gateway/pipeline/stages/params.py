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

from multidict import istr

from gateway.core.errors import bad_parameter
from gateway.model.plan import BackendParam, MappingPlan, Stage

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.pipeline.spec import BuildContext, EndpointDraft
    from gateway.snapshot.validate import Index

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


_PATH, _QUERY, _HEADER = 0, 1, 2


def _checker(p: ReqParam) -> Callable[[str], None] | None:
    """The validation of one parameter as one function with its limits bound (None: no validation)."""
    if not p.validate:
        return None
    if p.enum is None and p.is_number:
        lo, hi = p.min_num, p.max_num

        def number(value: str) -> None:
            try:
                num = float(value)
            except ValueError:
                raise bad_parameter(f"Invalid parameter value: parameter {p.name} must be a number") from None
            if (lo is not None and num < lo) or (hi is not None and num > hi):
                raise bad_parameter(f"Invalid parameter value: parameter {p.name} must be between {lo} and {hi}")

        return number
    if p.enum is None:
        least, most = p.min_size, p.max_size

        def string(value: str) -> None:
            n = len(value)
            if (least is not None and n < least) or (most is not None and n > most):
                raise bad_parameter(
                    f"Invalid parameter value: parameter {p.name} length must be between {least} and {most}")

        return string
    return lambda value: _check_value(p, value)


# per declared parameter: where it is read (_PATH/_QUERY/_HEADER), its name, its ctx.params key, default,
# required, the bound validation
Step = tuple[int, str, tuple[str, str], str | None, bool, Callable[[str], None] | None]


def compile_reader(plan: tuple[ReqParam, ...]) -> tuple[Step, ...]:
    where = {"QUERY": _QUERY, "HEADER": _HEADER}
    # a header's name as a case-insensitive key made once (a plain str is case-folded on every lookup)
    return tuple((where.get(p.location, _PATH), istr(p.name) if p.location == "HEADER" else p.name,
                  (p.location, p.name), p.default, p.required, _checker(p)) for p in plan)


def query_value(raw: str, name: str) -> str | None:
    """The first value of ``name`` in a raw query without ``%`` or ``+``: what ``ctx.query.get(name)`` gives
    (a name without ``=`` has the empty value), without making the query's multidict."""
    if name not in raw:
        return None
    for part in raw.split("&"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None


def params_reader(steps: tuple[Step, ...]) -> Stage:
    """The stage: read, default and validate the declared request parameters into ``ctx.params``. A declared
    query parameter is read from the raw query text when it needs no decoding (the query's multidict is then
    made only if something else reads it)."""

    def request_parameters(ctx: RequestContext) -> None:
        values = ctx.params
        raw: str | None = None
        unread = True
        for where, name, key, default, required, check in steps:
            if where == _QUERY:
                if unread:
                    unread = False
                    # the raw query text when the listener's plain split of it gives the parameters as sent: an
                    # origin-form target without a fragment, no % or + in its query (else None: ctx.query)
                    target = ctx.request.raw_path
                    raw = None if target[:1] != "/" or "#" in target else target.partition("?")[2]
                    if raw is not None and ("%" in raw or "+" in raw):
                        raw = None
                value = ctx.query.get(name) if raw is None else query_value(raw, name) if raw else None
            elif where == _HEADER:
                value = ctx.headers.get(name)
            else:
                value = ctx.path_params.get(name)
                if value == "":
                    value = None
            if value is None:
                if default is not None:
                    value = default
                elif required:
                    raise bad_parameter(f"Invalid parameter value: parameter {name} is required")
                else:
                    continue
            if check is not None:
                check(value)
            values[key] = value

    return request_parameters


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


_NO_MAPPING = MappingPlan((), frozenset(), frozenset())


def compile_mapping(req_params: list[dict[str, Any]], backend_params: list[dict[str, Any]],
                    problems: list[str] | None = None, path: str = "") -> MappingPlan:
    if not req_params and not backend_params:
        return _NO_MAPPING  # most APIs: one shared (immutable) plan
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


# --- the stage: compile, check, run --------------------------------------------------------------

def _declared(api: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in api.get("req_params") or [] if isinstance(p, dict)]


def build_params_stage(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    """``request_parameters``: read, default and validate the API's declared parameters (none: no stage)."""
    req = _declared(draft.api)
    if not req:
        return None
    return params_reader(compile_reader(compile_req_params(req)))


def check_system_names(index: Index, problems: list[str]) -> None:
    """Every SYSTEM backend parameter names a known ``$context.*`` value."""
    for i, api in enumerate(index.items("apis")):
        if not (api.get("backend_params") or api.get("policy_https") or api.get("policy_mocks")
                or api.get("policy_functions")):
            continue
        lists: list[tuple[str, Any]] = [("backend_params", api.get("backend_params"))]
        for key in ("policy_https", "policy_mocks", "policy_functions"):
            for j, pol in enumerate(api.get(key) or []):
                if isinstance(pol, dict):
                    lists.append((f"{key}[{j}].backend_params", pol.get("backend_params")))
        for lpath, plist in lists:
            for j, bp in enumerate(plist or []):
                if not isinstance(bp, dict) or bp.get("origin") != "SYSTEM":
                    continue
                if system_getter(str(bp.get("value"))) is None:
                    problems.append(f"apis[{i}].{lpath}[{j}].value: unknown system parameter {bp.get('value')!r}")
