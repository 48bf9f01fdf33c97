"""Gateway feature records (seed 002 §3.21, App. 5.5; spec 02 §9.1) read from the snapshot.

Role in the pipeline: config-load time only. A ``features`` element is ``{id?, name, enable, config}``
where ``config`` is a string (a plain word like ``"on"``, a number, or a JSON document) or an object.
:func:`feature_config` returns the parsed config of an *enabled* feature: ``enable: false`` on the
record, or ``"enable": false`` / ``"off"`` inside the config, turns the feature off whatever else it
says. The parsed table is computed once per validated snapshot and cached on its index.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.snapshot.validate import Index

_OFF_WORDS = {"off", "false", "disable", "disabled", "0", "no"}


def parse_config(raw: Any) -> Any:
    """A config string parsed as JSON when it is JSON, else kept as the raw string."""
    if isinstance(raw, str):
        text = raw.strip()
        if text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                return raw
        return raw
    return raw


def _enabled(record: dict[str, Any], config: Any) -> bool:
    if record.get("enable") is False:
        return False
    if isinstance(config, dict) and "enable" in config:
        flag = config["enable"]
        return flag is True or (isinstance(flag, str) and flag.strip().lower() not in _OFF_WORDS)
    if isinstance(config, str):
        return config.strip().lower() not in _OFF_WORDS
    return True


def feature_table(index: Index) -> dict[str, Any]:
    """name -> parsed config, for every enabled feature (cached on the index)."""
    cached = getattr(index, "_feature_table", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return,unused-ignore]
    table: dict[str, Any] = {}
    for record in index.items("features"):
        name = record.get("name")
        if not isinstance(name, str):
            continue
        config = parse_config(record.get("config"))
        if _enabled(record, config):
            table[name] = config if config is not None else {}
        else:
            table.pop(name, None)
    setattr(index, "_feature_table", table)  # noqa: B010
    return table


def feature_config(index: Index, name: str) -> Any | None:
    """The parsed config of feature ``name`` when it is enabled, else None."""
    return feature_table(index).get(name)
