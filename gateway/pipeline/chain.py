"""Import every feature module so that it registers its stages, checks and targets.

Role: start-up only. Each module below registers itself with the registries of
:mod:`gateway.pipeline.spec`, :mod:`gateway.snapshot.validate` and :mod:`gateway.model.runtime` when
imported; this is the one place that lists them. (Admin routes are listed in :mod:`gateway.control.app`.)
"""

from __future__ import annotations

import gateway.backends.channels.upstream  # VPC channels: schema, checks, balancer, health checks
import gateway.backends.function
import gateway.backends.grpc  # GRPC backends (HTTP/2 relay)
import gateway.backends.invokers
import gateway.model.runtime
import gateway.observe.accesslog  # JSON access log completion hook
import gateway.observe.kafka_log  # kafka_log plug-in: records shipped after the response
import gateway.observe.metrics  # Prometheus metrics completion hook (the process mounts /metrics)
import gateway.pipeline.stages.acl
import gateway.pipeline.stages.app_auth
import gateway.pipeline.stages.auth_checks
import gateway.pipeline.stages.authorizer
import gateway.pipeline.stages.backend_policy  # backend-policy conditions
import gateway.pipeline.stages.client_ip
import gateway.pipeline.stages.https_redirect  # plain HTTP on a domain with is_http_redirect_to_https (pre-route)
import gateway.pipeline.stages.iam
import gateway.pipeline.stages.plugins  # cors, set_resp_headers, breaker, third_auth plug-ins
import gateway.pipeline.stages.signing
import gateway.pipeline.stages.throttling.stage  # throttling and credential quotas (order 70), /v1/throttling
import gateway.pipeline.stages.tls
import gateway.snapshot.grpc  # noqa: F401  (each module registers itself; auth: ACLs, APP/IAM auth; signing; tls)


def load_all() -> None:
    """Importing this module is the work; the function makes the intent explicit at call sites."""
    return None
