"""Load-time rules of GRPCS frontends and GRPC backends (rejected whole with path: reason)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.compiler import build_runtime
from gateway.core.errors import SnapshotError
from gateway.core.settings import load_settings
from gateway.model.services import Services
from tests.support.grpc_helpers import grpc_api
from tests.support.helpers import mock_api, snapshot


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(SnapshotError) as info:
        build_runtime(doc, Services(load_settings({}, environ={})))
    return info.value.problems


def test_valid_grpc_api_compiles() -> None:
    rt = build_runtime(snapshot([grpc_api("g1", "/pkg.Svc/Call", "127.0.0.1:50051"),
                                 grpc_api("g2", "/pkg.Other", "127.0.0.1:50052", tls=False, match_mode="SWA")]),
                       Services(load_settings({}, environ={})))
    kinds = {ep.api_id: ep.backend.target.kind for ep in rt.endpoints.values()}
    assert kinds == {"g1": "GRPC", "g2": "GRPC"}


def test_grpcs_frontend_rules() -> None:
    bad = grpc_api("g1", "/pkg.Svc/Call", "127.0.0.1:1", req_method="GET", auth_type="AUTHORIZER",
                   authorizer_id="az1",
                   req_params=[{"name": "x", "location": "QUERY", "type": "STRING"}],
                   backend_params=[{"name": "y", "location": "HEADER", "origin": "CONSTANT", "value": "1"}])
    probs = problems_of(snapshot([bad]))
    assert "apis[0].req_method: must be POST for a GRPCS API" in probs
    assert "apis[0].req_params: not available for a GRPCS API" in probs
    assert "apis[0].backend_params: not available for a GRPCS API" in probs
    assert "apis[0].auth_type: AUTHORIZER (custom authentication) is not available for a GRPCS API" in probs


def test_grpc_backend_needs_grpcs_frontend_and_fixed_shape() -> None:
    api = grpc_api("g1", "/pkg.Svc/Call", "127.0.0.1:1", req_protocol="HTTPS")
    api["backend_api"].update(req_method="GET", req_uri="/other", req_protocol="HTTPS")
    mock = mock_api("m1", "/m", req_protocol="GRPCS", req_method="POST")
    probs = problems_of(snapshot([api, mock]))
    assert "apis[0].backend_type: a GRPC backend needs req_protocol GRPCS on the API" in probs
    assert "apis[0].backend_api.req_method: must be POST for a GRPC backend" in probs
    assert ("apis[0].backend_api.req_uri: must be / for a GRPC backend (the gRPC path is forwarded)") in probs
    assert ("apis[0].backend_api.req_protocol: must be GRPCS (gRPC over TLS) or HTTP (h2c) for a GRPC backend"
            in probs)
    assert "apis[1].backend_type: a GRPCS API needs a GRPC backend in this gateway" in probs
