"""VPC channels: balance strategies, backups, Host header, validation (real gateway, real backends)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.compiler import validate
from gateway.core.errors import SnapshotError
from tests.support.channels_helpers import NamedBackend, channel, channel_api, start_backends
from tests.support.cluster_helpers import wait_for
from tests.support.helpers import snapshot


@pytest.fixture
async def backends() -> AsyncIterator[list[NamedBackend]]:
    started = await start_backends("a", "b", "c")
    yield started
    for b in started:
        await b.stop()


async def names(client: aiohttp.ClientSession, url: str, n: int, **kw: Any) -> list[str]:
    out = []
    for _ in range(n):
        async with client.get(url, **kw) as r:
            assert r.status == 200, await r.text()
            out.append((await r.json())["name"])
    return out


async def test_weighted_round_robin_follows_weights(make_gateway: Any, client: aiohttp.ClientSession,
                                                    backends: list[NamedBackend]) -> None:
    doc = snapshot([channel_api("a1", "/wrr", "ch1")], vpc_channels=[channel("ch1", backends, weights=[5, 3, 2])])
    gw = await make_gateway(doc)
    got = await names(client, gw.url + "/wrr", 100)
    assert Counter(got) == {"a": 50, "b": 30, "c": 20}
    # smooth WRR: the heaviest member never gets a long burst
    longest = max(len(run) for run in "".join(got).replace("b", " ").replace("c", " ").split())
    assert longest <= 2


async def test_member_host_header_and_proxy_host(make_gateway: Any, client: aiohttp.ClientSession,
                                                 backends: list[NamedBackend]) -> None:
    doc = snapshot([channel_api("a1", "/plain", "ch1"),
                    channel_api("a2", "/proxy", "ch1", proxy_host="svc.internal.example")],
                   vpc_channels=[channel("ch1", backends[:1])])
    gw = await make_gateway(doc)
    async with client.get(gw.url + "/plain") as r:
        assert (await r.json())["host"] == backends[0].address
    async with client.get(gw.url + "/proxy") as r:
        assert (await r.json())["host"] == "svc.internal.example"


async def test_least_connections_avoids_busy_member(make_gateway: Any, client: aiohttp.ClientSession,
                                                    backends: list[NamedBackend]) -> None:
    doc = snapshot([channel_api("a1", "/wlc", "ch1", timeout=10000)],
                   vpc_channels=[channel("ch1", backends[:2], strategy=2)])
    gw = await make_gateway(doc)
    # four slow requests spread 2/2; while they run, fast requests go to whichever member has fewer
    slow = [asyncio.create_task(client.get(gw.url + "/wlc?delay=5.0")) for _ in range(4)]
    await wait_for(lambda: sorted(b.inflight for b in backends[:2]) == [2, 2])
    # one more slow request makes one member busier than the other
    extra = asyncio.create_task(client.get(gw.url + "/wlc?delay=5.0"))
    await wait_for(lambda: sum(b.inflight for b in backends[:2]) == 5)
    busy = max(backends[:2], key=lambda b: b.inflight)
    idle = min(backends[:2], key=lambda b: b.inflight)
    assert busy.inflight == 3 and idle.inflight == 2
    got = await names(client, gw.url + "/wlc", 5)
    assert set(got) == {idle.name}, got  # the less loaded member takes every new request
    for t in [*slow, extra]:
        resp = await t
        assert resp.status == 200
        resp.release()
    # once idle again, WLC spreads evenly (ties rotate)
    got = await names(client, gw.url + "/wlc", 10)
    assert Counter(got) == {"a": 5, "b": 5}


async def test_weighted_least_connections_uses_weights(make_gateway: Any, client: aiohttp.ClientSession,
                                                       backends: list[NamedBackend]) -> None:
    doc = snapshot([channel_api("a1", "/wlc", "ch1", timeout=10000)],
                   vpc_channels=[channel("ch1", backends[:2], strategy=2, weights=[3, 1])])
    gw = await make_gateway(doc)
    slow = [asyncio.create_task(client.get(gw.url + "/wlc?delay=5.0")) for _ in range(8)]
    await wait_for(lambda: backends[0].inflight + backends[1].inflight == 8)
    assert (backends[0].inflight, backends[1].inflight) == (6, 2)
    for t in slow:
        (await t).release()


async def test_source_ip_hash_is_sticky(make_gateway: Any, client: aiohttp.ClientSession,
                                        backends: list[NamedBackend]) -> None:
    doc = snapshot([channel_api("a1", "/sticky", "ch1")], vpc_channels=[channel("ch1", backends, strategy=3)])
    gw = await make_gateway(doc, trusted_proxies=["127.0.0.1/32"])
    chosen: dict[str, str] = {}
    for i in range(30):
        ip = f"10.0.{i}.{i + 1}"
        got = await names(client, gw.url + "/sticky", 4, headers={"X-Forwarded-For": ip})
        assert len(set(got)) == 1, (ip, got)  # every request of one client goes to one member
        chosen[ip] = got[0]
    assert len(set(chosen.values())) == 3  # and clients spread over the members
    # a member going away moves only its own clients
    gone = "b"
    doc2 = snapshot([channel_api("a1", "/sticky", "ch1")],
                    vpc_channels=[channel("ch1", [backends[0], backends[2]], strategy=3)])
    gw.gw.apply_document(doc2)
    for ip, before in chosen.items():
        after = (await names(client, gw.url + "/sticky", 1, headers={"X-Forwarded-For": ip}))[0]
        if before != gone:
            assert after == before, ip


async def test_uri_hash_is_sticky_per_path(make_gateway: Any, client: aiohttp.ClientSession,
                                           backends: list[NamedBackend]) -> None:
    doc = snapshot([channel_api("a1", "/u", "ch1", match_mode="SWA")],
                   vpc_channels=[channel("ch1", backends, strategy=4)])
    gw = await make_gateway(doc)
    chosen = {}
    for i in range(30):
        got = await names(client, gw.url + f"/u/item{i}?q={i}", 3)
        assert len(set(got)) == 1
        # the query string is not part of the key
        got2 = await names(client, gw.url + f"/u/item{i}?other=1", 1)
        assert got2[0] == got[0]
        chosen[i] = got[0]
    assert len(set(chosen.values())) == 3


async def test_backup_only_when_primaries_down(make_gateway: Any, client: aiohttp.ClientSession,
                                               backends: list[NamedBackend]) -> None:
    a, b, c = backends
    doc = snapshot([channel_api("a1", "/bk", "ch1", retry_count="2")],
                   vpc_channels=[channel("ch1", backends, backups=[False, False, True])])
    gw = await make_gateway(doc)
    assert set(await names(client, gw.url + "/bk", 10)) == {"a", "b"}
    assert c.hits == 0
    await a.stop()
    await b.stop()
    got = await names(client, gw.url + "/bk", 6)  # a fails, b fails (both ejected), the retry reaches the backup
    assert set(got) == {"c"}


async def test_no_member_usable_is_502_apig_0610(make_gateway: Any, client: aiohttp.ClientSession,
                                                 backends: list[NamedBackend]) -> None:
    doc = snapshot([channel_api("a1", "/none", "ch1"), channel_api("a2", "/disabled", "ch2")],
                   vpc_channels=[channel("ch1", backends[:2]),
                                 dict(channel("ch2", backends[2:]),
                                      members=[{"host": "127.0.0.1", "port": backends[2].port, "status": 2}])])
    gw = await make_gateway(doc)
    for b in backends[:2]:
        await b.stop()
    async with client.get(gw.url + "/none") as r:  # both tried (retry), both ejected
        assert r.status == 502
        body = await r.json()
        assert body["error_code"] in ("APIG.0202", "APIG.0610")
    async with client.get(gw.url + "/none") as r:
        assert r.status == 502
        assert (await r.json())["error_code"] == "APIG.0610"
        assert (await r.json())["error_msg"] == "No backend available."
    async with client.get(gw.url + "/disabled") as r:  # status 2 members never receive traffic
        assert r.status == 502
        assert (await r.json())["error_code"] == "APIG.0610"
    assert backends[2].hits == 0


async def test_group_weight_and_zero_weight(make_gateway: Any, client: aiohttp.ClientSession,
                                            backends: list[NamedBackend]) -> None:
    ch = channel("ch1", backends)
    ch["member_groups"] = [{"member_group_name": "heavy", "member_group_weight": 3}]
    ch["members"][0]["member_group_name"] = "heavy"
    ch["members"][2]["weight"] = 0
    gw = await make_gateway(snapshot([channel_api("a1", "/g", "ch1")], vpc_channels=[ch]))
    assert Counter(await names(client, gw.url + "/g", 40)) == {"a": 30, "b": 10}


def test_channel_validation_errors() -> None:
    bad = {
        "id": "ch1", "name": "x", "port": 0, "balance_strategy": 7, "member_type": "vm",
        "member_groups": [{"member_group_name": "grp"}],
        "members": [{"host": "10.0.0.1", "port": 80}, {"host": "10.0.0.1", "port": 80},
                    {"port": 81}, {"host": "10.0.0.2", "member_group_name": "nope", "weight": 10001}],
        "vpc_health_config": {"protocol": "HTTP", "threshold_normal": 0, "threshold_abnormal": 2,
                              "time_interval": 5, "timeout": 5, "http_code": "200,99-700,abc"},
    }
    doc = snapshot([channel_api("a1", "/x", "missing")], vpc_channels=[bad])
    with pytest.raises(SnapshotError) as exc:
        validate(doc)
    text = "\n".join(exc.value.problems)
    for expected in (
        "vpc_channels[0].name: ",
        "vpc_channels[0].port: ",
        "vpc_channels[0].balance_strategy: ",
        "vpc_channels[0].member_type: ",
        "vpc_channels[0].members[1]: duplicate member 10.0.0.1:80",
        "vpc_channels[0].members[2].host: is required",
        "vpc_channels[0].members[3].member_group_name: unknown member group 'nope'",
        "vpc_channels[0].members[3].weight: ",
        "vpc_channels[0].vpc_health_config.threshold_normal: ",
        "vpc_channels[0].vpc_health_config.timeout: must be less than time_interval",
        "vpc_channels[0].vpc_health_config.path: is required when protocol is HTTP",
        "vpc_channels[0].vpc_health_config.http_code: ",
        "apis[0].backend_api.vpc_channel_info.vpc_channel_id: unknown VPC channel 'missing'",
    ):
        assert expected in text, (expected, text)


def test_health_config_accepts_vendor_spellings() -> None:
    ch = {"id": "ch1", "name": "VPC_demo", "port": 22, "balance_strategy": 1, "member_type": "ip", "type": 2,
          "members": [{"host": "192.168.0.5", "weight": 1, "member_group_name": "test"}],
          "member_groups": [{"member_group_name": "test", "member_group_weight": 1, "member_group_remark": "r"}],
          "vpc_health_config": {"http_code": "200,201,210-299", "path": "/vpc/demo", "port": 22, "protocol": "http",
                                "threshold_abnormal": 5, "threshold_normal": 2, "time_interval": 10, "time_out": 5,
                                "enable_client_ssl": False}}
    validate(snapshot([channel_api("a1", "/x", "ch1")], vpc_channels=[ch]))


def test_hash_strategies_honour_weights() -> None:
    """Weighted rendezvous hashing: keys spread over members in proportion to their weights."""
    from gateway.backends.channels.state import MemberState
    from gateway.backends.channels.upstream import ChannelMember, _score, key_hash

    members = [ChannelMember(i, f"10.0.0.{i}", 80, i + 1, False, MemberState(("c", f"10.0.0.{i}", 80)), None,
                             "http") for i in range(3)]
    counts = Counter(max(members, key=lambda m: _score(key_hash(f"10.1.{k // 250}.{k % 250}"), m)).weight
                     for k in range(30000))
    for weight in (1, 2, 3):
        assert abs(counts[weight] / 30000 - weight / 6) < 0.02, counts
