"""Read a snapshot document from a file, a directory of files, or request bytes.

Role in the pipeline: config-load time only. JSON or YAML; a directory is merged by top-level key
(lists concatenated, scalars must agree). Errors are raised as :class:`SnapshotError` with every
problem in ``problems`` so the admin API and the CLI can print them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.core.errors import SnapshotError

# Bodies above this size are parsed element by element (:func:`loads_sliced`), smaller ones in one call.
SLICED_JSON_BYTES = 256 * 1024


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _int(text: str) -> int | float:
    value = int(text)
    return value if -(2 ** 63) <= value < 2 ** 64 else float(text)  # as orjson: beyond 64 bits, a float


def _float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"{text} is out of range")  # orjson rejects it
    return value


_INF = float("inf")
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_int=_int, parse_float=_float)
_BLANK = frozenset(" \t\n\r")
_WS = re.compile(r"[ \t\n\r]*")
# what orjson rejects and the json module accepts: lone UTF-16 surrogates (so any surrogate escape: orjson)
_ORJSON_ONLY = re.compile(r"\\u[dD][89a-fA-F]")


def loads_sliced(data: bytes) -> Any:
    """Parse a JSON document the way ``orjson.loads`` does, but the arrays of a top-level object (and of the
    objects directly in it: a ``{"version", "doc": {...}}`` record) one element per call: the interpreter
    can switch threads between elements.

    ``orjson.loads`` builds the whole document in one C call that holds the interpreter lock: parsing a
    10,000-API snapshot (6 MB) in a worker thread would stop the event loop for 50-200 ms. Raises
    ``ValueError`` (or ``StopIteration``/``IndexError``) on any syntax error: the caller then reports
    orjson's message."""
    text = data.decode("utf-8")
    if _ORJSON_ONLY.search(text) is not None:
        return orjson.loads(data)
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if text[i:i + 1] != "{":
        value, i = _DECODER.raw_decode(text, i)
    else:
        value, i = _object(text, i, 1)
    if _WS.match(text, i).end() != len(text):  # type: ignore[union-attr]
        raise ValueError("extra data")
    return value


BATCH_CHARS = 64 * 1024  # about this much text of an array's elements per parsing call


def _array(text: str, i: int) -> tuple[list[Any], int]:
    """The array starting at ``text[i]`` (``[``) and the index after it, parsed about :data:`BATCH_CHARS` at a
    time: a batch ends before an element that starts like the first one (``},{"id":``), and is parsed as one
    array in one call, so that its elements share their key strings (the scanner shares keys within a call:
    parsing element by element would cost ~100 MB more at 100,000 APIs). A batch that does not parse exactly
    (the cut fell inside an element) is parsed element by element instead."""
    scan, ws, raw = _DECODER.scan_once, _WS.match, _DECODER.raw_decode  # type: ignore[attr-defined]
    items: list[Any] = []
    i = ws(text, i + 1).end()  # type: ignore[union-attr]
    if text[i] == "]":
        return items, i + 1
    cut_rx = None
    if text[i] == "{":
        j = ws(text, i + 1).end()  # type: ignore[union-attr]
        if text[j] == '"':
            first_key = text[j:scan(text, j)[1]]
            cut_rx = re.compile(r"\}[ \t\n\r]*,[ \t\n\r]*\{[ \t\n\r]*" + re.escape(first_key) + r"[ \t\n\r]*:")
    while True:
        m = cut_rx.search(text, i + BATCH_CHARS) if cut_rx is not None else None
        if m is not None:
            try:
                batch, end = raw("[" + text[i:m.start() + 1] + "]")
            except ValueError:
                batch, end = None, -1
            if batch is not None and end == m.start() + 3 - i:
                items.extend(batch)
                i = text.index("{", m.start() + 1)
                continue
        # the last batch, or a cut inside an element: element by element, up to a batch
        stop = i + BATCH_CHARS
        while True:
            item, i = scan(text, i)
            items.append(item)
            c = text[i]
            if c in _BLANK:
                i = ws(text, i).end()  # type: ignore[union-attr]
                c = text[i]
            i += 1
            if c == ",":
                if text[i] in _BLANK:
                    i = ws(text, i).end()  # type: ignore[union-attr]
                if i >= stop:
                    break
            elif c == "]":
                return items, i
            else:
                raise ValueError("expected ',' or ']'")


def _object(text: str, i: int, depth: int) -> tuple[dict[str, Any], int]:
    """The object starting at ``text[i]`` (``{``) and the index after it; its arrays element by element, its
    objects the same way while ``depth`` > 0."""
    scan, ws = _DECODER.scan_once, _WS.match  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    i = ws(text, i + 1).end()  # type: ignore[union-attr]
    if text[i] == "}":
        return out, i + 1
    while True:
        if text[i] != '"':
            raise ValueError("expected a key")
        key, i = scan(text, i)
        i = ws(text, i).end()  # type: ignore[union-attr]
        if text[i] != ":":
            raise ValueError("expected ':'")
        i = ws(text, i + 1).end()  # type: ignore[union-attr]
        c = text[i]
        if c == "[":
            value: Any
            value, i = _array(text, i)
        elif c == "{" and depth > 0:
            value, i = _object(text, i, depth - 1)
        else:
            value, i = scan(text, i)
        out[key] = value
        i = ws(text, i).end()  # type: ignore[union-attr]
        c = text[i]
        i = ws(text, i + 1).end()  # type: ignore[union-attr]
        if c == "}":
            return out, i
        if c != ",":
            raise ValueError("expected ',' or '}'")


def loads_json(data: bytes) -> Any:
    """``orjson.loads``, sliced for big documents (:func:`loads_sliced`); raises ``orjson.JSONDecodeError``."""
    if len(data) > SLICED_JSON_BYTES:
        try:
            return loads_sliced(data)
        except (ValueError, IndexError, StopIteration, RecursionError):
            pass  # orjson says what is wrong, in its usual words (and rejects what it rejects)
    return orjson.loads(data)


def parse_bytes(data: bytes, source: str = "body", content_type: str | None = None) -> dict[str, Any]:
    """Parse JSON (fast path) or YAML bytes into a mapping."""
    text_first = data.lstrip()[:1]
    doc: Any
    if (content_type and "json" in content_type) or text_first in (b"{", b"["):
        try:
            doc = loads_json(data)
        except orjson.JSONDecodeError as exc:
            raise SnapshotError([f"{source}: invalid JSON: {exc}"]) from None
    else:
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise SnapshotError([f"{source}: invalid YAML: {exc}"]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SnapshotError([f"{source}: the document must be a mapping of collections"])
    return doc


def merge_documents(parts: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Merge documents by top-level key: lists are concatenated, other values must be equal."""
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for source, doc in parts:
        for key, value in doc.items():
            if key not in merged:
                merged[key] = list(value) if isinstance(value, list) else value
            elif isinstance(merged[key], list) and isinstance(value, list):
                merged[key].extend(value)
            elif merged[key] != value:
                problems.append(f"{source}: {key}: conflicts with a value from another file")
    if problems:
        raise SnapshotError(problems)
    return merged


def load_path(path: str | Path) -> dict[str, Any]:
    """Load a snapshot from a file or a directory (``*.json``, ``*.yaml``, ``*.yml``, sorted by name)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".json", ".yaml", ".yml") and f.is_file())
        if not files:
            raise SnapshotError([f"{p}: no .json/.yaml/.yml files"])
        return merge_documents([(str(f), parse_bytes(f.read_bytes(), str(f))) for f in files])
    if not p.exists():
        raise SnapshotError([f"{p}: no such file or directory"])
    return parse_bytes(p.read_bytes(), str(p))


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
CHUNK = 500  # list elements serialised per orjson call by the sliced writers below


def canonical(doc: dict[str, Any]) -> bytes:
    """The document as canonical bytes (sorted keys): equal documents give equal bytes and digests."""
    return orjson.dumps(doc, option=_CANONICAL, default=str)


def _value_parts(value: Any, option: int) -> Iterator[bytes]:
    if isinstance(value, list) and len(value) > CHUNK:
        yield b"["
        for i in range(0, len(value), CHUNK):
            chunk = orjson.dumps(value[i:i + CHUNK], option=option, default=str)
            yield (b"," if i else b"") + chunk[1:-1]
        yield b"]"
    else:
        yield orjson.dumps(value, option=option, default=str)


def canonical_parts(doc: dict[str, Any]) -> Iterator[bytes]:
    """:func:`canonical` in pieces (``b"".join`` of them is exactly ``canonical(doc)``): a big document's lists
    are serialised :data:`CHUNK` elements per call, so a worker thread doing it lets the event loop run."""
    if not isinstance(doc, dict) or not all(type(k) is str for k in doc):
        yield canonical(doc)
        return
    yield b"{"
    for n, key in enumerate(sorted(doc)):
        yield (b"," if n else b"") + orjson.dumps(key) + b":"
        yield from _value_parts(doc[key], _CANONICAL)
    yield b"}"


def dumps_sliced(record: dict[str, Any], key: str = "doc") -> bytes:
    """``orjson.dumps(record)`` (non-string keys allowed, ``str`` for unknown types) with ``record[key]``, a
    document, written last and in pieces (see :func:`canonical_parts`)."""
    option = orjson.OPT_NON_STR_KEYS
    doc = record.get(key)
    if not isinstance(doc, dict) or not all(type(k) is str for k in doc):
        return orjson.dumps(record, option=option, default=str)
    head = orjson.dumps({k: v for k, v in record.items() if k != key}, option=option, default=str)
    parts: list[bytes] = [head[:-1], b"," if len(head) > 2 else b"", orjson.dumps(key), b":{"]
    for n, name in enumerate(doc):
        parts.append((b"," if n else b"") + orjson.dumps(name) + b":")
        parts.extend(_value_parts(doc[name], option))
    parts.append(b"}}")
    return b"".join(parts)
