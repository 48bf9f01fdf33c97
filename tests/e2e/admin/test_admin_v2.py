"""The vendor's v2 management paths on the admin listener: CRUD per collection, publish/offline, bindings."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.admin_helpers import V2, call, public_get
from tests.support.helpers import RELEASE, mock_api, snapshot

# (path, create body, update body, list key, field checked after update)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    ("api-groups", {"name": "group_two", "remark": "second"}, {"name": "group_two_b"}, "groups", "name"),
    ("envs", {"name": "TEST_ENV", "remark": "t"}, {"name": "TEST_ENV_B"}, "envs", "name"),
    ("env-variables", {"group_id": "g1", "env_id": RELEASE, "variable_name": "host_var", "variable_value": "1.2.3.4"},
     {"variable_value": "10.0.0.1"}, "variables", "variable_value"),
    ("throttles", {"name": "throttle_one", "api_call_limits": 100, "time_interval": 1, "time_unit": "SECOND",
                   "type": 1}, {"name": "throttle_one", "api_call_limits": 50, "time_interval": 1,
                                "time_unit": "SECOND", "type": 1}, "throttles", "api_call_limits"),
    ("apis", {k: v for k, v in mock_api("x", "/created", "made").items() if k != "id"},
     {k: v for k, v in mock_api("x", "/created", "changed", name="api_changed").items() if k != "id"}, "apis", "name"),
    ("signs", {"name": "sign_one", "sign_type": "hmac"}, {"name": "sign_one_b", "sign_type": "hmac"}, "signs", "name"),
    ("acls", {"acl_name": "acl_one", "acl_type": "PERMIT", "acl_value": "127.0.0.1", "entity_type": "IP"},
     {"acl_name": "acl_one", "acl_type": "DENY", "acl_value": "10.0.0.1", "entity_type": "IP"}, "acls", "acl_type"),
    ("apps", {"name": "app_one", "remark": "first app"}, {"name": "app_one_b", "remark": "renamed"}, "apps", "name"),
    ("authorizers", {"name": "auth_one", "type": "FRONTEND", "authorizer_type": "FUNC",
                     "authorizer_uri": "urn:fss:r:p:function:default:auth_fn:latest", "ttl": 0},
     {"name": "auth_one_b", "type": "FRONTEND", "authorizer_type": "FUNC",
      "authorizer_uri": "urn:fss:r:p:function:default:auth_fn:latest", "ttl": 0}, "authorizer_list", "name"),
    ("vpc-channels", {"name": "chan_one", "type": 2, "port": 80, "balance_strategy": 1, "member_type": "ip",
                      "members": [{"host": "127.0.0.1", "weight": 1}]},
     {"name": "chan_one_b", "type": 2, "port": 80, "balance_strategy": 1, "member_type": "ip"}, "vpc_channels", "name"),
    ("api-groups/g1/gateway-responses", {"name": "resp_one", "responses": {"AUTH_FAILURE": {"status": 401,
                                                                                           "body": "no"}}},
     {"name": "resp_one_b", "responses": {}}, "responses", "name"),
    ("plugins", {"plugin_name": "cors_plugin", "plugin_type": "cors", "plugin_scope": "global",
                 "plugin_content": "{}"},
     {"plugin_name": "cors_plugin_b", "plugin_type": "cors", "plugin_scope": "global", "plugin_content": "{}"},
     "plugins", "plugin_name"),
]


def _base() -> dict[str, Any]:
    doc = snapshot([mock_api("a1", "/one", "first")])
    doc["functions"] = [{"function_urn": "urn:fss:r:p:function:default:auth_fn:latest",
                         "entry": "gateway.examples.functions:token_authorizer"}]
    return doc


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_collection_crud(make_gateway, case):
    path, create, update, list_key, field = case
    gw = await make_gateway(_base())
    async with aiohttp.ClientSession() as admin:
        status, created, headers = await call(admin, gw.admin_url, "POST", f"{V2}/{path}", json=create)
        assert status == 201, created
        rid = created.get("id")
        assert isinstance(rid, str) and len(rid) == 32
        v1 = headers["ETag"]
        status, listed, _ = await call(admin, gw.admin_url, "GET", f"{V2}/{path}")
        assert status == 200
        assert rid in [x["id"] for x in listed[list_key]]
        assert listed["total"] >= 1 and listed["size"] == len(listed[list_key])
        status, got, _ = await call(admin, gw.admin_url, "GET", f"{V2}/{path}/{rid}")
        assert status == 200 and got["id"] == rid
        status, updated, headers = await call(admin, gw.admin_url, "PUT", f"{V2}/{path}/{rid}", json=update)
        assert status == 200, updated
        assert updated[field] == update[field]
        assert headers["ETag"] != v1
        _, got, _ = await call(admin, gw.admin_url, "GET", f"{V2}/{path}/{rid}")
        assert got[field] == update[field]
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/{path}/{rid}")
        assert status == 204
        status, err, _ = await call(admin, gw.admin_url, "GET", f"{V2}/{path}/{rid}")
        assert status == 404 and err["error_code"].startswith("APIG.30")
        status, err, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/{path}/{rid}")
        assert status == 404


async def test_not_found_codes_and_duplicate_names(make_gateway):
    gw = await make_gateway(_base())
    async with aiohttp.ClientSession() as admin:
        for path, code in (("apis", "APIG.3002"), ("api-groups", "APIG.3001"), ("envs", "APIG.3003"),
                           ("apps", "APIG.3004"), ("throttles", "APIG.3005"), ("acls", "APIG.3006"),
                           ("signs", "APIG.3017"), ("vpc-channels", "APIG.3023"), ("authorizers", "APIG.3081"),
                           ("env-variables", "APIG.3011")):
            status, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/{path}/{'0' * 32}")
            assert (status, body["error_code"]) == (404, code), path
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/api-groups", json={"name": "group_one"})
        assert (status, body["error_code"]) == (400, "APIG.3201")
        api = {k: v for k, v in mock_api("z", "/other").items() if k != "id"}
        api["name"] = "api_a1"
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis", json=api)
        assert (status, body["error_code"]) == (400, "APIG.3202")
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis", data=b"{broken",
                                     headers={"Content-Type": "application/json"})
        assert status == 400 and body["error_code"] == "APIG.2012"


async def test_release_env_listed_and_protected(make_gateway):
    gw = await make_gateway(_base())
    async with aiohttp.ClientSession() as admin:
        _, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/envs")
        assert body["envs"][0]["id"] == RELEASE and body["envs"][0]["name"] == "RELEASE"
        status, body, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/envs/{RELEASE}")
        assert status == 400


async def test_publish_offline_changes_what_is_served(make_gateway, client):
    gw = await make_gateway(_base())
    async with aiohttp.ClientSession() as admin:
        api = {k: v for k, v in mock_api("x", "/fresh", "fresh body").items() if k != "id"}
        status, created, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis", json=api)
        assert status == 201
        api_id = created["id"]
        # created but not published: not served
        assert (await public_get(client, gw.url, "/fresh"))[0] == 404
        status, pub, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis/action",
                                    json={"action": "online", "api_id": api_id, "env_id": RELEASE})
        assert status == 201, pub
        assert pub["api_id"] == api_id and pub["env_id"] == RELEASE and len(pub["publish_id"]) == 32
        assert await public_get(client, gw.url, "/fresh") == (200, "fresh body")
        # the env_id filter of the API list and the runtime definition see it
        _, listed, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis?env_id={RELEASE}")
        assert api_id in [a["id"] for a in listed["apis"]]
        status, rt, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis/runtime/{api_id}")
        assert status == 200 and rt["run_env_name"] == "RELEASE"
        # update the published API: the draft changes, RELEASE keeps serving what was published
        api["mock_info"] = {"result_content": "updated body"}
        status, _, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/apis/{api_id}", json=api)
        assert status == 200
        _, shown, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis/{api_id}")
        assert shown["mock_info"]["result_content"] == "updated body"
        assert await public_get(client, gw.url, "/fresh") == (200, "fresh body")
        status, off, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis/action",
                                    json={"action": "offline", "api_id": api_id, "env_id": RELEASE})
        assert status == 201 and off["publish_id"] == pub["publish_id"]
        assert (await public_get(client, gw.url, "/fresh"))[0] == 404
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis/action",
                                     json={"action": "offline", "api_id": api_id, "env_id": RELEASE})
        assert (status, body["error_code"]) == (404, "APIG.3015")
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis/action",
                                     json={"action": "sideways", "api_id": api_id, "env_id": RELEASE})
        assert (status, body["error_code"]) == (400, "APIG.2011")
        # batch publish: one good, one unknown
        status, batch, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis/publish?action=online",
                                      json={"apis": [api_id, "f" * 32], "env_id": RELEASE})
        assert status == 200
        assert [s["api_id"] for s in batch["success"]] == [api_id]
        assert batch["failure"][0]["error_code"] == "APIG.3002"
        assert await public_get(client, gw.url, "/fresh") == (200, "updated body")
        status, hist, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis/publish/{api_id}")
        assert status == 200 and hist["api_versions"][0]["env_id"] == RELEASE


async def test_publish_in_another_env_selected_by_x_stage(make_gateway, client):
    gw = await make_gateway(_base())
    async with aiohttp.ClientSession() as admin:
        status, env, _ = await call(admin, gw.admin_url, "POST", f"{V2}/envs", json={"name": "STAGING"})
        assert status == 201
        status, _, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis/action",
                                  json={"action": "online", "api_id": "a1", "env_id": env["id"]})
        assert status == 201
        assert await public_get(client, gw.url, "/one", **{"X-Stage": "STAGING"}) == (200, "first")
        # deleting the environment cascades its publications away
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/envs/{env['id']}")
        assert status == 204
        assert not [p for p in gw.gw.document["publishes"] if p["env_id"] == env["id"]]


async def test_bad_change_rejected_old_config_serving(make_gateway, client):
    gw = await make_gateway(_base())
    async with aiohttp.ClientSession() as admin:
        _, before, _ = await call(admin, gw.admin_url, "GET", "/v1/snapshot/version")
        bad = {k: v for k, v in mock_api("a1", "/one", "broken").items() if k != "id"}
        bad["req_method"] = "FETCH"
        bad["mock_info"] = {"result_content": "x", "status_code": 999}
        status, body, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/apis/a1", json=bad)
        assert status == 400
        assert body["error_code"] == "APIG.2012"
        assert any(p.startswith("req_method: must be one of") for p in body["problems"]), body
        assert any(p.startswith("mock_info.status_code: must be 200..599") for p in body["problems"]), body
        # a change that breaks a reference elsewhere is rejected too
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/env-variables",
                                     json={"group_id": "nope", "env_id": RELEASE, "variable_name": "abc",
                                           "variable_value": "1"})
        assert status == 400 and any("unknown group" in p for p in body["problems"])
        _, after, _ = await call(admin, gw.admin_url, "GET", "/v1/snapshot/version")
        assert after["version"] == before["version"]
    assert await public_get(client, gw.url, "/one") == (200, "first")


async def test_delete_api_cascades_publications_and_bindings(make_gateway, client):
    doc = _base()
    doc["throttles"] = [{"id": "t1", "name": "throttle_one", "api_call_limits": 100, "time_interval": 1,
                         "time_unit": "SECOND", "type": 1}]
    doc["apps"] = [{"id": "app1", "name": "app_one", "app_key": "app-key-0001", "app_secret": "app-secret-0001"}]
    gw = await make_gateway(doc)
    pid = gw.gw.document["publishes"][0]["publish_id"]
    async with aiohttp.ClientSession() as admin:
        status, b, _ = await call(admin, gw.admin_url, "POST", f"{V2}/throttle-bindings",
                                  json={"strategy_id": "t1", "publish_ids": [pid]})
        assert status == 201, b
        row = b["throttle_applys"][0]
        assert row["strategy_id"] == "t1" and row["api_id"] == "a1" and row["env_id"] == RELEASE
        status, listed, _ = await call(admin, gw.admin_url, "GET", f"{V2}/throttle-bindings/binded-apis?throttle_id=t1")
        assert status == 200 and [a["api_id"] for a in listed["apis"]] == ["a1"]
        status, pol, _ = await call(admin, gw.admin_url, "GET", f"{V2}/throttle-bindings/binded-throttles?api_id=a1")
        assert status == 200 and pol["throttles"][0]["id"] == "t1"
        status, auths, _ = await call(admin, gw.admin_url, "POST", f"{V2}/app-auths",
                                      json={"env_id": RELEASE, "app_ids": ["app1"], "api_ids": ["a1"]})
        assert status == 201 and auths["auths"][0]["auth_result"]["status"] == "SUCCESS"
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/apis/a1")
        assert status == 204
    stored = gw.gw.document
    assert stored["publishes"] == [] and stored["throttle_bindings"] == [] and stored["app_auths"] == []
    assert (await public_get(client, gw.url, "/one"))[0] == 404


async def test_binding_collections(make_gateway):
    doc = _base()
    doc["acls"] = [{"id": "acl1", "acl_name": "acl_one", "acl_type": "PERMIT", "acl_value": "127.0.0.1",
                    "entity_type": "IP"}]
    doc["signs"] = [{"id": "s1", "name": "sign_one", "sign_type": "hmac", "sign_key": "k" * 16,
                     "sign_secret": "s" * 32}]
    doc["plugins"] = [{"id": "pl1", "plugin_name": "cors_plugin", "plugin_type": "cors", "plugin_scope": "global",
                       "plugin_content": "{}"},
                      {"id": "pl2", "plugin_name": "cors_plugin_two", "plugin_type": "cors", "plugin_scope": "global",
                       "plugin_content": "{}"}]
    gw = await make_gateway(doc)
    pid = gw.gw.document["publishes"][0]["publish_id"]
    async with aiohttp.ClientSession() as admin:
        for path, field, policy, key, list_key in (("acl-bindings", "acl_id", "acl1", "acl_bindings", "apis"),
                                                   ("sign-bindings", "sign_id", "s1", "bindings", "bindings")):
            status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/{path}",
                                         json={field: policy, "publish_ids": [pid]})
            assert status == 201, body
            bid = body[key][0]["id"]
            status, listed, _ = await call(admin, gw.admin_url, "GET", f"{V2}/{path}/binded-apis?{field}={policy}")
            assert [a["bind_id"] for a in listed[list_key]] == [bid]
            status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/{path}",
                                         json={field: policy, "publish_ids": ["nope"]})
            assert (status, body["error_code"]) == (404, "APIG.3015")
            status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/{path}/{bid}")
            assert status == 204
            status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/{path}/{bid}")
            assert status == 404
        # batch unbind (vendor PUT ...?action=delete) and batch ACL delete
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/acl-bindings",
                                     json={"acl_id": "acl1", "publish_ids": [pid]})
        bid = body["acl_bindings"][0]["id"]
        status, body, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/acl-bindings?action=delete",
                                     json={"acl_bindings": [bid, "0" * 32]})
        assert status == 200 and body["success_count"] == 1
        assert body["failure"] == [{"bind_id": "0" * 32, "error_code": "APIG.3010",
                                    "error_msg": "The binding record does not exist"}]
        status, body, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/acls?action=delete", json={"acls": ["acl1"]})
        assert status == 200 and body["success_count"] == 1 and not gw.gw.document["acls"]
        status, body, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/acls?action=remove", json={"acls": ["x"]})
        assert (status, body["error_code"]) == (400, "APIG.2011")
        # sign secrets are masked in listings
        _, signs, _ = await call(admin, gw.admin_url, "GET", f"{V2}/signs")
        assert signs["signs"][0]["sign_secret"] == "******"
        # plug-ins: attach, list, detach
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/plugins/pl1/attach",
                                     json={"env_id": RELEASE, "api_ids": ["a1"]})
        assert status == 201 and body["attached_plugins"][0]["api_id"] == "a1"
        _, listed, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis/a1/attached-plugins")
        assert [p["plugin_id"] for p in listed["plugins"]] == ["pl1"]
        # a second plug-in of the same type replaces the first on that API and environment (vendor behaviour)
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/plugins/pl2/attach",
                                     json={"env_id": RELEASE, "api_ids": ["a1"]})
        assert status == 201, body
        _, listed, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis/a1/attached-plugins")
        assert [p["plugin_id"] for p in listed["plugins"]] == ["pl2"]
        status, _, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/apis/a1/plugins/detach",
                                  json={"env_id": RELEASE, "plugin_ids": ["pl2"]})
        assert status == 204
        assert gw.gw.document["plugin_bindings"] == []


async def test_apps_codes_acl_and_secret(make_gateway):
    gw = await make_gateway(_base())
    async with aiohttp.ClientSession() as admin:
        status, app, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apps", json={"name": "app_one"})
        assert status == 201
        assert len(app["app_key"]) == 32 and len(app["app_secret"]) >= 16  # shown once, at creation
        app_id = app["id"]
        _, got, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apps/{app_id}")
        assert got["app_secret"] == "******"
        # update without secrets keeps them
        status, _, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/apps/{app_id}", json={"name": "app_two"})
        assert status == 200
        stored = next(a for a in gw.gw.document["apps"] if a["id"] == app_id)
        assert stored["app_secret"] == app["app_secret"] and stored["name"] == "app_two"
        status, reset, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/apps/secret/{app_id}", json={})
        assert status == 201 and reset["app_secret"] != app["app_secret"]
        # AppCodes: given and generated
        code = "Ab1+" * 16
        status, c1, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apps/{app_id}/app-codes",
                                   json={"app_code": code})
        assert status == 201 and c1["app_id"] == app_id
        status, c2, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/apps/{app_id}/app-codes")
        assert status == 201 and len(c2["app_code"]) == 64
        _, codes, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apps/{app_id}/app-codes")
        assert codes["total"] == 2 and all(c["app_code"] == "******" for c in codes["app_codes"])
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/apps/{app_id}/app-codes/{c1['id']}")
        assert status == 204
        status, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apps/{'0' * 32}/app-codes")
        assert (status, body["error_code"]) == (404, "APIG.3004")
        # app ACL
        status, acl, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/apps/{app_id}/app-acl",
                                    json={"app_acl_type": "PERMIT", "app_acl_values": ["127.0.0.1"]})
        assert status == 200 and acl["app_acl_type"] == "PERMIT"
        _, acl, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apps/{app_id}/app-acl")
        assert acl["app_acl_values"] == ["127.0.0.1"]
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/apps/{app_id}/app-acl")
        assert status == 204
        # deleting the app removes its codes
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/apps/{app_id}")
        assert status == 204
        assert not [c for c in gw.gw.document.get("app_codes") or [] if c["app_id"] == app_id]


async def test_special_throttles_and_channel_members(make_gateway):
    doc = _base()
    doc["throttles"] = [{"id": "t1", "name": "throttle_one", "api_call_limits": 100, "time_interval": 1,
                         "time_unit": "SECOND", "type": 1}]
    doc["vpc_channels"] = [{"id": "ch1", "name": "chan_one", "type": 2, "port": 80, "balance_strategy": 1,
                            "member_type": "ip", "members": [{"id": "m1", "host": "127.0.0.1", "weight": 1}]}]
    gw = await make_gateway(doc)
    async with aiohttp.ClientSession() as admin:
        status, sp, _ = await call(admin, gw.admin_url, "POST", f"{V2}/throttles/t1/throttle-specials",
                                   json={"object_id": "app1", "object_type": "APP", "call_limits": 5})
        assert status == 201 and sp["throttle_id"] == "t1"
        _, listed, _ = await call(admin, gw.admin_url, "GET", f"{V2}/throttles/t1/throttle-specials")
        assert [x["id"] for x in listed["throttle_specials"]] == [sp["id"]]
        status, up, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/throttles/t1/throttle-specials/{sp['id']}",
                                   json={"call_limits": 9})
        assert status == 200 and up["call_limits"] == 9 and up["object_id"] == "app1"
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/throttles/t1")
        assert status == 204
        assert not gw.gw.document.get("special_throttles")
        # members
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/vpc-channels/ch1/members",
                                     json={"members": [{"host": "127.0.0.2", "weight": 2}]})
        assert status == 201 and body["total"] == 2
        _, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/vpc-channels/ch1/members")
        hosts = sorted(m["host"] for m in body["members"])
        assert hosts == ["127.0.0.1", "127.0.0.2"]
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/vpc-channels/ch1/members/m1")
        assert status == 204
        _, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/vpc-channels/ch1/members")
        assert [m["host"] for m in body["members"]] == ["127.0.0.2"]
        status, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/vpc-channels/nope/members")
        assert (status, body["error_code"]) == (404, "APIG.3023")


async def test_list_paging_and_filters(make_gateway):
    apis = [mock_api(f"a{i}", f"/p{i}", name=f"api_number_{i}") for i in range(30)]
    gw = await make_gateway(snapshot(apis))
    async with aiohttp.ClientSession() as admin:
        _, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis")
        assert body["total"] == 30 and body["size"] == 20
        _, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis?offset=25&limit=10")
        assert body["size"] == 5
        _, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis?name=number_1&limit=100")
        assert body["total"] == 11  # fuzzy: 1, 10..19
        _, body, _ = await call(admin, gw.admin_url, "GET",
                                f"{V2}/apis?name=api_number_1&precise_search=name&limit=100")
        assert body["total"] == 1
        _, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis?req_uri=/p7")
        assert [a["id"] for a in body["apis"]] == ["a7"]
        status, body, _ = await call(admin, gw.admin_url, "GET", f"{V2}/apis?limit=abc")
        assert status == 400


async def test_v2_write_honours_if_match(make_gateway, client):
    gw = await make_gateway(_base())
    async with aiohttp.ClientSession() as admin:
        _, v, headers = await call(admin, gw.admin_url, "GET", "/v1/snapshot/version")
        etag = headers["ETag"]
        status, _, _ = await call(admin, gw.admin_url, "POST", f"{V2}/envs", json={"name": "FIRST"})
        assert status == 201
        body = {k: val for k, val in mock_api("a1", "/one", "stale write").items() if k != "id"}
        status, err, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/apis/a1", json=body,
                                    headers={"If-Match": etag})
        assert status == 412 and err["error_code"] == "APIG.1412" and err["current_version"] != v["version"]
        assert await public_get(client, gw.url, "/one") == (200, "first")
        # a masked secret in a create is refused
        status, err, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apps",
                                    json={"name": "app_masked", "app_secret": "******"})
        assert status == 400 and err["problems"][0].startswith("app_secret: is the mask")


async def test_domain_written_without_id_is_managed_by_its_derived_id(make_gateway):
    doc = _base()
    doc["groups"][0]["url_domains"] = [{"domain": "legacy.example.test"}]
    gw = await make_gateway(doc)
    async with aiohttp.ClientSession() as admin:
        status, group, _ = await call(admin, gw.admin_url, "GET", f"{V2}/api-groups/g1")
        assert status == 200
        dom = group["url_domains"][0]
        assert len(dom["id"]) == 32 and dom["is_http_redirect_to_https"] is False
        status, body, _ = await call(admin, gw.admin_url, "PUT", f"{V2}/api-groups/g1/domains/{dom['id']}",
                                     json={"is_http_redirect_to_https": True})
        assert status == 200 and body["is_http_redirect_to_https"] is True, body
        async with admin.get(gw.url + "/one?a=b", headers={"Host": "legacy.example.test"},
                             allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (301, "https://legacy.example.test/one?a=b")
        status, _, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/api-groups/g1/domains/{dom['id']}")
        assert status == 204
        status, body, _ = await call(admin, gw.admin_url, "DELETE", f"{V2}/api-groups/g1/domains/{dom['id']}")
        assert (status, body["error_code"]) == (404, "APIG.3020")
    assert gw.gw.document["groups"][0]["url_domains"] == []
