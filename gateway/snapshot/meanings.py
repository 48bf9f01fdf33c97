"""Plain-words meanings of snapshot fields for the generated configuration reference (docs/configuration.md).

Role: documentation only (``make docs``); nothing here is read by the loader or on the request path.
"""

from __future__ import annotations

# Plain-words meaning of snapshot fields (docs/configuration.md "meaning" column). Keyed by "collection.path"
# (most specific) or by the field's own name (shared by every place the name appears).
FIELD_MEANINGS: dict[str, str] = {
    # shared names
    "id": "Identifier other records use to refer to this one.",
    "name": "Display name (also what logs and metrics show).",
    "remark": "Free-text description; no effect.",
    "group_id": "The API group it belongs to (`groups[].id`).",
    "env_id": "An environment id (`environments[].id`, or `DEFAULT_ENVIRONMENT_RELEASE_ID` for RELEASE); not its name.",
    "api_id": "An API id (`apis[].id`).",
    "app_id": "An app id (`apps[].id`).",
    "publish_id": "A publication (`publishes[].publish_id`): one API in one environment.",
    "authorizer_id": "A custom authorizer (`authorizers[].id`) that runs before this backend is called.",
    "version": "Version label; informational.",
    "response_id": "The group response set (`responses[].id`) used for this API's error answers.",
    "req_protocol": "Protocol: `HTTP`, `HTTPS`, `BOTH` (either, for frontends) or `GRPCS`.",
    "req_method": "HTTP method; `ANY` matches (frontend) or keeps (backend) any method.",
    "req_uri": "Path. Frontend: what callers request, with `{name}` path parameters. Backend: the path sent, "
               "`{name}` filled by backend parameters and `#var#` by environment variables.",
    "url_domain": "Backend address `host[:port]` (may use `#var#` environment variables).",
    "timeout": "Backend timeout in milliseconds (capped by `max_backend_timeout_ms`).",
    "retry_count": "Retries when no answer arrived: `-1` = idempotent methods once, `0`..`10` = that many.",
    "vpc_channel_status": "Whether the backend is a load-balanced VPC channel instead of `url_domain`.",
    "vpc_channel_id": "The VPC channel (`vpc_channels[].id`) whose members receive the requests.",
    "vpc_channel_proxy_host": "`Host` header sent to channel members (default: the member address).",
    "enable_client_ssl": "Present a client certificate to the backend (two-way TLS).",
    "effect_mode": "How conditions combine: `ALL` = every condition must hold, `ANY` = one is enough.",
    "conditions": "When this backend policy applies instead of the default backend.",
    "condition_type": "`exact`/`Equal` = equals the value; `enum`/`Enumerated` = one of a comma list; "
                      "`pattern`/`Matching` = matches a regular expression.",
    "condition_origin": "What the condition tests: `param` = a request parameter, `source` = the client IP (CIDR), "
                        "`system` = a system value (path, method), `cookie`, `frontend_authorizer` = a value "
                        "returned by the custom authorizer.",
    "condition_value": "The value, list or pattern compared.",
    "backend_params": "Values set on the backend request (headers, query, path parameters).",
    "origin": "`REQUEST` = copy a request parameter, `CONSTANT` = a fixed value, `SYSTEM` = a gateway value "
              "such as `$context.sourceIp`.",
    "location": "Where the value is: `PATH` (a `{name}` segment), `QUERY` (query string) or `HEADER`.",
    "value": "Request parameter name (REQUEST), the constant, or the `$context.*` name (SYSTEM).",
    "function_urn": "The function to invoke (`functions[].function_urn`).",
    "invocation_type": "`sync` = wait for the function's result; `async` = answer at once, run in the background.",
    "network_type": "The vendor's function network mode; accepted, no effect here.",
    "result_content": "Body a MOCK backend answers with.",
    "status_code": "HTTP status of a MOCK answer (default 200).",
    "headers": "Extra response headers of a MOCK answer.",
    "call_limits": "Calls allowed in the policy's time window for this object.",
    # groups
    "groups.sl_domain": "The group's own (debug) domain; requests with this `Host` reach the group.",
    "groups.sl_domains": "More domains of the group.",
    "groups.sl_domain_access_enabled": "`false` = the group's own domains stop answering (bound domains still do).",
    "groups.url_domains": "Custom domains bound to the group, each optionally with a TLS certificate.",
    "groups.url_domains[].domain": "The custom domain (`Host`) answered by the group.",
    "groups.url_domains[].min_ssl_version": "Lowest TLS version accepted on this domain.",
    "groups.url_domains[].is_http_redirect_to_https": "Answer plain-HTTP requests with a redirect to HTTPS.",
    "groups.url_domains[].verified_client_certificate_enabled": "Require client certificates (mutual TLS).",
    "groups.url_domains[].certificate": "PEM certificate chain served for the domain.",
    "groups.url_domains[].private_key": "PEM private key of the certificate (never logged or exported).",
    "groups.url_domains[].trusted_root_ca": "PEM CA used to verify client certificates.",
    # environments
    "environments.name": "Name callers select with the `X-Stage` header (RELEASE needs no header and no record).",
    # variables
    "env_variables.variable_name": "Name used as `#name#` in backend addresses, paths and constants.",
    "env_variables.variable_value": "Its value in that group and environment.",
    # apis
    "apis.type": "Visibility in the vendor's marketplace; no effect on serving.",
    "apis.auth_type": "Who may call: `NONE` = anyone, `APP` = signed or AppCode calls of authorized apps, "
                      "`IAM` = IAM tokens, `AUTHORIZER` = a custom authorizer function decides.",
    "apis.auth_opt.app_code_auth_type": "`HEADER` = also accept a simple AppCode in `X-Apig-AppCode`; `DISABLE` = no.",
    "apis.cors": "Answer browser cross-origin (CORS) requests, preflight included.",
    "apis.match_mode": "`NORMAL` = the path must match exactly; `SWA` = prefix match (the rest is appended to the "
                       "backend path).",
    "apis.backend_type": "`HTTP` = forward to `backend_api`, `MOCK` = answer `mock_info`, `FUNCTION` = invoke "
                         "`func_info`, `GRPC` = gRPC backend.",
    "apis.req_params": "Parameters the API declares: validated, defaulted and mapped to the backend.",
    "apis.req_params[].type": "`STRING` or `NUMBER` (numbers are checked against `min_num`/`max_num`).",
    "apis.req_params[].required": "Whether a call without it is refused with 400.",
    "apis.req_params[].default_value": "Used (and sent to the backend) when the caller omits the parameter.",
    "apis.req_params[].valid_enable": "Whether the value checks (enumerations, ranges, lengths) apply.",
    "apis.req_params[].enumerations": "Comma-separated allowed values.",
    "apis.req_params[].pass_through": "Whether an unmapped parameter is forwarded to the backend.",
    "apis.mock_info": "The MOCK answer (body, status, headers).",
    "apis.func_info": "The function backend.",
    "apis.backend_api": "The default HTTP backend.",
    "apis.policy_https": "Conditional HTTP backends: the first whose conditions hold replaces `backend_api`.",
    "apis.policy_mocks": "Conditional MOCK answers.",
    "apis.policy_functions": "Conditional function backends.",
    "apis.content_type": "Documented request body type; informational.",
    # publishes
    "publishes.api_id": "The API being published.",
    "publishes.env_id": "The environment it is published in: `DEFAULT_ENVIRONMENT_RELEASE_ID` for RELEASE, or an "
                        "`environments[].id`. An API serves only in environments it is published in.",
    "publishes.publish_id": "Id of this publication; bindings (throttling, ACL, signature keys, plug-ins) refer to it.",
    # throttles
    "throttles.api_call_limits": "Calls the API (or, with `type: 2`, all bound APIs together) may receive per window.",
    "throttles.user_call_limits": "Calls per caller account per window.",
    "throttles.app_call_limits": "Calls per app per window.",
    "throttles.ip_call_limits": "Calls per client IP per window.",
    "throttles.time_interval": "Window length, in `time_unit`s.",
    "throttles.time_unit": "`SECOND`, `MINUTE`, `HOUR` or `DAY`.",
    "throttles.type": "Whether bound APIs share one counter.",
    "throttle_bindings.policy_id": "The throttling policy (`throttles[].id`).",
    "special_throttles.object_type": "`APP` = `object_id` is an app id; `USER` = an account (IAM domain) id.",
    "special_throttles.object_id": "The app or account given its own limit.",
    # acls
    "acls.acl_type": "`PERMIT` = only the listed callers may call; `DENY` = the listed callers may not.",
    "acls.entity_type": "What is listed: `IP` addresses/CIDRs, IAM account (`DOMAIN`) names or `DOMAIN_ID`s.",
    "acls.acl_value": "Comma-separated list of IPs/CIDRs, account names or account ids.",
    # apps
    "apps.app_key": "The AppKey callers sign with (the `Access` of the signature).",
    "apps.app_secret": "The AppSecret that signs requests (never logged or exported).",
    "apps.status": "A frozen app's calls are refused.",
    "app_auths.app_id": "The app authorized to call the API in that environment.",
    # signs
    "signs.sign_type": "How the gateway proves itself to the backend: `hmac`, `basic`, `aes` or `public_key`.",
    "signs.sign_key": "Key (or user name for `basic`) of the backend signature.",
    "signs.sign_secret": "Secret (or password) of the backend signature (never logged or exported).",
    # channels
    "vpc_channels.port": "Default port of members that give none.",
    "vpc_channels.member_type": "`ip` = members are addresses; `ecs` = cloud servers (addressed by `host` here).",
    "vpc_channels.type": "Channel kind.",
    "vpc_channels.members[].host": "Member address.",
    "vpc_channels.members[].weight": "Share of the traffic (weighted strategies).",
    "vpc_channels.members[].is_backup": "Only used when no regular member is healthy.",
    "vpc_channels.vpc_health_config": "Active health checks of the members.",
    # remaining enums, in plain words
    "time_unit": "Unit of the window: `SECOND`, `MINUTE`, `HOUR` or `DAY` (DAY windows follow the UTC calendar).",
    "quotas.time_unit": "Unit of the quota period: `SECOND`, `MINUTE`, `HOUR` or `DAY`.",
    "app_acl_type": "`PERMIT` = the app may call only from the listed IPs; `DENY` = not from them.",
    "app_type": "The vendor's app kind (`apig` or `roma`); no effect here.",
    "creator": "Who created the app in the vendor's console (`USER` or `MARKET`); no effect here.",
    "auth_role": "The vendor's authorization role (`PROVIDER` or `CONSUMER`); no effect here.",
    "auth_tunnel": "The vendor's authorization channel (`NORMAL` or `GREEN`); no effect here.",
    "app_auths.auth_result.status": "Result of the vendor's authorization call; informational.",
    "authorizers.type": "`FRONTEND` = decides whether a caller may call (an `auth_type: AUTHORIZER` API); "
                        "`BACKEND` = obtains credentials for a backend before it is called.",
    "authorizer_type": "`FUNC`: the authorizer is a function (`functions[]` or an HTTP endpoint).",
    "plugins.plugin_type": "`cors` (cross-origin answers), `set_resp_headers` (response headers), `kafka_log` "
                           "(access records to Kafka), `breaker` (circuit breaker), `rate_limit` (throttling "
                           "2.0), `third_auth` (an external authentication service).",
    "sys_param_name": "The system value a `system` condition tests: the request path (`req_path`) or method "
                      "(`req_method`); the camel-case spellings are accepted too.",
    "enable_adaptive_control": "The vendor's adaptive throttling flag; accepted, no effect here.",
    "throttle_bindings.scope": "What the binding limits; only the API scope exists, other values act as 1.",
    "sign_algorithm": "AES variant of an `aes` signature key: `aes-128-cfb` (16-character key) or `aes-256-cfb` "
                      "(32-character key).",
    "iam_credentials.status": "`inactive` credentials are refused.",
    "vpc_channels.vpc_health_config.method": "HTTP method of HTTP(S) health checks: `GET` or `HEAD`.",
    "vpc_channels.vpc_health_config.protocol": "`TCP` = a connection must open; `HTTP`/`HTTPS` = a request to "
                                               "`path` must answer one of `http_code`.",
    "balance_strategy": "How requests are spread over the members.",
    "vpc_channels.members[].status": "A disabled member receives no traffic and is not checked.",
}
