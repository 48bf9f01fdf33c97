"""Declarative field schemas for snapshot resources, and the checker that walks them.

Role in the pipeline: config-load time only. :func:`check` walks a document against a :class:`Obj`
schema and appends every problem as ``path.to.field: reason`` to a list, so a rejected push lists all
of its problems at once (spec 00-snapshot). Nothing here runs per request.

Schemas are small Python objects rather than JSON-Schema so that the messages read like the vendor's
field tables ("must be 1..600000", "must be one of GET, POST, ...").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Field:
    """One field: its kind and the constraints the spec gives it."""

    kind: str  # "str" | "int" | "bool" | "intstr" | "num" | "obj" | "list" | "any" | "strint"
    required: bool = False
    enum: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_len: int | None = None
    max_len: int | None = None
    pattern: str | None = None
    items: Field | Obj | None = None
    obj: Obj | None = None
    nullable: bool = True
    # what each ``enum`` value means, in the same order (integer enums: "1 = public, 2 = private")
    meanings: tuple[str, ...] | None = None

    def allowed(self) -> str:
        """The allowed values for a message or the docs: ``1 (public), 2 (private)`` or ``GET, POST``."""
        assert self.enum is not None
        if self.meanings is not None:
            return ", ".join(f"{e} = {m}" for e, m in zip(self.enum, self.meanings, strict=True))
        return ", ".join(str(e) for e in self.enum)


@dataclass(frozen=True)
class Obj:
    """An object with known fields; ``output_only`` names are accepted and ignored; ``open`` allows any."""

    fields: dict[str, Field]
    output_only: frozenset[str] = field(default_factory=frozenset)
    open: bool = False


def S(required: bool = False, **kw: Any) -> Field:
    return Field("str", required=required, **kw)


def I(required: bool = False, **kw: Any) -> Field:  # noqa: E743
    return Field("int", required=required, **kw)


def B(required: bool = False) -> Field:
    return Field("bool", required=required)


def L(items: Field | Obj, required: bool = False, **kw: Any) -> Field:
    return Field("list", required=required, items=items, **kw)


def O(obj: Obj, required: bool = False) -> Field:  # noqa: E743
    return Field("obj", required=required, obj=obj)


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "num":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("intstr", "strint"):  # a number that the vendor sometimes writes as a string
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        return isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()) is not None
    if kind == "obj":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    return True


_KIND_WORD = {
    "str": "a string",
    "int": "an integer",
    "num": "a number",
    "bool": "a boolean",
    "intstr": "an integer (or a string of digits)",
    "strint": "an integer (or a string of digits)",
    "obj": "an object",
    "list": "a list",
}


def did_you_mean(value: Any, known: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for the known value closest to ``value`` (another case first), or ``""``."""
    text = str(value)
    options = {str(k): k for k in known}
    same_case = [k for k in options if k.lower() == text.lower()]
    if same_case:
        return f" (did you mean {same_case[0]!r}?)"
    close = difflib.get_close_matches(text, list(options), n=1, cutoff=0.6)
    if not close:
        low = {k.lower(): k for k in options}
        close = [low[c] for c in difflib.get_close_matches(text.lower(), list(low), n=1, cutoff=0.6)]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_field(spec: Field, value: Any, path: str, problems: list[str]) -> None:
    if value is None:
        if spec.required:
            problems.append(f"{path}: is required")
        return
    if not _type_ok(spec.kind, value):
        problems.append(f"{path}: must be {_KIND_WORD.get(spec.kind, spec.kind)}")
        return
    if spec.enum is not None and value not in spec.enum:
        problems.append(f"{path}: must be one of {spec.allowed()}{did_you_mean(value, spec.enum)}")
        return
    if spec.kind in ("int", "num", "intstr", "strint") and (spec.min is not None or spec.max is not None):
        num = int(value) if isinstance(value, str) else value
        lo = spec.min if spec.min is not None else float("-inf")
        hi = spec.max if spec.max is not None else float("inf")
        if not lo <= num <= hi:
            lo_s = "" if spec.min is None else f"{spec.min:g}"
            hi_s = "" if spec.max is None else f"{spec.max:g}"
            problems.append(f"{path}: must be {lo_s}..{hi_s}")
    if spec.kind in ("str", "list"):
        n = len(value)
        if spec.min_len is not None and n < spec.min_len:
            problems.append(f"{path}: length must be at least {spec.min_len}")
        if spec.max_len is not None and n > spec.max_len:
            problems.append(f"{path}: length must be at most {spec.max_len}")
    if spec.kind == "str" and spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        problems.append(f"{path}: does not match {spec.pattern}")
    if spec.kind == "obj" and spec.obj is not None:
        check(spec.obj, value, path, problems)
    if spec.kind == "list" and spec.items is not None:
        for i, item in enumerate(value):
            sub = f"{path}[{i}]"
            if isinstance(spec.items, Obj):
                if not isinstance(item, dict):
                    problems.append(f"{sub}: must be an object")
                else:
                    check(spec.items, item, sub, problems)
            else:
                check_field(spec.items, item, sub, problems)


# --- fast path: a compiled yes/no predicate per schema ----------------------------------------------
# Most documents are valid, so :func:`check` first runs a predicate compiled once per schema that only
# looks at the fields an element actually carries; only an element that fails it is walked again by the
# message-producing checker below (same verdict, exact messages in the usual order).
Pred = Callable[[Any], bool]
_FAST: dict[int, tuple[Obj, Pred]] = {}


def _slow_pred(spec: Field) -> Pred:
    def pred(value: Any) -> bool:
        out: list[str] = []
        check_field(spec, value, "", out)
        return not out

    return pred


def _field_pred(spec: Field) -> Pred:
    """A predicate equivalent to ``check_field(spec, value) adds no problem`` for a value that is not None."""
    kind, enum, lo, hi, min_len, max_len = spec.kind, spec.enum, spec.min, spec.max, spec.min_len, spec.max_len
    if kind == "str":
        rx = re.compile(spec.pattern) if spec.pattern is not None else None
        enum_set = frozenset(enum) if enum is not None and all(isinstance(e, str) for e in enum) else None
        if enum is not None and enum_set is None:
            return _slow_pred(spec)

        def str_pred(v: Any) -> bool:
            if type(v) is not str:
                return isinstance(v, str) and _slow_pred(spec)(v)
            if enum_set is not None and v not in enum_set:
                return False
            n = len(v)
            if (min_len is not None and n < min_len) or (max_len is not None and n > max_len):
                return False
            return rx is None or rx.fullmatch(v) is not None

        return str_pred
    if kind == "int":
        def int_pred(v: Any) -> bool:
            if type(v) is not int:
                return _slow_pred(spec)(v)
            if enum is not None and v not in enum:
                return False
            return (lo is None or v >= lo) and (hi is None or v <= hi)

        return int_pred
    if kind == "bool":
        return lambda v: isinstance(v, bool)
    if kind == "obj":
        if spec.obj is None:
            return lambda v: isinstance(v, dict)
        sub = fast_check(spec.obj)
        return lambda v: isinstance(v, dict) and sub(v)
    if kind == "list" and enum is None:
        item_spec = spec.items
        item: Pred
        if item_spec is None:
            def item(x: Any) -> bool:
                return True
        elif isinstance(item_spec, Obj):
            obj_pred = fast_check(item_spec)

            def item(x: Any) -> bool:
                return isinstance(x, dict) and obj_pred(x)
        else:
            field_pred = _field_pred(item_spec)

            def item(x: Any) -> bool:
                return (not item_spec.required) if x is None else field_pred(x)

        def list_pred(v: Any) -> bool:
            if not isinstance(v, list):
                return False
            n = len(v)
            if (min_len is not None and n < min_len) or (max_len is not None and n > max_len):
                return False
            return all(item(x) for x in v)

        return list_pred
    if kind == "any" and enum is None:
        return lambda v: True
    return _slow_pred(spec)


def fast_check(schema: Obj) -> Pred:
    """The compiled predicate of ``schema`` (built once, kept for the life of the schema object)."""
    hit = _FAST.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    preds: dict[str, Pred] = {}
    _FAST[id(schema)] = (schema, lambda doc: obj_pred(doc))  # a schema nested in itself refers to this one
    for name, spec in schema.fields.items():
        preds[name] = _field_pred(spec)
    required = frozenset(name for name, spec in schema.fields.items() if spec.required)
    is_open, output_only = schema.open, schema.output_only

    def obj_pred(doc: dict[str, Any]) -> bool:
        get = preds.get
        for name, value in doc.items():
            p = get(name)
            if p is None:
                if not is_open and name not in output_only:
                    return False
            elif value is None:
                if name in required:
                    return False
            elif not p(value):
                return False
        return required <= doc.keys()

    _FAST[id(schema)] = (schema, obj_pred)
    return obj_pred


def check(schema: Obj, doc: dict[str, Any], path: str, problems: list[str]) -> None:
    """Check ``doc`` against ``schema``, appending problems prefixed with ``path``."""
    if fast_check(schema)(doc):
        return
    prefix = f"{path}." if path else ""
    for name, spec in schema.fields.items():
        check_field(spec, doc.get(name), prefix + name, problems)
    if not schema.open:
        for name in doc:
            if name not in schema.fields and name not in schema.output_only:
                problems.append(f"{prefix}{name}: unknown field{did_you_mean(name, schema.fields)}")


def valid_items(schema: Obj, items: Iterable[Any], path: str, problems: list[str]
                ) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, item) of each element of ``items`` that is an object passing ``schema``; the others are reported."""
    for i, item in enumerate(items):
        ipath = f"{path}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{ipath}: must be an object")
            continue
        before = len(problems)
        check(schema, item, ipath, problems)
        if len(problems) == before:
            yield ipath, item


def check_unique_ids(items: Iterable[dict[str, Any]], key: str, path: str, problems: list[str]) -> None:
    seen: dict[Any, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        v = item.get(key)
        if v is None:
            continue
        if v in seen:
            problems.append(f"{path}[{i}].{key}: duplicate {key} {v!r} (first at [{seen[v]}])")
        else:
            seen[v] = i
