"""cors and set_resp_headers plug-ins end to end: real gateway, real echo backend, real client."""

from __future__ import annotations

from tests.support.helpers import http_api, mock_api, snapshot
from tests.support.plugins_helpers import bind, closed_port, plugin

ORIGIN = "https://app.example"
CORS = {"allow_origin": f"{ORIGIN},https://other.example", "allow_methods": "GET,POST",
        "allow_headers": "Content-Type,X-Custom", "expose_headers": "X-Request-Id,X-Backend", "max_age": 600,
        "allow_credentials": True}


async def test_cors_plugin_preflight_and_responses(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    apis = [http_api("e", "/e", addr, method="POST"),  # no cors flag: the plug-in alone enables preflight
            http_api("f", "/f", addr, method="GET", cors=True),  # plug-in takes precedence over the flag
            http_api("dead", "/dead", f"127.0.0.1:{closed_port()}", retry_count="0"),
            mock_api("p", "/p", "x", req_params=[{"name": "q", "type": "STRING", "location": "QUERY",
                                                  "required": 1}])]
    gw = await make_gateway(snapshot(apis, plugins=[plugin("c1", "cors", CORS)],
                                     plugin_bindings=[bind(f"b{a}", "c1", a) for a in ("e", "f", "dead", "p")]))
    pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "X-Custom"}
    for path, method in (("/e", "POST"), ("/f", "GET")):
        async with client.options(gw.url + path, headers={**pre, "Access-Control-Request-Method": method}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN  # echoed: credentials are allowed
            assert r.headers["Access-Control-Allow-Methods"] == "GET,POST"
            assert r.headers["Access-Control-Allow-Headers"] == "Content-Type,X-Custom"
            assert r.headers["Access-Control-Max-Age"] == "600"  # the plug-in's, not the built-in 172800
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
            assert "Origin" in r.headers["Vary"]
    assert backend.hits == 0  # preflight never reaches the backend
    async with client.options(gw.url + "/e", headers={**pre, "Origin": "https://evil.example"}) as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
        assert "Access-Control-Allow-Methods" not in r.headers
    async with client.post(gw.url + "/e", headers={"Origin": ORIGIN}) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert r.headers["Access-Control-Expose-Headers"] == "X-Request-Id,X-Backend"
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
        assert r.headers["X-Backend"] == "echo"
    assert backend.hits == 1
    async with client.post(gw.url + "/e", headers={"Origin": "https://evil.example"}) as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    # gateway errors carry the CORS headers too
    async with client.get(gw.url + "/dead", headers={"Origin": ORIGIN}) as r:
        assert r.status == 502 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
    async with client.get(gw.url + "/p", headers={"Origin": ORIGIN}) as r:
        assert r.status == 400 and r.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_cors_plugin_wildcard_without_credentials(make_gateway, client) -> None:
    content = {"allow_origin": "*", "allow_methods": "GET", "allow_headers": "X-A", "max_age": 5}
    gw = await make_gateway(snapshot([mock_api("m", "/m")], plugins=[plugin("c", "cors", content)],
                                     plugin_bindings=[bind("b", "c", "m")]))
    pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    async with client.options(gw.url + "/m", headers=pre) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in r.headers and "Vary" not in r.headers
    async with client.get(gw.url + "/m", headers={"Origin": ORIGIN}) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"


async def test_existing_cors_flag_still_works_without_plugin(make_gateway, client) -> None:
    gw = await make_gateway(snapshot([mock_api("c", "/c", "x", method="POST", cors=True)]))
    pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    async with client.options(gw.url + "/c", headers=pre) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        assert r.headers["Access-Control-Max-Age"] == "172800"


def _headers_plugin(pid: str, items: list[dict]) -> dict:
    return plugin(pid, "set_resp_headers", {"response_headers": items})


async def test_set_resp_headers_actions_on_backend_mock_stream_and_errors(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    apis = [http_api("o", "/o", addr), http_api("d", "/d", addr), http_api("ap", "/ap", addr),
            http_api("big", "/big/{n}", addr), mock_api("m", "/m"),
            http_api("dead", "/dead", f"127.0.0.1:{closed_port()}", retry_count="0")]
    common = [{"name": "X-Skip", "value": "gw", "action": "skip"},
              {"name": "X-Added", "value": "one", "action": "add"},
              {"name": "X-Req", "value": "$context.requestId", "value_type": "system_parameter", "action": "add"}]
    plugins = [
        _headers_plugin("o", [{"name": "X-Backend", "value": "gateway", "action": "override"},
                              {"name": "Content-Type", "value": "text/x-skip", "action": "skip"}, *common]),
        _headers_plugin("d", [{"name": "X-Backend", "action": "delete"}]),
        _headers_plugin("ap", [{"name": "X-Backend", "value": "more", "action": "Append"},
                               {"name": "X-New", "value": "v", "action": "append"}]),
    ]
    bindings = [bind("b1", "o", "o"), bind("b2", "d", "d"), bind("b3", "ap", "ap"), bind("b4", "o", "big"),
                bind("b5", "o", "m"), bind("b6", "o", "dead")]
    gw = await make_gateway(snapshot(apis, plugins=plugins, plugin_bindings=bindings))
    async with client.get(gw.url + "/o") as r:
        assert r.status == 200
        assert r.headers.getall("X-Backend") == ["gateway"]
        assert r.headers["Content-Type"].startswith("application/json")  # skip keeps the backend's
        assert r.headers["X-Skip"] == "gw"
        assert r.headers.getall("X-Added") == ["one"]
        assert r.headers["X-Req"] == r.headers["X-Request-Id"]
    async with client.get(gw.url + "/d") as r:
        assert r.status == 200 and "X-Backend" not in r.headers
    async with client.get(gw.url + "/ap") as r:
        assert r.headers["X-Backend"] == "echo, more" and r.headers["X-New"] == "v"
    async with client.get(gw.url + "/big/300000") as r:  # streamed relay: hooks run before the head is sent
        assert len(await r.read()) == 300000
        assert r.headers["X-Skip"] == "gw" and r.headers["X-Backend"] == "gateway"
    async with client.get(gw.url + "/m") as r:
        assert r.status == 200 and r.headers["X-Skip"] == "gw" and r.headers["X-Backend"] == "gateway"
    async with client.get(gw.url + "/dead") as r:  # gateway error responses too
        assert r.status == 502 and r.headers["X-Skip"] == "gw" and r.headers["X-Backend"] == "gateway"
        assert (await r.json())["error_code"] == "APIG.0202"
