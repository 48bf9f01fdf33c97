"""CORS: the bound cors plug-in's handler (preflight answered before any stage) and its Vary response hook."""

from __future__ import annotations

from aiohttp import web

from tests.support.helpers import mock_api, snapshot
from tests.support.plugins_helpers import bind, plugin
from tests.support.stage_harness import compile_doc, endpoint, request_context

CORS = {"allow_origin": "https://app.example", "allow_methods": "GET,POST", "allow_headers": "Content-Type",
        "max_age": 600}


def test_preflight_and_headers() -> None:
    rt = compile_doc(snapshot([mock_api("a", "/a"), mock_api("b", "/b")],
                              plugins=[plugin("c", "cors", CORS)], plugin_bindings=[bind("x", "c", "a")]))
    ep = endpoint(rt, "a")
    assert ep.cors_plugin is not None and endpoint(rt, "b").cors_plugin is None
    ctx = request_context(rt, "OPTIONS", "/a", headers={"Origin": "https://app.example",
                                                       "Access-Control-Request-Method": "GET"}, api_id="a")
    ctx.extras["preflight"] = True
    resp = ep.cors_plugin(ctx)
    assert resp is not None and resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert resp.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert resp.headers["Access-Control-Max-Age"] == "600"
    other = request_context(rt, "GET", "/a", headers={"Origin": "https://evil.example"}, api_id="a")
    assert ep.cors_plugin(other) is None and "Access-Control-Allow-Origin" not in other.response_headers
    # the Vary response hook: an echoed origin makes the response depend on Origin
    out = web.Response(headers={"Access-Control-Allow-Origin": "https://app.example"})
    for hook in ep.response_hooks:
        hook(ctx, out)
    assert out.headers["Vary"] == "Origin"
