"""Log records with undecodable header bytes are written, escaped, never dropped."""

from __future__ import annotations

import orjson

from gateway.observe.jsonsafe import dumps, printable


def test_surrogate_escaped_strings_are_written_as_backslash_escapes() -> None:
    raw = b"bad\xff\xfe agent \xc3".decode("utf-8", "surrogateescape")  # how aiohttp hands such header bytes over
    rec = {"user_agent": raw, "headers": {"x-a": raw, raw: "key"}, "list": [raw, 1], "n": None, "ok": "caf\u00e9"}
    out = orjson.loads(dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
    assert out["user_agent"] == "bad\\xff\\xfe agent \\xc3"
    assert out["headers"] == {"x-a": "bad\\xff\\xfe agent \\xc3", "bad\\xff\\xfe agent \\xc3": "key"}
    assert out["list"] == ["bad\\xff\\xfe agent \\xc3", 1] and out["n"] is None and out["ok"] == "caf\u00e9"
    assert dumps({"a": "plain"}) == b'{"a":"plain"}'  # the common case is orjson's own output
    assert printable(3) == 3
