"""Swagger 2.0 / OpenAPI 3 <-> snapshot resources, with the vendor's ``x-apigateway-*`` extensions.

Role: control plane only (the ``gateway import`` / ``gateway export`` commands and the admin import/export
endpoints); nothing here runs per request. :func:`import_openapi` turns a definition into a snapshot
fragment (group, APIs, publications, throttles/ACLs and their bindings, group responses) plus a list of
warnings: every ``x-apigateway-*`` extension or field it does not understand is reported, never silently
dropped. :func:`export_openapi` writes the reverse for one group. Ids of imported resources are derived
from (group, method, path) / (group, name), so importing the same file twice updates rather than
duplicates. Field mapping: spec 03 §7; details and choices in docs/import-export.md.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from gateway.snapshot.collections import RELEASE_ENV_ID, RELEASE_ENV_NAME

Doc = dict[str, Any]
HTTP_METHODS = ("get", "post", "put", "delete", "head", "patch", "options")
ANY_KEY = "x-apigateway-any-method"

KNOWN_OPERATION_EXT = frozenset({
    "x-apigateway-request-type", "x-apigateway-match-mode", "x-apigateway-cors", "x-apigateway-backend",
    "x-apigateway-backend-policies", "x-apigateway-ratelimit", "x-apigateway-access-control",
    "x-apigateway-plugins", "x-apigateway-response", "x-apigateway-is-send-fg-body-base64",
})
KNOWN_TOP_EXT = frozenset({"x-apigateway-ratelimits", "x-apigateway-access-controls", "x-apigateway-responses"})
KNOWN_SCHEME_EXT = frozenset({"x-apigateway-auth-type", "x-apigateway-auth-opt"})
KNOWN_PARAM_EXT = frozenset({"x-apigateway-pass-through"})
KNOWN_RESPONSE_EXT = frozenset({"x-apigateway-result-normal-sample", "x-apigateway-result-failure-sample"})
HTTP_ENDPOINT_KEYS = frozenset({"address", "scheme", "method", "path", "timeout", "retryCount", "retry-count",
                                "enableClientSsl"})
VPC_ENDPOINT_KEYS = frozenset({"name", "scheme", "method", "path", "timeout", "retryCount", "retry-count",
                               "host", "enableClientSsl"})
FUNC_ENDPOINT_KEYS = frozenset({"function-urn", "version", "invocation-type", "timeout", "alias-urn",
                                "network-type"})
MOCK_ENDPOINT_KEYS = frozenset({"result-content", "status-code"})
BACKEND_KEYS = frozenset({"type", "parameters", "httpEndpoints", "httpVpcEndpoints", "functionEndpoints",
                          "mockEndpoints"})
RATELIMIT_KEYS = {"api-limit": "api_call_limits", "user-limit": "user_call_limits", "app-limit": "app_call_limits",
                  "ip-limit": "ip_call_limits", "interval": "time_interval", "unit": "time_unit"}
CONDITION_TYPES = {"equal": "exact", "enum": "enum", "pattern": "pattern", "exact": "exact"}
CONDITION_ORIGINS = {"source": "source", "request": "param", "param": "param", "system": "system",
                     "cookie": "cookie", "frontend_authorizer": "frontend_authorizer"}


def stable_id(*parts: str) -> str:
    """A 32-hex id derived from ``parts`` (re-importing the same definition updates the same resources)."""
    return hashlib.md5("\x00".join(parts).encode(), usedforsecurity=False).hexdigest()


def _api_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9\u4e00-\u9fa5_./:()-]", "_", raw).strip("_") or "api"
    if not re.match(r"[A-Za-z0-9\u4e00-\u9fa5]", name):
        name = "api_" + name
    while len(name) < 3:
        name += "_"
    return name[:255]


def _policy_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", raw)
    if not name or not name[0].isalpha():
        name = "p_" + name
    while len(name) < 3:
        name += "_"
    return name[:64]


def _group_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9\u4e00-\u9fa5_]", "_", raw) or "group"
    if not name[0].isalpha():
        name = "g_" + name
    while len(name) < 3:
        name += "_"
    return name[:64]


class _Importer:
    def __init__(self, spec: Doc, base: Doc | None, group_id: str | None, group_name: str | None,
                 publish_env: str | None) -> None:
        self.spec = spec
        self.base = base or {}
        self.warnings: list[str] = []
        self.v3 = str(spec.get("openapi", "")).startswith("3")
        info: Doc = spec["info"] if isinstance(spec.get("info"), dict) else {}
        title = str(info.get("title") or "imported")
        self.group_id = group_id or stable_id("group", title)
        existing = next((g for g in self.base.get("groups") or [] if isinstance(g, dict)
                         and g.get("id") == self.group_id), None)
        self.group: Doc | None = None
        if existing is None:
            self.group = {"id": self.group_id, "name": _group_name(group_name or title)}
            host = self._host()
            if host:
                self.group["sl_domain"] = host
            if info.get("description"):
                self.group["remark"] = str(info["description"])[:255]
        self.env_id, self.env_record = self._env(publish_env)
        self.out: Doc = {"apis": [], "publishes": [], "throttles": [], "throttle_bindings": [], "acls": [],
                         "acl_bindings": [], "plugin_bindings": [], "responses": []}
        self.schemes = self._security_schemes()
        self.throttle_ids: dict[str, str] = {}
        self.acl_ids: dict[str, str] = {}
        self.response_ids: dict[str, str] = {}

    # --- document level ---------------------------------------------------------------------------
    def _host(self) -> str | None:
        if self.v3:
            servers = self.spec.get("servers") or []
            if servers and isinstance(servers[0], dict):
                m = re.match(r"[a-z]+://([^/:]+)", str(servers[0].get("url", "")))
                return m.group(1) if m else None
            return None
        host = self.spec.get("host")
        return str(host).split(":")[0] if host else None

    def _env(self, publish_env: str | None) -> tuple[str | None, Doc | None]:
        if not publish_env:
            return None, None
        if publish_env in (RELEASE_ENV_ID,) or publish_env.upper() == RELEASE_ENV_NAME:
            return RELEASE_ENV_ID, None
        for env in self.base.get("environments") or []:
            if isinstance(env, dict) and (env.get("id") == publish_env or
                                          str(env.get("name", "")).upper() == publish_env.upper()):
                return str(env["id"]), None
        env_id = stable_id("env", publish_env.upper())
        return env_id, {"id": env_id, "name": publish_env}

    def _security_schemes(self) -> dict[str, Doc]:
        if self.v3:
            comps = self.spec.get("components") or {}
            raw = comps.get("securitySchemes") or {}
        else:
            raw = self.spec.get("securityDefinitions") or {}
        out: dict[str, Doc] = {}
        for name, scheme in raw.items():
            if not isinstance(scheme, dict):
                continue
            for key in scheme:
                if key.startswith("x-apigateway-") and key not in KNOWN_SCHEME_EXT:
                    self.warnings.append(f"securityDefinitions.{name}.{key}: unknown extension, ignored")
            out[name] = scheme
        return out

    def _top_level(self) -> None:
        for key in self.spec:
            if key.startswith("x-apigateway-") and key not in KNOWN_TOP_EXT:
                self.warnings.append(f"{key}: unknown extension, ignored")
        for name, rl in (self.spec.get("x-apigateway-ratelimits") or {}).items():
            if not isinstance(rl, dict):
                self.warnings.append(f"x-apigateway-ratelimits.{name}: must be an object, ignored")
                continue
            tid = stable_id("throttle", self.group_id, name)
            item: Doc = {"id": tid, "name": _policy_name(name), "type": 2 if rl.get("shared") else 1}
            for src, dst in RATELIMIT_KEYS.items():
                if src in rl:
                    item[dst] = rl[src]
            for key in rl:
                if key not in RATELIMIT_KEYS and key not in ("shared", "special"):
                    self.warnings.append(f"x-apigateway-ratelimits.{name}.{key}: unknown field, ignored")
            if rl.get("special"):
                self.warnings.append(f"x-apigateway-ratelimits.{name}.special: excluded throttles are not imported")
            self.out["throttles"].append(item)
            self.throttle_ids[name] = tid
        for name, ac in (self.spec.get("x-apigateway-access-controls") or {}).items():
            if not isinstance(ac, dict):
                continue
            aid = stable_id("acl", self.group_id, name)
            self.out["acls"].append({"id": aid, "acl_name": _policy_name(name),
                                     "acl_type": ac.get("acl-type", "PERMIT"),
                                     "entity_type": ac.get("entity-type", "IP"),
                                     "acl_value": str(ac.get("value", ""))})
            self.acl_ids[name] = aid
        for name, resp in (self.spec.get("x-apigateway-responses") or {}).items():
            if not isinstance(resp, dict) or not resp:
                continue
            rid = stable_id("response", self.group_id, name)
            self.out["responses"].append({"id": rid, "name": name, "group_id": self.group_id, "responses": resp})
            self.response_ids[name] = rid

    # --- operations -------------------------------------------------------------------------------
    def run(self) -> tuple[Doc, list[str]]:
        if not self.v3 and str(self.spec.get("swagger", "")) != "2.0":
            raise ValueError("not a Swagger 2.0 or OpenAPI 3 document (no 'swagger: \"2.0\"' or 'openapi: 3.x')")
        self._top_level()
        base_path = "" if self.v3 else str(self.spec.get("basePath") or "").rstrip("/")
        top_schemes = self.spec.get("schemes")
        for path, item in (self.spec.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            shared = [p for p in item.get("parameters") or [] if isinstance(p, dict)]
            for key, op in item.items():
                if key in ("parameters", "summary", "description", "servers", "$ref"):
                    continue
                if key == ANY_KEY:
                    method = "ANY"
                elif key in HTTP_METHODS:
                    method = key.upper()
                else:
                    self.warnings.append(f"paths.{path}.{key}: unknown key, ignored")
                    continue
                if isinstance(op, dict):
                    self._operation(base_path + path, method, op, shared, top_schemes)
        doc: Doc = {k: v for k, v in self.out.items() if v}
        if self.group is not None:
            doc["groups"] = [self.group]
        if self.env_record is not None:
            doc["environments"] = [self.env_record]
        return doc, self.warnings

    def _operation(self, path: str, method: str, op: Doc, shared: list[Doc], top_schemes: Any) -> None:
        where = f"paths.{path}.{method.lower() if method != 'ANY' else ANY_KEY}"
        for key in op:
            if key.startswith("x-apigateway-") and key not in KNOWN_OPERATION_EXT:
                self.warnings.append(f"{where}.{key}: unknown extension, ignored")
        api_id = stable_id("api", self.group_id, method, path)
        raw_name = op.get("operationId") or f"{method}_{path}"
        api: Doc = {
            "id": api_id, "group_id": self.group_id, "name": _api_name(str(raw_name)),
            "type": 2 if op.get("x-apigateway-request-type") == "private" else 1,
            "req_method": method, "req_uri": path or "/",
            "match_mode": str(op.get("x-apigateway-match-mode") or "NORMAL").upper(),
            "req_protocol": self._protocol(op.get("schemes") or top_schemes),
            "cors": bool(op.get("x-apigateway-cors", False)),
        }
        remark = op.get("description") or op.get("summary")
        if remark:
            api["remark"] = str(remark)[:255]
        if "x-apigateway-is-send-fg-body-base64" in op:
            api["is_send_fg_body_base64"] = bool(op["x-apigateway-is-send-fg-body-base64"])
        self._auth(api, op, where)
        self._params(api, [*shared, *(op.get("parameters") or [])], where)
        if self.v3 and isinstance(op.get("requestBody"), dict) and op["requestBody"].get("description"):
            api["body_remark"] = str(op["requestBody"]["description"])
        self._samples(api, op, where)
        backend = op.get("x-apigateway-backend")
        if not isinstance(backend, dict):
            self.warnings.append(f"{where}: no x-apigateway-backend; imported as a MOCK API returning an empty body")
            backend = {"type": "MOCK", "mockEndpoints": {"result-content": ""}}
        self._backend(api, backend, f"{where}.x-apigateway-backend")
        self._policies(api, op.get("x-apigateway-backend-policies") or [], f"{where}.x-apigateway-backend-policies")
        resp_name = op.get("x-apigateway-response")
        if resp_name:
            rid = self.response_ids.get(resp_name) or self._base_lookup("responses", "name", resp_name)
            if rid:
                api["response_id"] = rid
            elif resp_name != "default":
                self.warnings.append(f"{where}.x-apigateway-response: unknown response {resp_name!r}, ignored")
        self.out["apis"].append(api)
        self._publish_and_bind(api, op, where)

    def _base_lookup(self, collection: str, field: str, value: str) -> str | None:
        for x in self.base.get(collection) or []:
            if isinstance(x, dict) and x.get(field) == value and (
                    collection != "responses" or x.get("group_id") in (None, self.group_id)):
                return str(x.get("id"))
        return None

    def _protocol(self, schemes: Any) -> str:
        if not isinstance(schemes, list) or not schemes:
            return "BOTH"
        s = {str(x).lower() for x in schemes}
        if s == {"https"}:
            return "HTTPS"
        if s == {"http"}:
            return "HTTP"
        return "BOTH"

    def _auth(self, api: Doc, op: Doc, where: str) -> None:
        api["auth_type"] = "NONE"
        security = op.get("security", self.spec.get("security"))
        if not security:
            return
        for requirement in security:
            for name in requirement or {}:
                scheme = self.schemes.get(name)
                if scheme is None:
                    self.warnings.append(f"{where}.security: unknown security scheme {name!r}")
                    continue
                kind = str(scheme.get("x-apigateway-auth-type", "")).upper()
                if kind in ("APPSIGV1", "APP"):
                    api["auth_type"] = "APP"
                    opt = scheme.get("x-apigateway-auth-opt") or {}
                    if str(opt.get("appcode-auth-type", "")).lower() == "header":
                        api["auth_opt"] = {"app_code_auth_type": "HEADER"}
                elif kind == "IAM":
                    api["auth_type"] = "IAM"
                else:
                    self.warnings.append(f"{where}.security.{name}: auth type {kind or 'missing'!r} is not "
                                         "supported by import; imported as NONE")
                return

    def _params(self, api: Doc, params: list[Any], where: str) -> None:
        out: list[Doc] = []
        for i, p in enumerate(params):
            if not isinstance(p, dict):
                continue
            if "$ref" in p:
                self.warnings.append(f"{where}.parameters[{i}]: $ref parameters are not resolved, ignored")
                continue
            loc = str(p.get("in", "")).upper()
            if loc == "BODY" or loc == "FORMDATA":
                if p.get("description"):
                    api["body_remark"] = str(p["description"])
                continue
            if loc not in ("PATH", "QUERY", "HEADER"):
                self.warnings.append(f"{where}.parameters[{i}]: location {p.get('in')!r} is not supported, ignored")
                continue
            schema: Doc = p["schema"] if self.v3 and isinstance(p.get("schema"), dict) else p
            ptype = str(schema.get("type", "string")).lower()
            param: Doc = {"name": p.get("name"), "location": loc,
                          "type": "NUMBER" if ptype in ("number", "integer") else "STRING",
                          "required": 1 if p.get("required") or loc == "PATH" else 2}
            valid = False
            if "default" in schema:
                param["default_value"] = str(schema["default"])
            if p.get("description"):
                param["remark"] = str(p["description"])[:255]
            if "example" in p or "x-example" in p:
                param["sample_value"] = str(p.get("example", p.get("x-example")))
            if isinstance(schema.get("enum"), list):
                param["enumerations"] = ",".join(str(e) for e in schema["enum"])
                valid = True
            for src, dst in (("minimum", "min_num"), ("maximum", "max_num")):
                if src in schema:
                    param[dst] = schema[src]
                    valid = True
            for src, dst in (("minLength", "min_size"), ("maxLength", "max_size")):
                if src in schema:
                    param[dst] = schema[src]
                    valid = True
            if schema.get("pattern"):
                param["regular"] = schema["pattern"]
                valid = True
            param["valid_enable"] = 1 if valid else 2
            if p.get("x-apigateway-pass-through") == "always":
                param["pass_through"] = 1
            for key in p:
                if key.startswith("x-apigateway-") and key not in KNOWN_PARAM_EXT:
                    self.warnings.append(f"{where}.parameters[{i}].{key}: unknown extension, ignored")
            out.append(param)
        if out:
            api["req_params"] = out

    def _samples(self, api: Doc, op: Doc, where: str) -> None:
        for code, resp in (op.get("responses") or {}).items():
            if not isinstance(resp, dict):
                continue
            for key in resp:
                if key.startswith("x-apigateway-") and key not in KNOWN_RESPONSE_EXT:
                    self.warnings.append(f"{where}.responses.{code}.{key}: unknown extension, ignored")
            if "x-apigateway-result-normal-sample" in resp:
                api["result_normal_sample"] = str(resp["x-apigateway-result-normal-sample"])
            if "x-apigateway-result-failure-sample" in resp:
                api["result_failure_sample"] = str(resp["x-apigateway-result-failure-sample"])

    def _backend_params(self, params: Any, where: str) -> list[Doc]:
        out = []
        for j, bp in enumerate(params or []):
            if not isinstance(bp, dict):
                continue
            item: Doc = {"name": bp.get("name"), "value": str(bp.get("value", "")),
                         "location": str(bp.get("in", "")).upper(), "origin": str(bp.get("origin", "REQUEST")).upper()}
            if bp.get("description"):
                item["remark"] = str(bp["description"])[:255]
            for key in bp:
                if key not in ("name", "value", "in", "origin", "description"):
                    self.warnings.append(f"{where}.parameters[{j}].{key}: unknown field, ignored")
            out.append(item)
        return out

    def _endpoint(self, kind: str, backend: Doc, where: str) -> tuple[str, Doc]:
        """(backend_type, fields for backend_api / mock_info / func_info or a policy)."""
        if kind == "HTTP" or kind == "HTTP-VPC":
            key = "httpEndpoints" if kind == "HTTP" else "httpVpcEndpoints"
            ep = backend.get(key) or {}
            allowed = HTTP_ENDPOINT_KEYS if kind == "HTTP" else VPC_ENDPOINT_KEYS
            for k in ep:
                if k not in allowed:
                    self.warnings.append(f"{where}.{key}.{k}: unknown field, ignored")
            fields: Doc = {"req_protocol": str(ep.get("scheme", "http")).upper(),
                           "req_method": str(ep.get("method", "GET")).upper(),
                           "req_uri": str(ep.get("path", "/")), "timeout": int(ep.get("timeout", 5000))}
            retry = ep.get("retryCount", ep.get("retry-count"))
            if retry is not None:
                fields["retry_count"] = str(retry)
            if ep.get("enableClientSsl") is not None:
                fields["enable_client_ssl"] = bool(ep["enableClientSsl"])
            if kind == "HTTP":
                fields["url_domain"] = str(ep.get("address", ""))
            else:
                name = str(ep.get("name", ""))
                cid = self._base_lookup("vpc_channels", "name", name) or name
                fields["vpc_channel_status"] = 1
                fields["vpc_channel_info"] = {"vpc_channel_id": cid}
                if ep.get("host"):
                    fields["vpc_channel_info"]["vpc_channel_proxy_host"] = str(ep["host"])
            return "HTTP", fields
        if kind == "FUNCTION":
            ep = backend.get("functionEndpoints") or {}
            for k in ep:
                if k not in FUNC_ENDPOINT_KEYS:
                    self.warnings.append(f"{where}.functionEndpoints.{k}: unknown field, ignored")
            inv = str(ep.get("invocation-type", "sync")).lower()
            fields = {"function_urn": str(ep.get("function-urn", "")),
                      "invocation_type": "async" if inv.startswith("async") else "sync",
                      "timeout": int(ep.get("timeout", 5000))}
            if ep.get("version"):
                fields["version"] = str(ep["version"])
            if ep.get("alias-urn"):
                fields["alias_urn"] = str(ep["alias-urn"])
            if ep.get("network-type"):
                fields["network_type"] = str(ep["network-type"])
            return "FUNCTION", fields
        if kind == "MOCK":
            ep = backend.get("mockEndpoints") or {}
            for k in ep:
                if k not in MOCK_ENDPOINT_KEYS:
                    self.warnings.append(f"{where}.mockEndpoints.{k}: unknown field, ignored")
            fields = {"result_content": str(ep.get("result-content", ""))}
            if ep.get("status-code") is not None:
                fields["status_code"] = int(ep["status-code"])
            return "MOCK", fields
        self.warnings.append(f"{where}.type: backend type {kind!r} is not supported; imported as MOCK")
        return "MOCK", {"result_content": ""}

    def _backend(self, api: Doc, backend: Doc, where: str) -> None:
        for k in backend:
            if k not in BACKEND_KEYS:
                self.warnings.append(f"{where}.{k}: unknown field, ignored")
        btype, fields = self._endpoint(str(backend.get("type", "HTTP")).upper(), backend, where)
        api["backend_type"] = btype
        if btype == "HTTP":
            api["backend_api"] = fields
        elif btype == "FUNCTION":
            api["func_info"] = fields
        else:
            api["mock_info"] = fields
        bparams = self._backend_params(backend.get("parameters"), where)
        if bparams:
            api["backend_params"] = bparams

    def _policies(self, api: Doc, policies: Any, where: str) -> None:
        for j, pol in enumerate(policies if isinstance(policies, list) else []):
            if not isinstance(pol, dict):
                continue
            pw = f"{where}[{j}]"
            for k in pol:
                if k not in BACKEND_KEYS | {"name", "conditions", "effectMode", "effect-mode"}:
                    self.warnings.append(f"{pw}.{k}: unknown field, ignored")
            btype, fields = self._endpoint(str(pol.get("type", "HTTP")).upper(), pol, pw)
            conditions = []
            for c in pol.get("conditions") or []:
                if not isinstance(c, dict):
                    continue
                origin = CONDITION_ORIGINS.get(str(c.get("origin", "request")).lower(), "param")
                cond: Doc = {"condition_origin": origin, "condition_value": str(c.get("value", "")),
                             "condition_type": CONDITION_TYPES.get(str(c.get("type", "equal")).lower(), "exact")}
                if origin == "param" and c.get("parameter"):
                    cond["req_param_name"] = str(c["parameter"])
                elif origin == "system" and c.get("parameter"):
                    cond["sys_param_name"] = str(c["parameter"])
                elif origin == "cookie" and c.get("parameter"):
                    cond["cookie_param_name"] = str(c["parameter"])
                conditions.append(cond)
            item: Doc = {"name": _policy_name(str(pol.get("name") or f"policy_{j}")),
                         "effect_mode": str(pol.get("effectMode", pol.get("effect-mode", "ANY"))).upper(),
                         "conditions": conditions, **fields}
            bparams = self._backend_params(pol.get("parameters"), pw)
            if bparams:
                item["backend_params"] = bparams
            key = {"HTTP": "policy_https", "MOCK": "policy_mocks", "FUNCTION": "policy_functions"}[btype]
            api.setdefault(key, []).append(item)

    def _publish_and_bind(self, api: Doc, op: Doc, where: str) -> None:
        wanted = [("x-apigateway-ratelimit", op.get("x-apigateway-ratelimit")),
                  ("x-apigateway-access-control", op.get("x-apigateway-access-control")),
                  ("x-apigateway-plugins", op.get("x-apigateway-plugins"))]
        if self.env_id is None:
            for key, value in wanted:
                if value:
                    self.warnings.append(f"{where}.{key}: not bound (bindings need a publication; "
                                         "import with a publish environment)")
            return
        publish_id = stable_id("publish", str(api["id"]), self.env_id)
        self.out["publishes"].append({"publish_id": publish_id, "api_id": api["id"], "env_id": self.env_id})
        rl = op.get("x-apigateway-ratelimit")
        if rl:
            tid = self.throttle_ids.get(rl) or self._base_lookup("throttles", "name", rl)
            if tid:
                self.out["throttle_bindings"].append({"id": stable_id("tb", tid, publish_id), "policy_id": tid,
                                                      "publish_id": publish_id})
            else:
                self.warnings.append(f"{where}.x-apigateway-ratelimit: unknown policy {rl!r}, ignored")
        ac = op.get("x-apigateway-access-control")
        if ac:
            aid = self.acl_ids.get(ac) or self._base_lookup("acls", "acl_name", ac)
            if aid:
                self.out["acl_bindings"].append({"id": stable_id("ab", aid, publish_id), "acl_id": aid,
                                                 "publish_id": publish_id})
            else:
                self.warnings.append(f"{where}.x-apigateway-access-control: unknown policy {ac!r}, ignored")
        for name in op.get("x-apigateway-plugins") or []:
            pid = self._base_lookup("plugins", "plugin_name", str(name))
            if pid:
                self.out["plugin_bindings"].append({"id": stable_id("pb", pid, publish_id), "plugin_id": pid,
                                                    "publish_id": publish_id})
            else:
                self.warnings.append(f"{where}.x-apigateway-plugins: unknown plug-in {name!r}, ignored")


def import_openapi(spec: Doc, *, base: Doc | None = None, group_id: str | None = None, group_name: str | None = None,
                   publish_env: str | None = None) -> tuple[Doc, list[str]]:
    """Convert a Swagger 2.0 / OpenAPI 3 document to a snapshot fragment; returns (fragment, warnings).

    ``base`` is the snapshot the fragment will be merged into (to resolve VPC channel, plug-in, response and
    policy names, and an existing group). Raises ValueError for a document that is neither format.
    """
    if not isinstance(spec, dict):
        raise ValueError("the definition must be a mapping")
    return _Importer(spec, base, group_id, group_name, publish_env).run()


def merge_fragment(base: Doc, fragment: Doc) -> Doc:
    """``base`` with every element of ``fragment`` added, replacing elements with the same id."""
    from gateway.snapshot.collections import COLLECTIONS

    out = dict(base)
    out.pop("version", None)
    for name, items in fragment.items():
        key = COLLECTIONS.get(name, (None, "id"))[1] or "id"
        incoming = {str(x.get(key)): x for x in items if isinstance(x, dict)}
        kept = [x for x in out.get(name) or [] if not (isinstance(x, dict) and str(x.get(key)) in incoming)]
        out[name] = kept + list(incoming.values())
    return out


# --- export -----------------------------------------------------------------------------------------
def _endpoint_out(kind: str, src: Doc) -> tuple[str, Doc]:
    if kind == "HTTP":
        if src.get("vpc_channel_status") == 1 or src.get("vpc_channel_info"):
            info = src.get("vpc_channel_info") or {}
            ep: Doc = {"name": info.get("vpc_channel_id"), "scheme": str(src.get("req_protocol", "HTTP")).lower(),
                       "method": src.get("req_method"), "path": src.get("req_uri"), "timeout": src.get("timeout", 5000)}
            if info.get("vpc_channel_proxy_host"):
                ep["host"] = info["vpc_channel_proxy_host"]
            key = "httpVpcEndpoints"
            kind_out = "HTTP-VPC"
        else:
            ep = {"address": src.get("url_domain"), "scheme": str(src.get("req_protocol", "HTTP")).lower(),
                  "method": src.get("req_method"), "path": src.get("req_uri"), "timeout": src.get("timeout", 5000)}
            key = "httpEndpoints"
            kind_out = "HTTP"
        if src.get("retry_count") is not None:
            ep["retryCount"] = str(src["retry_count"])
        if src.get("enable_client_ssl") is not None:
            ep["enableClientSsl"] = src["enable_client_ssl"]
        return kind_out, {key: ep}
    if kind == "FUNCTION":
        ep = {"function-urn": src.get("function_urn"), "invocation-type": src.get("invocation_type", "sync"),
              "timeout": src.get("timeout", 5000)}
        for a, b in (("version", "version"), ("alias_urn", "alias-urn"), ("network_type", "network-type")):
            if src.get(a):
                ep[b] = src[a]
        return "FUNCTION", {"functionEndpoints": ep}
    ep = {"result-content": src.get("result_content", "")}
    if src.get("status_code") is not None:
        ep["status-code"] = src["status_code"]
    return "MOCK", {"mockEndpoints": ep}


def _backend_params_out(params: Any) -> list[Doc]:
    out = []
    for bp in params or []:
        item = {"name": bp.get("name"), "value": bp.get("value"), "in": str(bp.get("location", "")).lower(),
                "origin": bp.get("origin")}
        if bp.get("remark"):
            item["description"] = bp["remark"]
        out.append(item)
    return out


def _param_out(p: Doc, v3: bool) -> Doc:
    schema: Doc = {"type": "number" if p.get("type") == "NUMBER" else "string"}
    if p.get("default_value") is not None:
        schema["default"] = p["default_value"]
    if p.get("enumerations"):
        schema["enum"] = [e for e in str(p["enumerations"]).split(",")]
    for a, b in (("min_num", "minimum"), ("max_num", "maximum"), ("min_size", "minLength"),
                 ("max_size", "maxLength"), ("regular", "pattern")):
        if p.get(a) is not None:
            schema[b] = p[a]
    out: Doc = {"name": p.get("name"), "in": str(p.get("location", "")).lower(),
                "required": p.get("required") == 1 or p.get("location") == "PATH"}
    if p.get("remark"):
        out["description"] = p["remark"]
    if p.get("sample_value") is not None:
        out["example" if v3 else "x-example"] = p["sample_value"]
    if p.get("pass_through") == 1:
        out["x-apigateway-pass-through"] = "always"
    if v3:
        out["schema"] = schema
    else:
        out.update(schema)
    return out


def export_openapi(doc: Doc, group_id: str, *, env_id: str | None = None, oas: str = "2.0") -> Doc:
    """One group as Swagger 2.0 (default) or OpenAPI 3.0 with ``x-apigateway-*`` extensions.

    With ``env_id`` only the APIs published there are exported and the policy bindings of that
    environment become ``x-apigateway-ratelimit`` / ``-access-control`` / ``-plugins``; without it every
    API of the group is exported with the bindings of RELEASE.
    """
    v3 = oas.startswith("3")
    group = next((g for g in doc.get("groups") or [] if isinstance(g, dict) and g.get("id") == group_id), None)
    if group is None:
        raise KeyError(group_id)
    env = env_id or RELEASE_ENV_ID
    by = {name: {str(x.get("id")): x for x in doc.get(name) or [] if isinstance(x, dict)}
          for name in ("throttles", "acls", "plugins", "responses")}
    pubs = {(p.get("api_id"), p.get("env_id")): p for p in doc.get("publishes") or [] if isinstance(p, dict)}
    throttle_by_pub = {b.get("publish_id"): b.get("policy_id") or b.get("strategy_id") or b.get("throttle_id")
                       for b in doc.get("throttle_bindings") or [] if isinstance(b, dict)}
    acl_by_pub = {b.get("publish_id"): b.get("acl_id") for b in doc.get("acl_bindings") or [] if isinstance(b, dict)}
    plugins_by_pub: dict[Any, list[str]] = {}
    for b in doc.get("plugin_bindings") or []:
        if isinstance(b, dict):
            plugins_by_pub.setdefault(b.get("publish_id"), []).append(str(b.get("plugin_id")))

    paths: Doc = {}
    ratelimits: Doc = {}
    acls: Doc = {}
    used_responses: set[str] = set()
    for api in doc.get("apis") or []:
        if not isinstance(api, dict) or api.get("group_id") != group_id:
            continue
        pub = pubs.get((api.get("id"), env))
        if env_id and pub is None:
            continue
        op: Doc = {"operationId": api.get("name")}
        if api.get("remark"):
            op["description"] = api["remark"]
        proto = api.get("req_protocol", "BOTH")
        if not v3:
            op["schemes"] = {"HTTP": ["http"], "HTTPS": ["https"]}.get(proto, ["http", "https"])
        if api.get("auth_type") == "APP":
            appcode = (api.get("auth_opt") or {}).get("app_code_auth_type") == "HEADER"
            op["security"] = [{"apig-auth-app-header" if appcode else "apig-auth-app": []}]
        elif api.get("auth_type") == "IAM":
            op["security"] = [{"apig-auth-iam": []}]
        params = [_param_out(p, v3) for p in api.get("req_params") or [] if isinstance(p, dict)]
        if params:
            op["parameters"] = params
        resp: Doc = {"description": "default response"}
        if api.get("result_normal_sample"):
            resp["x-apigateway-result-normal-sample"] = api["result_normal_sample"]
        if api.get("result_failure_sample"):
            resp["x-apigateway-result-failure-sample"] = api["result_failure_sample"]
        op["responses"] = {"default": resp}
        op["x-apigateway-request-type"] = "private" if api.get("type") == 2 else "public"
        op["x-apigateway-match-mode"] = api.get("match_mode") or "NORMAL"
        op["x-apigateway-cors"] = bool(api.get("cors", False))
        if api.get("is_send_fg_body_base64") is not None:
            op["x-apigateway-is-send-fg-body-base64"] = api["is_send_fg_body_base64"]
        btype = api.get("backend_type", "HTTP")
        src = api.get("backend_api") if btype == "HTTP" else api.get("func_info") if btype == "FUNCTION" \
            else api.get("mock_info")
        kind, endpoint = _endpoint_out(str(btype), src or {})
        backend: Doc = {"type": kind, **endpoint}
        if api.get("backend_params"):
            backend["parameters"] = _backend_params_out(api["backend_params"])
        op["x-apigateway-backend"] = backend
        policies = []
        for key, ptype in (("policy_https", "HTTP"), ("policy_mocks", "MOCK"), ("policy_functions", "FUNCTION")):
            for pol in api.get(key) or []:
                pkind, pendpoint = _endpoint_out(ptype, pol)
                item: Doc = {"name": pol.get("name"), "type": pkind, "effectMode": pol.get("effect_mode"), **pendpoint}
                conds = []
                for c in pol.get("conditions") or []:
                    origin = {"param": "request"}.get(c.get("condition_origin"), c.get("condition_origin"))
                    ctype = {"exact": "equal", "Equal": "equal", "Enumerated": "enum", "Matching": "pattern"}.get(
                        c.get("condition_type"), c.get("condition_type") or "equal")
                    cond: Doc = {"type": ctype, "value": c.get("condition_value"), "origin": origin}
                    pname = c.get("req_param_name") or c.get("sys_param_name") or c.get("cookie_param_name")
                    if pname:
                        cond["parameter"] = pname
                    conds.append(cond)
                item["conditions"] = conds
                if pol.get("backend_params"):
                    item["parameters"] = _backend_params_out(pol["backend_params"])
                policies.append(item)
        if policies:
            op["x-apigateway-backend-policies"] = policies
        if pub is not None:
            pid = pub.get("publish_id")
            tid = throttle_by_pub.get(pid)
            if tid and tid in by["throttles"]:
                t = by["throttles"][tid]
                name = str(t.get("name") or tid)
                ratelimits[name] = {k: t[v] for k, v in RATELIMIT_KEYS.items() if t.get(v) is not None}
                if t.get("type") == 2:
                    ratelimits[name]["shared"] = True
                op["x-apigateway-ratelimit"] = name
            aid = acl_by_pub.get(pid)
            if aid and aid in by["acls"]:
                a = by["acls"][aid]
                name = str(a.get("acl_name") or aid)
                acls[name] = {"acl-type": a.get("acl_type"), "entity-type": a.get("entity_type", "IP"),
                              "value": a.get("acl_value")}
                op["x-apigateway-access-control"] = name
            names = [str(by["plugins"][p].get("plugin_name")) for p in plugins_by_pub.get(pid, [])
                     if p in by["plugins"]]
            if names:
                op["x-apigateway-plugins"] = names
        rid = api.get("response_id")
        if rid and rid in by["responses"]:
            op["x-apigateway-response"] = by["responses"][rid].get("name")
            used_responses.add(rid)
        method = str(api.get("req_method", "GET"))
        slot = ANY_KEY if method == "ANY" else method.lower()
        paths.setdefault(str(api.get("req_uri")), {})[slot] = op

    schemes_def: Doc = {
        "apig-auth-app": {"type": "apiKey", "name": "Authorization", "in": "header",
                          "x-apigateway-auth-type": "AppSigv1"},
        "apig-auth-app-header": {"type": "apiKey", "name": "Authorization", "in": "header",
                                 "x-apigateway-auth-type": "AppSigv1",
                                 "x-apigateway-auth-opt": {"appcode-auth-type": "header"}},
        "apig-auth-iam": {"type": "apiKey", "name": "unused", "in": "header", "x-apigateway-auth-type": "IAM"},
    }
    info = {"title": group.get("name"), "version": str(doc.get("version") or "1.0")}
    if group.get("remark"):
        info["description"] = group["remark"]
    out: Doc
    if v3:
        out = {"openapi": "3.0.1", "info": info, "paths": paths, "components": {"securitySchemes": schemes_def}}
        if group.get("sl_domain"):
            out["servers"] = [{"url": f"http://{group['sl_domain']}"}]
    else:
        out = {"swagger": "2.0", "info": info, "basePath": "/", "paths": paths, "securityDefinitions": schemes_def}
        if group.get("sl_domain"):
            out["host"] = group["sl_domain"]
    if ratelimits:
        out["x-apigateway-ratelimits"] = ratelimits
    if acls:
        out["x-apigateway-access-controls"] = acls
    responses = {by["responses"][r].get("name"): by["responses"][r].get("responses") or {} for r in used_responses}
    if responses:
        out["x-apigateway-responses"] = responses
    return out
