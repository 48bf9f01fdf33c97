"""client_ip stage: the real_ip_* features refine ctx.client_ip; without them the stage is not built."""

from __future__ import annotations

from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of


def _doc(features: list[dict] | None = None) -> dict:
    return snapshot([mock_api("a", "/a")], **({"features": features} if features else {}))


async def test_xff_index_picks_the_address() -> None:
    rt = compile_doc(_doc([{"name": "real_ip_from_xff", "enable": True, "config": {"enable": True, "xff_index": 0}}]))
    stage = stage_of(endpoint(rt, "a"), "client_ip")
    assert stage is not None
    ctx = request_context(rt, headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}, api_id="a")
    assert await run_stage(stage, ctx) is None
    assert ctx.client_ip == "203.0.113.7"


async def test_header_getter_wins_and_bad_values_are_ignored() -> None:
    feats = [{"name": "real_ip_header_getter", "enable": True, "config": {"header_getter": "header:X-Client-IP"}}]
    rt = compile_doc(_doc(feats))
    stage = stage_of(endpoint(rt, "a"), "client_ip")
    assert stage is not None
    ctx = request_context(rt, headers={"X-Client-IP": "198.51.100.9"}, api_id="a")
    await run_stage(stage, ctx)
    assert ctx.client_ip == "198.51.100.9"
    ctx = request_context(rt, headers={"X-Client-IP": "not-an-ip"}, api_id="a")
    await run_stage(stage, ctx)
    assert ctx.client_ip == "127.0.0.1"


def test_not_built_without_a_feature() -> None:
    rt = compile_doc(_doc())
    assert stage_of(endpoint(rt, "a"), "client_ip") is None


def test_trusted_proxies_resolve_before_routing() -> None:
    """The connection-level step of the same module: forwarded headers only from trusted proxies."""
    import ipaddress

    from gateway.pipeline.stages.client_ip import ProxyResolver

    resolve = ProxyResolver([ipaddress.ip_network("10.0.0.0/8")])
    xff = {"X-Forwarded-For": "203.0.113.7, 10.0.0.2"}
    assert resolve("10.0.0.1", xff) == "203.0.113.7"  # rightmost address that is not a proxy
    assert resolve("192.0.2.1", xff) == "192.0.2.1"  # an untrusted peer cannot choose its address
    assert resolve("10.0.0.1", {"X-Real-IP": "198.51.100.4"}) == "198.51.100.4"
    assert ProxyResolver([])("10.0.0.1", xff) == "10.0.0.1"
