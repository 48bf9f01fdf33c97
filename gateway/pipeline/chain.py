"""THE PIPELINE, IN ORDER: the one place that says which stages exist and when each runs.

Role: read by the compiler (:mod:`gateway.compiler`) at config-load time; nothing registers itself anywhere.
It reads like the diagram in docs/architecture.md::

    pre-route (public keys) -> route -> CORS -> ENDPOINT stages -> SELECT backend -> PLAN stages
    -> forward to the target (request hooks per attempt) -> RESPONSE hooks on whatever is sent

Every entry is a builder that returns None where it has nothing to do, so a stage costs nothing on an API
that does not use it. To add a stage: write its module under ``pipeline/stages/`` (schema, check, compile,
run, in that order), then add it to the lists below where it belongs (see CONTRIBUTING.md).
"""

from __future__ import annotations

from gateway.backends import invokers
from gateway.backends.channels import schema as channels
from gateway.pipeline.spec import Chain, PlanStageSpec, ResponseSpec, StageSpec, merge_collections
from gateway.pipeline.stages import (
    acl,
    app_auth,
    app_credentials,
    apps,
    auth_checks,
    authorizer,
    backend_policy,
    breaker,
    client_ip,
    cors,
    https_redirect,
    iam,
    iam_aksk,
    kafka_log,
    params,
    resp_headers,
    signing,
    third_auth,
    tls,
)
from gateway.pipeline.stages.throttling import plugin as rate_limit
from gateway.pipeline.stages.throttling import resources as throttling_resources
from gateway.pipeline.stages.throttling import stage as throttling
from gateway.snapshot import collections, custom_log, grpc, plugins
from gateway.snapshot.validate import Schema

# --- snapshot: core collections refined by the stages that own them, and every stage's check --------------

COLLECTIONS = merge_collections(
    collections.COLLECTIONS,
    acl.COLLECTIONS,
    apps.COLLECTIONS,
    throttling_resources.COLLECTIONS,
    signing.COLLECTIONS,
    authorizer.COLLECTIONS,
    channels.COLLECTIONS,
    plugins.COLLECTIONS,
    iam_aksk.COLLECTIONS,
)

# plug-in type -> its content validator (which compiles the content); other vendor types are refused
PLUGIN_TYPES: dict[str, plugins.Validator] = {
    "breaker": breaker.validate,
    "cors": cors.validate,
    "set_resp_headers": resp_headers.validate,
    "third_auth": third_auth.validate,
    "rate_limit": rate_limit.validate_rate_limit,  # request throttling 2.0: enforced by the throttling stage
    "kafka_log": kafka_log.validate,  # shipped after the response by gateway.observe.kafka_log
}

CHECKS = (
    params.check_system_names,
    channels.check_channels,
    invokers.check_functions,
    invokers.check_function_refs,
    custom_log.check_custom_log,
    auth_checks.check_features,
    acl.check_acls,
    apps.check_apps,
    app_credentials.check_features,
    authorizer.check_authorizers,
    iam_aksk.check_credentials,
    plugins.make_check(PLUGIN_TYPES, (cors.check_methods,)),
    signing.check,
    throttling_resources.check_throttling,
    tls.check,
    grpc.check,
)

# --- request time, in the order a request meets them ------------------------------------------------------

PRE_ROUTE = (  # gateway-owned paths, answered before routing
    https_redirect.build_redirect,  # first: plain HTTP on a domain that redirects to HTTPS answers nothing else
    app_credentials.build_token_endpoint,  # the app_token feature's token endpoint
    signing.build_public_keys,  # the public keys of public_key signatures
)

CORS = cors.build_handler  # the endpoint's CORS handler: preflight answered before any stage

ENDPOINT = (
    StageSpec("client_ip", client_ip.build_client_ip),  # first: every later stage reads ctx.client_ip
    StageSpec("tls", tls.build_tls_stage),  # req_protocol, min TLS version, client certificate
    StageSpec("ip_acl", acl.build_ip_acl),
    StageSpec("app_auth", app_auth.build_app_auth),  # authentication: one of APP / IAM / custom authorizer
    StageSpec("custom_authorizer", authorizer.build_frontend_stage),
    StageSpec("iam_auth", iam.build_iam_auth),
    StageSpec("app_checks", app_auth.build_app_checks),  # app status, app ACL, app authorization
    StageSpec("third_auth", third_auth.build_stage),
    StageSpec("domain_acl", acl.build_domain_acl),  # after IAM: needs the caller's account
    StageSpec("request_parameters", params.build_params_stage),
    StageSpec("throttling", throttling.build_throttle_stage),  # last: only admitted calls count
)

SELECT = backend_policy.compile_policy  # backend selection: the first policy whose conditions hold

PLAN = (
    PlanStageSpec("backend_authorizer", authorizer.apply_backend_authorizer),
    PlanStageSpec("third_auth_headers", third_auth.apply_carry_headers),  # header edits ...
    PlanStageSpec("app_credentials", app_credentials.apply_drop_credentials),
    PlanStageSpec("iam_token", iam.apply_token_policy),
    PlanStageSpec("signing", signing.apply_signing),  # ... then signing, after every header edit
    PlanStageSpec("breaker", breaker.apply_breaker),  # last: it wraps the finished target
)

RESPONSE = (
    ResponseSpec("cors_vary", cors.build_vary_origin),
    ResponseSpec("set_resp_headers", resp_headers.build_hook),
)

LOG = kafka_log.build_log_plugin  # after the response: the bound logging plug-in's plan, for its completion hook

DEFAULT = Chain(schema=Schema(COLLECTIONS, CHECKS), pre_route=PRE_ROUTE, cors=CORS, endpoint=ENDPOINT,
                select=SELECT, plan=PLAN, response=RESPONSE, log=LOG)

__all__ = [
    "CHECKS",
    "COLLECTIONS",
    "DEFAULT",
    "ENDPOINT",
    "LOG",
    "PLAN",
    "PLUGIN_TYPES",
    "PRE_ROUTE",
    "RESPONSE",
    "SELECT",
]
