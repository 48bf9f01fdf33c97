"""Prometheus metrics after real traffic: MOCK, HTTP, backend failures, denials, reloads."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from gateway.core.errors import SnapshotError
from gateway.observe.metrics import metrics_of, register_gauge_source
from tests.support.helpers import GROUP_HOST, http_api, mock_api, snapshot
from tests.support.ops_helpers import OPS_CHAIN, scrape, total, value


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def traffic_doc(addr: str) -> dict:
    apis = [
        mock_api("m1", "/mock", '{"ok":true}'),
        http_api("h1", "/echo", addr),
        http_api("dead", "/dead", f"127.0.0.1:{closed_port()}"),  # GET: retried once (retry_count -1)
        http_api("slow", "/slow", addr, backend_uri="/slow", timeout=300, retry_count="0"),
        mock_api("thr", "/thr", remark="ops-test-throttle"),
        mock_api("acl", "/acl", remark="ops-test-deny-ip"),
    ]
    apis[1]["req_params"] = [{"name": "n", "location": "QUERY", "type": "NUMBER", "required": 2, "valid_enable": 1,
                              "max_num": 10}]
    doc = snapshot(apis, envs=["TEST"], publish_in=["env-test"])
    doc["version"] = "v-metrics-1"
    return doc


async def test_metrics_after_real_traffic(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(traffic_doc(addr), chain=OPS_CHAIN)
    for _ in range(3):
        async with client.get(gw.url + "/mock") as r:
            assert r.status == 200
    for _ in range(2):
        async with client.get(gw.url + "/echo") as r:
            assert r.status == 200
    async with client.get(gw.url + "/echo", headers={"X-Stage": "test"}) as r:
        assert r.status == 200
    async with client.get(gw.url + "/echo?n=99") as r:
        assert r.status == 400
    async with client.get(gw.url + "/dead") as r:
        assert r.status == 502
    backend.delay = 0.6
    async with client.get(gw.url + "/slow") as r:
        assert r.status == 504
    backend.delay = 0.0
    async with client.get(gw.url + "/thr") as r:
        assert r.status == 429
    async with client.get(gw.url + "/acl") as r:
        assert r.status == 403
    async with client.get(gw.url + "/nowhere/secret-path-123") as r:
        assert r.status == 404
    async with client.get(gw.url + "/mock", headers={"X-Stage": "NO-SUCH-ENV"}) as r:
        assert r.status == 404

    m = await scrape(gw.admin_url)
    rel = {"group": "g1", "env": "RELEASE"}
    assert value(m, "apig_requests_total", **rel, api="m1", status_class="2xx") == 3
    assert value(m, "apig_requests_total", **rel, api="h1", status_class="2xx") == 2
    assert value(m, "apig_requests_total", group="g1", api="h1", env="TEST", status_class="2xx") == 1
    assert value(m, "apig_requests_total", **rel, api="h1", status_class="4xx") == 1
    assert value(m, "apig_requests_total", **rel, api="dead", status_class="5xx") == 1
    assert value(m, "apig_requests_total", **rel, api="slow", status_class="5xx") == 1
    # unmatched requests: bounded labels, never the raw path or the raw X-Stage value
    assert value(m, "apig_requests_total", **rel, api="-", status_class="4xx") == 1
    assert value(m, "apig_requests_total", group="g1", api="-", env="-", status_class="4xx") == 1
    assert not any("secret-path" in str(k) or "NO-SUCH" in str(k) for k in m)

    # latency histograms: total for every request, backend only where a backend answered
    assert value(m, "apig_request_duration_seconds_count", **rel, api="m1") == 3
    assert value(m, "apig_request_duration_seconds_bucket", **rel, api="m1", le="+Inf") == 3
    assert value(m, "apig_request_duration_seconds_sum", **rel, api="m1") > 0
    assert value(m, "apig_backend_duration_seconds_count", **rel, api="h1") == 2
    assert value(m, "apig_backend_duration_seconds_count", **rel, api="m1") == 0
    assert value(m, "apig_request_duration_seconds_bucket", **rel, api="slow", le="0.25") == 0
    assert value(m, "apig_request_duration_seconds_bucket", **rel, api="slow", le="0.5") == 1

    # errors by response type and code: backend failures, throttled, denied, validation, not found
    assert value(m, "apig_errors_total", **rel, api="dead", type="BACKEND_UNAVAILABLE", code="APIG.0202") == 1
    assert value(m, "apig_errors_total", **rel, api="slow", type="BACKEND_TIMEOUT", code="APIG.0203") == 1
    assert value(m, "apig_errors_total", **rel, api="thr", type="THROTTLED", code="APIG.0308") == 1
    assert value(m, "apig_errors_total", **rel, api="acl", type="ACCESS_DENIED", code="APIG.0401") == 1
    assert value(m, "apig_errors_total", **rel, api="h1", type="REQUEST_PARAMETERS_FAILURE", code="APIG.0201") == 1
    assert value(m, "apig_errors_total", **rel, api="-", type="NOT_FOUND", code="APIG.0101") == 1
    assert total(m, "apig_errors_total", api="m1") == 0
    assert value(m, "apig_backend_retries_total", **rel, api="dead") == 1
    assert value(m, "apig_backend_retries_total", **rel, api="slow") == 0

    # state read at scrape time
    assert value(m, "apig_config_info", version="v-metrics-1") == 1
    assert value(m, "apig_config_loaded") == 1
    assert value(m, "apig_config_reloads_total") == 1
    assert value(m, "apig_config_reload_failures_total") == 0
    assert value(m, "apig_config_objects", kind="apis") == 6
    assert value(m, "apig_inflight_requests") == 0


async def test_reloads_and_failures_are_counted(make_gateway, echo_backend) -> None:
    _, addr = echo_backend
    gw = await make_gateway(traffic_doc(addr), chain=OPS_CHAIN)
    bad = traffic_doc(addr)
    bad["apis"][0]["req_method"] = "FETCH"
    with pytest.raises(SnapshotError):
        gw.gw.apply_document(bad)
    good = traffic_doc(addr)
    good["version"] = "v-metrics-2"
    gw.gw.apply_document(good)
    m = await scrape(gw.admin_url)
    assert value(m, "apig_config_reloads_total") == 2
    assert value(m, "apig_config_reload_failures_total") == 1
    assert value(m, "apig_config_info", version="v-metrics-2") == 1
    assert value(m, "apig_config_info", version="v-metrics-1") == 0


async def test_two_gateways_in_one_process_do_not_collide(make_gateway) -> None:
    doc = snapshot([mock_api("m1", "/mock")])
    one = await make_gateway(doc)
    two = await make_gateway(doc)
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as c:
        for _ in range(4):
            async with c.get(one.url + "/mock") as r:
                assert r.status == 200
        async with c.get(two.url + "/mock") as r:
            assert r.status == 200
    labels = {"group": "g1", "api": "m1", "env": "RELEASE", "status_class": "2xx"}
    assert value(await scrape(one.admin_url), "apig_requests_total", **labels) == 4
    assert value(await scrape(two.admin_url), "apig_requests_total", **labels) == 1


async def test_gauge_sources_and_extras_conventions(make_gateway) -> None:
    gw = await make_gateway(snapshot([mock_api("m1", "/mock")]))
    services = gw.gw.services
    health = {("ch-1", "10.0.0.1:80"): True, ("ch-1", "10.0.0.2:80"): False}
    services.extras["channel_health"] = lambda: health
    services.extras["throttle_fallbacks"] = {"redis_down": 7}
    register_gauge_source(services, "apig_test_pool_size", "A gauge from a feature module", ("pool",),
                          lambda: {("p1",): 3})

    def broken() -> dict:
        raise RuntimeError("source failed")

    register_gauge_source(services, "apig_test_broken", "Fails to read", (), broken)
    m = await scrape(gw.admin_url)
    assert value(m, "apig_channel_member_up", channel="ch-1", member="10.0.0.1:80") == 1
    assert value(m, "apig_channel_member_up", channel="ch-1", member="10.0.0.2:80") == 0
    assert value(m, "apig_throttle_fallbacks_total", reason="redis_down") == 7
    assert value(m, "apig_test_pool_size", pool="p1") == 3
    services.extras["throttle_fallbacks"] = 2
    health[("ch-1", "10.0.0.2:80")] = True
    m = await scrape(gw.admin_url)
    assert value(m, "apig_throttle_fallbacks_total", reason="all") == 2
    assert value(m, "apig_channel_member_up", channel="ch-1", member="10.0.0.2:80") == 1


async def test_metrics_off_and_token(make_gateway) -> None:
    off = await make_gateway(snapshot([mock_api("m1", "/mock")]), metrics=False)
    assert metrics_of(off.gw.services) is None
    async with aiohttp.ClientSession() as c, c.get(off.admin_url + "/metrics") as r:
        assert r.status == 404
    guarded = await make_gateway(snapshot([mock_api("m1", "/mock")]), admin_token="t0k3n-metrics",
                                 admin_token_required=True)
    async with aiohttp.ClientSession() as c, c.get(guarded.admin_url + "/metrics") as r:
        assert r.status == 401
    m = await scrape(guarded.admin_url, token="t0k3n-metrics")
    assert value(m, "apig_config_loaded") == 1


async def test_channel_member_health_from_the_channels_manager(make_gateway, client) -> None:
    from tests.support.channels_helpers import channel, channel_api, start_backends, tcp_check

    a, b = await start_backends("a", "b")
    try:
        gw = await make_gateway(snapshot([channel_api("c1", "/ch", "ch1")],
                                         vpc_channels=[channel("ch1", [a, b], health=tcp_check(interval=2))]))
        async with client.get(gw.url + "/ch") as r:  # the first selection starts the checkers
            assert r.status == 200
        await b.stop()
        member_b = f"127.0.0.1:{b.port}"
        for _ in range(300):  # up to 30 s on a busy machine; ends as soon as the check has run
            m = await scrape(gw.admin_url)
            if value(m, "apig_channel_member_up", channel="ch1", member=member_b) == 0 and \
                    value(m, "apig_channel_member_checks_total", channel="ch1", member=member_b, result="failed"):
                break
            await asyncio.sleep(0.1)
        assert value(m, "apig_channel_member_up", channel="ch1", member=f"127.0.0.1:{a.port}") == 1
        assert value(m, "apig_channel_member_up", channel="ch1", member=member_b) == 0
        assert value(m, "apig_channel_member_checks_total", channel="ch1", member=member_b, result="failed") >= 1
        assert value(m, "apig_channel_member_checks_total", channel="ch1", member=f"127.0.0.1:{a.port}",
                     result="ok") >= 1
        assert ("apig_channel_member_active_requests", frozenset({("channel", "ch1"), ("member", member_b)})) in m
    finally:
        await a.stop()
        await b.stop()


async def test_api_name_label_overhead_without_backend_time_and_process_metrics(make_gateway, echo_backend,
                                                                              client) -> None:
    backend, addr = echo_backend
    backend.delay = 0.3  # the backend answers after 300 ms: backend time, never gateway overhead
    gw = await make_gateway(snapshot([http_api("h1", "/slowish", addr), mock_api("m1", "/mock")]))
    for path in ("/slowish", "/mock", "/mock"):
        async with client.get(gw.url + path) as r:
            assert r.status == 200
    m = await scrape(gw.admin_url)
    rel = {"group": "g1", "env": "RELEASE"}
    assert value(m, "apig_requests_total", **rel, api="h1", api_name="api_h1", status_class="2xx") == 1
    assert value(m, "apig_requests_total", **rel, api="m1", api_name="api_m1", status_class="2xx") == 2
    h1 = {**rel, "api": "h1", "api_name": "api_h1"}
    assert value(m, "apig_request_duration_seconds_sum", **h1) >= 0.3
    assert value(m, "apig_backend_duration_seconds_sum", **h1) >= 0.3
    assert value(m, "apig_gateway_overhead_seconds_count", **h1) == 1
    # the 300 ms backend wait is excluded: overhead = total - backend (head and body), to the millisecond
    total_s = value(m, "apig_request_duration_seconds_sum", **h1)
    overhead_s = value(m, "apig_gateway_overhead_seconds_sum", **h1)
    assert overhead_s <= total_s - 0.3 + 0.005, (overhead_s, total_s)
    # a MOCK API never reached a backend: no (empty) backend histogram series for it
    assert not [k for k in m if k[0].startswith("apig_backend_duration") and ("api", "m1") in k[1]]
    assert value(m, "apig_gateway_overhead_seconds_count", **rel, api="m1", api_name="api_m1") == 2
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert value(m, name) > 0, name
