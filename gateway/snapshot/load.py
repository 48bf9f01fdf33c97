"""Read a snapshot document from a file, a directory of files, or request bytes.

Role in the pipeline: config-load time only. JSON or YAML; a directory is merged by top-level key
(lists concatenated, scalars must agree). Errors are raised as :class:`SnapshotError` with every
problem in ``problems`` so the admin API and the CLI can print them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.core.errors import SnapshotError


def parse_bytes(data: bytes, source: str = "body", content_type: str | None = None) -> dict[str, Any]:
    """Parse JSON (fast path) or YAML bytes into a mapping."""
    text_first = data.lstrip()[:1]
    doc: Any
    if (content_type and "json" in content_type) or text_first in (b"{", b"["):
        try:
            doc = orjson.loads(data)
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


def canonical(doc: dict[str, Any]) -> bytes:
    """The document as canonical bytes (sorted keys): equal documents give equal bytes and digests."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
