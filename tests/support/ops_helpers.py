"""Helpers for the observability tests: scrape /metrics and read samples; a test-only denial stage."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.errors import GatewayError
from gateway.pipeline import chain
from gateway.pipeline.spec import StageSpec


async def scrape(admin_url: str, token: str | None = None) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics and return {(sample name, frozenset(labels)): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(admin_url + "/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The value of the one sample named ``name`` with exactly these labels (0.0 when absent); the ``api_name``
    label (always the name of ``api``) is ignored unless given."""
    if "api_name" in labels:
        return samples.get((name, frozenset(labels.items())), 0.0)
    want = frozenset(labels.items())
    for (n, ls), v in samples.items():
        if n == name and frozenset((k, x) for k, x in ls if k != "api_name") == want:
            return v
    return 0.0


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """Sum of every sample named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


# A stage that ends requests the way the throttling / ACL stages do (they live on other branches); it is
# only built for APIs whose remark asks for it, so it costs nothing for any other test's APIs.
_DENIALS: dict[str, GatewayError] = {
    "ops-test-throttle": GatewayError("THROTTLED", "APIG.0308", "The throttling threshold has been reached."),
    "ops-test-deny-ip": GatewayError("ACCESS_DENIED", "APIG.0401", "The IP address is not authorized."),
}


def _denial_stage(draft: Any, build: Any) -> Any:
    err = _DENIALS.get(draft.api.get("remark") or "")
    if err is None:
        return None

    async def stage(ctx: Any) -> None:
        raise GatewayError(err.error_type, err.code, err.message)

    return stage


# the default pipeline plus the denial stage right after throttling: make_gateway(doc, chain=OPS_CHAIN)
OPS_CHAIN = chain.DEFAULT.with_stage(StageSpec("ops_test_denial", _denial_stage), after="throttling")
