"""Import every feature module so that it registers its stages, checks, targets and admin routes.

Role: start-up only. Each module below registers itself with the registries of
:mod:`gateway.stages`, :mod:`gateway.snapshot.validate`, :mod:`gateway.runtime` and
:mod:`gateway.admin` when imported; this is the one place that lists them.
"""

from __future__ import annotations

import gateway.accesslog  # JSON access log completion hook
import gateway.admin_snapshot  # PUT/GET /v1/snapshot
import gateway.admin_v2  # the vendor's v2 management paths
import gateway.auth.acl
import gateway.auth.app_auth
import gateway.auth.checks
import gateway.auth.client_ip
import gateway.auth.iam
import gateway.authorizers
import gateway.backend_policies  # backend-policy conditions
import gateway.backends.function
import gateway.channels.admin  # GET /v1/channels/health
import gateway.channels.upstream  # VPC channels: schema, checks, balancer, health checks
import gateway.functions
import gateway.metrics  # Prometheus /metrics, completion hook
import gateway.openapi_admin  # Swagger/OpenAPI import and export (admin + CLI)
import gateway.plugins  # cors, set_resp_headers, breaker, third_auth plug-ins
import gateway.runtime
import gateway.signing
import gateway.throttling.stage  # throttling and credential quotas (order 70), /v1/throttling
import gateway.tls  # noqa: F401  (each module registers itself; auth: ACLs, APP/IAM auth; signing; tls)


def load_all() -> None:
    """Importing this module is the work; the function makes the intent explicit at call sites."""
    return None
