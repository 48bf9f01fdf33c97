"""The generated docs are up to date, and the hand-written operations doc covers every field and metric."""

from __future__ import annotations

from pathlib import Path

from gateway.core.settings import load_settings
from gateway.docgen import generate
from gateway.observe.accesslog import FIELDS
from gateway.observe.metrics import GatewayMetrics
from gateway.process.server import Gateway
from tests.support.helpers import mock_api, snapshot

ROOT = Path(__file__).resolve().parents[3]


def test_generated_docs_are_current() -> None:
    for path, expected in generate(ROOT).items():
        assert path.read_text(encoding="utf-8") == expected, f"{path} is stale: run `make docs`"


def test_operations_doc_lists_every_access_log_field_and_metric() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in FIELDS:
        assert f"`{name}`" in text, name
    gw = Gateway(load_settings({}, environ={}))
    gw.apply_document(snapshot([mock_api("m1", "/m")]))
    metrics = gw.services.extras["metrics"]
    assert isinstance(metrics, GatewayMetrics)
    gw.services.extras["throttle_fallbacks"] = 1
    gw.services.extras["channel_health"] = {("c", "m"): True}
    names = {family.name for family in metrics.registry.collect()}
    assert len(names) > 15
    for name in names:
        documented = {f"`{name}`", f"`{name}_total`", f"`{name}_info`"}
        assert any(d in text for d in documented), name
