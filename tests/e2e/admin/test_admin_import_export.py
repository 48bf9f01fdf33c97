"""Swagger/OpenAPI import and export: mapping, warnings, CLI, and an export -> import round trip that is
checked by sending the same requests through two real gateways."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from gateway.control.openapi.exporter import export_openapi
from gateway.control.openapi.importer import import_openapi
from tests.support.admin_helpers import V2, call
from tests.support.helpers import GROUP_HOST, RELEASE, http_api, mock_api, snapshot

SPEC_EXAMPLE = """
swagger: "2.0"
info: {title: demo, version: "1.0"}
host: demo.example.com
securityDefinitions:
  apig-auth-app:
    type: apiKey
    name: Authorization
    in: header
    x-apigateway-auth-type: AppSigv1
    x-apigateway-auth-opt: {appcode-auth-type: header}
x-apigateway-ratelimits:
  rl1: {api-limit: 10, app-limit: 5, interval: 1, unit: MINUTE}
x-apigateway-made-up-top: 1
paths:
  /users/{userId}:
    get:
      operationId: get_user
      security: [{apig-auth-app: []}]
      parameters:
        - {name: userId, in: path, type: string, required: true}
        - {name: limit, in: query, type: integer, maximum: 100, default: 10}
      responses: {default: {description: ok, x-apigateway-result-normal-sample: "{}"}}
      x-apigateway-request-type: public
      x-apigateway-match-mode: NORMAL
      x-apigateway-cors: false
      x-apigateway-ratelimit: rl1
      x-apigateway-unheard-of: true
      x-apigateway-backend:
        type: HTTP
        httpEndpoints: {address: "backend.example.com:8080", scheme: http, method: GET, path: "/users",
                        timeout: 5000, sparkle: 1}
        parameters:
          - {name: userId, value: userId, in: query, origin: REQUEST}
          - {name: X-Invoke-User, value: apigateway, in: header, origin: CONSTANT}
"""


def test_import_maps_vendor_extensions_and_reports_unknown_ones():
    doc, warnings = import_openapi(yaml.safe_load(SPEC_EXAMPLE), publish_env="RELEASE")
    api = doc["apis"][0]
    assert api["name"] == "get_user" and api["req_method"] == "GET" and api["req_uri"] == "/users/{userId}"
    assert api["auth_type"] == "APP" and api["auth_opt"] == {"app_code_auth_type": "HEADER"}
    assert api["backend_api"]["url_domain"] == "backend.example.com:8080"
    assert api["backend_api"]["req_uri"] == "/users" and api["backend_api"]["timeout"] == 5000
    assert {(p["name"], p["location"], p["origin"]) for p in api["backend_params"]} == {
        ("userId", "QUERY", "REQUEST"), ("X-Invoke-User", "HEADER", "CONSTANT")}
    limit = next(p for p in api["req_params"] if p["name"] == "limit")
    assert limit["type"] == "NUMBER" and limit["max_num"] == 100 and limit["default_value"] == "10"
    assert api["result_normal_sample"] == "{}"
    assert "sl_domain" not in doc["groups"][0]  # the document's host is not the group's sub-domain
    assert doc["throttles"][0]["api_call_limits"] == 10 and doc["throttles"][0]["time_unit"] == "MINUTE"
    assert doc["throttle_bindings"][0]["policy_id"] == doc["throttles"][0]["id"]
    assert doc["publishes"][0]["env_id"] == RELEASE
    text = "\n".join(warnings)
    assert "x-apigateway-made-up-top: unknown extension" in text
    assert "x-apigateway-unheard-of: unknown extension" in text
    assert "httpEndpoints.sparkle: unknown field" in text
    # ids are stable: importing again gives the same ids
    again, _ = import_openapi(yaml.safe_load(SPEC_EXAMPLE), publish_env="RELEASE")
    assert again["apis"][0]["id"] == api["id"]


def test_openapi3_import():
    spec = {
        "openapi": "3.0.1", "info": {"title": "three"}, "servers": [{"url": "https://three.example/"}],
        "paths": {"/items": {
            "post": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 5}}],
                     "x-apigateway-backend": {"type": "MOCK", "mockEndpoints": {"result-content": "ok"}}},
            "x-apigateway-any-method": {"x-apigateway-backend": {
                "type": "FUNCTION",
                "functionEndpoints": {"function-urn": "urn:fss:x", "invocation-type": "synchronous"}}},
        }},
    }
    doc, warnings = import_openapi(spec, group_id="g9")
    by_method = {a["req_method"]: a for a in doc["apis"]}
    assert by_method["POST"]["mock_info"]["result_content"] == "ok"
    assert by_method["POST"]["req_params"][0]["max_size"] == 5
    assert by_method["ANY"]["func_info"]["invocation_type"] == "sync"
    assert "sl_domain" not in doc["groups"][0]  # servers are not the group's sub-domain
    assert not warnings
    try:
        import_openapi({"hello": "world"})
    except ValueError as exc:
        assert "Swagger 2.0" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


def _round_trip_doc(backend: str) -> dict[str, Any]:
    apis = [
        http_api("u1", "/users/{id}", backend, backend_uri="/v1/users/{id}",
                 req_params=[{"name": "id", "location": "PATH", "type": "STRING", "required": 1},
                             {"name": "n", "location": "QUERY", "type": "NUMBER", "required": 2, "valid_enable": 1,
                              "max_num": 10}],
                 backend_params=[{"name": "id", "location": "PATH", "origin": "REQUEST", "value": "id"},
                                 {"name": "num", "location": "QUERY", "origin": "REQUEST", "value": "n"},
                                 {"name": "X-Invoke-User", "location": "HEADER", "origin": "CONSTANT",
                                  "value": "apigateway"}]),
        mock_api("m1", "/mock", "mocked!", method="POST"),
        http_api("s1", "/prefix", backend, match_mode="SWA", backend_uri="/backend-prefix"),
        http_api("any1", "/any", backend, method="ANY"),
        http_api("c1", "/cors", backend, cors=True),
    ]
    return snapshot(apis)


REQUESTS = [
    ("GET", "/users/42?n=3"), ("GET", "/users/42?n=11"), ("POST", "/mock"), ("GET", "/mock"),
    ("GET", "/prefix/deeper/x"), ("GET", "/prefixnot"), ("DELETE", "/any"), ("PATCH", "/any"),
    ("OPTIONS", "/cors"), ("GET", "/cors"), ("GET", "/nothing"),
]


async def _observe(url: str) -> list[tuple[Any, ...]]:
    out = []
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
        for method, path in REQUESTS:
            headers = {"Origin": "http://web.example", "Access-Control-Request-Method": "GET"} \
                if method == "OPTIONS" else {}
            async with s.request(method, url + path, headers=headers) as resp:
                raw = await resp.read()
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode()
                if isinstance(body, dict) and "path" in body:  # echo backend: what reached it
                    seen = (body["method"], body["path"], sorted(map(tuple, body["query"])),
                            body["headers"].get("X-Invoke-User"))
                elif isinstance(body, dict):
                    seen = (body.get("error_code"),)
                else:
                    seen = (body,)
                out.append((method, path, resp.status, resp.headers.get("Access-Control-Allow-Origin"), seen))
    return out


async def test_export_import_round_trip_same_behaviour(make_gateway, echo_backend):
    _, backend = echo_backend
    original = await make_gateway(_round_trip_doc(backend))
    copy_gw = await make_gateway(None)
    async with aiohttp.ClientSession() as admin:
        status, exported, _ = await call(admin, original.admin_url, "GET", "/v1/export?group_id=g1")
        assert status == 200 and exported["swagger"] == "2.0"
        assert exported["paths"]["/prefix"]["get"]["x-apigateway-match-mode"] == "SWA"
        status, body, headers = await call(admin, copy_gw.admin_url, "POST",
                                           "/v1/import?group_id=g1&publish_env=RELEASE",
                                           data=orjson.dumps(exported), headers={"Content-Type": "application/json"})
        assert status == 200, body
        assert body["imported"]["apis"] == 5 and body["warnings"] == []
        assert "ETag" in headers
        # YAML export of the copy parses back to the same definition
        status, text, _ = await call(admin, copy_gw.admin_url, "GET", "/v1/export?group_id=g1&format=yaml")
        assert status == 200 and yaml.safe_load(text)["paths"].keys() == exported["paths"].keys()
    first = await _observe(original.url)
    second = await _observe(copy_gw.url)
    assert first == second
    # sanity: the observations are meaningful
    statuses = {(m, p): st for m, p, st, _, _ in first}
    assert statuses[("GET", "/users/42?n=3")] == 200 and statuses[("GET", "/users/42?n=11")] == 400
    assert statuses[("GET", "/nothing")] == 404
    assert next(s for m, p, _, _, s in first if p == "/users/42?n=3")[1:] == ("/v1/users/42", [("num", "3")],
                                                                              "apigateway")


async def test_oas3_export_round_trip_document_level(echo_backend):
    _, backend = echo_backend
    doc = _round_trip_doc(backend)
    doc["apis"].append(
        http_api("pol1", "/pol", backend, backend_uri="/default",
                 req_params=[{"name": "v", "location": "QUERY", "type": "STRING", "required": 2}],
                 policy_https=[{"name": "to_special", "effect_mode": "ANY", "url_domain": backend,
                                "req_protocol": "HTTP", "req_method": "GET", "req_uri": "/special", "timeout": 5000,
                                "conditions": [{"condition_origin": "param", "req_param_name": "v",
                                                "condition_type": "exact", "condition_value": "yes"}]}]))
    spec = export_openapi(doc, "g1", oas="3.0")
    assert spec["openapi"].startswith("3.")
    back, warnings = import_openapi(spec, group_id="g1", publish_env="RELEASE")
    assert warnings == []
    orig = {(a["req_method"], a["req_uri"]): a for a in doc["apis"]}
    for api in back["apis"]:
        src = orig[(api["req_method"], api["req_uri"])]
        for key in ("match_mode", "backend_type", "backend_params", "cors", "auth_type", "policy_https"):
            if key in src:
                assert api.get(key) == src[key], key


async def test_import_rejections_and_vendor_endpoint(make_gateway, client):
    gw = await make_gateway(snapshot([mock_api("a1", "/one", "first")]))
    async with aiohttp.ClientSession() as admin:
        status, body, _ = await call(admin, gw.admin_url, "POST", "/v1/import", data=b"")
        assert (status, body["error_code"]) == (400, "APIG.3609")
        status, body, _ = await call(admin, gw.admin_url, "POST", "/v1/import", data=b"{oops",
                                     headers={"Content-Type": "application/json"})
        assert (status, body["error_code"]) == (400, "APIG.3600")
        status, body, _ = await call(admin, gw.admin_url, "POST", "/v1/import", json={"openapi": "1.0"})
        assert (status, body["error_code"]) == (400, "APIG.3602")
        # a definition that conflicts with the running config is rejected whole
        clash = {"swagger": "2.0", "info": {"title": "clash"}, "paths": {"/one": {"get": {
            "x-apigateway-backend": {"type": "MOCK", "mockEndpoints": {"result-content": "clash"}}}}}}
        status, body, _ = await call(admin, gw.admin_url, "POST", "/v1/import?group_id=g1&publish_env=RELEASE",
                                     json=clash)
        assert status == 400 and any("same method, path" in p for p in body["problems"]), body
        status, body, _ = await call(admin, gw.admin_url, "GET", "/v1/export?group_id=nope")
        assert (status, body["error_code"]) == (404, "APIG.3001")
        # vendor multipart endpoint into the existing group (not published: add it through apis/action)
        spec = {"swagger": "2.0", "info": {"title": "more"}, "paths": {"/two": {"get": {
            "x-apigateway-backend": {"type": "MOCK", "mockEndpoints": {"result-content": "two"}}}}}}
        form = aiohttp.FormData()
        form.add_field("group_id", "g1")
        form.add_field("is_create_group", "false")
        form.add_field("file_name", json.dumps(spec).encode(), filename="two.json")
        status, body, _ = await call(admin, gw.admin_url, "POST", f"{V2}/openapi/import", data=form)
        assert status == 200, body
        api_id = body["success"][0]["id"]
        status, _, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis/action",
                                  json={"action": "online", "api_id": api_id, "env_id": RELEASE})
        assert status == 201
        status, text, _ = await call(admin, gw.admin_url, "POST", f"{V2}/openapi/export",
                                           json={"group_id": "g1", "env_id": RELEASE, "type": "yaml"})
        assert status == 200 and "/two" in yaml.safe_load(text)["paths"]
    async with client.get(gw.url + "/two") as resp:
        assert resp.status == 200 and await resp.text() == "two"


def test_cli_import_and_export(tmp_path: Path):
    spec_file = tmp_path / "api.yaml"
    spec_file.write_text(SPEC_EXAMPLE.replace("x-apigateway-unheard-of: true", ""))
    out = tmp_path / "snap.json"
    run = subprocess.run([sys.executable, "-m", "gateway", "import", str(spec_file), "--publish-env", "RELEASE",
                          "--group-id", "gdemo", "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "x-apigateway-made-up-top: unknown extension" in run.stderr
    doc = json.loads(out.read_text())
    assert doc["groups"][0]["id"] == "gdemo" and len(doc["apis"]) == 1
    run = subprocess.run([sys.executable, "-m", "gateway", "validate", str(out)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    run = subprocess.run([sys.executable, "-m", "gateway", "export", str(out), "--group-id", "gdemo",
                          "--format", "json"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    exported = json.loads(run.stdout)
    assert exported["paths"]["/users/{userId}"]["get"]["x-apigateway-ratelimit"]
    run = subprocess.run([sys.executable, "-m", "gateway", "export", str(out), "--group-id", "nope"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "no group" in run.stderr
