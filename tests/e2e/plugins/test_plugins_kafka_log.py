"""kafka_log plug-in end to end: real gateway, real echo backend, a real Kafka-protocol broker (Tansu) started
by the test, records read back with a real Kafka consumer. Covers field selection and masking, retries that
succeed when the broker comes up, a bounded queue that drops (and counts) when it cannot, SASL, and load
errors; the calls themselves are never delayed or failed by the shipping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.errors import SnapshotError
from gateway.observe.kafka_log import EXTRAS_KEY, KafkaLogHook
from tests.conftest import free_port
from tests.support.helpers import http_api, mock_api, snapshot
from tests.support.kafka_helpers import Broker, broker_binary, consume, wait_for
from tests.support.plugins_helpers import bind, plugin


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> str:
    return broker_binary(tmp_path_factory.mktemp("kafka"))


@pytest.fixture
def broker(tansu: str) -> Iterator[Broker]:
    b = Broker(tansu)
    b.start()
    yield b
    b.stop()


def content(brokers: list[str], **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"broker_list": brokers, "topic": "apig-logs", "key": "", "max_retry_count": 0,
                         "retry_backoff": 1}
    c.update(extra)
    return c


def hook_of(gw: Any) -> KafkaLogHook:
    hook = gw.gw.services.extras[EXTRAS_KEY]
    assert isinstance(hook, KafkaLogHook)
    return hook


def stat(gw: Any, outcome: str) -> float:
    return sum(v for (_pid, o), v in hook_of(gw).samples().items() if o == outcome)


async def test_records_with_selected_fields_reach_kafka(make_gateway, echo_backend, client, broker: Broker) -> None:
    _backend, addr = echo_backend
    meta = {"system": {"request_id": True, "http_status": True, "api_id": True, "request_method": True,
                       "uri": True, "upstream_status": True, "upstream_addr": True, "client_ip": False},
            "call_data": {"log_request_header": True, "request_header_filter": "x-trace*,authorization",
                          "log_request_query_string": True, "request_query_string_filter": "page,token"}}
    doc = snapshot([http_api("h1", "/h", addr), mock_api("m1", "/m")],
                   plugins=[plugin("k", "kafka_log", content([broker.address], key="gw-1", meta_config=meta))],
                   plugin_bindings=[bind("b", "k", "h1")])
    gw = await make_gateway(doc)
    headers = {"X-Trace-Id": "t-1", "Authorization": "Bearer sekrit", "X-Other": "no"}
    async with client.get(gw.url + "/h?page=2&token=sekrit&other=x", headers=headers) as r:
        assert r.status == 200
        request_id = r.headers["X-Request-Id"]
    async with client.get(gw.url + "/m") as r:  # not bound: not shipped
        assert r.status == 200
    [(key, rec)] = await consume(broker.address, "apig-logs", 1)
    assert key == b"gw-1"
    assert rec["request_id"] == request_id and rec["http_status"] == 200 and rec["api_id"] == "h1"
    assert rec["request_method"] == "GET" and rec["uri"] == "/h" and rec["upstream_status"] == 200
    assert rec["upstream_addr"] == addr and "client_ip" not in rec
    assert rec["request_header"] == {"X-Trace-Id": "t-1", "Authorization": "***"}
    assert rec["request_query_string"] == {"page": "2", "token": "***"}
    await wait_for(lambda: stat(gw, "sent") == 1, what="sent counter")
    async with client.get(gw.admin_url + "/metrics") as r:
        text = await r.text()
    assert 'apig_kafka_log_records{outcome="sent",plugin="k"} 1.0' in text


async def test_default_fields_and_vendor_spellings(make_gateway, client, broker: Broker) -> None:
    """No meta_config: the vendor's default fields; ``sas_config`` with meta_config nested (the seed's shape)."""
    c = content([broker.address], sas_config={"security_protocol": "PLAINTEXT", "sas_mechanisms": "PLAIN",
                                              "sas_username": "", "sas_password": "", "ssl_ca_content": ""})
    gw = await make_gateway(snapshot([mock_api("m1", "/m")], plugins=[plugin("k", "kafka_log", c)],
                                     plugin_bindings=[bind("b", "k", "m1")]))
    async with client.get(gw.url + "/m", headers={"User-Agent": "kafka-test"}) as r:
        assert r.status == 200
    [(key, rec)] = await consume(broker.address, "apig-logs", 1)
    assert key is None
    assert set(rec) == {"start_time", "request_id", "client_ip", "request_time", "http_status", "scheme",
                        "request_method", "host", "uri", "upstream_addr", "upstream_status",
                        "upstream_response_time", "http_x_forwarded_for", "http_user_agent", "error_type"}
    assert rec["http_user_agent"] == "kafka-test" and rec["http_status"] == 200 and rec["uri"] == "/m"
    assert abs(rec["start_time"] / 1000 - time.time()) < 60


async def test_retries_deliver_once_the_broker_is_up(make_gateway, client, tansu: str) -> None:
    broker = Broker(tansu, free_port())  # not started yet: the first attempts fail
    c = content([broker.address], max_retry_count=5, retry_backoff=1)
    gw = await make_gateway(snapshot([mock_api("m1", "/m")], plugins=[plugin("k", "kafka_log", c)],
                                     plugin_bindings=[bind("b", "k", "m1")]))
    try:
        started = time.monotonic()
        async with client.get(gw.url + "/m") as r:
            assert r.status == 200
        assert time.monotonic() - started < 4.0  # the response never waits for Kafka (5 retries x 1 s)
        await wait_for(lambda: stat(gw, "retried") >= 1, what="a retry")
        broker.start()
        await wait_for(lambda: stat(gw, "sent") == 1, timeout=30, what="delivery after retries")
        [(_key, rec)] = await consume(broker.address, "apig-logs", 1)
        assert rec["http_status"] == 200 and stat(gw, "failed") == 0
    finally:
        broker.stop()


async def test_bounded_queue_drops_and_failed_sends_are_counted(make_gateway, client) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    c = content([dead], max_retry_count=1, retry_backoff=1)
    gw = await make_gateway(snapshot([mock_api("m1", "/m")], plugins=[plugin("k", "kafka_log", c)],
                                     plugin_bindings=[bind("b", "k", "m1")]), kafka_log_queue_size=3)
    started = time.monotonic()
    for _ in range(12):
        async with client.get(gw.url + "/m") as r:
            assert r.status == 200
    assert time.monotonic() - started < 10.0  # 12 calls never wait for a dead broker
    assert stat(gw, "dropped") >= 1  # the queue holds 3; the rest were dropped at once
    await wait_for(lambda: stat(gw, "failed") >= 1, timeout=30, what="retries exhausted")
    assert stat(gw, "sent") == 0
    assert stat(gw, "queued") + stat(gw, "dropped") == 12
    async with client.get(gw.admin_url + "/metrics") as r:
        text = await r.text()
    assert 'apig_kafka_log_records{outcome="dropped",plugin="k"}' in text and "apig_kafka_log_queue" in text


async def test_sasl_plain_handshake_reaches_the_broker(make_gateway, client, broker: Broker) -> None:
    """SASL_PLAINTEXT / PLAIN: the producer authenticates with SASL before anything is sent. The test broker
    does not accept PLAIN (it answers UnsupportedSaslMechanism), so the record must not be delivered and must
    be counted as failed — proof that the SASL settings reach the Kafka client; the call is unaffected."""
    c = content([broker.address], sasl_config={"security_protocol": "SASL_PLAINTEXT", "sasl_mechanisms": "PLAIN",
                                               "sasl_username": "gw", "sasl_password": "sekrit-pw"})
    gw = await make_gateway(snapshot([mock_api("m1", "/m")], plugins=[plugin("k", "kafka_log", c)],
                                     plugin_bindings=[bind("b", "k", "m1")]))
    started = time.monotonic()
    async with client.get(gw.url + "/m") as r:
        assert r.status == 200
    assert time.monotonic() - started < 4.0  # the refused handshake never holds the call
    await wait_for(lambda: stat(gw, "failed") == 1, timeout=30, what="SASL refusal counted")
    assert stat(gw, "sent") == 0
    async with client.get(gw.admin_url + "/v1/snapshot") as r:
        assert "sekrit-pw" not in await r.text()


@pytest.mark.parametrize(("c", "reason"), [
    ({"topic": "t"}, "broker_list: is required"),
    (content(["nohost"]), "broker_list[0]: does not match"),
    (content(["127.0.0.1:9092"], topic="bad topic"), "topic: does not match"),
    (content(["127.0.0.1:9092"], max_retry_count=9), "max_retry_count: must be"),
    (content(["127.0.0.1:9092"], sasl_config={"security_protocol": "SASL_SSL"}),
     "sasl_config.sasl_username: username and password are required with SASL_SSL"),
    (content(["127.0.0.1:9092"], sasl_config={"sasl_mechanisms": "GSSAPI"}), "sasl_mechanisms: must be one of"),
])
async def test_bad_content_rejected_at_load(make_gateway, c: dict[str, Any], reason: str, tmp_path: Path) -> None:
    with pytest.raises(SnapshotError) as exc:
        await make_gateway(snapshot([mock_api("m1", "/m")], plugins=[plugin("k", "kafka_log", c)],
                                    plugin_bindings=[bind("b", "k", "m1")]))
    assert any(p.startswith("plugins[0].plugin_content.") and reason in p for p in exc.value.problems), \
        exc.value.problems


async def test_binding_added_by_a_per_api_change_ships(make_gateway, client, broker: Broker) -> None:
    """A binding added by a per-API push (compiled incrementally: only that API is rebuilt) ships at once, and
    the API bound before keeps shipping."""
    doc = snapshot([mock_api("m1", "/m"), mock_api("m2", "/n")],
                   plugins=[plugin("k", "kafka_log", content([broker.address]))],
                   plugin_bindings=[bind("b", "k", "m1")])
    gw = await make_gateway()
    await gw.gw.push_document(doc)
    changed = dict(gw.gw.document)
    changed["plugin_bindings"] = [*changed["plugin_bindings"], bind("b2", "k", "m2")]
    await gw.gw.push_document(changed)
    for path in ("/n", "/m"):
        async with client.get(gw.url + path) as r:
            assert r.status == 200
    got = await consume(broker.address, "apig-logs", 2)
    assert sorted(rec["uri"] for _key, rec in got) == ["/m", "/n"]
