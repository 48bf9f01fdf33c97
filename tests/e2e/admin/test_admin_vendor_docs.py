"""Documents in the vendor's own Swagger 2.0 / OpenAPI 3.0 shape (data/vendor_*.yaml): they import, serve
as defined, and round-trip field for field; the vendor endpoint's api_mode, define and apis options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gateway.control.openapi.exporter import export_openapi
from gateway.control.openapi.importer import import_openapi
from tests.support.admin_helpers import V2, call
from tests.support.helpers import RELEASE

DATA = Path(__file__).parent / "data"
APP_CODE = "C" * 64


def _doc(name: str, backend: str) -> dict[str, Any]:
    return yaml.safe_load((DATA / name).read_text().replace("ECHO_BACKEND", backend))


def _base(backend: str) -> dict[str, Any]:
    host, port = backend.split(":")
    return {
        "vpc_channels": [{"id": "chan1", "name": "shop_channel", "type": 2, "port": int(port), "balance_strategy": 1,
                          "member_type": "ip", "members": [{"host": host, "weight": 1}]}],
        "functions": [{"function_urn": "urn:fss:r:p:function:default:catalog_fn:latest",
                       "entry": "gateway.examples.functions:echo"}],
    }


async def _get(url: str, path: str, host: str, method: str = "GET", **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url + path, headers={"Host": host, **headers}) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


def test_vendor_quirks_map_as_the_vendor_reads_them() -> None:
    swagger, _ = import_openapi(_doc("vendor_swagger2.yaml", "127.0.0.1:1"), publish_env="RELEASE")
    oas3, _ = import_openapi(_doc("vendor_oas3.yaml", "127.0.0.1:1"), publish_env="RELEASE")
    apis = {a["name"]: a for a in swagger["apis"] + oas3["apis"]}
    item = apis["get_item"]
    params = {p["name"]: p for p in item["req_params"]}
    # 0 means "not set": no limits, no validation switched on by them
    assert not {"max_size", "min_size", "min_num", "max_num"} & {*params["itemId"], *params["count"],
                                                                   *params["X-Trace"]}
    assert params["count"]["valid_enable"] == 2 and params["count"]["pass_through"] == 1
    # samples next to the status codes and behind a $ref are kept
    assert item["result_failure_sample"] == '{"ok":false}' and item["result_normal_sample"] == '{"ok":true}'
    assert apis["catalog_section"]["result_failure_sample"] == '{"error":"no section"}'
    assert apis["catalog_section"]["result_normal_sample"] == '{"catalog":[]}'
    # OpenAPI 3 operation-level servers say the protocol
    assert apis["catalog_section"]["req_protocol"] == "HTTPS" and apis["catalog_plain"]["req_protocol"] == "HTTP"
    assert apis["catalog_post"]["req_protocol"] == "BOTH"
    # the document's host is not the group's sub-domain
    assert "sl_domain" not in swagger["groups"][0] and "sl_domain" not in oas3["groups"][0]
    assert apis["create_order"]["req_protocol"] == "HTTPS" and apis["create_order"]["type"] == 2
    assert apis["static_any"]["req_method"] == "ANY" and apis["static_any"]["match_mode"] == "SWA"


async def test_vendor_documents_import_serve_and_round_trip(make_gateway: Any, echo_backend: Any) -> None:
    _, address = echo_backend
    gw = await make_gateway(_base(address), app_code_allow_http=True)
    imported: dict[str, str] = {}
    async with aiohttp.ClientSession() as admin:
        for name in ("vendor_swagger2.yaml", "vendor_oas3.yaml"):  # the same host in both: both import
            status, body, _ = await call(admin, gw.admin_url, "POST", "/v1/import?publish_env=RELEASE",
                                         json=_doc(name, address))
            assert status == 200 and body["warnings"] == [], body
            imported[name] = body["group_id"]
        doc = gw.gw.document
        groups = {g["id"]: g for g in doc["groups"]}
        shop = groups[imported["vendor_swagger2.yaml"]]
        catalog = groups[imported["vendor_oas3.yaml"]]
        assert shop["sl_domain"] == f"{shop['id']}.apic.local"
        # an app allowed to call the APP-authenticated API
        status, app, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apps", json={"name": "vendor_app"})
        assert status == 201
        status, _, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apps/{app['id']}/app-codes",
                                  json={"app_code": APP_CODE})
        assert status == 201
        get_item = next(a["id"] for a in doc["apis"] if a["name"] == "get_item")
        status, _, _ = await call(admin, gw.admin_url, "POST", f"{V2}/app-auths",
                                  json={"env_id": RELEASE, "app_ids": [app["id"]], "api_ids": [get_item]})
        assert status == 201

    host = shop["sl_domain"]
    status, echoed = await _get(gw.url, "/shop/items/42?count=2", host, **{"X-Apig-AppCode": APP_CODE})
    assert status == 200, echoed
    assert echoed["path"] == "/items/42" and ("n", "2") in [tuple(q) for q in echoed["query"]]
    assert echoed["headers"].get("X-From") == "vendor-doc"
    assert (await _get(gw.url, "/shop/items/42", host))[0] == 401
    assert (await _get(gw.url, "/shop/orders", host, "POST"))[0] == 400  # HTTPS only
    assert await _get(gw.url, "/shop/static/css/a.css", host, "DELETE") == (203, "static content")
    assert await _get(gw.url, "/shop/route?tier=gold", host) == (200, "gold route")
    assert await _get(gw.url, "/shop/route", host) == (200, "default route")
    assert (await _get(gw.url, "/shop/route", "shop.vendor-example.com"))[0] == 404  # not our domain
    chost = catalog["sl_domain"]
    assert (await _get(gw.url, "/catalog/books", chost))[0] == 400  # HTTPS only (operation servers)
    assert [(await _get(gw.url, "/catalog/plain", chost))[0] for _ in range(4)] == [200, 200, 200, 429]
    assert (await _get(gw.url, "/catalog/any", chost, "POST"))[0] == 401

    # round trip: export (everything) and import again gives the same APIs, field for field
    for name, oas in (("vendor_swagger2.yaml", "2.0"), ("vendor_oas3.yaml", "3.0")):
        gid = imported[name]
        exported = export_openapi(doc, gid, env_id=RELEASE, oas=oas, define="all")
        if oas == "2.0":
            endpoint = exported["paths"]["/shop/orders"]["post"]["x-apigateway-backend"]["httpVpcEndpoints"]
            assert endpoint["name"] == "shop_channel"  # the channel's name, not its id
        back, warnings = import_openapi(exported, base=doc, group_id=gid, publish_env="RELEASE")
        assert warnings == []
        before = {a["id"]: a for a in doc["apis"] if a["group_id"] == gid}
        after = {a["id"]: a for a in back["apis"]}
        assert before.keys() == after.keys()
        for api_id, api in before.items():
            assert after[api_id] == api, (api["name"], _diff(api, after[api_id]))
        for coll in ("throttles", "acls", "responses", "throttle_bindings", "acl_bindings"):
            mine = sorted(json.dumps(x, sort_keys=True) for x in doc.get(coll) or []
                          if x.get("group_id", gid) == gid and x["id"] in {y["id"] for y in back.get(coll) or []})
            assert mine == sorted(json.dumps(x, sort_keys=True) for x in back.get(coll) or []), coll


def _diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: (a.get(k), b.get(k)) for k in {*a, *b} if a.get(k) != b.get(k)}


async def test_vendor_endpoint_api_mode_define_and_apis(make_gateway: Any, echo_backend: Any) -> None:
    _, address = echo_backend
    gw = await make_gateway(_base(address))
    spec = _doc("vendor_swagger2.yaml", address)

    async def vendor_import(document: dict[str, Any], **fields: str) -> dict[str, Any]:
        form = aiohttp.FormData()
        for k, v in fields.items():
            form.add_field(k, v)
        form.add_field("file_name", json.dumps(document).encode(), filename="doc.json")
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/openapi/import", data=form)
        assert status == 200, body
        return body

    async with aiohttp.ClientSession() as admin:
        first = await vendor_import(spec)
        assert {s["action"] for s in first["success"]} == {"create"} and first["failure"] == []
        gid = first["group_id"]
        changed = json.loads(json.dumps(spec))
        changed["paths"]["/shop/static"]["x-apigateway-any-method"]["x-apigateway-backend"]["mockEndpoints"][
            "result-content"] = "changed"
        changed["x-apigateway-ratelimits"]["shop_limit"]["api-limit"] = 70

        def limit() -> int:
            return int(next(t for t in gw.gw.document["throttles"] if t["name"] == "shop_limit")["api_call_limits"])

        merged = await vendor_import(changed, group_id=gid, is_create_group="false")  # api_mode merge (default)
        assert merged["success"] == [] and {f["error_code"] for f in merged["failure"]} == {"APIG.3301"}
        static = next(a for a in gw.gw.document["apis"] if a["name"] == "static_any")
        assert static["mock_info"]["result_content"] == "static content"  # the original is kept
        assert limit() == 100  # extend_mode merge (default): the existing rate limit is kept too
        over = await vendor_import(changed, group_id=gid, is_create_group="false", api_mode="override",
                                   extend_mode="override")
        assert limit() == 70 and len(gw.gw.document["throttles"]) == 1
        assert {s["action"] for s in over["success"]} == {"update"} and over["failure"] == []
        static = next(a for a in gw.gw.document["apis"] if a["name"] == "static_any")
        assert static["mock_info"]["result_content"] == "changed"
        assert static["id"] in {s["id"] for s in over["success"]}

        # define: spec (the default) exports no backend; apis limits the export
        status, dev, _ = await call(admin, gw.admin_url, "POST", f"{V2}/openapi/export",
                                    json={"group_id": gid, "env_id": RELEASE, "define": "dev"})
        assert status == 200
        assert dev["paths"]["/shop/items/{itemId}"]["get"]["x-apigateway-backend"]["type"] == "HTTP"
        status, only, _ = await call(admin, gw.admin_url, "POST", f"{V2}/openapi/export",
                                     json={"group_id": gid, "env_id": RELEASE, "define": "dev", "apis": [static["id"]],
                                           "version": "9.9"})
        assert list(only["paths"]) == ["/shop/static"] and only["info"]["version"] == "9.9"
        status, spec_default, _ = await call(admin, gw.admin_url, "POST", f"{V2}/openapi/export",
                                             json={"group_id": gid, "env_id": RELEASE})
        assert status == 200 and address not in json.dumps(spec_default)  # the default define is spec
        gw_doc = gw.gw.document
        spec_only = export_openapi(gw_doc, gid, define="spec")
        assert address not in json.dumps(spec_only)
        assert not any("x-apigateway-backend" in op for ops in spec_only["paths"].values() for op in ops.values())
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/openapi/export",
                                     json={"group_id": gid, "env_id": RELEASE, "define": "everything"})
        assert (status, body["error_code"]) == (400, "APIG.2012")
