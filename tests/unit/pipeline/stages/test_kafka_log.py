"""kafka_log plug-in: the plan is compiled at load and attached to the bound endpoint for its completion hook."""

from __future__ import annotations

import pytest

from gateway.core.errors import SnapshotError
from gateway.pipeline.stages.kafka_log import KafkaLogPlan
from tests.support.helpers import mock_api, snapshot
from tests.support.plugins_helpers import bind, plugin
from tests.support.stage_harness import compile_doc, endpoint


def test_plan_on_the_bound_endpoint_only() -> None:
    content = {"broker_list": ["127.0.0.1:9092"], "topic": "gw-logs", "key": "k1", "max_retry_count": 2}
    rt = compile_doc(snapshot([mock_api("a", "/a"), mock_api("b", "/b")], plugins=[plugin("k", "kafka_log", content)],
                              plugin_bindings=[bind("x", "k", "a")]))
    found = endpoint(rt, "a").log_plugin
    assert found is not None and endpoint(rt, "b").log_plugin is None
    plugin_id, plan = found
    assert plugin_id == "k" and isinstance(plan, KafkaLogPlan)
    assert (plan.brokers, plan.topic, plan.key, plan.retries) == (("127.0.0.1:9092",), "gw-logs", b"k1", 2)


def test_sasl_without_credentials_is_refused() -> None:
    content = {"broker_list": ["127.0.0.1:9092"], "topic": "t", "sasl_config": {"security_protocol": "SASL_SSL"}}
    with pytest.raises(SnapshotError) as exc:
        compile_doc(snapshot([mock_api("a", "/a")], plugins=[plugin("k", "kafka_log", content)]))
    assert any("username and password are required" in p for p in exc.value.problems)
