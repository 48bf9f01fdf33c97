"""Read gateway feature records (spec 02 §9.1) from a validated snapshot.

Role in the pipeline: config-load time only. A record is ``{name, enable, config}`` where ``config`` is a
JSON document in a string, a bare object, or a plain word (``"on"``). :func:`feature_config` returns the
parsed config of an *enabled* feature as a dict (a plain word becomes ``{"value": word}``), or None when
the feature is absent or disabled. Nothing here runs per request.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.snapshot.validate import Index


def feature_record(index: Index, name: str) -> tuple[int, dict[str, Any]] | None:
    """(position, record) of the feature called ``name`` (last one wins), or None."""
    found: tuple[int, dict[str, Any]] | None = None
    for i, rec in enumerate(index.items("features")):
        if rec.get("name") == name:
            found = (i, rec)
    return found


def parse_config(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith(("{", "[")):
            try:
                value = json.loads(text)
            except ValueError:
                return {"value": raw}
            return value if isinstance(value, dict) else {"value": value}
        return {"value": text}
    if raw is None:
        return {}
    return {"value": raw}


def feature_config(index: Index, name: str) -> dict[str, Any] | None:
    """The parsed config of an enabled feature, else None (``enable: false`` turns a feature off).

    A config that is not an object (a word, a number, a JSON array) is returned as ``{"value": ...}``."""
    found = feature_record(index, name)
    if found is None:
        return None
    rec = found[1]
    if rec.get("enable") is False:
        return None
    cfg = parse_config(rec.get("config"))
    if cfg.get("enable") is False or str(cfg.get("value", "")).lower() == "off":
        return None
    return cfg
