"""The whole pipeline at once, with every stage real: IP ACL, APP signature auth, app authorization,
request validation, per-app throttling, backend signing, forwarding, metrics — one API, real sockets."""

from __future__ import annotations

import aiohttp

from gateway.contrib.verify import verify_hmac
from tests.support.auth_helpers import app, auth_api, call, grant, signed_headers
from tests.support.helpers import RELEASE, snapshot

SIGN_KEY, SIGN_SECRET = "gw_sign_key1", "Gw-secret_0123456789!@#"


def pipeline_doc(backend: str) -> dict:
    api = auth_api("orders", "/orders/{oid}", backend, backend_uri="/v1/orders/{oid}")
    api["req_params"] = [{"name": "oid", "location": "PATH", "type": "NUMBER", "required": 1, "valid_enable": 1,
                          "min_num": 1, "max_num": 999}]
    return snapshot(
        [api],
        apps=[app("app1"), app("app2", key="app_key_0002", secret="app_secret_0002_xyz")],
        app_auths=[grant("app1", "orders"), grant("app2", "orders")],
        acls=[{"id": "acl1", "acl_name": "local_only", "acl_type": "PERMIT", "entity_type": "IP",
               "acl_value": "127.0.0.0/8,::1"}],
        acl_bindings=[{"id": "ab1", "acl_id": "acl1", "publish_id": f"p-orders-{RELEASE}"}],
        throttles=[{"id": "t1", "name": "per_app", "api_call_limits": 100, "app_call_limits": 3,
                    "time_interval": 1, "time_unit": "MINUTE", "type": 1}],
        throttle_bindings=[{"id": "tb1", "policy_id": "t1", "publish_id": f"p-orders-{RELEASE}"}],
        signs=[{"id": "s1", "name": "sign_one", "sign_type": "hmac", "sign_key": SIGN_KEY,
                "sign_secret": SIGN_SECRET}],
        sign_bindings=[{"id": "sb1", "sign_id": "s1", "publish_id": f"p-orders-{RELEASE}"}],
    )


async def test_every_stage_on_one_api(make_gateway, echo_backend) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(pipeline_doc(addr))
    async with aiohttp.ClientSession() as client:
        status, body, _ = await call(client, gw.url, "GET", "/orders/7", headers={"Host": "api.test.local"})
        assert (status, body["error_code"]) == (401, "APIG.0303")  # AUTH_HEADER_MISSING: no credentials
        status, body, _ = await call(client, gw.url, "GET", "/orders/0", headers=signed_headers("GET", "/orders/0"))
        assert (status, body["error_code"]) == (400, "APIG.0201")  # validated after auth, consumes no budget

        for _ in range(3):
            status, body, resp = await call(client, gw.url, "GET", "/orders/7",
                                            headers=signed_headers("GET", "/orders/7"))
            assert status == 200, body
            assert "remain:" in resp.headers["X-Apig-RateLimit-app"]
        seen = backend.requests[-1]
        assert seen["path"] == "/v1/orders/7"
        assert seen["headers"]["X-Ctx-App-Id"] == "app1"
        # the backend can verify the gateway's signature with the shipped helper
        assert verify_hmac("GET", seen["path"], seen["query"], seen["headers"], b"", SIGN_KEY, SIGN_SECRET)
        assert not verify_hmac("GET", "/v1/orders/8", seen["query"], seen["headers"], b"", SIGN_KEY, SIGN_SECRET)

        status, body, resp = await call(client, gw.url, "GET", "/orders/7", headers=signed_headers("GET", "/orders/7"))
        assert (status, body["error_code"]) == (429, "APIG.0308")
        assert int(resp.headers["Retry-After"]) >= 1
        # another app has its own budget
        hdrs = signed_headers("GET", "/orders/7", key="app_key_0002", secret="app_secret_0002_xyz")
        status, body, _ = await call(client, gw.url, "GET", "/orders/7", headers=hdrs)
        assert status == 200 and backend.requests[-1]["headers"]["X-Ctx-App-Id"] == "app2"
        assert backend.hits == 4

        async with client.get(gw.admin_url + "/metrics") as r:
            text = await r.text()
        assert 'type="THROTTLED"' in text and 'api="orders"' in text


async def test_bad_push_keeps_the_pipeline_serving(make_gateway, echo_backend) -> None:
    _, addr = echo_backend
    gw = await make_gateway(pipeline_doc(addr))
    bad = pipeline_doc(addr)
    bad["throttles"][0]["app_call_limits"] = 1000  # app limit above the API limit (spec 02 §1.2)
    bad["sign_bindings"][0]["sign_id"] = "missing"
    async with aiohttp.ClientSession() as client:
        async with client.put(gw.admin_url + "/v1/snapshot", json=bad) as r:
            body = await r.json()
        assert r.status == 400
        assert any(p.startswith("sign_bindings[0].sign_id") for p in body["problems"])
        assert any(p.startswith("throttles[0]") for p in body["problems"])
        status, _, _ = await call(client, gw.url, "GET", "/orders/7", headers=signed_headers("GET", "/orders/7"))
        assert status == 200
