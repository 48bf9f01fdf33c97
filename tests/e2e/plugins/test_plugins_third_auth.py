"""third_auth plug-in end to end: real gateway, real aiohttp auth service, real echo backend."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import http_api, snapshot
from tests.support.plugins_helpers import auth_server, bind, closed_port, plugin


def third_auth(domain: str, **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "auth_request": {"method": "POST", "protocol": "HTTP", "url_domain": domain, "path": "/check",
                         "timeout": 2, "vpc_channel_enabled": 2, "vpc_channel_info": None},
        "identities": {"headers": [{"name": "token"}]},
        "carry_resp_headers": ["x-user"],
        "simple_auth_mode_enabled": False,
        "match_auth": {"key": "x-message-result", "value": "success"},
        "return_resp_body_enabled": True,
    }
    content.update(extra)
    return content


async def test_allow_refuse_identities_and_carried_headers(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    async with auth_server() as (auth, auth_addr):
        gw = await make_gateway(snapshot([http_api("a", "/a", addr)],
                                         plugins=[plugin("t", "third_auth", third_auth(auth_addr))],
                                         plugin_bindings=[bind("b", "t", "a")]))
        async with client.get(gw.url + "/a", headers={"token": "good", "x-user": "mallory"}) as r:
            assert r.status == 200
            seen = (await r.json())["headers"]
        assert seen["x-user"] == "alice"  # from the auth response; the caller's copy is dropped
        assert auth.calls[-1]["method"] == "POST" and auth.calls[-1]["path"] == "/check"
        assert auth.calls[-1]["headers"]["token"] == "good"
        async with client.get(gw.url + "/a", headers={"token": "bad"}) as r:
            assert r.status == 401
            body = await r.json()
            assert body["error_code"] == "APIG.0312" and "bad token" in body["error_msg"]
        async with client.get(gw.url + "/a", headers={"token": "no-match"}) as r:
            assert r.status == 401  # 2xx but match_auth fails
        calls = len(auth.calls)
        async with client.get(gw.url + "/a") as r:
            assert r.status == 401 and (await r.json())["error_code"] == "APIG.0313"
        assert len(auth.calls) == calls  # missing identity: no call
        assert backend.hits == 1


async def test_rules_exempt_paths_and_carry_path_query_body(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    async with auth_server() as (auth, auth_addr):
        content = third_auth(
            auth_addr, simple_auth_mode_enabled=True, carry_path_enabled=True,
            carry_body={"enabled": True, "max_body_size": 1000},
            identities={"headers": {"name": "token"}, "queries": [{"name": "user"}], "essential": False},
            rule_enabled=True, rule_type="allow",
            parameters=[{"name": "reqPath", "type": "path", "value": "reqPath"},
                        {"name": "method", "type": "method", "value": "method"}],
            rules=[{"rule_name": "open",
                    "match_regex": '["OR", ["reqPath", "~", "/api/open/.*"], '
                                   '["AND", ["reqPath", "=", "/api/x"], ["method", "=", "PUT"]]]'}])
        gw = await make_gateway(snapshot([http_api("a", "/api", addr, method="ANY", match_mode="SWA")],
                                         plugins=[plugin("t", "third_auth", content)],
                                         plugin_bindings=[bind("b", "t", "a")]))
        async with client.get(gw.url + "/api/open/doc") as r:
            assert r.status == 200
        async with client.put(gw.url + "/api/x") as r:
            assert r.status == 200
        assert auth.calls == []  # whitelisted: the auth service was not asked
        async with client.post(gw.url + "/api/x?user=bob", headers={"token": "good"}, data=b"payload") as r:
            assert r.status == 200
        call = auth.calls[-1]
        assert call["path"] == "/check/api/x" and call["query"] == {"user": "bob"} and call["body"] == "payload"
        async with client.post(gw.url + "/api/x") as r:  # essential false: called without identities, refused
            assert r.status == 401
        assert backend.hits == 3


async def test_auth_service_down_and_relaxed_mode(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    down = f"127.0.0.1:{closed_port()}"
    gw = await make_gateway(snapshot(
        [http_api("a", "/a", addr), http_api("r", "/r", addr)],
        plugins=[plugin("t", "third_auth", third_auth(down)),
                 plugin("t2", "third_auth", third_auth(down, auth_downgrade_enabled=True))],
        plugin_bindings=[bind("b", "t", "a"), bind("b2", "t2", "r")]))
    async with client.get(gw.url + "/a", headers={"token": "good"}) as r:
        assert r.status == 500 and (await r.json())["error_code"] == "APIG.0616"
    async with client.get(gw.url + "/r", headers={"token": "good"}) as r:
        assert r.status == 200  # relaxed mode lets the request through
    assert backend.hits == 1


async def test_forbid_limit_blocks_repeated_failures(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    async with auth_server() as (auth, auth_addr):
        gw = await make_gateway(snapshot([http_api("a", "/a", addr)],
                                         plugins=[plugin("t", "third_auth", third_auth(auth_addr,
                                                                                      custom_forbid_limit=2))],
                                         plugin_bindings=[bind("b", "t", "a")]))
        for _ in range(2):
            async with client.get(gw.url + "/a", headers={"token": "bad"}) as r:
                assert r.status == 401
        async with client.get(gw.url + "/a", headers={"token": "good"}) as r:
            assert r.status == 403 and (await r.json())["error_code"] == "APIG.0314"
        assert len(auth.calls) == 2


async def test_deny_rules_refuse_without_calling(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    async with auth_server() as (auth, auth_addr):
        content = third_auth(auth_addr, rule_enabled=True, rule_type="deny",
                             parameters=[{"name": "ua", "type": "header", "value": "User-Agent"}],
                             rules=[{"rule_name": "bots", "match_regex": '["OR", ["ua", "~", ".*bot"]]'}])
        gw = await make_gateway(snapshot([http_api("a", "/a", addr)], plugins=[plugin("t", "third_auth", content)],
                                         plugin_bindings=[bind("b", "t", "a")]))
        async with client.get(gw.url + "/a", headers={"token": "good", "User-Agent": "evilbot"}) as r:
            assert r.status == 403 and (await r.json())["error_code"] == "APIG.0314"
        assert auth.calls == []
        async with client.get(gw.url + "/a", headers={"token": "good", "User-Agent": "browser"}) as r:
            assert r.status == 200
