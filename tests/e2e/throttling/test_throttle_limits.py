"""Throttling behaviour over real sockets, with the in-process store and with the Redis store.

Every test runs twice (``store`` = local | redis). Per-app and per-user limits use the test-only
identity stage of tests/throttle_helpers.py (``X-Test-App`` / ``X-Test-User`` -> ctx.app_id / user_id),
added to the pipeline by the ``identity_stage`` fixture only for these tests, because the authentication stage
belongs to another module. Exact counts use HOUR windows so refill during a test is negligible.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from gateway.pipeline.spec import Chain
from tests.support.helpers import RELEASE, mock_api, snapshot
from tests.support.throttle_helpers import app, binding, get, policy
from tests.support.throttle_helpers import identity_stage as identity_stage

THRESHOLD = "The throttling threshold has been reached"


@pytest.fixture(params=["local", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        # a generous deadline: these tests count Redis decisions exactly, and a busy machine can deschedule
        # the process for longer than the 50 ms default (the default is covered by test_throttle_outage.py)
        return {"redis_url": request.getfixturevalue("redis_url"), "throttle_key_prefix": prefix,
                "throttle_redis_timeout_ms": 3000}
    return {"throttle_key_prefix": prefix}


def two_apis(**collections: Any) -> dict[str, Any]:
    return snapshot([mock_api("a1", "/a"), mock_api("a2", "/b")], **collections)


async def test_api_limit_rejects_with_spec_error(make_gateway: Any, client: aiohttp.ClientSession,
                                                 store: dict[str, Any]) -> None:
    doc = two_apis(throttles=[policy("t1", 3, interval=1, unit="HOUR")], throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, **store)
    seen = []
    for _ in range(3):
        status, headers, _ = await get(client, gw.url + "/a")
        assert status == 200
        seen.append(headers["X-Apig-RateLimit-api"])
    assert seen == ["remain:2,limit:3,time:1 hour", "remain:1,limit:3,time:1 hour", "remain:0,limit:3,time:1 hour"]
    status, headers, body = await get(client, gw.url + "/a")
    assert status == 429
    assert body["error_code"] == "APIG.0308"
    assert body["error_msg"] == f"{THRESHOLD}: policy api over ratelimit,limit:3,time:1 hour"
    assert headers["X-Apig-RateLimit-api"] == "remain:0,limit:3,time:1 hour"
    # one token comes back after 3600/3 s
    assert 1150 <= int(headers["Retry-After"]) <= 1200
    # an API without a policy is not throttled and gets no headers
    status, headers, _ = await get(client, gw.url + "/b")
    assert status == 200 and "X-Apig-RateLimit-api" not in headers
    stats = gw.gw.services.extras["throttle_stats"]
    assert stats["decisions_redis" if "redis_url" in store else "decisions_local"] == 4
    assert stats["rejected"] == 1 and stats["admitted"] == 3 and stats["redis_fallbacks"] == 0


async def test_type1_per_api_vs_type2_shared(make_gateway: Any, client: aiohttp.ClientSession,
                                             store: dict[str, Any]) -> None:
    doc = two_apis(throttles=[policy("t1", 2, unit="HOUR", type=1)],
                   throttle_bindings=[binding("t1", "a1"), binding("t1", "a2")])
    gw = await make_gateway(doc, **store)
    assert [(await get(client, gw.url + p))[0] for p in ("/a", "/a", "/b", "/b", "/a", "/b")] == \
        [200, 200, 200, 200, 429, 429]
    doc2 = two_apis(throttles=[policy("t2", 2, unit="HOUR", type=2)],
                    throttle_bindings=[binding("t2", "a1"), binding("t2", "a2")])
    gw2 = await make_gateway(doc2, **store)
    assert [(await get(client, gw2.url + p))[0] for p in ("/a", "/b", "/a", "/b")] == [200, 200, 429, 429]


async def test_per_ip_limit_uses_resolved_client_ip(make_gateway: Any, client: aiohttp.ClientSession,
                                                    store: dict[str, Any]) -> None:
    doc = two_apis(throttles=[policy("t1", 100, ip=2, unit="HOUR")], throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, trusted_proxies=["127.0.0.1/32"], **store)
    a = {"X-Forwarded-For": "10.0.0.1"}
    b = {"X-Forwarded-For": "10.0.0.2"}
    assert [(await get(client, gw.url + "/a", **a))[0] for _ in range(3)] == [200, 200, 429]
    status, headers, body = await get(client, gw.url + "/a", **a)
    assert status == 429 and body["error_msg"] == f"{THRESHOLD}: policy ip over ratelimit,limit:2,time:1 hour"
    assert headers["X-Apig-RateLimit-ip"] == "remain:0,limit:2,time:1 hour"
    status, headers, _ = await get(client, gw.url + "/a", **b)
    assert status == 200
    assert headers["X-Apig-RateLimit-ip"] == "remain:1,limit:2,time:1 hour"
    # the rejected calls of 10.0.0.1 did not consume the API budget: 2 + 1 used of 100
    assert headers["X-Apig-RateLimit-api"] == "remain:97,limit:100,time:1 hour"


async def test_app_user_limits_and_excluded_configs(make_gateway: Any, client: aiohttp.ClientSession,
                                                    store: dict[str, Any], identity_stage: Chain) -> None:
    doc = two_apis(
        throttles=[policy("t1", 100, user=3, app=2, unit="HOUR")], throttle_bindings=[binding("t1", "a1")],
        apps=[app("plain"), app("vip"), app("low")],
        special_throttles=[
            {"id": "s1", "throttle_id": "t1", "object_type": "APP", "object_id": "vip", "call_limits": 4},
            {"id": "s2", "throttle_id": "t1", "object_type": "USER", "object_id": "tiny", "call_limits": 1},
        ],
    )
    gw = await make_gateway(doc, chain=identity_stage, **store)
    url = gw.url + "/a"
    assert [(await get(client, url, **{"X-Test-App": "plain"}))[0] for _ in range(3)] == [200, 200, 429]
    _, _, body = await get(client, url, **{"X-Test-App": "plain"})
    assert body["error_msg"] == f"{THRESHOLD}: policy app over ratelimit,limit:2,time:1 hour"
    # the excluded config raises the app limit for "vip" (above the generic app limit)
    results = [await get(client, url, **{"X-Test-App": "vip"}) for _ in range(5)]
    assert [r[0] for r in results] == [200, 200, 200, 200, 429]
    assert results[0][1]["X-Apig-RateLimit-app"] == "remain:3,limit:4,time:1 hour"
    # users: generic 3, "tiny" 1; a caller without identity skips the app/user dimensions
    assert [(await get(client, url, **{"X-Test-User": "bob"}))[0] for _ in range(4)] == [200, 200, 200, 429]
    status, headers, body = await get(client, url, **{"X-Test-User": "tiny"})
    assert status == 200 and headers["X-Apig-RateLimit-user"] == "remain:0,limit:1,time:1 hour"
    status, _, body = await get(client, url, **{"X-Test-User": "tiny"})
    assert body["error_msg"] == f"{THRESHOLD}: policy user over ratelimit,limit:1,time:1 hour"
    status, headers, _ = await get(client, url)
    assert status == 200 and "X-Apig-RateLimit-app" not in headers and "X-Apig-RateLimit-user" not in headers


async def test_rejected_requests_consume_nothing(make_gateway: Any, client: aiohttp.ClientSession,
                                                 store: dict[str, Any], identity_stage: Chain) -> None:
    doc = two_apis(throttles=[policy("t1", 3, app=1, unit="HOUR")], throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, chain=identity_stage, **store)
    url = gw.url + "/a"
    assert (await get(client, url, **{"X-Test-App": "A"}))[0] == 200
    for _ in range(5):  # rejected by the app limit: must not eat the API budget
        assert (await get(client, url, **{"X-Test-App": "A"}))[0] == 429
    assert (await get(client, url, **{"X-Test-App": "B"}))[0] == 200
    assert (await get(client, url, **{"X-Test-App": "C"}))[0] == 200
    status, _, body = await get(client, url, **{"X-Test-App": "D"})
    assert status == 429 and "policy api over ratelimit,limit:3" in body["error_msg"]


async def test_policy_push_keeps_counters(make_gateway: Any, client: aiohttp.ClientSession,
                                          store: dict[str, Any]) -> None:
    doc = two_apis(throttles=[policy("t1", 3, unit="HOUR")], throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, **store)
    url = gw.url + "/a"
    assert (await get(client, url))[0] == 200
    assert (await get(client, url))[0] == 200
    # an unrelated change (new policy on the other API) keeps this policy's counter
    doc2 = two_apis(throttles=[policy("t1", 3, unit="HOUR"), policy("t2", 1, unit="HOUR")],
                    throttle_bindings=[binding("t1", "a1"), binding("t2", "a2")])
    gw.gw.apply_document(doc2)
    status, headers, _ = await get(client, url)
    assert status == 200 and headers["X-Apig-RateLimit-api"] == "remain:0,limit:3,time:1 hour"
    assert (await get(client, url))[0] == 429
    # raising the limit takes effect at once, without resetting what was used (3 of 5)
    doc3 = two_apis(throttles=[policy("t1", 5, unit="HOUR")], throttle_bindings=[binding("t1", "a1")])
    gw.gw.apply_document(doc3)
    assert [(await get(client, url))[0] for _ in range(3)] == [200, 200, 429]


async def test_default_ceiling_spans_environments(make_gateway: Any, client: aiohttp.ClientSession,
                                                  store: dict[str, Any]) -> None:
    doc = snapshot([mock_api("a1", "/a")], envs=["TEST"], publish_in=["env-test"])
    gw = await make_gateway(doc, throttle_default_api_limit=3, **store)
    first = await get(client, gw.url + "/a")
    assert first[0] == 200 and first[1]["X-Apig-RateLimit-api-allenv"] in (
        "remain:2,limit:3,time:1 second", "remain:3,limit:3,time:1 second")
    # 3/s over both environments: six calls at once, three per environment. The bucket refills one call every
    # 333 ms, so a busy machine that spreads the calls out may admit a few more, never all six
    started = time.monotonic()
    results = await asyncio.gather(*(get(client, gw.url + "/a", **({"X-Stage": "TEST"} if i % 2 else {}))
                                     for i in range(6)))
    elapsed = time.monotonic() - started
    statuses = [r[0] for r in results]
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) <= 2 + int(elapsed * 3) + 1, (statuses, elapsed)
    if elapsed < 1.0:  # one shared bucket: some calls of one environment were refused
        assert 429 in statuses, (statuses, elapsed)
    _, headers, body = next(r for r in results if r[0] == 429) if 429 in statuses else (429, {}, None)
    if body is not None:
        assert body["error_msg"] == f"{THRESHOLD}: policy api-allenv over ratelimit,limit:3,time:1 second"
        assert headers["Retry-After"] == "1"
    await wait_admitted(client, gw.url + "/a", 0.2)  # a refill admits calls again


async def wait_admitted(client: aiohttp.ClientSession, url: str, at_least_s: float, timeout: float = 30.0) -> float:
    """Poll ``url`` until a call is admitted; returns the seconds it took (asserted >= ``at_least_s``: the
    limiter must not refill early; later is fine on a busy machine)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (await get(client, url))[0] == 200:
            waited = time.monotonic() - started
            assert waited >= at_least_s, f"admitted after {waited:.3f} s, before the refill period"
            return waited
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} still refused after {timeout} s")


async def test_per_second_refill(make_gateway: Any, client: aiohttp.ClientSession, store: dict[str, Any]) -> None:
    # 4 per 8 s: one call every 2 s, slow enough that a busy machine cannot blur the counts
    doc = two_apis(throttles=[policy("t1", 4, interval=8, unit="SECOND")], throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, **store)
    url = gw.url + "/a"
    assert [(await get(client, url))[0] for _ in range(5)] == [200, 200, 200, 200, 429]
    _, _, body = await get(client, url)
    assert body["error_msg"] == f"{THRESHOLD}: policy api over ratelimit,limit:4,time:8 second"
    waited = await wait_admitted(client, url, 1.0)  # about 2 s after the bucket emptied
    print(f"refilled after {waited:.2f} s")
    assert (await get(client, url))[0] == 429  # one refill admits one call


def _seconds_to_utc_midnight() -> float:
    now = time.time()
    return 86400 - now % 86400


async def test_day_policy_uses_utc_calendar_window(make_gateway: Any, client: aiohttp.ClientSession,
                                                   store: dict[str, Any]) -> None:
    doc = two_apis(throttles=[policy("t1", 2, interval=1, unit="DAY")], throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, **store)
    assert [(await get(client, gw.url + "/a"))[0] for _ in range(3)] == [200, 200, 429]
    _, headers, _ = await get(client, gw.url + "/a")
    assert abs(int(headers["Retry-After"]) - _seconds_to_utc_midnight()) <= 5


async def test_credential_quota(make_gateway: Any, client: aiohttp.ClientSession, store: dict[str, Any],
                                identity_stage: Chain) -> None:
    future = datetime.fromtimestamp(time.time() + 7200, UTC).strftime("%Y-%m-%d %H:%M:%S")
    doc = two_apis(
        apps=[app("app1"), app("app2"), app("app3")],
        quotas=[{"id": "q1", "name": "daily", "call_limits": 3, "time_unit": "DAY", "time_interval": 1,
                 "reset_time": "2020-09-20 00:00:00"},
                {"id": "q2", "name": "later", "call_limits": 1, "time_unit": "HOUR", "time_interval": 1,
                 "reset_time": future},
                {"id": "q3", "name": "first_call", "call_limits": 1, "time_unit": "MINUTE", "time_interval": 10}],
        quota_bindings=[{"quota_id": "q1", "app_id": "app1"}, {"app_quota_id": "q2", "app_id": "app2"},
                        {"quota_id": "q3", "app_id": "app3"}],
    )
    gw = await make_gateway(doc, chain=identity_stage, **store)
    one = {"X-Test-App": "app1"}
    # the quota is per credential across every API
    results = [await get(client, gw.url + p, **one) for p in ("/a", "/b", "/a", "/b")]
    assert [r[0] for r in results] == [200, 200, 200, 429]
    assert results[0][1]["X-Apig-RateLimit-quota"] == "remain:2,limit:3,time:1 day"
    _, headers, body = results[3]
    assert body["error_msg"] == f"{THRESHOLD}: credential quota over ratelimit,limit:3,time:1 day"
    assert abs(int(headers["Retry-After"]) - _seconds_to_utc_midnight()) <= 5  # anchored at 00:00:00 UTC
    # before the first reset instant everything counts in one period that ends at reset_time
    two = {"X-Test-App": "app2"}
    assert [(await get(client, gw.url + "/a", **two))[0] for _ in range(2)] == [200, 429]
    _, headers, _ = await get(client, gw.url + "/a", **two)
    assert 7190 <= int(headers["Retry-After"]) <= 7201
    # without reset_time the first call anchors the period
    three = {"X-Test-App": "app3"}
    assert [(await get(client, gw.url + "/a", **three))[0] for _ in range(2)] == [200, 429]
    _, headers, _ = await get(client, gw.url + "/a", **three)
    assert 595 <= int(headers["Retry-After"]) <= 600
    # apps without a quota (or callers without an app) are not limited
    assert (await get(client, gw.url + "/a"))[0] == 200


@pytest.mark.parametrize("mode", ["debug", "off"])
async def test_header_modes(make_gateway: Any, client: aiohttp.ClientSession, mode: str) -> None:
    doc = two_apis(throttles=[policy("t1", 5, unit="HOUR")], throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, throttle_headers=mode, throttle_key_prefix=uuid.uuid4().hex)
    _, headers, _ = await get(client, gw.url + "/a")
    assert "X-Apig-RateLimit-api" not in headers
    _, headers, _ = await get(client, gw.url + "/a", **{"X-Apig-Mode": "debug"})
    assert ("X-Apig-RateLimit-api" in headers) == (mode == "debug")


async def test_environment_bindings_are_separate(make_gateway: Any, client: aiohttp.ClientSession,
                                                 store: dict[str, Any]) -> None:
    doc = snapshot([mock_api("a1", "/a")], envs=["TEST"], publish_in=["env-test"],
                   throttles=[policy("t1", 1, unit="HOUR"), policy("t2", 2, unit="HOUR")],
                   throttle_bindings=[binding("t1", "a1", RELEASE), binding("t2", "a1", "env-test")])
    gw = await make_gateway(doc, **store)
    assert [(await get(client, gw.url + "/a"))[0] for _ in range(2)] == [200, 429]
    test = {"X-Stage": "TEST"}
    assert [(await get(client, gw.url + "/a", **test))[0] for _ in range(3)] == [200, 200, 429]


async def test_huge_periods_are_handled(make_gateway: Any, client: aiohttp.ClientSession,
                                        store: dict[str, Any]) -> None:
    doc = two_apis(throttles=[policy("t1", 1, interval=2147483647, unit="DAY")],
                   throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, **store)
    assert [(await get(client, gw.url + "/a"))[0] for _ in range(2)] == [200, 429]
    assert gw.gw.services.extras["throttle_stats"]["redis_fallbacks"] == 0
