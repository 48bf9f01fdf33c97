"""JSON lines that survive undecodable bytes: log records are written even when a header held non-UTF-8 bytes.

Role: completion hooks (access log, kafka_log). aiohttp hands header bytes that are not UTF-8 to Python as
surrogate escapes, which ``orjson`` refuses; :func:`dumps` then writes those strings with ``\\xff`` escapes
instead of losing the record (the request must never be missing from a log because of what it sent).
"""

from __future__ import annotations

from typing import Any

import orjson


def printable(value: Any) -> Any:
    """``value`` with every string holding surrogate escapes written as ``\\xff`` text (dicts and lists walked)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


def dumps(obj: Any, option: int = 0, default: Any = None) -> bytes:
    """``orjson.dumps``; on a string orjson refuses (surrogates), the same object made :func:`printable`."""
    try:
        return orjson.dumps(obj, option=option, default=default)
    except TypeError:
        return orjson.dumps(printable(obj), option=option, default=default)
