"""PUT/GET /v1/snapshot through real sockets: swap, rejection with every problem, If-Match, masking."""

from __future__ import annotations

import copy

import aiohttp
import orjson
import yaml

from tests.support.admin_helpers import call, public_get
from tests.support.helpers import mock_api, snapshot
from tests.support.tls_helpers import TestCA


async def test_put_valid_snapshot_swaps_and_sets_etag(make_gateway, client):
    gw = await make_gateway(snapshot([mock_api("a1", "/one", "first")]))
    async with aiohttp.ClientSession() as admin:
        status, body, headers = await call(admin, gw.admin_url, "GET", "/v1/snapshot/version")
        assert status == 200
        old = body["version"]
        assert headers["ETag"] == f'"{old}"'
        assert await public_get(client, gw.url, "/one") == (200, "first")

        new = snapshot([mock_api("a2", "/two", "second")])
        status, body, headers = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=orjson.dumps(new),
                                           headers={"Content-Type": "application/json"})
        assert status == 200, body
        assert body["version"] != old
        assert body["counts"]["apis"] == 1
        assert headers["ETag"] == f'"{body["version"]}"'
    assert (await public_get(client, gw.url, "/two")) == (200, "second")
    status, _ = await public_get(client, gw.url, "/one")
    assert status == 404


async def test_put_yaml_body(make_gateway, client):
    gw = await make_gateway(snapshot([mock_api("a1", "/one", "first")]))
    async with aiohttp.ClientSession() as admin:
        text = yaml.safe_dump(snapshot([mock_api("y1", "/yaml", "from yaml")]))
        status, body, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=text.encode(),
                                     headers={"Content-Type": "application/yaml"})
        assert status == 200, body
    assert await public_get(client, gw.url, "/yaml") == (200, "from yaml")


async def test_invalid_snapshot_lists_every_problem_and_old_keeps_serving(make_gateway, client):
    gw = await make_gateway(snapshot([mock_api("a1", "/one", "first")]))
    bad = snapshot([mock_api("a1", "/one", "changed"), mock_api("a2", "/two")])
    bad["apis"][0]["req_method"] = "FETCH"
    bad["apis"][1]["group_id"] = "nope"
    bad["publishes"].append({"publish_id": "px", "api_id": "ghost", "env_id": "DEFAULT_ENVIRONMENT_RELEASE_ID"})
    async with aiohttp.ClientSession() as admin:
        _, before, _ = await call(admin, gw.admin_url, "GET", "/v1/snapshot/version")
        status, body, headers = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=bad)
        assert status == 400
        assert body["error_code"] == "APIG.2012"
        assert "error_msg" in body
        problems = body["problems"]
        assert any(p.startswith("apis[0].req_method: must be one of") for p in problems), problems
        assert any(p.startswith("apis[1].group_id: unknown group") for p in problems), problems
        assert any(p.startswith("publishes[") and "unknown API" in p for p in problems), problems
        assert headers["ETag"] == f'"{before["version"]}"'
        _, after, _ = await call(admin, gw.admin_url, "GET", "/v1/snapshot/version")
        assert after["version"] == before["version"]
        # malformed bodies
        status, body, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=b"{not json",
                                     headers={"Content-Type": "application/json"})
        assert status == 400 and body["problems"][0].startswith("body: invalid JSON")
        status, body, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=b"- a\n- b\n")
        assert status == 400 and "mapping" in body["problems"][0]
        status, body, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=b"")
        assert status == 400 and body["error_code"] == "APIG.2001"
    assert await public_get(client, gw.url, "/one") == (200, "first")


async def test_if_match_optimistic_concurrency(make_gateway, client):
    gw = await make_gateway(snapshot([mock_api("a1", "/one", "first")]))
    async with aiohttp.ClientSession() as admin:
        _, v0, _ = await call(admin, gw.admin_url, "GET", "/v1/snapshot/version")
        doc1 = snapshot([mock_api("a1", "/one", "writer-1")])
        doc2 = snapshot([mock_api("a1", "/one", "writer-2")])
        status, body1, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=doc1,
                                      headers={"If-Match": f'"{v0["version"]}"'})
        assert status == 200
        # the second writer read the same version: rejected, told the current one
        status, body, headers = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=doc2,
                                           headers={"If-Match": f'"{v0["version"]}"'})
        assert status == 412
        assert body["current_version"] == body1["version"]
        assert headers["ETag"] == f'"{body1["version"]}"'
        assert await public_get(client, gw.url, "/one") == (200, "writer-1")
        # with the fresh version it goes through (unquoted value accepted too)
        status, _, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=doc2,
                                  headers={"If-Match": body1["version"]})
        assert status == 200
    assert await public_get(client, gw.url, "/one") == (200, "writer-2")


AUTH_URN = "urn:fss:r:p:function:default:auth_fn:latest"
ISSUED = TestCA().issue("x.example", dns=["x.example"])


def _secret_doc() -> dict:
    doc = snapshot([mock_api("a1", "/one", "first")])
    doc["groups"][0]["url_domains"] = [{"domain": "x.example", "certificate": ISSUED.cert_pem,
                                        "private_key": ISSUED.key_pem}]
    doc["apps"] = [{"id": "app1", "name": "app_one", "app_key": "app-key-0001",
                    "app_secret": "s3cr3t-value-long-enough"}]
    doc["signs"] = [{"id": "s1", "name": "sign_one", "sign_type": "hmac", "sign_key": "key12345",
                     "sign_secret": "sign-secret-1-long"}]
    doc["app_codes"] = [{"id": "c1", "app_id": "app1", "app_code": "A" * 64}]
    doc["functions"] = [{"function_urn": AUTH_URN, "entry": "gateway.examples.functions:token_authorizer"}]
    doc["authorizers"] = [{"id": "au1", "name": "auth_one", "type": "FRONTEND", "authorizer_type": "FUNC",
                           "authorizer_uri": AUTH_URN, "user_data": "authorizer-secret"}]
    return doc


async def test_get_masks_secrets_and_put_back_keeps_them(make_gateway):
    gw = await make_gateway(_secret_doc())
    async with aiohttp.ClientSession() as admin:
        status, body, headers = await call(admin, gw.admin_url, "GET", "/v1/snapshot")
        assert status == 200
        assert headers["ETag"] == f'"{body["version"]}"'
        text = orjson.dumps(body).decode()
        for secret in ("s3cr3t-value", ISSUED.key_pem, "sign-secret-1-long", "A" * 64, "authorizer-secret"):
            assert secret not in text
        assert body["apps"][0]["app_secret"] == "******"
        assert body["apps"][0]["app_key"] == "app-key-0001"  # identifiers are not secrets
        assert body["groups"][0]["url_domains"][0]["certificate"] == ISSUED.cert_pem
        # GET -> edit -> PUT keeps the stored secrets
        edited = copy.deepcopy(body)
        edited["apps"][0]["name"] = "app_renamed"
        edited.pop("version")
        status, _, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=edited)
        assert status == 200
        # a mask sent for an element that has no stored secret is an error, not a new secret "******"
        edited["apps"].append({"id": "app2", "name": "app_new", "app_key": "app-key-0002", "app_secret": "******"})
        status, body, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=edited)
        assert status == 400 and body["problems"][0].startswith("apps[1].app_secret: is the mask")
    stored = gw.gw.document
    assert stored["apps"][0]["name"] == "app_renamed"
    assert stored["apps"][0]["app_secret"] == "s3cr3t-value-long-enough"
    assert stored["groups"][0]["url_domains"][0]["private_key"] == ISSUED.key_pem
    assert stored["signs"][0]["sign_secret"] == "sign-secret-1-long"
    assert stored["authorizers"][0]["user_data"] == "authorizer-secret"


async def test_admin_token_required_off_loopback_semantics(make_gateway):
    gw = await make_gateway(snapshot([mock_api("a1", "/one")]), admin_token="t0ken", admin_token_required=True)
    async with aiohttp.ClientSession() as admin:
        status, body, _ = await call(admin, gw.admin_url, "GET", "/v1/snapshot")
        assert status == 401 and body["error_code"] == "APIG.1002"
        status, _, _ = await call(admin, gw.admin_url, "GET", "/v1/snapshot",
                                  headers={"Authorization": "Bearer t0ken"})
        assert status == 200
