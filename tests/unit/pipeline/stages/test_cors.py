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
    assert ep.cors is not None and endpoint(rt, "b").cors is None
    ctx = request_context(rt, "OPTIONS", "/a", headers={"Origin": "https://app.example",
                                                       "Access-Control-Request-Method": "GET"}, api_id="a")
    ctx.extras["preflight"] = True
    resp = ep.cors(ctx)
    assert resp is not None and resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert resp.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert resp.headers["Access-Control-Max-Age"] == "600"
    other = request_context(rt, "GET", "/a", headers={"Origin": "https://evil.example"}, api_id="a")
    assert ep.cors(other) is None and "Access-Control-Allow-Origin" not in other.response_headers
    # the Vary response hook: an echoed origin makes the response depend on Origin
    out = web.Response(headers={"Access-Control-Allow-Origin": "https://app.example"})
    for hook in ep.response_hooks:
        hook(ctx, out)
    assert out.headers["Vary"] == "Origin"


def test_cors_flag_is_the_handler_with_vendor_defaults() -> None:
    """``cors: true`` without a plug-in: the same handler, with the headers the flag always answered."""
    rt = compile_doc(snapshot([mock_api("a", "/a", method="POST", cors=True), mock_api("n", "/n")]))
    ep = endpoint(rt, "a")
    assert ep.cors is not None and endpoint(rt, "n").cors is None
    assert ep.response_hooks == ()  # "*" never varies by Origin
    get = request_context(rt, "POST", "/a", headers={"Origin": "https://x.example"}, api_id="a")
    assert ep.cors(get) is None
    assert get.response_headers["Access-Control-Allow-Origin"] == "*"
    assert get.response_headers["Access-Control-Expose-Headers"] == \
        "X-Request-Id,X-Apig-Latency,X-Apig-Upstream-Latency,X-Apig-Ratelimit-Api"
    pre = request_context(rt, "OPTIONS", "/a", headers={"Access-Control-Request-Method": "POST",
                                                       "Access-Control-Request-Headers": "X-Extra"}, api_id="a")
    pre.extras["preflight"] = True
    resp = ep.cors(pre)
    assert resp is not None and resp.status == 200
    h = resp.headers
    assert h["Access-Control-Allow-Origin"] == "*" and h["Access-Control-Allow-Methods"] == "POST"
    assert h["Access-Control-Allow-Headers"] == (
        "X-Stage,X-Sdk-Date,X-Sdk-Nonce,X-Proxy-Signed-Headers,X-Sdk-Content-Sha256,X-Forwarded-For,"
        "Authorization,Content-Type,Accept,Accept-Ranges,Cache-Control,Range,X-Apig-AppCode,X-Auth-Token,X-Extra")
    assert h["Access-Control-Max-Age"] == "172800"
    assert h["Access-Control-Expose-Headers"].startswith("X-Request-Id,")
    assert h["X-Request-Id"] == pre.request_id and "X-Apig-Latency" in h
