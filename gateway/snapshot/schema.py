"""Declarative field schemas for snapshot resources, and the checker that walks them.

Role in the pipeline: config-load time only. :func:`check` walks a document against a :class:`Obj`
schema and appends every problem as ``path.to.field: reason`` to a list, so a rejected push lists all
of its problems at once (spec 00-snapshot). Nothing here runs per request.

Schemas are small Python objects rather than JSON-Schema so that the messages read like the vendor's
field tables ("must be 1..600000", "must be one of GET, POST, ...").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
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


def check_field(spec: Field, value: Any, path: str, problems: list[str]) -> None:
    if value is None:
        if spec.required:
            problems.append(f"{path}: is required")
        return
    if not _type_ok(spec.kind, value):
        problems.append(f"{path}: must be {_KIND_WORD.get(spec.kind, spec.kind)}")
        return
    if spec.enum is not None and value not in spec.enum:
        problems.append(f"{path}: must be one of {', '.join(str(e) for e in spec.enum)}")
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


def check(schema: Obj, doc: dict[str, Any], path: str, problems: list[str]) -> None:
    """Check ``doc`` against ``schema``, appending problems prefixed with ``path``."""
    prefix = f"{path}." if path else ""
    for name, spec in schema.fields.items():
        check_field(spec, doc.get(name), prefix + name, problems)
    if not schema.open:
        for name in doc:
            if name not in schema.fields and name not in schema.output_only:
                problems.append(f"{prefix}{name}: unknown field")


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
