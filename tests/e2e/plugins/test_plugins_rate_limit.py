"""rate_limit plug-in ("request throttling 2.0") end to end: real gateways, real Redis, real sockets.

Covers the basic limits, excluded (special) apps and users, parameter rules (first match, own limit and
window), shared scope, precedence over a classic policy, load-time rejection of bad content, and the
per-parameter limits shared through Redis by two real gateway processes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.core.errors import SnapshotError
from gateway.pipeline.spec import Chain
from tests.conftest import free_port
from tests.support.helpers import mock_api, snapshot
from tests.support.plugins_helpers import bind, plugin
from tests.support.throttle_helpers import GatewayProcess, binding, get, hammer, policy
from tests.support.throttle_helpers import identity_stage as identity_stage  # (fixture)

TIER = [{"name": "tier", "type": "query", "value": "tier"}]


def rate_limit(api_limit: int = 100, **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"scope": "basic", "default_time_unit": "minute", "default_interval": 1,
                               "api_limit": api_limit, "app_limit": 0, "user_limit": 0, "ip_limit": 0,
                               "algorithm": "counter", "specials": [], "parameters": [], "rules": []}
    content.update(extra)
    return content


def tier_rules(free: int, gold: int, unit: str = "second") -> list[dict[str, Any]]:
    return [
        {"rule_name": "free", "match_regex": json.dumps(["tier", "==", "free"]), "time_unit": unit, "interval": 1,
         "limit": free},
        {"rule_name": "gold", "match_regex": json.dumps(["tier", "==", "gold"]), "time_unit": unit, "interval": 1,
         "limit": gold},
    ]


async def statuses(client: aiohttp.ClientSession, url: str, n: int, **headers: str) -> list[int]:
    return [(await get(client, url, **headers))[0] for _ in range(n)]


async def test_basic_api_limit_headers_and_429(make_gateway: Any, client: aiohttp.ClientSession) -> None:
    doc = snapshot([mock_api("a1", "/a")], plugins=[plugin("rl", "rate_limit", rate_limit(3))],
                   plugin_bindings=[bind("b", "rl", "a1")])
    gw = await make_gateway(doc, throttle_default_api_limit=0)
    status, headers, _ = await get(client, gw.url + "/a")
    assert status == 200 and headers["X-Apig-RateLimit-api"] == "remain:2,limit:3,time:1 minute"
    assert await statuses(client, gw.url + "/a", 3) == [200, 200, 429]
    status, headers, body = await get(client, gw.url + "/a")
    assert status == 429 and body["error_code"] == "APIG.0308"
    assert body["error_msg"].endswith("policy api over ratelimit,limit:3,time:1 minute")
    assert int(headers["Retry-After"]) >= 1


async def test_rules_first_match_and_own_window(make_gateway: Any, client: aiohttp.ClientSession) -> None:
    rules = [
        {"rule_name": "posts",
         "match_regex": json.dumps(["AND", ["method", "~=", "GET"], ["method", "in", "POST,PUT"]]),
         "time_unit": "minute", "interval": 1, "limit": 1},
        {"rule_name": "reports", "match_regex": json.dumps(["reqPath", "~~", "^/r/report"]), "limit": 2},
        {"rule_name": "any-r", "match_regex": json.dumps(["reqPath", "~~", "^/r/"]), "limit": 3},
    ]
    params = [{"name": "reqPath", "type": "path", "value": "reqPath"},
              {"name": "method", "type": "method", "value": "method"}]
    doc = snapshot([mock_api("a1", "/r", match_mode="SWA", method="ANY")],
                   plugins=[plugin("rl", "rate_limit", rate_limit(100, parameters=params, rules=rules))],
                   plugin_bindings=[bind("b", "rl", "a1")])
    gw = await make_gateway(doc, throttle_default_api_limit=0)
    # /r/report* matches "reports" first: 2 per minute (the rule's window defaults to the plug-in's)
    assert await statuses(client, gw.url + "/r/report/1", 3) == [200, 200, 429]
    status, headers, body = await get(client, gw.url + "/r/reports")
    assert status == 429 and "policy rule reports over ratelimit,limit:2,time:1 minute" in body["error_msg"]
    assert headers["X-Apig-RateLimit-rule"] == "remain:0,limit:2,time:1 minute"
    # other /r/ paths fall to "any-r" (its own counter)
    assert await statuses(client, gw.url + "/r/x", 4) == [200, 200, 200, 429]
    # a POST matches "posts" first (1 per minute), whatever the path
    async with client.post(gw.url + "/r/x") as r:
        assert r.status == 200
    async with client.post(gw.url + "/r/report") as r:
        assert r.status == 429
    # a path no rule matches is only under the API limit
    assert await statuses(client, gw.url + "/r", 5) == [200] * 5


async def test_specials_and_app_user_ip_limits(make_gateway: Any, client: aiohttp.ClientSession,
                                               identity_stage: Chain) -> None:
    content = rate_limit(100, app_limit=2, user_limit=3, ip_limit=50,
                         specials=[{"type": "app", "policies": [{"key": "vip", "limit": 4}]},
                                   {"type": "user", "policies": [{"key": "boss", "limit": 1}]}])
    doc = snapshot([mock_api("a1", "/a")], plugins=[plugin("rl", "rate_limit", content)],
                   plugin_bindings=[bind("b", "rl", "a1")])
    gw = await make_gateway(doc, chain=identity_stage, throttle_default_api_limit=0)
    assert await statuses(client, gw.url + "/a", 3, **{"X-Test-App": "plain"}) == [200, 200, 429]
    assert await statuses(client, gw.url + "/a", 5, **{"X-Test-App": "vip"}) == [200] * 4 + [429]
    assert await statuses(client, gw.url + "/a", 2, **{"X-Test-User": "boss"}) == [200, 429]
    assert await statuses(client, gw.url + "/a", 4, **{"X-Test-User": "joe"}) == [200, 200, 200, 429]
    status, _headers, body = await get(client, gw.url + "/a", **{"X-Test-App": "vip"})
    assert status == 429 and "policy app over ratelimit,limit:4" in body["error_msg"]


async def test_replaces_classic_policy_and_shared_scope(make_gateway: Any, client: aiohttp.ClientSession) -> None:
    doc = snapshot([mock_api("a1", "/a"), mock_api("a2", "/b"), mock_api("a3", "/c")],
                   throttles=[policy("t1", 1, unit="MINUTE")],
                   throttle_bindings=[binding("t1", "a1"), binding("t1", "a3")],
                   plugins=[plugin("rl", "rate_limit", rate_limit(3, scope="share"))],
                   plugin_bindings=[bind("b1", "rl", "a1"), bind("b2", "rl", "a2")])
    gw = await make_gateway(doc, throttle_default_api_limit=0)
    # a1 has both: the plug-in wins (3 per minute, not the policy's 1), and its budget is shared with a2
    assert await statuses(client, gw.url + "/a", 2) == [200, 200]
    assert await statuses(client, gw.url + "/b", 2) == [200, 429]
    assert (await get(client, gw.url + "/a"))[0] == 429
    # a3 keeps the classic policy
    assert await statuses(client, gw.url + "/c", 2) == [200, 429]


@pytest.mark.parametrize(("content", "reason"), [
    (rate_limit(0), "api_limit: must be a positive number of calls, or -1"),
    (rate_limit(10, user_limit=20), "user_limit: must not exceed api_limit (10)"),
    (rate_limit(10, default_time_unit="MINUTE"), "default_time_unit: must be one of"),
    (rate_limit(10, rules=[{"rule_name": "x", "match_regex": "[\"nope\", \"==\", \"1\"]", "limit": 1}]),
     "rules[0].match_regex: unknown parameter 'nope'"),
    (rate_limit(10, parameters=TIER, rules=[{"rule_name": "x", "match_regex": "[\"tier\", \"=~\", \"1\"]",
                                             "limit": 1}]), "unknown operator '=~'"),
    (rate_limit(10, specials=[{"type": "app", "policies": [{"key": "a", "limit": 11}]}]),
     "specials[0].policies[0].limit: must not exceed api_limit (10)"),
    (rate_limit(10, specials=[{"type": "group", "policies": []}]), "specials[0].type: must be app or user"),
])
async def test_bad_content_rejected_at_load(make_gateway: Any, content: dict[str, Any], reason: str) -> None:
    doc = snapshot([mock_api("a1", "/a")], plugins=[plugin("rl", "rate_limit", content)],
                   plugin_bindings=[bind("b", "rl", "a1")])
    with pytest.raises(SnapshotError) as exc:
        await make_gateway(doc)
    found = [p for p in exc.value.problems if p.startswith("plugins[0].plugin_content.") and reason in p]
    assert found, exc.value.problems


async def test_vendor_example_loads_and_algorithm_local(make_gateway: Any, client: aiohttp.ClientSession,
                                                        redis_url: str) -> None:
    """The vendor's published example (terraform provider docs) loads as is; ``algorithm: local`` keeps the
    counters in the process even with Redis configured."""
    content = {
        "scope": "basic", "default_time_unit": "minute", "default_interval": 1, "api_limit": 25, "app_limit": 10,
        "user_limit": 15, "ip_limit": 25, "algorithm": "local",
        "specials": [{"type": "app", "policies": [{"key": "app-1", "limit": 10}]},
                     {"type": "user", "policies": [{"key": "user-1", "limit": 10}]}],
        "parameters": [{"type": "path", "name": "reqPath", "value": "reqPath"},
                       {"type": "method", "name": "method", "value": "method"},
                       {"type": "system", "name": "serverName", "value": "serverName"}],
        "rules": [
            {"rule_name": "rule-0001",
             "match_regex": "[\"AND\",[\"method\",\"~=\",\"POST\"],[\"method\",\"~=\",\"PATCH\"]]",
             "time_unit": "minute", "interval": 1, "limit": 20},
            {"rule_name": "rule-0002", "match_regex": "[\"reqPath\",\"~~\",\"/terraform/test/*/\"]",
             "time_unit": "minute", "interval": 1, "limit": 10},
            {"rule_name": "rule-0003", "match_regex": "[\"serverName\",\"==\",\"terraform\"]",
             "time_unit": "minute", "interval": 1, "limit": 15},
            {"rule_name": "rule-0004", "match_regex": "[\"method\",\"in\",\"PATCH\"]",
             "time_unit": "minute", "interval": 1, "limit": 5},
        ],
    }
    doc = snapshot([mock_api("a1", "/a")], plugins=[plugin("rl", "rate_limit", content)],
                   plugin_bindings=[bind("b", "rl", "a1")])
    gw = await make_gateway(doc, redis_url=redis_url, throttle_key_prefix=f"t{uuid.uuid4().hex[:8]}",
                            throttle_default_api_limit=0)
    status, headers, _ = await get(client, gw.url + "/a")
    assert status == 200
    assert headers["X-Apig-RateLimit-rule"] == "remain:19,limit:20,time:1 minute"  # GET: rule-0001
    svc = gw.gw.services.extras["throttle"]
    assert svc.local.__len__() >= 2  # decided by the in-process store, not Redis


def _accepted_between(accepted: int, rate: int, seconds: float) -> None:
    expected = rate * seconds + rate  # a token bucket: the initial burst (capacity) plus the refill
    assert 0.85 * expected - 1 <= accepted <= 1.1 * expected + 1, (accepted, rate, seconds)


async def test_per_parameter_limits_through_redis_two_processes(tmp_path: Path, redis_url: str) -> None:
    """2/s for ?tier=free and 10/s for ?tier=gold on one API, two real gateway processes sharing Redis."""
    # the API's own limit stays far above what the un-tiered traffic can reach: only the rules limit here
    content = rate_limit(1_000_000, default_time_unit="second", parameters=TIER, rules=tier_rules(2, 10))
    doc = snapshot([mock_api("a1", "/a")], plugins=[plugin("rl", "rate_limit", content)],
                   plugin_bindings=[bind("b", "rl", "a1")])
    cfg = tmp_path / "gw.json"
    cfg.write_text(json.dumps(doc))
    run = f"t{uuid.uuid4().hex[:8]}"
    env = {"GATEWAY_THROTTLE_KEY_PREFIX": run, "GATEWAY_DISTRIBUTION_PREFIX": f"gw{run}",
           "GATEWAY_THROTTLE_REDIS_TIMEOUT_MS": "2000", "GATEWAY_THROTTLE_DEFAULT_API_LIMIT": "0"}
    procs = [GatewayProcess(str(cfg), free_port(), free_port(), redis_url, env) for _ in range(2)]
    try:
        await asyncio.gather(*(pr.wait_ready() for pr in procs))
        (free, free_s), (gold, gold_s), (other, _) = await asyncio.gather(
            hammer([pr.url + "/a?tier=free" for pr in procs], 3.0, concurrency=4),
            hammer([pr.url + "/a?tier=gold" for pr in procs], 3.0, concurrency=4),
            hammer([pr.url + "/a?tier=none" for pr in procs], 3.0, concurrency=2),
        )
        stats = [await pr.throttle_stats() for pr in procs]
    finally:
        for pr in procs:
            pr.stop()
    assert set(free) <= {200, 429} and set(gold) <= {200, 429} and set(other) == {200}, (free, gold, other)
    assert free[429] > free[200] and gold[429] > gold[200]  # well above both limits
    _accepted_between(free[200], 2, free_s)
    _accepted_between(gold[200], 10, gold_s)
    for st in stats:  # decided by the shared counters (a scheduling stall of a loaded machine may cost a few)
        counts = st["stats"]
        assert st["store"] == "redis" and counts["redis_fallbacks"] <= 0.01 * counts["decisions_redis"], st
