"""Each environment serves the version published to it: publish, edit, publish elsewhere, switch, offline.

Through the v2 admin API and real sockets: the data plane answers per environment (X-Stage selects TEST),
the exported snapshot carries each environment's published copy and serves the same when pushed back, and
a snapshot without copies behaves as before.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.admin_helpers import V2, call, public_get
from tests.support.helpers import RELEASE, mock_api, snapshot


def _body(content: str) -> dict[str, Any]:
    return {k: v for k, v in mock_api("x", "/vers", content).items() if k != "id"}


async def _served(client: aiohttp.ClientSession, url: str) -> tuple[tuple[int, str], tuple[int, str]]:
    """(RELEASE answer, TEST answer) of GET /vers."""
    return await public_get(client, url, "/vers"), await public_get(client, url, "/vers", **{"X-Stage": "TEST"})


async def test_environments_keep_what_was_published_to_them(make_gateway, client):
    gw = await make_gateway(snapshot([mock_api("a1", "/one", "first")]))
    async with aiohttp.ClientSession() as admin:
        async def ok(method: str, path: str, body: Any = None, want: int = 200) -> Any:
            status, res, _ = await call(admin, gw.admin_url, method, V2 + path, json=body)
            assert status == want, (method, path, res)
            return res

        async def publish(env_id: str) -> Any:
            return await ok("POST", "/apis/action", {"action": "online", "api_id": api_id, "env_id": env_id}, 201)

        test_env = (await ok("POST", "/envs", {"name": "TEST"}, 201))["id"]
        api_id = (await ok("POST", "/apis", _body("v1"), 201))["id"]
        release_v1 = await publish(RELEASE)
        await publish(test_env)
        assert await _served(client, gw.url) == ((200, "v1"), (200, "v1"))
        assert not [p for p in gw.gw.document["publishes"] if "api_definition" in p]  # served alike: no copies

        # edit the draft, publish it to TEST only: TEST serves v2, RELEASE keeps v1
        await ok("PUT", f"/apis/{api_id}", _body("v2"))
        assert await _served(client, gw.url) == ((200, "v1"), (200, "v1"))
        await publish(test_env)
        assert await _served(client, gw.url) == ((200, "v1"), (200, "v2"))
        pubs = {p["env_id"]: p for p in gw.gw.document["publishes"] if p["api_id"] == api_id}
        assert pubs[RELEASE]["api_definition"]["mock_info"]["result_content"] == "v1"
        assert "api_definition" not in pubs[test_env]
        rt = await ok("GET", f"/apis/runtime/{api_id}?env_id={RELEASE}")
        assert rt["mock_info"]["result_content"] == "v1"
        rt = await ok("GET", f"/apis/runtime/{api_id}?env_id={test_env}")
        assert rt["mock_info"]["result_content"] == "v2"
        assert (await ok("GET", f"/apis/{api_id}"))["mock_info"]["result_content"] == "v2"  # the editor's view

        # the OpenAPI export of an environment describes what that environment serves
        for env_id, content in ((RELEASE, "v1"), (test_env, "v2")):
            spec = await ok("POST", "/openapi/export", {"group_id": "g1", "env_id": env_id, "type": "json",
                                                        "define": "all"})
            op = spec["paths"]["/vers"]["get"]
            assert op["x-apigateway-backend"]["mockEndpoints"]["result-content"] == content, spec

        # publish v2 to RELEASE, switch RELEASE back to v1 and forward to v2 through the version endpoint
        release_v2 = await publish(RELEASE)
        assert await _served(client, gw.url) == ((200, "v2"), (200, "v2"))
        hist = await ok("GET", f"/apis/publish/{api_id}?env_id={RELEASE}")
        assert [(v["version_id"], v["status"]) for v in hist["api_versions"]] == [
            (release_v2["version_id"], 1), (release_v1["version_id"], 2)]
        switched = await ok("PUT", f"/apis/publish/{api_id}", {"version_id": release_v1["version_id"]})
        assert switched["env_id"] == RELEASE and "api_definition" not in switched
        assert await _served(client, gw.url) == ((200, "v1"), (200, "v2"))
        await ok("PUT", f"/apis/publish/{api_id}", {"version_id": release_v2["version_id"]})
        assert await _served(client, gw.url) == ((200, "v2"), (200, "v2"))
        assert not [p for p in gw.gw.document["publishes"] if "api_definition" in p]

        # a third edit reaches TEST only; then RELEASE's effective version goes offline, TEST keeps serving
        await ok("PUT", f"/apis/{api_id}", _body("v3"))
        await publish(test_env)
        assert await _served(client, gw.url) == ((200, "v2"), (200, "v3"))
        await ok("PUT", f"/apis/publish/{api_id}", {"version_id": release_v1["version_id"]})
        assert await _served(client, gw.url) == ((200, "v1"), (200, "v3"))
        await ok("DELETE", f"/apis/versions/{release_v1['version_id']}", want=204)
        assert (await _served(client, gw.url))[0][0] == 404
        assert (await _served(client, gw.url))[1] == (200, "v3")
        await publish(RELEASE)  # publishing again serves the current definition
        assert await _served(client, gw.url) == ((200, "v3"), (200, "v3"))

        # the exported snapshot, pushed back, serves the same per environment
        await ok("PUT", f"/apis/publish/{api_id}", {"version_id": release_v2["version_id"]})
        status, exported, _ = await call(admin, gw.admin_url, "GET", "/v1/snapshot")
        assert status == 200
        pub = next(p for p in exported["publishes"] if p["api_id"] == api_id and p["env_id"] == RELEASE)
        assert pub["api_definition"]["mock_info"]["result_content"] == "v2"
        other = await make_gateway(snapshot([mock_api("a1", "/one", "first")]))
        status, res, _ = await call(admin, other.admin_url, "PUT", "/v1/snapshot", json=exported)
        assert status == 200, res
        assert await _served(client, other.url) == ((200, "v2"), (200, "v3"))


async def test_snapshot_without_copies_serves_one_definition(make_gateway, client):
    """A control plane that pushes no api_definition: both environments serve the apis record, as before."""
    doc = snapshot([mock_api("a1", "/vers", "shared")], envs=["TEST"], publish_in=["env-test"])
    gw = await make_gateway(doc)
    assert await _served(client, gw.url) == ((200, "shared"), (200, "shared"))
    async with aiohttp.ClientSession() as admin:
        doc["apis"][0]["mock_info"]["result_content"] = "pushed"
        status, res, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=doc)
        assert status == 200, res
        assert await _served(client, gw.url) == ((200, "pushed"), (200, "pushed"))
        # a pushed copy is served in its environment only; a bad copy is rejected with its field path
        doc["publishes"][1]["api_definition"] = mock_api("a1", "/vers", "test copy")
        status, res, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=doc)
        assert status == 200, res
        assert await _served(client, gw.url) == ((200, "pushed"), (200, "test copy"))
        # the debug call defaults to the method and path the environment serves
        doc["publishes"][1]["api_definition"] = mock_api("a1", "/vers-test", "moved copy", method="POST")
        status, res, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=doc)
        assert status == 200, res
        status, dbg, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis/debug/a1",
                                    json={"mode": "DEVELOPER", "scheme": "HTTP", "stage": "TEST"})
        assert status == 200 and dbg["request"].startswith("POST /vers-test ") and dbg["response"].startswith(
            "HTTP/1.1 200") and dbg["response"].endswith("moved copy"), dbg
        doc["publishes"][1]["api_definition"] = mock_api("a1", "/vers", "test copy")
        status, res, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=doc)
        assert status == 200, res
        doc["publishes"][1]["api_definition"] = mock_api("a1", "/vers", "bad", method="FETCH")
        status, res, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", json=doc)
        assert status == 400 and any(p.startswith("publishes[1].api_definition.req_method: must be one of")
                                     for p in res["problems"]), res
    assert await _served(client, gw.url) == ((200, "pushed"), (200, "test copy"))
