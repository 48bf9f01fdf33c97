"""Masked secrets sent back in a whole-snapshot PUT: only what holds a mask is copied."""

from __future__ import annotations

import orjson

from gateway.control.common import MASK, may_hold_mask, unmask_document


def test_unmask_copies_only_the_elements_holding_a_mask() -> None:
    current = {"apps": [{"id": "x", "app_secret": "real-x"}, {"id": "y", "app_secret": "real-y"}],
               "apis": [{"id": "a", "name": "n"}]}
    new = {"apps": [{"id": "x", "app_secret": MASK}, {"id": "y", "app_secret": "new-y"}],
           "apis": [{"id": "a", "name": "n2", "req_params": [{"name": "q"}]}], "version": "v"}
    out = unmask_document(new, current)
    assert out == {"apps": [{"id": "x", "app_secret": "real-x"}, {"id": "y", "app_secret": "new-y"}],
                   "apis": [{"id": "a", "name": "n2", "req_params": [{"name": "q"}]}], "version": "v"}
    assert out["apis"] is new["apis"]  # nothing masked: shared, not copied
    assert out["apps"] is not new["apps"] and out["apps"][1] is new["apps"][1]
    assert new["apps"][0]["app_secret"] == MASK  # the input is not modified


def test_may_hold_mask() -> None:
    assert not may_hold_mask(orjson.dumps({"apps": [{"id": "x", "app_secret": "s", "remark": "a*b"}]}))
    assert may_hold_mask(orjson.dumps({"apps": [{"id": "x", "app_secret": MASK}]}))
    assert may_hold_mask(b'{"app_secret": "\\u002a\\u002A****"}')
    assert may_hold_mask(b'app_secret: "\\x2a\\x2a\\x2a\\x2a\\x2a\\x2a"')
