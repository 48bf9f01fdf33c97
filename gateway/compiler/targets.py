"""Backend kind -> target builder: a plain dict, no registry.

Role in the pipeline: config-load time. The compiler asks ``TARGETS[kind]`` for the target a backend plan
forwards to: ``HTTP``, an :class:`~gateway.backends.http.HttpTarget` over a direct or VPC-channel upstream
(with the client TLS context for HTTPS); ``GRPC``, the HTTP/2 relay; ``MOCK``; ``FUNCTION``. A builder
returns None after appending ``path: reason`` problems. The backends take plain arguments; this module
adapts the draft and the build context to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.backends import function, grpc, tls
from gateway.backends.channels.upstream import ChannelUpstream, build_channel_upstream
from gateway.backends.http import DirectUpstream, HttpTarget, Upstream, parse_host_port
from gateway.backends.mock import MockTarget
from gateway.model.plan import Target
from gateway.pipeline.spec import BuildContext, EndpointDraft, substitute

TargetBuilder = Callable[[dict[str, Any], EndpointDraft, BuildContext, str], Target | None]


def _vpc_upstream(backend: dict[str, Any], build: BuildContext, path: str, scheme: str) -> Upstream | None:
    cache: dict[tuple[str, str | None, str], ChannelUpstream] = build.once("vpc_upstreams", dict)
    return build_channel_upstream(backend, build.index, build.services, build.problems, path, scheme, cache)


def _upstream(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str,
              scheme: str) -> Upstream | None:
    """Where an HTTP or GRPC backend sends its calls: a VPC channel's members, or one ``url_domain`` host:port."""
    if backend.get("vpc_channel_status") == 1:
        return _vpc_upstream(backend, build, path, scheme)
    domain = substitute(str(backend.get("url_domain") or ""), draft.variables)
    try:
        host, port = parse_host_port(domain, scheme)
    except (ValueError, KeyError):
        build.problems.append(f"{path}.url_domain: {domain!r} is not host:port (env {draft.env_name})")
        return None
    return DirectUpstream(host, port, scheme)


def http_target(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str) -> Target | None:
    scheme = "https" if backend.get("req_protocol") == "HTTPS" else "http"
    timeout = min(int(backend.get("timeout") or 5000), build.settings.max_backend_timeout_ms)
    retry = int(backend.get("retry_count", -1) if backend.get("retry_count") not in (None, "") else -1)
    upstream = _upstream(backend, draft, build, path, scheme)
    if upstream is None:
        return None
    ssl_ctx = None
    if scheme == "https":
        ssl_ctx = tls.backend_ssl(backend, build.index, build.settings, build.problems, path)
    return HttpTarget(build.services, scheme, upstream, timeout, retry, ssl_ctx)


def grpc_target(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str) -> Target | None:
    scheme = "http" if backend.get("req_protocol") == "HTTP" else "https"
    timeout = min(int(backend.get("timeout") or 5000), build.settings.max_backend_timeout_ms)
    upstream = _upstream(backend, draft, build, path, scheme)
    if upstream is None:
        return None
    ctx = grpc.client_context(build.services) if scheme == "https" else None
    return grpc.GrpcTarget(build.services, scheme, upstream, timeout, ctx)


def mock_target(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str) -> Target | None:
    return MockTarget(backend)


def function_target(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str) -> Target | None:
    return function.build_function_target(backend, build.index, build.services, build.problems, path,
                                          draft.api.get("is_send_fg_body_base64") is not False)


TARGETS: dict[str, TargetBuilder] = {
    "HTTP": http_target, "GRPC": grpc_target, "MOCK": mock_target, "FUNCTION": function_target,
}
# where each kind keeps its backend record in an API
BACKEND_FIELD = {"HTTP": "backend_api", "GRPC": "backend_api", "MOCK": "mock_info", "FUNCTION": "func_info"}


def policy_lists(kind: str) -> tuple[tuple[str, str], ...]:
    """(policy list field, backend kind) of an API whose default backend is ``kind``."""
    https_kind = "GRPC" if kind == "GRPC" else "HTTP"  # a GRPC API's policies are gRPC backends too
    return (("policy_https", https_kind), ("policy_mocks", "MOCK"), ("policy_functions", "FUNCTION"))
