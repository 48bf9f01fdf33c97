"""Backend policies: each condition origin and type, effect modes, order, own backend, validation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.compiler import build_runtime
from gateway.core.errors import SnapshotError
from gateway.core.settings import load_settings
from gateway.model.services import Services
from gateway.pipeline import chain
from gateway.pipeline.spec import Stage, StageSpec
from tests.support.channels_helpers import NamedBackend, channel, start_backends
from tests.support.helpers import http_api, snapshot


def _test_frontend_context(draft: Any, build: Any) -> Stage | None:
    """Stands in for the frontend custom authorizer (its own branch): copies X-Test-User into the context."""
    if not str(draft.api["id"]).startswith("polfa"):
        return None

    async def stage(ctx: Any) -> None:
        user = ctx.headers.get("X-Test-User")
        if user is not None:
            ctx.authorizer_frontend = {"user": user, "vip": user == "alice", "level": 3}

    return stage


# the default pipeline plus the stand-in above, among the authentication stages
FRONTEND_CHAIN = chain.DEFAULT.with_stage(StageSpec("test_frontend_context", _test_frontend_context),
                                          after="iam_auth")


@pytest.fixture
async def backends() -> AsyncIterator[list[NamedBackend]]:
    started = await start_backends("default", "special", "chan")
    yield started
    for b in started:
        await b.stop()


def mock_policy(name: str, content: str, conditions: list[dict[str, Any]], mode: str = "ANY") -> dict[str, Any]:
    return {"name": name, "effect_mode": mode, "result_content": content, "conditions": conditions}


def cond(origin: str, value: str, ctype: str | None = "exact", **names: str) -> dict[str, Any]:
    c: dict[str, Any] = {"condition_origin": origin, "condition_value": value, **names}
    if ctype:
        c["condition_type"] = ctype
    return c


async def fetch(client: aiohttp.ClientSession, url: str, **kw: Any) -> str:
    async with client.get(url, **kw) as r:
        assert r.status == 200, await r.text()
        text = await r.text()
        if r.headers.get("Content-Type", "").startswith("application/json") and '"name"' in text:
            return str(json.loads(text)["name"])
        return text


async def test_param_conditions(make_gateway: Any, client: aiohttp.ClientSession,
                                backends: list[NamedBackend]) -> None:
    default = backends[0]
    api = http_api("pol1", "/p", default.address, req_params=[
        {"name": "tier", "location": "QUERY", "type": "STRING", "default_value": "basic"},
        {"name": "X-Region", "location": "HEADER", "type": "STRING"},
    ], policy_mocks=[
        mock_policy("gold_tier", "gold", [cond("param", "gold", req_param_name="tier")]),
        mock_policy("eu_region", "eu", [cond("param", "eu-west,eu-north", "enum", req_param_name="X-Region")]),
        mock_policy("beta_undeclared", "beta", [cond("param", r"^beta-\d+$", "pattern", req_param_name="build")]),
        mock_policy("default_tier", "defaulted", [cond("param", "basic", "Equal", req_param_name="tier")],
                    mode="ALL"),
    ])
    gw = await make_gateway(snapshot([api]), chain=FRONTEND_CHAIN)
    u = gw.url + "/p"
    assert await fetch(client, u + "?tier=gold") == "gold"
    assert await fetch(client, u + "?tier=silver") == "default"
    assert await fetch(client, u + "?tier=silver", headers={"X-Region": "eu-north"}) == "eu"
    assert await fetch(client, u + "?tier=silver", headers={"X-Region": "eu"}) == "default"
    # an undeclared name is read from the query string, then the headers
    assert await fetch(client, u + "?tier=silver&build=beta-42") == "beta"
    assert await fetch(client, u + "?tier=silver", headers={"build": "beta-7"}) == "beta"
    assert await fetch(client, u + "?tier=silver&build=beta-x") == "default"
    # conditions see validated values with defaults applied (the stage runs before backend selection)
    assert await fetch(client, u) == "defaulted"


async def test_source_system_cookie_conditions(make_gateway: Any, client: aiohttp.ClientSession,
                                               backends: list[NamedBackend]) -> None:
    default = backends[0]
    api = http_api("pol2", "/s", default.address, method="ANY", match_mode="SWA", policy_mocks=[
        mock_policy("office", "office", [cond("source", "10.1.0.0/16, 192.168.7.7", None)]),
        mock_policy("by_method", "deleting", [cond("system", "DELETE", sys_param_name="req_method")]),
        mock_policy("by_path", "admin", [cond("system", "^/s/admin/", "Matching", sys_param_name="reqPath")]),
        mock_policy("by_cookie", "canary", [cond("cookie", "canary,beta", "Enumerated", cookie_param_name="lane")]),
    ])
    gw = await make_gateway(snapshot([api]), trusted_proxies=["127.0.0.1/32"])
    u = gw.url + "/s"
    assert await fetch(client, u, headers={"X-Forwarded-For": "10.1.200.3"}) == "office"
    assert await fetch(client, u, headers={"X-Forwarded-For": "192.168.7.7"}) == "office"
    assert await fetch(client, u, headers={"X-Forwarded-For": "192.168.7.8"}) == "default"
    async with client.delete(u + "/x") as r:
        assert await r.text() == "deleting"
    assert await fetch(client, u + "/admin/users") == "admin"
    assert await fetch(client, u + "/public/admin/") == "default"
    assert await fetch(client, u + "/x", headers={"Cookie": "a=1; lane=beta"}) == "canary"
    assert await fetch(client, u + "/x", headers={"Cookie": "lane=stable"}) == "default"


async def test_frontend_authorizer_condition(make_gateway: Any, client: aiohttp.ClientSession,
                                             backends: list[NamedBackend]) -> None:
    api = http_api("polfa1", "/fa", backends[0].address, policy_mocks=[
        mock_policy("vip", "vip", [cond("frontend_authorizer", "true", frontend_auth_orizer_param_name="vip")]),
        mock_policy("lvl", "level3", [cond("frontend_authorizer", "3",
                                           frontend_authorizer_param_name="$context.authorizer.frontend.level")]),
    ])
    gw = await make_gateway(snapshot([api]), chain=FRONTEND_CHAIN)
    assert await fetch(client, gw.url + "/fa", headers={"X-Test-User": "alice"}) == "vip"
    assert await fetch(client, gw.url + "/fa", headers={"X-Test-User": "bob"}) == "level3"
    assert await fetch(client, gw.url + "/fa") == "default"


async def test_effect_modes_and_order(make_gateway: Any, client: aiohttp.ClientSession,
                                      backends: list[NamedBackend]) -> None:
    default, special, _ = backends
    both = [cond("param", "1", req_param_name="x"), cond("param", "1", req_param_name="y")]
    api = http_api("pol3", "/m", default.address, policy_https=[{
        "name": "http_all", "effect_mode": "ALL", "url_domain": special.address, "req_protocol": "HTTP",
        "req_method": "GET", "req_uri": "/from-policy", "conditions": both,
        "backend_params": [{"name": "X-Policy", "location": "HEADER", "origin": "CONSTANT", "value": "http_all"}],
    }], policy_mocks=[mock_policy("mock_any", "any", both, mode="ANY")])
    gw = await make_gateway(snapshot([api]), chain=FRONTEND_CHAIN)
    u = gw.url + "/m"
    # both hold: ALL matches, and policy_https is checked before policy_mocks
    async with client.get(u + "?x=1&y=1") as r:
        body = await r.json()
        assert body["name"] == "special" and body["path"] == "/from-policy"
    assert special.hits == 1
    assert await fetch(client, u + "?x=1&y=2") == "any"
    assert await fetch(client, u + "?x=2&y=1") == "any"
    assert await fetch(client, u + "?x=2&y=2") == "default"


async def test_policy_backend_through_vpc_channel(make_gateway: Any, client: aiohttp.ClientSession,
                                                  backends: list[NamedBackend]) -> None:
    default, _, chan = backends
    api = http_api("pol4", "/v", default.address, policy_https=[{
        "name": "to_channel", "effect_mode": "ANY", "req_protocol": "HTTP", "req_method": "GET", "req_uri": "/v",
        "vpc_channel_status": 1, "vpc_channel_info": {"vpc_channel_id": "ch1"},
        "conditions": [cond("param", "yes", req_param_name="chan")],
    }])
    gw = await make_gateway(snapshot([api], vpc_channels=[channel("ch1", [chan])]))
    assert await fetch(client, gw.url + "/v?chan=yes") == "chan"
    assert await fetch(client, gw.url + "/v?chan=no") == "default"


def test_condition_validation() -> None:
    api = http_api("pol5", "/bad", "127.0.0.1:9", policy_mocks=[
        mock_policy("bad_regex", "x", [cond("param", "([a-", "pattern", req_param_name="q")]),
        mock_policy("bad_cidr", "x", [cond("source", "10.0.0.0/33,nope", None)]),
        mock_policy("no_name", "x", [cond("param", "1")]),
        mock_policy("no_type", "x", [cond("cookie", "1", None, cookie_param_name="c")]),
        mock_policy("no_conds", "x", []),
        mock_policy("no_sys", "x", [cond("system", "GET")]),
    ], policy_https=[{"name": "no_domain", "effect_mode": "ANY", "req_protocol": "HTTP", "req_method": "GET",
                      "req_uri": "/", "conditions": [cond("param", "1", req_param_name="q")]}])
    with pytest.raises(SnapshotError) as exc:
        build_runtime(snapshot([api]), Services(load_settings({}, environ={})))
    text = "\n".join(exc.value.problems)
    for expected in (
        "apis[0].policy_https[0].url_domain: is required without a VPC channel",
    ):
        assert expected in text, text
    # the schema check passes once the HTTP policy has a domain; compile-time problems are then listed together
    api["policy_https"][0]["url_domain"] = "127.0.0.1:9"
    with pytest.raises(SnapshotError) as exc:
        build_runtime(snapshot([api]), Services(load_settings({}, environ={})))
    text = "\n".join(exc.value.problems)
    for expected in (
        "apis[0].policy_mocks[0].conditions[0].condition_value: invalid regular expression",
        "apis[0].policy_mocks[1].conditions[0].condition_value: '10.0.0.0/33' is not an IP address or CIDR",
        "apis[0].policy_mocks[2].conditions[0].req_param_name: is required when condition_origin is param",
        "apis[0].policy_mocks[3].conditions[0].condition_type: is required when condition_origin is cookie",
        "apis[0].policy_mocks[4].conditions: needs at least one condition",
        "apis[0].policy_mocks[5].conditions[0].sys_param_name: must be one of",
    ):
        assert expected in text, (expected, text)
