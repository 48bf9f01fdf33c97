"""rate_limit plug-in: validated at load, enforced by the throttling stage of the bound publication."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.errors import SnapshotError
from tests.support.helpers import mock_api, snapshot
from tests.support.plugins_helpers import bind, plugin
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of


def _content(api_limit: int, **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"scope": "basic", "default_time_unit": "hour", "default_interval": 1,
                               "api_limit": api_limit, "app_limit": 0, "user_limit": 0, "ip_limit": 0,
                               "algorithm": "counter", "specials": [], "parameters": [], "rules": []}
    content.update(extra)
    return content


async def test_bound_plugin_limits_its_publication() -> None:
    rt = compile_doc(snapshot([mock_api("a", "/a"), mock_api("b", "/b")], plugins=[plugin("rl", "rate_limit",
                              _content(2))], plugin_bindings=[bind("x", "rl", "a")]), throttle_default_api_limit=0)
    stage = stage_of(endpoint(rt, "a"), "throttling")
    assert stage is not None and stage_of(endpoint(rt, "b"), "throttling") is None
    results = [await run_stage(stage, request_context(rt, api_id="a")) for _ in range(3)]
    assert results[:2] == [None, None]
    assert results[2] is not None and results[2].status == 429


def test_bad_content_is_a_load_problem() -> None:
    doc = snapshot([mock_api("a", "/a")], plugins=[plugin("rl", "rate_limit", _content(-5))],
                   plugin_bindings=[bind("x", "rl", "a")])
    with pytest.raises(SnapshotError) as exc:
        compile_doc(doc)
    assert any(p.startswith("plugins[0].plugin_content") for p in exc.value.problems), exc.value.problems
