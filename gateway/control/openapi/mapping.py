"""Swagger 2.0 / OpenAPI 3 ``x-apigateway-*`` <-> snapshot fields, one codec per section, both directions together.

Role: control plane only; nothing here runs per request. Each section of an operation (protocol, auth,
request parameters, response samples, backend endpoint, backend parameters, backend policies) and of the
document (rate limits, access controls, gateway responses) has its ``*_in`` (document -> snapshot) next to
its ``*_out`` (snapshot -> document), so a field added on one side is seen on the other. Importers pass a
``warn`` callback: anything a codec does not understand is reported, never silently dropped. The drivers
are :mod:`gateway.control.openapi.importer` and :mod:`gateway.control.openapi.exporter`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

Doc = dict[str, Any]
Warn = Callable[[str], None]
# resolves a name of the target snapshot to an id: (collection, field, value) -> id | None
Lookup = Callable[[str, str, str], str | None]

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
CONDITION_TYPES_OUT = {"exact": "equal", "Equal": "equal", "Enumerated": "enum", "Matching": "pattern"}
CONDITION_ORIGINS = {"source": "source", "request": "param", "param": "param", "system": "system",
                     "cookie": "cookie", "frontend_authorizer": "frontend_authorizer"}
POLICY_KEYS = {"HTTP": "policy_https", "MOCK": "policy_mocks", "FUNCTION": "policy_functions"}
BACKEND_FIELD = {"HTTP": "backend_api", "FUNCTION": "func_info", "MOCK": "mock_info"}


# --- names and ids -----------------------------------------------------------------------------------
def stable_id(*parts: str) -> str:
    """A 32-hex id derived from ``parts`` (re-importing the same definition updates the same resources)."""
    return hashlib.md5("\x00".join(parts).encode(), usedforsecurity=False).hexdigest()


def api_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9\u4e00-\u9fa5_./:()-]", "_", raw).strip("_") or "api"
    if not re.match(r"[A-Za-z0-9\u4e00-\u9fa5]", name):
        name = "api_" + name
    while len(name) < 3:
        name += "_"
    return name[:255]


def policy_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", raw)
    if not name or not name[0].isalpha():
        name = "p_" + name
    while len(name) < 3:
        name += "_"
    return name[:64]


def group_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9\u4e00-\u9fa5_]", "_", raw) or "group"
    if not name[0].isalpha():
        name = "g_" + name
    while len(name) < 3:
        name += "_"
    return name[:64]


def unknown_extensions(obj: Doc, known: frozenset[str], where: str, warn: Warn) -> None:
    for key in obj:
        if key.startswith("x-apigateway-") and key not in known:
            warn(f"{where}.{key}: unknown extension, ignored" if where else f"{key}: unknown extension, ignored")


# --- request protocol (schemes) --------------------------------------------------------------------------
def protocol_in(schemes: Any) -> str:
    if not isinstance(schemes, list) or not schemes:
        return "BOTH"
    s = {str(x).lower() for x in schemes}
    if s == {"https"}:
        return "HTTPS"
    if s == {"http"}:
        return "HTTP"
    return "BOTH"


def protocol_out(proto: str | None) -> list[str]:
    return {"HTTP": ["http"], "HTTPS": ["https"]}.get(proto or "BOTH", ["http", "https"])


def servers_in(servers: Any) -> list[str] | None:
    """OpenAPI 3 operation- or path-level ``servers`` -> the schemes they use (None when absent)."""
    if not isinstance(servers, list) or not servers:
        return None
    schemes = [str(s.get("url", "")).split("://", 1)[0].lower() for s in servers if isinstance(s, dict)]
    return [x for x in schemes if x in ("http", "https")] or None


def servers_out(proto: str | None, host: str) -> list[Doc] | None:
    """The operation-level ``servers`` that say an API's protocol (None for BOTH, the default)."""
    if proto not in ("HTTP", "HTTPS"):
        return None
    return [{"url": f"{proto.lower()}://{host}"}]


# --- authentication (security + securityDefinitions) ---------------------------------------------------
SCHEMES_OUT: Doc = {
    "apig-auth-app": {"type": "apiKey", "name": "Authorization", "in": "header", "x-apigateway-auth-type": "AppSigv1"},
    "apig-auth-app-header": {"type": "apiKey", "name": "Authorization", "in": "header",
                             "x-apigateway-auth-type": "AppSigv1",
                             "x-apigateway-auth-opt": {"appcode-auth-type": "header"}},
    "apig-auth-iam": {"type": "apiKey", "name": "unused", "in": "header", "x-apigateway-auth-type": "IAM"},
}


def auth_in(api: Doc, security: Any, schemes: dict[str, Doc], where: str, warn: Warn) -> None:
    api["auth_type"] = "NONE"
    if not security:
        return
    for requirement in security:
        for name in requirement or {}:
            scheme = schemes.get(name)
            if scheme is None:
                warn(f"{where}.security: unknown security scheme {name!r}")
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
                warn(f"{where}.security.{name}: auth type {kind or 'missing'!r} is not supported by import; "
                     "imported as NONE")
            return


def auth_out(api: Doc) -> list[Doc] | None:
    if api.get("auth_type") == "APP":
        appcode = (api.get("auth_opt") or {}).get("app_code_auth_type") == "HEADER"
        return [{"apig-auth-app-header" if appcode else "apig-auth-app": []}]
    if api.get("auth_type") == "IAM":
        return [{"apig-auth-iam": []}]
    return None


# --- request parameters --------------------------------------------------------------------------------
LIMITS = (("minimum", "min_num"), ("maximum", "max_num"), ("minLength", "min_size"), ("maxLength", "max_size"))


def param_in(p: Doc, v3: bool, where: str, warn: Warn) -> Doc:
    """One path/query/header parameter (the caller has filtered locations)."""
    loc = str(p.get("in", "")).upper()
    schema: Doc = p["schema"] if v3 and isinstance(p.get("schema"), dict) else p
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
    for src, dst in LIMITS:
        if src in schema and schema[src] not in (0, None):  # the vendor writes 0 for "no limit"
            param[dst] = schema[src]
            valid = True
    if schema.get("pattern"):
        param["regular"] = schema["pattern"]
        valid = True
    param["valid_enable"] = 1 if valid else 2
    if p.get("x-apigateway-pass-through") == "always":
        param["pass_through"] = 1
    unknown_extensions(p, KNOWN_PARAM_EXT, where, warn)
    return param


def param_out(p: Doc, v3: bool) -> Doc:
    schema: Doc = {"type": "number" if p.get("type") == "NUMBER" else "string"}
    if p.get("default_value") is not None:
        schema["default"] = p["default_value"]
    if p.get("enumerations"):
        schema["enum"] = [e for e in str(p["enumerations"]).split(",")]
    for b, a in (*LIMITS, ("pattern", "regular")):
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


def params_in(api: Doc, params: list[Any], v3: bool, where: str, warn: Warn) -> None:
    out: list[Doc] = []
    for i, p in enumerate(params):
        if not isinstance(p, dict):
            continue
        if "$ref" in p:
            warn(f"{where}.parameters[{i}]: $ref parameters are not resolved, ignored")
            continue
        loc = str(p.get("in", "")).upper()
        if loc in ("BODY", "FORMDATA"):
            if p.get("description"):
                api["body_remark"] = str(p["description"])
            continue
        if loc not in ("PATH", "QUERY", "HEADER"):
            warn(f"{where}.parameters[{i}]: location {p.get('in')!r} is not supported, ignored")
            continue
        out.append(param_in(p, v3, f"{where}.parameters[{i}]", warn))
    if out:
        api["req_params"] = out


def params_out(api: Doc, v3: bool) -> list[Doc]:
    out = [param_out(p, v3) for p in api.get("req_params") or [] if isinstance(p, dict)]
    if api.get("body_remark") and not v3:  # OpenAPI 3: see body_out
        out.append({"name": "body", "in": "body", "description": api["body_remark"], "schema": {"type": "object"}})
    return out


def body_out(api: Doc) -> Doc | None:
    """OpenAPI 3 ``requestBody`` carrying the body description (Swagger 2.0 uses a body parameter)."""
    if not api.get("body_remark"):
        return None
    return {"description": api["body_remark"], "content": {"application/json": {"schema": {"type": "object"}}}}


# --- responses (result samples) --------------------------------------------------------------------------
SAMPLE_FIELDS = {"x-apigateway-result-normal-sample": "result_normal_sample",
                 "x-apigateway-result-failure-sample": "result_failure_sample"}


def _sample_text(value: Any) -> str:
    """A sample given as text, or as an object whose ``description`` is the text (the vendor's exports)."""
    if isinstance(value, dict):
        return str(value.get("description", ""))
    return value if isinstance(value, str) else str(value)


def samples_in(api: Doc, responses: Any, where: str, warn: Warn, resolve: Callable[[str], Any] = lambda _: None
               ) -> None:
    for code, resp in (responses or {}).items():
        if code in SAMPLE_FIELDS:  # the vendor's exports put the samples next to the status codes
            api[SAMPLE_FIELDS[code]] = _sample_text(resp)
            continue
        if isinstance(resp, dict) and isinstance(resp.get("$ref"), str):
            resp = resolve(resp["$ref"]) or {}
        if not isinstance(resp, dict):
            continue
        unknown_extensions(resp, KNOWN_RESPONSE_EXT, f"{where}.responses.{code}", warn)
        for key, field in SAMPLE_FIELDS.items():
            if key in resp:
                api[field] = _sample_text(resp[key])


def samples_out(api: Doc) -> Doc:
    resp: Doc = {"description": "default response"}
    if api.get("result_normal_sample"):
        resp["x-apigateway-result-normal-sample"] = api["result_normal_sample"]
    if api.get("result_failure_sample"):
        resp["x-apigateway-result-failure-sample"] = api["result_failure_sample"]
    return {"default": resp}


# --- backend parameters ------------------------------------------------------------------------------------
def backend_params_in(params: Any, where: str, warn: Warn) -> list[Doc]:
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
                warn(f"{where}.parameters[{j}].{key}: unknown field, ignored")
        out.append(item)
    return out


def backend_params_out(params: Any) -> list[Doc]:
    out = []
    for bp in params or []:
        item = {"name": bp.get("name"), "value": bp.get("value"), "in": str(bp.get("location", "")).lower(),
                "origin": bp.get("origin")}
        if bp.get("remark"):
            item["description"] = bp["remark"]
        out.append(item)
    return out


# --- backend endpoints (HTTP, HTTP-VPC, FUNCTION, MOCK) -----------------------------------------------------
def _check_keys(ep: Doc, allowed: frozenset[str], where: str, warn: Warn) -> None:
    for k in ep:
        if k not in allowed:
            warn(f"{where}.{k}: unknown field, ignored")


def http_endpoint_in(kind: str, backend: Doc, where: str, warn: Warn, lookup: Lookup) -> Doc:
    key = "httpEndpoints" if kind == "HTTP" else "httpVpcEndpoints"
    ep = backend.get(key) or {}
    _check_keys(ep, HTTP_ENDPOINT_KEYS if kind == "HTTP" else VPC_ENDPOINT_KEYS, f"{where}.{key}", warn)
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
        fields["vpc_channel_status"] = 1
        fields["vpc_channel_info"] = {"vpc_channel_id": lookup("vpc_channels", "name", name) or name}
        if ep.get("host"):
            fields["vpc_channel_info"]["vpc_channel_proxy_host"] = str(ep["host"])
    return fields


def http_endpoint_out(src: Doc, channel_name: Callable[[str], str]) -> tuple[str, Doc]:
    common: Doc = {"scheme": str(src.get("req_protocol", "HTTP")).lower(), "method": src.get("req_method"),
                   "path": src.get("req_uri"), "timeout": src.get("timeout", 5000)}
    if src.get("vpc_channel_status") == 1 or src.get("vpc_channel_info"):
        info = src.get("vpc_channel_info") or {}
        ep: Doc = {"name": channel_name(str(info.get("vpc_channel_id"))), **common}
        if info.get("vpc_channel_proxy_host"):
            ep["host"] = info["vpc_channel_proxy_host"]
        kind, key = "HTTP-VPC", "httpVpcEndpoints"
    else:
        ep = {"address": src.get("url_domain"), **common}
        kind, key = "HTTP", "httpEndpoints"
    if src.get("retry_count") is not None:
        ep["retryCount"] = str(src["retry_count"])
    if src.get("enable_client_ssl") is not None:
        ep["enableClientSsl"] = src["enable_client_ssl"]
    return kind, {key: ep}


FUNC_OPTIONAL = (("version", "version"), ("alias_urn", "alias-urn"), ("network_type", "network-type"))


def function_endpoint_in(backend: Doc, where: str, warn: Warn) -> Doc:
    ep = backend.get("functionEndpoints") or {}
    _check_keys(ep, FUNC_ENDPOINT_KEYS, f"{where}.functionEndpoints", warn)
    inv = str(ep.get("invocation-type", "sync")).lower()
    fields: Doc = {"function_urn": str(ep.get("function-urn", "")),
                   "invocation_type": "async" if inv.startswith("async") else "sync",
                   "timeout": int(ep.get("timeout", 5000))}
    for a, b in FUNC_OPTIONAL:
        if ep.get(b):
            fields[a] = str(ep[b])
    return fields


def function_endpoint_out(src: Doc) -> tuple[str, Doc]:
    ep: Doc = {"function-urn": src.get("function_urn"), "invocation-type": src.get("invocation_type", "sync"),
               "timeout": src.get("timeout", 5000)}
    for a, b in FUNC_OPTIONAL:
        if src.get(a):
            ep[b] = src[a]
    return "FUNCTION", {"functionEndpoints": ep}


def mock_endpoint_in(backend: Doc, where: str, warn: Warn) -> Doc:
    ep = backend.get("mockEndpoints") or {}
    _check_keys(ep, MOCK_ENDPOINT_KEYS, f"{where}.mockEndpoints", warn)
    fields: Doc = {"result_content": str(ep.get("result-content", ""))}
    if ep.get("status-code") is not None:
        fields["status_code"] = int(ep["status-code"])
    return fields


def mock_endpoint_out(src: Doc) -> tuple[str, Doc]:
    ep: Doc = {"result-content": src.get("result_content", "")}
    if src.get("status_code") is not None:
        ep["status-code"] = src["status_code"]
    return "MOCK", {"mockEndpoints": ep}


def endpoint_in(kind: str, backend: Doc, where: str, warn: Warn, lookup: Lookup) -> tuple[str, Doc]:
    """(backend_type, fields for backend_api / func_info / mock_info or a policy)."""
    if kind in ("HTTP", "HTTP-VPC"):
        return "HTTP", http_endpoint_in(kind, backend, where, warn, lookup)
    if kind == "FUNCTION":
        return "FUNCTION", function_endpoint_in(backend, where, warn)
    if kind == "MOCK":
        return "MOCK", mock_endpoint_in(backend, where, warn)
    warn(f"{where}.type: backend type {kind!r} is not supported; imported as MOCK")
    return "MOCK", {"result_content": ""}


def endpoint_out(kind: str, src: Doc, channel_name: Callable[[str], str]) -> tuple[str, Doc]:
    if kind == "HTTP":
        return http_endpoint_out(src, channel_name)
    if kind == "FUNCTION":
        return function_endpoint_out(src)
    return mock_endpoint_out(src)


# --- the backend (x-apigateway-backend) -------------------------------------------------------------------
def backend_in(api: Doc, backend: Doc, where: str, warn: Warn, lookup: Lookup) -> None:
    _check_keys(backend, BACKEND_KEYS, where, warn)
    btype, fields = endpoint_in(str(backend.get("type", "HTTP")).upper(), backend, where, warn, lookup)
    api["backend_type"] = btype
    api[BACKEND_FIELD[btype]] = fields
    bparams = backend_params_in(backend.get("parameters"), where, warn)
    if bparams:
        api["backend_params"] = bparams


def backend_out(api: Doc, channel_name: Callable[[str], str]) -> Doc:
    btype = str(api.get("backend_type", "HTTP"))
    src = api.get(BACKEND_FIELD.get(btype, "mock_info")) or {}
    kind, endpoint = endpoint_out(btype, src, channel_name)
    backend: Doc = {"type": kind, **endpoint}
    if api.get("backend_params"):
        backend["parameters"] = backend_params_out(api["backend_params"])
    return backend


# --- backend policies (x-apigateway-backend-policies) ----------------------------------------------------
def condition_in(c: Doc) -> Doc:
    origin = CONDITION_ORIGINS.get(str(c.get("origin", "request")).lower(), "param")
    cond: Doc = {"condition_origin": origin, "condition_value": str(c.get("value", "")),
                 "condition_type": CONDITION_TYPES.get(str(c.get("type", "equal")).lower(), "exact")}
    if origin == "param" and c.get("parameter"):
        cond["req_param_name"] = str(c["parameter"])
    elif origin == "system" and c.get("parameter"):
        cond["sys_param_name"] = str(c["parameter"])
    elif origin == "cookie" and c.get("parameter"):
        cond["cookie_param_name"] = str(c["parameter"])
    return cond


def condition_out(c: Doc) -> Doc:
    origin = {"param": "request"}.get(str(c.get("condition_origin")), c.get("condition_origin"))
    ctype = CONDITION_TYPES_OUT.get(str(c.get("condition_type")), c.get("condition_type") or "equal")
    cond: Doc = {"type": ctype, "value": c.get("condition_value"), "origin": origin}
    pname = c.get("req_param_name") or c.get("sys_param_name") or c.get("cookie_param_name")
    if pname:
        cond["parameter"] = pname
    return cond


def policies_in(api: Doc, policies: Any, where: str, warn: Warn, lookup: Lookup) -> None:
    for j, pol in enumerate(policies if isinstance(policies, list) else []):
        if not isinstance(pol, dict):
            continue
        pw = f"{where}[{j}]"
        _check_keys(pol, BACKEND_KEYS | {"name", "conditions", "effectMode", "effect-mode"}, pw, warn)
        btype, fields = endpoint_in(str(pol.get("type", "HTTP")).upper(), pol, pw, warn, lookup)
        conditions = [condition_in(c) for c in pol.get("conditions") or [] if isinstance(c, dict)]
        item: Doc = {"name": policy_name(str(pol.get("name") or f"policy_{j}")),
                     "effect_mode": str(pol.get("effectMode", pol.get("effect-mode", "ANY"))).upper(),
                     "conditions": conditions, **fields}
        bparams = backend_params_in(pol.get("parameters"), pw, warn)
        if bparams:
            item["backend_params"] = bparams
        api.setdefault(POLICY_KEYS[btype], []).append(item)


def policies_out(api: Doc, channel_name: Callable[[str], str]) -> list[Doc]:
    out = []
    for ptype, key in POLICY_KEYS.items():
        for pol in api.get(key) or []:
            kind, endpoint = endpoint_out(ptype, pol, channel_name)
            item: Doc = {"name": pol.get("name"), "type": kind, "effectMode": pol.get("effect_mode"), **endpoint}
            item["conditions"] = [condition_out(c) for c in pol.get("conditions") or []]
            if pol.get("backend_params"):
                item["parameters"] = backend_params_out(pol["backend_params"])
            out.append(item)
    return out


# --- document level: rate limits, access controls --------------------------------------------------------
def ratelimit_in(tid: str, name: str, rl: Doc, warn: Warn) -> Doc:
    item: Doc = {"id": tid, "name": policy_name(name), "type": 2 if rl.get("shared") else 1}
    for src, dst in RATELIMIT_KEYS.items():
        if src in rl:
            item[dst] = rl[src]
    for key in rl:
        if key not in RATELIMIT_KEYS and key not in ("shared", "special"):
            warn(f"x-apigateway-ratelimits.{name}.{key}: unknown field, ignored")
    if rl.get("special"):
        warn(f"x-apigateway-ratelimits.{name}.special: excluded throttles are not imported")
    return item


def ratelimit_out(t: Doc) -> Doc:
    out = {k: t[v] for k, v in RATELIMIT_KEYS.items() if t.get(v) is not None}
    if t.get("type") == 2:
        out["shared"] = True
    return out


def access_control_in(aid: str, name: str, ac: Doc) -> Doc:
    return {"id": aid, "acl_name": policy_name(name), "acl_type": ac.get("acl-type", "PERMIT"),
            "entity_type": ac.get("entity-type", "IP"), "acl_value": str(ac.get("value", ""))}


def access_control_out(a: Doc) -> Doc:
    return {"acl-type": a.get("acl_type"), "entity-type": a.get("entity_type", "IP"), "value": a.get("acl_value")}
