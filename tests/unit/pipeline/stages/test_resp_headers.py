"""set_resp_headers response stage: one hook edits every response of the bound endpoint."""

from __future__ import annotations

from aiohttp import web

from tests.support.helpers import mock_api, snapshot
from tests.support.plugins_helpers import bind, plugin
from tests.support.stage_harness import compile_doc, endpoint, request_context


def test_actions_apply_in_order() -> None:
    items = [{"name": "X-Added", "value": "one", "action": "add"},
             {"name": "X-Over", "value": "new", "action": "override"},
             {"name": "X-Gone", "action": "delete"},
             {"name": "X-App", "value": "$context.appId", "value_type": "system_parameter", "action": "append"}]
    rt = compile_doc(snapshot([mock_api("a", "/a"), mock_api("b", "/b")],
                              plugins=[plugin("h", "set_resp_headers", {"response_headers": items})],
                              plugin_bindings=[bind("x", "h", "a")]))
    ep = endpoint(rt, "a")
    assert len(ep.response_hooks) == 1 and endpoint(rt, "b").response_hooks == ()
    ctx = request_context(rt, api_id="a")
    ctx.app_id = "app-7"
    resp = web.Response(headers={"X-Over": "old", "X-Gone": "bye"})
    ep.response_hooks[0](ctx, resp)
    assert resp.headers["X-Added"] == "one" and resp.headers["X-Over"] == "new"
    assert "X-Gone" not in resp.headers and resp.headers["X-App"] == "app-7"
