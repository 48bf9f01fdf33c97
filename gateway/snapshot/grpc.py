"""Load-time rules of gRPC APIs (``req_protocol`` GRPCS frontends, ``backend_type`` GRPC backends).

Role in the pipeline: config-load time only (:func:`check`, listed in :mod:`gateway.pipeline.chain`); a
snapshot breaking a rule is rejected whole with ``path: reason``. The rules are the vendor's (a GRPCS API is
called with POST and has no request parameters, backend parameters or custom authorizer) plus this
gateway's: a GRPCS frontend is served by GRPC backends only (policies included), a GRPC backend only behind
a GRPCS frontend, and the backend ``req_uri`` is the vendor's fixed ``/`` (the caller's method path is
forwarded unchanged).
"""

from __future__ import annotations

from typing import Any

from gateway.snapshot.validate import Index


def _check_api(api: dict[str, Any], path: str, problems: list[str]) -> None:
    frontend = api.get("req_protocol") == "GRPCS"
    grpc_backend = api.get("backend_type") == "GRPC"
    if frontend:
        if api.get("req_method") != "POST":
            problems.append(f"{path}.req_method: must be POST for a GRPCS API")
        if api.get("req_params"):
            problems.append(f"{path}.req_params: not available for a GRPCS API")
        if api.get("backend_params"):
            problems.append(f"{path}.backend_params: not available for a GRPCS API")
        if api.get("auth_type") == "AUTHORIZER":
            problems.append(f"{path}.auth_type: AUTHORIZER (custom authentication) is not available for a GRPCS API")
        if not grpc_backend:
            problems.append(f"{path}.backend_type: a GRPCS API needs a GRPC backend in this gateway")
        for key in ("policy_mocks", "policy_functions"):
            if api.get(key):
                problems.append(f"{path}.{key}: a GRPCS API takes GRPC backend policies (policy_https) only")
    elif grpc_backend:
        problems.append(f"{path}.backend_type: a GRPC backend needs req_protocol GRPCS on the API")
    if not grpc_backend:
        return
    backends = [("backend_api", api.get("backend_api"))]
    backends += [(f"policy_https[{j}]", p) for j, p in enumerate(api.get("policy_https") or [])]
    for bpath, b in backends:
        if not isinstance(b, dict):
            continue
        if b.get("req_protocol") not in ("GRPCS", "HTTP"):
            problems.append(f"{path}.{bpath}.req_protocol: must be GRPCS (gRPC over TLS) or HTTP (h2c) "
                            "for a GRPC backend")
        if b.get("req_method") not in ("POST", None):
            problems.append(f"{path}.{bpath}.req_method: must be POST for a GRPC backend")
        if b.get("req_uri") not in ("/", None, ""):
            problems.append(f"{path}.{bpath}.req_uri: must be / for a GRPC backend (the gRPC path is forwarded)")
        if bpath != "backend_api" and b.get("backend_params"):
            problems.append(f"{path}.{bpath}.backend_params: not available for a GRPC backend")


def check(index: Index, problems: list[str]) -> None:
    for i, api in enumerate(index.items("apis")):
        if api.get("req_protocol") == "GRPCS" or api.get("backend_type") == "GRPC":  # nothing to check otherwise
            _check_api(api, f"apis[{i}]", problems)

