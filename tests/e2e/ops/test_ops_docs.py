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


def test_user_docs_stand_alone() -> None:
    """README and docs/ never point at files outside the repository or at the vendor documents' section numbers."""
    import re

    forbidden = re.compile(r"\.\./shared|/work/shared|\bseed 00\d|\bseeds?/|\bspec 0\d|\b0[0-3] §|T3-\d+|App\. \d")
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not forbidden.search(line), f"{path.name}:{n}: {line.strip()[:120]}"


async def test_configuration_doc_starts_with_a_minimal_example_that_serves(make_gateway, client) -> None:
    import re

    import yaml

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    first_section = text.index("\n## ")
    assert text[first_section:].startswith("\n## A complete minimal example"), "the example must come first"
    doc = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    assert "DEFAULT_ENVIRONMENT_RELEASE_ID" in text[:text.index("## Top level")]
    gw = await make_gateway(doc)
    async with client.get(gw.url + "/hello", headers={"Host": "shop.example.com"}) as r:
        assert r.status == 200 and await r.json() == {"hello": "world"}
    # every integer enum of the reference shows what each number means
    for line in text.splitlines():
        if line.startswith("| `") and re.search(r"one of `-?\d+`, `-?\d+`", line):
            raise AssertionError(f"integer enum without meanings: {line[:100]}")
