"""Shapes shared by every backend kind: the backend plan, its parameter mapping and the outgoing request.

Role in the pipeline: after the endpoint stages (auth, validation, throttling) the endpoint picks a
:class:`BackendPlan` (the default backend, or the first backend policy whose conditions hold), runs its
own stages (backend authorizer), builds a :class:`BackendRequest` from the caller's request with the
plan's :class:`MappingPlan` and :class:`UriTemplate`, lets the plan's request hooks (backend signing) edit
it before each attempt, and hands it to the plan's :class:`Target` which writes the response.

Everything here is request-time data, immutable once the compiler (:mod:`gateway.compiler`) built it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import StreamReader, web
from multidict import CIMultiDict, MultiMapping

from gateway.core.errors import backend_path_param_missing
from gateway.core.urlpath import clean_header_value, encode_param, quote_component
from gateway.lib.h1client import HOP_BY_HOP

if TYPE_CHECKING:
    from gateway.model.context import RequestContext

# A request stage: reads and enriches the context, or raises GatewayError to end the request. It returns None
# when it is done (a stage that never waits is a plain function: no coroutine per request), else an awaitable
# the pipeline awaits (an ``async def`` stage).
Stage = Callable[["RequestContext"], Awaitable[None] | None]
# A response hook: edits a response of the endpoint (success or error) just before its head is sent.
ResponseHook = Callable[["RequestContext", web.StreamResponse], None]


# Request header names the gateway never forwards as the caller sent them (lower case)
REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "x-apig-appcode", "expect"}
# the fields the gateway sets itself: a caller's copy never passes (X-Forwarded-Host only when the gateway sets it)
SET_BY_GATEWAY = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-real-ip", "x-request-id"})
# names a mapped header may not carry for the one-pass head (the general path then replaces them as before)
_GATEWAY_OWNED = REQUEST_DROP | SET_BY_GATEWAY | {"x-forwarded-host"}


class _HasQuery(Protocol):
    @property
    def query(self) -> MultiMapping[str]: ...


# (what holds the caller's query parameters (the request context: parsed on first read), the names left out, the
# mapped pairs added)
QuerySource = tuple[_HasQuery, frozenset[str], list[tuple[str, str]]]


class BackendRequest:
    """The request the gateway is about to send to a backend (edited by signing hooks).

    The header fields are kept as a list of ``(name, value)`` pairs (``fields``: the caller's forwarded fields,
    the gateway's own, the mapped ones; no ``Host``) until something needs them as a mapping: the first read
    of :attr:`headers` makes the case-insensitive multidict, which from then on is the only copy (request
    hooks such as backend signing edit it). The HTTP target writes an untouched list straight into the request
    head (:meth:`head_lines`): no multidict per request on the hot path.
    """

    __slots__ = ("_headers", "_query", "_query_from", "body", "fields", "host", "host_header", "method", "path",
                 "port", "query_text", "scheme")

    def __init__(self, method: str, path: str, query: list[tuple[str, str]] | None,
                 headers: CIMultiDict[str] | None = None, body: bytes | StreamReader | None = None,
                 scheme: str = "http", host: str = "", port: int = 0, host_header: str = "",
                 query_text: str | None = None, fields: list[tuple[str, str]] | None = None,
                 query_from: QuerySource | None = None) -> None:
        self.method = method
        self.path = path  # percent-encoded path
        self._query = query  # decoded pairs (what signers canonicalise); None: made from ``query_from``
        self._query_from = query_from
        self._headers = headers
        self.fields = fields if headers is None else None
        self.body = body
        self.scheme = scheme
        self.host = host  # connect address, filled per attempt by the target
        self.port = port
        self.host_header = host_header
        # the query text as sent: the caller's unmapped parameters verbatim, then the mapped ones encoded
        # (None: encode ``query``)
        self.query_text = query_text

    @property
    def query(self) -> list[tuple[str, str]]:
        """The decoded query pairs (what signers canonicalise): the caller's minus the dropped names, then the
        mapped ones (made on first use: only signers and function targets read them)."""
        q = self._query
        if q is None:
            if self._query_from is None:
                q = []
            else:
                caller, drop, added = self._query_from
                q = [(k, v) for k, v in caller.query.items() if k not in drop]
                q.extend(added)
            self._query = q
        return q

    @query.setter
    def query(self, value: list[tuple[str, str]]) -> None:
        self._query = value

    @property
    def headers(self) -> CIMultiDict[str]:
        """The header fields as a multidict (made from ``fields`` on first use; then the only copy)."""
        h = self._headers
        if h is None:
            h = self._headers = CIMultiDict(self.fields or ())
            self.fields = None
        return h

    @headers.setter
    def headers(self, value: CIMultiDict[str]) -> None:
        self._headers = value
        self.fields = None

    def head_lines(self, host_header: str) -> str:
        """The untouched ``fields`` and ``Host`` as request head lines, each ending in CRLF (a CR or LF inside a
        field becomes a space: never a second line)."""
        fields = self.fields or []
        try:
            text = "\r\n".join(map(": ".join, fields))  # C-level iteration
        except TypeError:  # a non-str value
            text = "\r\n".join([f"{k}: {v}" for k, v in fields])
        text = f"{text}\r\nHost: {host_header}\r\n" if fields else f"Host: {host_header}\r\n"
        n = len(fields) + 1
        if text.count("\r") != n or text.count("\n") != n:
            text = "".join(f"{k}: {v}".replace("\r", " ").replace("\n", " ") + "\r\n"
                           for k, v in [*fields, ("Host", host_header)])
        return text

    def query_string(self) -> str:
        if self.query_text is not None:
            return self.query_text
        from urllib.parse import quote

        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.query)

    def body_bytes(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else b""


RequestHook = Callable[["RequestContext", BackendRequest], Awaitable[None] | None]


class Target(Protocol):
    """Something that answers a backend request: an HTTP upstream, a mock, a function."""

    kind: str

    async def invoke(self, ctx: RequestContext, breq: BackendRequest | None, plan: BackendPlan
                     ) -> web.StreamResponse:
        ...


# --- parameter mapping (compiled by gateway.pipeline.stages.params) ----------------------------------

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
    # derived (see _forwarding): every lower-case caller header name left out of the backend request, without
    # and with X-Forwarded-Host (set by the gateway when the request came to one of its domains) ...
    forward_drop: frozenset[str] = field(init=False, repr=False, compare=False)
    forward_drop_host: frozenset[str] = field(init=False, repr=False, compare=False)
    # ... and whether the mapped header names are distinct and none is a field the gateway sets itself: then
    # the mapped fields are appended after the forwarded ones (else a multidict replaces same-named fields)
    plain_headers: bool = field(init=False, repr=False, compare=False)
    # ... and the params and defaults as one sequence of steps (see _steps) for :func:`apply_mapping_into`
    steps: tuple[MappingStep, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _steps(self.params, self.defaults) if self.params or self.defaults
                           else ())
        names = tuple(bp.name.lower() for bp in self.params if bp.location == "HEADER") + tuple(
            name.lower() for loc, name in self.defaults if loc == "HEADER")
        key = (self.drop_headers, names)
        got = _FORWARDING.get(key)
        if got is None:
            base = REQUEST_DROP | self.drop_headers | SET_BY_GATEWAY
            plain = len(set(names)) == len(names) and not set(names) & _GATEWAY_OWNED
            got = (base, base | {"x-forwarded-host"}, plain)
            if len(_FORWARDING) < 4096:  # one entry per distinct mapping shape: bounded by the configuration
                _FORWARDING[key] = got
        object.__setattr__(self, "forward_drop", got[0])
        object.__setattr__(self, "forward_drop_host", got[1])
        object.__setattr__(self, "plain_headers", got[2])


# one mapping step, compiled once: (location, how, arg, name, text) where ``how`` is _CONSTANT (``arg`` the value:
# a header's cleaned of CR/LF), _SOURCE (``arg`` the request parameter's (location, name)), _SYSTEM (``arg`` the
# getter) or _DEFAULT (``arg`` the declared parameter's key, added when the caller omits it); ``text`` is the
# encoded name plus "=" of a QUERY step (plus the encoded value of a constant one), "" otherwise
MappingStep = tuple[str, int, Any, str, str]
_CONSTANT, _SOURCE, _SYSTEM, _DEFAULT = range(4)


def _steps(params: tuple[BackendParam, ...], defaults: tuple[tuple[str, str], ...]) -> tuple[MappingStep, ...]:
    out: list[MappingStep] = []
    for bp in params:
        loc = bp.location
        text = f"{quote_component(bp.name)}=" if loc == "QUERY" else ""
        if bp.constant is not None:
            value = bp.constant
            if loc == "HEADER":
                value = clean_header_value(value)
            elif loc == "QUERY":
                text = f"{text}{quote_component(value)}"
            out.append((loc, _CONSTANT, value, bp.name, text))
        elif bp.source is not None:
            out.append((loc, _SOURCE, bp.source, bp.name, text))
        else:
            out.append((loc, _SYSTEM, bp.system, bp.name, text))
    for loc, name in defaults:
        out.append((loc, _DEFAULT, (loc, name), name, f"{quote_component(name)}=" if loc == "QUERY" else ""))
    return tuple(out)


_FORWARDING: dict[tuple[frozenset[str], tuple[str, ...]], tuple[frozenset[str], frozenset[str], bool]] = {}


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


def apply_mapping_into(ctx: RequestContext, plan: MappingPlan, fields: list[tuple[str, str]]
                       ) -> tuple[dict[str, str], list[tuple[str, str]], str]:
    """:func:`apply_mapping` for a plan with ``plain_headers``, in one pass over its compiled steps: the mapped
    header fields are appended to ``fields`` (values cleaned of CR/LF: a value may come from the caller); returns
    the backend path params, the mapped query pairs (decoded) and the same pairs as query text (encoded)."""
    path_params: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    texts: list[str] = []
    values = ctx.params
    value: str | None
    for loc, how, arg, name, text in plan.steps:
        if how == _CONSTANT:  # compiled: cleaned (header) or encoded (query) once
            if loc == "HEADER":
                fields.append((name, arg))
            elif loc == "QUERY":
                query.append((name, arg))
                texts.append(text)
            else:
                path_params[name] = arg
            continue
        if how == _SOURCE:
            value = values.get(arg)
            if value is None:
                src_loc, src_name = arg
                value = (ctx.query.get(src_name) if src_loc == "QUERY" else ctx.headers.get(src_name)
                         if src_loc == "HEADER" else ctx.path_params.get(src_name))
        elif how == _SYSTEM:
            value = arg(ctx)
        else:  # a default: only when the caller omitted the parameter
            if name in (ctx.query if loc == "QUERY" else ctx.headers):
                continue
            value = values.get(arg)
        if value is None:
            continue
        if loc == "HEADER":
            fields.append((name, clean_header_value(value)))
        elif loc == "QUERY":
            query.append((name, value))
            texts.append(f"{text}{quote_component(value)}")
        else:
            path_params[name] = value
    return path_params, query, "&".join(texts)


@dataclass(frozen=True, slots=True)
class UriTemplate:
    """A backend ``req_uri`` split into literal text and ``{param}`` slots (env vars already substituted)."""

    parts: tuple[tuple[bool, str], ...]  # (is_param, text_or_name)
    # derived: (text before, name, text after) when the template has exactly one slot (the usual "/x/{id}")
    single: tuple[str, str, str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        slots = [i for i, (is_param, _) in enumerate(self.parts) if is_param]
        single = None
        if len(slots) == 1:
            i = slots[0]
            parts = self.parts
            single = ("".join(t for _, t in parts[:i]), parts[i][1], "".join(t for _, t in parts[i + 1:]))
        object.__setattr__(self, "single", single)

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
        single = self.single
        if single is not None:
            before, name, after = single
            value = values.get(name)
            if value is None:
                value = fallback.get(name)
                if value is None:
                    raise backend_path_param_missing(name)
            return f"{before}{encode_param(value)}{after}"
        out = []
        for is_param, text in self.parts:
            if not is_param:
                out.append(text)
                continue
            value = values.get(text)
            if value is None:
                value = fallback.get(text)
            if value is None:
                raise backend_path_param_missing(text)
            out.append(encode_param(value))  # never '/', '?', CR/LF or a '..' segment
        return "".join(out)


@dataclass(frozen=True, slots=True)
class BackendPlan:
    """One backend (the API's default or one policy's) compiled for one environment (the compiler builds it
    with :func:`backend_plan`)."""

    name: str  # "default" or the policy name
    target: Target
    mapping: MappingPlan
    uri: UriTemplate | None
    method: str  # backend method; "ANY" keeps the caller's
    stages: tuple[tuple[str, Stage], ...] = ()
    request_hooks: tuple[RequestHook, ...] = ()


_new = object.__new__
_SETS = tuple(BackendPlan.__dict__[f].__set__ for f in ("name", "target", "mapping", "uri", "method", "stages",
                                                          "request_hooks"))


def backend_plan(name: str, target: Target, mapping: MappingPlan, uri: UriTemplate | None, method: str,
                 stages: tuple[tuple[str, Stage], ...], request_hooks: tuple[RequestHook, ...]) -> BackendPlan:
    """``BackendPlan(...)`` with every field given, built three times faster than the frozen dataclass's
    ``__init__`` (which goes through ``object.__setattr__`` per field): a 100,000-API compile makes 100,000."""
    plan = _new(BackendPlan)
    s_name, s_target, s_mapping, s_uri, s_method, s_stages, s_hooks = _SETS
    s_name(plan, name)
    s_target(plan, target)
    s_mapping(plan, mapping)
    s_uri(plan, uri)
    s_method(plan, method)
    s_stages(plan, stages)
    s_hooks(plan, request_hooks)
    return plan
