"""A large, realistic snapshot for control-plane tests and benchmarks (benchmarks/control_plane.py).

``big_document(n_apis)`` spreads the APIs over ``n_apis // 100`` groups (at least one) and two
environments (RELEASE and TEST), every API published in both. Each (group, environment) has two
environment variables used by the HTTP backends. A share of the publications carries a throttling
policy (1 in 5), an IP ACL (1 in 10); 1 API in 10 uses APP authentication, authorised for 3 apps.
Half of the APIs are MOCK backends, half HTTP backends to ``backend`` (host:port through ``#host#``).
Deterministic: the same arguments give the same document.
"""

from __future__ import annotations

from typing import Any

RELEASE = "DEFAULT_ENVIRONMENT_RELEASE_ID"
TEST_ENV = "env-test"
ENVS = (RELEASE, TEST_ENV)


def group_host(g: int) -> str:
    return f"g{g}.bench.local"


def api_path(i: int) -> str:
    return f"/svc{i}/items/{{id}}" if i % 3 == 0 else f"/svc{i}/status"


def probe_path(i: int) -> str:
    return api_path(i).replace("{id}", "7")


def make_api(i: int, n_groups: int, *, backend: str = "127.0.0.1:9", content: str | None = None) -> dict[str, Any]:
    gid = f"g{i % n_groups}"
    api: dict[str, Any] = {
        "id": f"a{i}", "group_id": gid, "name": f"api_{i}", "type": 1, "req_protocol": "BOTH",
        "req_method": "GET", "req_uri": api_path(i), "match_mode": "NORMAL",
        "auth_type": "APP" if i % 10 == 5 else "NONE",
    }
    if i % 2 == 0:
        api["backend_type"] = "MOCK"
        api["mock_info"] = {"result_content": content if content is not None else f"mock-{i}"}
    else:
        api["backend_type"] = "HTTP"
        api["backend_api"] = {"url_domain": "#host#", "req_protocol": "HTTP", "req_method": "GET",
                              "req_uri": "/#base#/" + str(i), "timeout": 5000}
    if i % 7 == 0:
        api["req_params"] = [{"name": "q", "location": "QUERY", "type": "STRING", "required": 2}]
    return api


def big_document(n_apis: int, *, backend: str = "127.0.0.1:9", version: str | None = None) -> dict[str, Any]:
    n_groups = max(1, n_apis // 100)
    groups = [{"id": f"g{g}", "name": f"group_{g}", "sl_domain": group_host(g)} for g in range(n_groups)]
    env_vars = []
    for g in range(n_groups):
        for e in ENVS:
            for name, value in (("host", backend), ("base", "rel" if e == RELEASE else "test")):
                env_vars.append({"id": f"v-{g}-{e}-{name}", "group_id": f"g{g}", "env_id": e,
                                 "variable_name": name, "variable_value": value})
    apis = [make_api(i, n_groups, backend=backend) for i in range(n_apis)]
    publishes = [{"publish_id": f"p-a{i}-{e}", "api_id": f"a{i}", "env_id": e} for i in range(n_apis) for e in ENVS]
    throttles = [{"id": f"t{k}", "name": f"throttle_{k}", "api_call_limits": 100000 + k, "time_interval": 1,
                  "time_unit": "SECOND", "type": 1} for k in range(20)]
    acls = [{"id": f"acl{k}", "acl_name": f"acl_{k}", "acl_type": "DENY", "entity_type": "IP",
             "acl_value": f"10.{k}.0.0/16"} for k in range(10)]
    apps = [{"id": f"app{k}", "name": f"app_{k}", "app_key": f"appkey{k:04d}x", "app_secret": f"appsecret{k:04d}",
             "status": 1} for k in range(50)]
    throttle_bindings = [{"id": f"tb-a{i}-{e}", "policy_id": f"t{i % 20}", "publish_id": f"p-a{i}-{e}"}
                         for i in range(0, n_apis, 5) for e in ENVS]
    acl_bindings = [{"id": f"ab-a{i}-{e}", "acl_id": f"acl{i % 10}", "publish_id": f"p-a{i}-{e}"}
                    for i in range(3, n_apis, 10) for e in ENVS]
    app_auths = [{"id": f"aa-a{i}-{e}-{k}", "app_id": f"app{(i + k) % 50}", "api_id": f"a{i}", "env_id": e}
                 for i in range(5, n_apis, 10) for e in ENVS for k in range(3)]
    doc: dict[str, Any] = {
        "groups": groups,
        "environments": [{"id": TEST_ENV, "name": "TEST"}],
        "env_variables": env_vars,
        "apis": apis,
        "publishes": publishes,
        "throttles": throttles,
        "throttle_bindings": throttle_bindings,
        "acls": acls,
        "acl_bindings": acl_bindings,
        "apps": apps,
        "app_auths": app_auths,
    }
    if version is not None:
        doc["version"] = version
    return doc
