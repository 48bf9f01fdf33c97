"""Rule expressions of the vendor's plug-ins (third_auth ``parameters`` + ``rules[].match_regex``; spec 02 §8.7).

Role in the pipeline: compiled at config-load time into a predicate on the request context; evaluated once
per request by the plug-in that owns it (no parsing on the request path).

* ``parameters``: ``[{name, type, value}]`` name request values: ``path`` (the request path), ``method``,
  ``header`` (``value`` = header name), ``query`` (``value`` = query name), ``system`` (``value`` = a gateway
  system parameter such as ``$context.sourceIp``, or its bare name: ``sourceIp``, ``serverName``).
* ``match_regex``: a JSON array, ``["OR"|"AND", cond, cond, ...]`` where a cond is ``[param, op, value]`` or a
  nested ``["AND"|"OR", ...]``. Ops: ``=`` / ``==`` / ``!=`` / ``~=`` (equal, not equal — ``~=`` is the
  "not equal" of the vendor's examples), ``~`` / ``!~`` (regular expression matched from the start of the
  value), ``~~`` / ``~*`` (regular expression found anywhere in the value; ``~*`` ignores case), ``in`` /
  ``!in`` (comma-separated list). A missing value never matches ``=``/``~``/``~~``/``in`` and always matches
  the negated forms.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from gateway.pipeline.stages.params import system_getter
from gateway.snapshot.schema import Obj, S, valid_items

if TYPE_CHECKING:
    from gateway.model.context import RequestContext

Getter = Callable[["RequestContext"], str | None]
Predicate = Callable[["RequestContext"], bool]
PARAMETER = Obj({
    "name": S(True, min_len=1, max_len=64),
    "type": S(True, enum=("path", "method", "header", "query", "system")),
    "value": S(True, min_len=1, max_len=255),
})
RULE = Obj({"rule_name": S(True, min_len=1, max_len=64), "match_regex": S(True, min_len=1, max_len=65535)})


def compile_parameters(items: list[Any], path: str, problems: list[str]) -> dict[str, Getter]:
    out: dict[str, Getter] = {}
    for ppath, p in valid_items(PARAMETER, items, path, problems):
        name, kind, value = p["name"], p["type"], p["value"]
        if name in out:
            problems.append(f"{ppath}.name: duplicate parameter {name!r}")
            continue
        getter: Getter | None
        if kind == "path":
            getter = _path
        elif kind == "method":
            getter = _method
        elif kind == "header":
            getter = _header(value)
        elif kind == "query":
            getter = _query(value)
        else:  # "$context.sourceIp", or the bare name the vendor's plug-in examples use ("serverName")
            getter = system_getter(value) or system_getter("$context." + value)
            if getter is None:
                problems.append(f"{ppath}.value: unknown system parameter {value!r}")
                continue
        out[name] = getter
    return out


def _path(ctx: RequestContext) -> str | None:
    return ctx.path


def _method(ctx: RequestContext) -> str | None:
    return ctx.method


def _header(name: str) -> Getter:
    return lambda ctx: ctx.headers.get(name)


def _query(name: str) -> Getter:
    return lambda ctx: ctx.query.get(name)


def compile_rules(items: list[Any], params: dict[str, Getter], path: str, problems: list[str]) -> Predicate | None:
    """One predicate: true when any rule matches."""
    preds = [pred for _rule, pred in compile_rule_list(items, params, path, problems)]
    if not preds:
        return None
    return lambda ctx: any(p(ctx) for p in preds)


def compile_rule_list(items: list[Any], params: dict[str, Getter], path: str, problems: list[str],
                      schema: Obj = RULE) -> list[tuple[dict[str, Any], Predicate]]:
    """(rule object, its predicate) for each valid rule, in order (the rate_limit plug-in's first-match list)."""
    out: list[tuple[dict[str, Any], Predicate]] = []
    for rpath, r in valid_items(schema, items, path, problems):
        try:
            expr = orjson.loads(r["match_regex"])
        except orjson.JSONDecodeError:
            problems.append(f"{rpath}.match_regex: is not a JSON expression such as "
                            f"[\"OR\", [\"reqPath\", \"=\", \"/a\"]]")
            continue
        pred = _compile(expr, params, f"{rpath}.match_regex", problems)
        if pred is not None:
            out.append((r, pred))
    return out


def _compile(expr: Any, params: dict[str, Getter], path: str, problems: list[str]) -> Predicate | None:
    if not isinstance(expr, list) or not expr:
        problems.append(f"{path}: must be a non-empty JSON array")
        return None
    head = expr[0]
    if isinstance(head, str) and head.upper() in ("AND", "OR") and all(isinstance(e, list) for e in expr[1:]):
        subs = [_compile(e, params, path, problems) for e in expr[1:]]
        if any(s is None for s in subs) or not subs:
            if not subs:
                problems.append(f"{path}: {head} needs at least one condition")
            return None
        parts = [s for s in subs if s is not None]
        if head.upper() == "AND":
            return lambda ctx: all(p(ctx) for p in parts)
        return lambda ctx: any(p(ctx) for p in parts)
    if len(expr) != 3 or not all(isinstance(e, str) for e in expr):
        problems.append(f"{path}: {orjson.dumps(expr).decode()[:80]} is not [param, op, value]")
        return None
    name, op, value = expr
    getter = params.get(name)
    if getter is None:
        problems.append(f"{path}: unknown parameter {name!r} (declare it in parameters)")
        return None
    negate = op.startswith("!")
    base = op[1:] if negate else op
    if op == "~=":  # "not equal" in the vendor's examples (["method", "~=", "POST"])
        negate, base = True, "="
    test: Callable[[str], bool]
    if base in ("=", "=="):
        test = value.__eq__
    elif base in ("~", "~~", "~*"):
        try:
            rx = re.compile(value, re.IGNORECASE if base == "~*" else 0)
        except re.error as exc:
            problems.append(f"{path}: bad regular expression {value!r} ({exc})")
            return None
        find = rx.match if base == "~" else rx.search
        test = lambda v: find(v) is not None  # noqa: E731
    elif base == "in":
        choices = frozenset(x.strip() for x in value.split(","))
        test = choices.__contains__
    else:
        problems.append(f"{path}: unknown operator {op!r} (=, ==, !=, ~=, ~, !~, ~~, ~*, in, !in)")
        return None

    def pred(ctx: RequestContext) -> bool:
        v = getter(ctx)
        hit = v is not None and test(v)
        return not hit if negate else hit

    return pred
