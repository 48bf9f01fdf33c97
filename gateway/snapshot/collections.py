"""Schemas of every snapshot collection (seed 002 field tables; spec 00-snapshot).

Role in the pipeline: config-load time only. ``COLLECTIONS`` maps each top-level key of the snapshot
to the schema of its elements and the field that identifies an element. Field names, enums, lengths and
ranges are the vendor's (seed 002 §3.1-§3.29); output-only fields of the vendor's responses
(``register_time`` ...) are accepted and ignored.

A feature module that owns a collection (throttling, ACLs, signing ...) refines its entry here; the
cross-reference checks live in :mod:`gateway.snapshot.validate`.
"""

from __future__ import annotations

from typing import Any

from gateway.snapshot.schema import B, Field, I, L, O, Obj, S

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "ANY")
RELEASE_ENV_ID = "DEFAULT_ENVIRONMENT_RELEASE_ID"
RELEASE_ENV_NAME = "RELEASE"

_COMMON_OUT = frozenset({"register_time", "update_time", "create_time", "status", "remark", "project_id"})

URL_DOMAIN = Obj(
    {
        "domain": S(True, min_len=1, max_len=255),
        "id": S(),
        "min_ssl_version": S(enum=("TLSv1.1", "TLSv1.2")),
        "verified_client_certificate_enabled": B(),
        "ssl_id": S(),
        "ssl_name": S(),
        "certificate": S(),  # data plane: PEM chain for this domain (SNI); see docs/tls.md
        "private_key": S(),
        "trusted_root_ca": S(),
        "is_http_redirect_to_https": B(),  # a plain-HTTP call on this domain is redirected to HTTPS
    },
    output_only=frozenset({"cname_status", "is_has_trusted_root_ca", "ingress_http_port", "ingress_https_port"}),
)

GROUP = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "name": S(True, min_len=3, max_len=255),
        "sl_domain": S(max_len=255),
        "sl_domains": L(S()),
        "sl_domain_access_enabled": B(),
        "url_domains": L(URL_DOMAIN),
        "response_id": S(),
        "remark": S(max_len=255),
    },
    output_only=_COMMON_OUT | frozenset({"on_sell_status", "is_default", "version", "roma_app_id", "call_limits",
                                         "time_interval", "time_unit", "roma_app_name", "domain_name"}),
)

ENVIRONMENT = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "name": S(True, min_len=3, max_len=64, pattern=r"[A-Za-z][A-Za-z0-9_]*"),
        "remark": S(max_len=255),
    },
    output_only=_COMMON_OUT,
)

ENV_VARIABLE = Obj(
    {
        "id": S(True),
        "group_id": S(True),
        "env_id": S(True),
        "variable_name": S(True, min_len=3, max_len=32, pattern=r"[A-Za-z][A-Za-z0-9_-]*"),
        "variable_value": S(True, min_len=1, max_len=255),
    },
    output_only=_COMMON_OUT,
)

_PARAM_NAME = r"[A-Za-z][A-Za-z0-9_.-]*"

REQ_PARAM = Obj(
    {
        "name": S(True, min_len=1, max_len=32, pattern=_PARAM_NAME),
        "type": S(True, enum=("STRING", "NUMBER")),
        "location": S(True, enum=("PATH", "QUERY", "HEADER")),
        "default_value": S(),
        "sample_value": S(),
        "required": I(enum=(1, 2), meanings=("required", "optional")),
        "valid_enable": I(enum=(1, 2), meanings=("checks on", "checks off")),
        "remark": S(max_len=255),
        "enumerations": S(),
        "min_num": Field("num"),
        "max_num": Field("num"),
        "min_size": I(min=0),
        "max_size": I(min=0),
        "regular": S(),
        "json_schema": S(),
        "pass_through": I(enum=(1, 2), meanings=("forwarded to the backend", "not forwarded")),
        "orchestrations": L(S()),
    },
    output_only=frozenset({"id"}),
)

BACKEND_PARAM = Obj(
    {
        "origin": S(True, enum=("REQUEST", "CONSTANT", "SYSTEM")),
        "name": S(True, min_len=1, max_len=32, pattern=_PARAM_NAME),
        "remark": S(max_len=255),
        "location": S(True, enum=("PATH", "QUERY", "HEADER")),
        "value": S(True, max_len=255),
    },
    output_only=frozenset({"id", "req_param_id"}),
)

AUTH_OPT = Obj({"app_code_auth_type": S(enum=("DISABLE", "HEADER"))})

VPC_INFO = Obj(
    {"vpc_channel_id": S(True), "vpc_channel_proxy_host": S(max_len=255)},
    output_only=frozenset({"vpc_id", "vpc_name", "ecs_id", "ecs_name", "vpc_channel_port", "cascade_flag"}),
)

BACKEND_API = Obj(
    {
        "authorizer_id": S(),
        "url_domain": S(max_len=255),
        "req_protocol": S(True, enum=("HTTP", "HTTPS", "GRPCS")),
        "remark": S(max_len=255),
        "req_method": S(True, enum=METHODS),
        "version": S(max_len=16),
        "req_uri": S(True, min_len=1, max_len=512),
        "timeout": I(True, min=1, max=600000),
        "enable_client_ssl": B(),
        "retry_count": Field("intstr", min=-1, max=10),
        "vpc_channel_info": O(VPC_INFO),
        "vpc_channel_status": I(enum=(1, 2), meanings=("through a VPC channel", "to url_domain")),
    },
    output_only=_COMMON_OUT | frozenset({"id"}),
)

# configured response headers must be writable: an RFC 9110 token name, no CR/LF/NUL in the value
HEADER_NAME_RX = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
HEADER_VALUE_RX = r"[^\r\n\x00]*"

MOCK_INFO = Obj(
    {
        "remark": S(max_len=255),
        "result_content": S(max_len=20480),
        "version": S(max_len=64),
        "authorizer_id": S(),
        "status_code": I(min=200, max=599),  # vendor feature mock_status_code_and_header
        "headers": L(Obj({"key": S(True, min_len=1, max_len=128, pattern=HEADER_NAME_RX),
                          "value": S(True, max_len=4096, pattern=HEADER_VALUE_RX)})),
    },
    output_only=_COMMON_OUT | frozenset({"id"}),
)

FUNC_INFO = Obj(
    {
        "function_urn": S(True, min_len=1, max_len=255),
        "remark": S(max_len=255),
        "invocation_type": S(True, enum=("async", "sync")),
        "network_type": S(enum=("V1", "V2")),
        "version": S(max_len=64),
        "alias_urn": S(),
        "timeout": I(True, min=1, max=600000),
        "authorizer_id": S(),
        "req_protocol": S(enum=("HTTPS", "GRPCS")),
    },
    output_only=_COMMON_OUT | frozenset({"id"}),
)

CONDITION = Obj(
    {
        "req_param_name": S(),
        "sys_param_name": S(enum=("req_path", "req_method", "reqPath", "reqMethod")),
        "cookie_param_name": S(max_len=255),
        "frontend_authorizer_param_name": S(),
        "frontend_auth_orizer_param_name": S(),
        "condition_type": S(enum=("exact", "enum", "pattern", "Equal", "Enumerated", "Matching")),
        "condition_origin": S(True, enum=("param", "source", "system", "cookie", "frontend_authorizer")),
        "condition_value": S(max_len=1024),
    },
    output_only=frozenset({"id", "req_param_id", "req_param_location"}),
)

_POLICY_COMMON = {
    "effect_mode": S(True, enum=("ALL", "ANY")),
    "name": S(True, min_len=3, max_len=64, pattern=r"[A-Za-z][A-Za-z0-9_]*"),
    "backend_params": L(BACKEND_PARAM),
    "conditions": L(CONDITION, True),
    "authorizer_id": S(),
}

POLICY_HTTP = Obj(
    {
        **_POLICY_COMMON,
        "url_domain": S(max_len=255),
        "req_protocol": S(True, enum=("HTTP", "HTTPS", "GRPCS")),
        "req_method": S(True, enum=METHODS),
        "req_uri": S(True, min_len=1, max_len=512),
        "timeout": I(min=1, max=600000),
        "retry_count": Field("intstr", min=-1, max=10),
        "vpc_channel_info": O(VPC_INFO),
        "vpc_channel_status": I(enum=(1, 2), meanings=("through a VPC channel", "to url_domain")),
        "enable_client_ssl": B(),
    },
    output_only=frozenset({"id"}),
)

POLICY_MOCK = Obj(
    {**_POLICY_COMMON, "result_content": S(max_len=20480), "status_code": I(min=200, max=599)},
    output_only=frozenset({"id"}),
)

POLICY_FUNCTION = Obj(
    {
        **_POLICY_COMMON,
        "function_urn": S(True),
        "invocation_type": S(True, enum=("async", "sync")),
        "network_type": S(enum=("V1", "V2")),
        "version": S(max_len=64),
        "alias_urn": S(),
        "timeout": I(min=1, max=600000),
        "req_protocol": S(enum=("HTTPS", "GRPCS")),
    },
    output_only=frozenset({"id"}),
)

API = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "group_id": S(True),
        "name": S(True, min_len=3, max_len=255, pattern=r"[A-Za-z0-9\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5_./:()-]*"),
        "type": I(True, enum=(1, 2), meanings=("public", "private")),
        "version": S(max_len=16),
        "req_protocol": S(True, enum=("HTTP", "HTTPS", "BOTH", "GRPCS")),
        "req_method": S(True, enum=METHODS),
        "req_uri": S(True, min_len=1, max_len=512, pattern=r"/[^?#\s]*"),
        "auth_type": S(True, enum=("NONE", "APP", "IAM", "AUTHORIZER")),
        "auth_opt": O(AUTH_OPT),
        "cors": B(),
        "match_mode": S(enum=("SWA", "NORMAL")),
        "backend_type": S(True, enum=("HTTP", "FUNCTION", "MOCK", "GRPC")),
        "remark": S(max_len=255),
        "body_remark": S(max_len=20480),
        "result_normal_sample": S(max_len=20480),
        "result_failure_sample": S(max_len=20480),
        "authorizer_id": S(),
        "tags": L(S(min_len=1, max_len=128)),
        "tag": S(),
        "response_id": S(),
        "roma_app_id": S(),
        "domain_name": S(),
        "content_type": S(enum=("application/json", "application/xml", "multipart/form-data", "text/plain")),
        "is_send_fg_body_base64": B(),
        "mock_info": O(MOCK_INFO),
        "func_info": O(FUNC_INFO),
        "req_params": L(REQ_PARAM),
        "backend_params": L(BACKEND_PARAM),
        "policy_mocks": L(POLICY_MOCK),
        "policy_functions": L(POLICY_FUNCTION),
        "backend_api": O(BACKEND_API),
        "policy_https": L(POLICY_HTTP),
    },
    output_only=_COMMON_OUT | frozenset({
        "arrange_necessary", "group_name", "group_version", "run_env_id", "run_env_name", "publish_id",
        "publish_time", "roma_app_name", "ld_api_id", "api_group_info", "sl_domain", "sl_domains",
        "req_params_validate", "backend_params_validate",
    }),
)

PUBLISH = Obj(
    {"publish_id": S(True), "api_id": S(True), "env_id": S(True), "version_id": S(), "remark": S(max_len=255),
     "api_definition": O(Obj({}, open=True))},
    output_only=frozenset({"publish_time", "env_name", "api_name", "id"}),
)

RESPONSE_ENTRY = Obj(
    {
        "body": S(max_len=65535),
        "status": I(min=200, max=599),
        "default": B(),
        "headers": L(Obj({"key": S(True, min_len=1, max_len=128, pattern=r"[A-Za-z0-9_-]+"),
                          "value": S(True, max_len=1024, pattern=HEADER_VALUE_RX)}), max_len=10),
    }
)

RESPONSE = Obj(
    {
        "id": S(True),
        "name": S(True, min_len=1, max_len=64),
        "group_id": S(),
        "responses": Field("obj", obj=None),  # type -> RESPONSE_ENTRY; keys checked in validate
    },
    output_only=_COMMON_OUT | frozenset({"default"}),
)

FUNCTION = Obj(
    {
        "function_urn": S(True, min_len=1, max_len=255),
        "entry": S(pattern=r"[A-Za-z_][\w.]*:[A-Za-z_]\w*"),
        "url": S(pattern=r"https?://.+"),
        "timeout": I(min=1, max=600000),
    }
)

# --- features (gateway-wide settings carried in the snapshot; docs/features) ----------------------------

FEATURE = Obj(
    {
        "id": S(),
        "name": S(True, min_len=1, max_len=64),
        "enable": B(),
        "config": Field("any"),  # string (word, number, JSON) or object: gateway.snapshot.features
    },
    output_only=frozenset({"update_time", "instance_id"}),
)

_OPEN = Obj({"id": S()}, open=True)

# collection -> (element schema, identifying field or None)
COLLECTIONS: dict[str, tuple[Obj, str | None]] = {
    "groups": (GROUP, "id"),
    "environments": (ENVIRONMENT, "id"),
    "env_variables": (ENV_VARIABLE, "id"),
    "apis": (API, "id"),
    "publishes": (PUBLISH, "publish_id"),
    "responses": (RESPONSE, "id"),
    "functions": (FUNCTION, "function_urn"),
    # Collections owned by a stage (their schema lives in its module, merged by gateway.pipeline.chain):
    # here, objects with an id, so that the core schema alone still knows every collection and its key.
    "throttles": (_OPEN, "id"),
    "throttle_bindings": (_OPEN, "id"),
    "special_throttles": (_OPEN, "id"),
    "acls": (_OPEN, "id"),
    "acl_bindings": (_OPEN, "id"),
    "signs": (_OPEN, "id"),
    "sign_bindings": (_OPEN, "id"),
    "apps": (_OPEN, "id"),
    "app_codes": (_OPEN, "id"),
    "app_auths": (_OPEN, "id"),
    "app_acls": (_OPEN, None),
    "quotas": (_OPEN, "id"),
    "quota_bindings": (_OPEN, None),
    "authorizers": (_OPEN, "id"),
    "vpc_channels": (_OPEN, "id"),
    "plugins": (_OPEN, "id"),
    "plugin_bindings": (_OPEN, "id"),
    "features": (FEATURE, None),
    # Control-plane state kept with the document, ignored by the data plane (docs/admin-api.md "Drafts and
    # versions"): the edited, unpublished definition of a published API, and the versions it was published as.
    "api_drafts": (_OPEN, "id"),
    "api_versions": (_OPEN, "id"),
    # SSL certificates of the vendor's certificate API; attaching one copies it onto url_domains elements
    "certificates": (_OPEN, "id"),
}
# Collections the data plane never reads (kept with the document for the control plane): a change to them
# recompiles nothing (gateway/snapshot/delta.py).
CONTROL_PLANE_ONLY = frozenset({"api_drafts", "api_versions", "certificates"})

TOP_LEVEL_SCALARS = {"version": S(max_len=128)}


def served_definition(api: dict[str, Any], pub: dict[str, Any]) -> dict[str, Any]:
    """The API definition a publication serves: its own published copy (``api_definition``) when it carries
    one, else the shared ``apis`` record (a snapshot without copies serves one definition per API)."""
    own = pub.get("api_definition")
    return own if isinstance(own, dict) else api
