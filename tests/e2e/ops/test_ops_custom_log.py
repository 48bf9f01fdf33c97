"""The custom_log feature end to end: header / query / cookie values as extra access-log fields, masked
like query parameters when their name looks like a credential; bad configurations rejected at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.core.errors import SnapshotError
from gateway.observe.accesslog import FIELDS, access_log_of
from tests.support.helpers import mock_api, snapshot


def custom_log(*items: tuple[str, str]) -> dict[str, Any]:
    return {"name": "custom_log", "enable": True,
            "config": {"custom_logs": [{"location": loc, "name": name} for loc, name in items]}}


async def test_custom_fields_logged_and_masked(make_gateway, client, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    feat = custom_log(("header", "X-Tenant"), ("query", "page"), ("cookie", "lang"), ("header", "X-Api-Token"),
                      ("cookie", "sessionid"), ("query", "absent"), ("\\header", "\\X-Slash"))
    gw = await make_gateway(snapshot([mock_api("m1", "/m")], features=[feat]), access_log_path=str(log_path))
    headers = {"X-Tenant": "acme", "X-Api-Token": "sekrit-TOKEN", "Cookie": "lang=fr; sessionid=sekrit-SESSION",
               "X-Slash": "ok"}
    async with client.get(gw.url + "/m?page=3", headers=headers) as r:
        assert r.status == 200
    async with client.get(gw.url + "/m") as r:  # nothing to log: the fields are null
        assert r.status == 200
    log = access_log_of(gw.gw.services)
    assert log is not None
    log.flush()
    raw = log_path.read_text()
    assert "sekrit" not in raw
    first, second = [orjson.loads(line) for line in raw.splitlines()]
    extra = {k: v for k, v in first.items() if k not in FIELDS}
    assert extra == {"custom_data_log01": "acme", "custom_data_log02": "3", "custom_data_log03": "fr",
                     "custom_data_log04": "***", "custom_data_log05": "***", "custom_data_log06": None,
                     "custom_data_log07": "ok"}
    assert tuple(first)[:len(FIELDS)] == FIELDS  # the fixed fields first, in their documented order
    assert second["custom_data_log01"] is None and second["custom_data_log03"] is None


async def test_feature_off_adds_nothing(make_gateway, client, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    feat = {**custom_log(("header", "X-Tenant")), "enable": False}
    gw = await make_gateway(snapshot([mock_api("m1", "/m")], features=[feat]), access_log_path=str(log_path))
    async with client.get(gw.url + "/m", headers={"X-Tenant": "acme"}) as r:
        assert r.status == 200
    log = access_log_of(gw.gw.services)
    assert log is not None
    log.flush()
    assert tuple(orjson.loads(log_path.read_bytes().splitlines()[0])) == FIELDS


@pytest.mark.parametrize(("feat", "reason"), [
    (custom_log(*[("header", f"h{i}") for i in range(11)]), "custom_logs: at most 10 items (has 11)"),
    (custom_log(("body", "x")), "custom_logs[0].location: must be one of header, query, cookie"),
    (custom_log(("header", "")), "custom_logs[0].name: must be 1..128 characters"),
    ({"name": "custom_log", "enable": True, "config": {"custom_logs": "X-Tenant"}}, "custom_logs: must be a list"),
])
async def test_bad_config_rejected(make_gateway, feat: dict[str, Any], reason: str) -> None:
    with pytest.raises(SnapshotError) as exc:
        await make_gateway(snapshot([mock_api("m1", "/m")], features=[feat]))
    assert any(p.startswith("features[0].config.") and reason in p for p in exc.value.problems), exc.value.problems
