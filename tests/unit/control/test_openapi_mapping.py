"""Each OpenAPI codec's two directions agree: *_out then *_in gives back the snapshot fields."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.control.openapi import mapping as m

PARAMS: list[dict[str, Any]] = [
    {"name": "id", "location": "PATH", "type": "STRING", "required": 1, "valid_enable": 1, "max_size": 20,
     "min_size": 2, "regular": "^[a-z]+$", "remark": "the id"},
    {"name": "n", "location": "QUERY", "type": "NUMBER", "required": 2, "valid_enable": 1, "min_num": 1, "max_num": 9,
     "default_value": "3", "sample_value": "4", "pass_through": 1},
    {"name": "kind", "location": "HEADER", "type": "STRING", "required": 2, "valid_enable": 1,
     "enumerations": "a,b"},
]


def _no_warnings(msg: str) -> None:
    raise AssertionError(msg)


@pytest.mark.parametrize("v3", [False, True])
@pytest.mark.parametrize("param", PARAMS, ids=[p["name"] for p in PARAMS])
def test_parameter_round_trip(param: dict[str, Any], v3: bool) -> None:
    assert m.param_in(m.param_out(param, v3), v3, "p", _no_warnings) == param


def test_zero_limits_are_not_limits() -> None:
    got = m.param_in({"name": "q", "in": "query", "type": "integer", "minimum": 0, "maximum": 0, "maxLength": 0},
                     False, "p", _no_warnings)
    assert got == {"name": "q", "location": "QUERY", "type": "NUMBER", "required": 2, "valid_enable": 2}


@pytest.mark.parametrize("proto", ["HTTP", "HTTPS", "BOTH"])
def test_protocol_both_ways(proto: str) -> None:
    assert m.protocol_in(m.protocol_out(proto)) == proto
    assert m.protocol_in(m.servers_in(m.servers_out(proto, "h.example"))) == proto


def test_backend_round_trip_with_channel_names() -> None:
    names = {"c1": "chan_one"}
    ids = {v: k for k, v in names.items()}
    api: dict[str, Any] = {
        "backend_type": "HTTP",
        "backend_api": {"req_protocol": "HTTPS", "req_method": "POST", "req_uri": "/x", "timeout": 3000,
                        "retry_count": "2", "vpc_channel_status": 1,
                        "vpc_channel_info": {"vpc_channel_id": "c1", "vpc_channel_proxy_host": "in.example"}},
        "backend_params": [{"name": "a", "value": "b", "location": "HEADER", "origin": "CONSTANT", "remark": "r"}],
    }
    out = m.backend_out(api, lambda cid: names.get(cid, cid))
    assert out["httpVpcEndpoints"]["name"] == "chan_one"
    back: dict[str, Any] = {}
    m.backend_in(back, out, "b", _no_warnings, lambda coll, field, value: ids.get(value))
    assert back == api


def test_samples_in_every_place_the_vendor_writes_them() -> None:
    api: dict[str, Any] = {}
    doc = {"responses": {"ok": {"x-apigateway-result-normal-sample": "fine"}}}
    m.samples_in(api, {"default": {"$ref": "#/responses/ok"},
                       "x-apigateway-result-failure-sample": {"description": "broken"}}, "r", _no_warnings,
                 lambda ref: doc["responses"]["ok"])
    assert api == {"result_normal_sample": "fine", "result_failure_sample": "broken"}
    again: dict[str, Any] = {}
    m.samples_in(again, m.samples_out(api), "r", _no_warnings)
    assert again == api
