"""Unit-test harness for pipeline stages: compile a snapshot, take one stage, run it on a request context.

No sockets and no server: the snapshot goes through the real validator and compiler (``gateway.compiler``), the
stage is the closure the compiler built, and the request is an aiohttp request object built in memory
(``aiohttp.test_utils.make_mocked_request``: real header/query/URL parsing, no transport).
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.compiler import build_runtime
from gateway.core.errors import GatewayError
from gateway.core.settings import load_settings
from gateway.model.context import RequestContext
from gateway.model.plan import BackendPlan, Stage
from gateway.model.runtime import Endpoint, Runtime
from gateway.model.services import Services
from tests.support.helpers import GROUP_HOST, RELEASE


def compile_doc(doc: dict[str, Any], **settings: Any) -> Runtime:
    """The runtime of ``doc`` (raises SnapshotError like a push would)."""
    return build_runtime(doc, Services(load_settings(settings, environ={})))


def endpoint(runtime: Runtime, api_id: str, env_id: str = RELEASE) -> Endpoint:
    return runtime.endpoints[(api_id, env_id)]


def stage_of(ep: Endpoint, name: str) -> Stage | None:
    """The endpoint stage called ``name`` (None: the compiler built none for this API)."""
    return dict(ep.stages).get(name)


def plan_stage_of(plan: BackendPlan, name: str) -> Stage | None:
    return dict(plan.stages).get(name)


def request_context(runtime: Runtime, method: str = "GET", path: str = "/", *,
                    headers: dict[str, str] | None = None, peer: str = "127.0.0.1", body: bytes | None = None,
                    api_id: str | None = None, env_id: str = RELEASE, max_body: int = 1 << 20) -> RequestContext:
    """A request context as the server makes it, routed to ``api_id`` when given (else left unrouted)."""
    hdrs = CIMultiDict({"Host": GROUP_HOST, **(headers or {})})
    request = make_mocked_request(method, path, headers=hdrs)
    ctx = RequestContext(request, "req-0123456789abcdef", runtime, peer, max_body)
    if body is not None:
        ctx.body = body
    if api_id is not None:
        ep = runtime.endpoints[(api_id, env_id)]
        ctx.endpoint = ep
        ctx.group = runtime.groups[ep.group_id]
        ctx.env_id, ctx.env_name = ep.env_id, ep.env_name
        ctx.host = GROUP_HOST
    return ctx


async def run_stage(stage: Stage, ctx: RequestContext) -> GatewayError | None:
    """Run ``stage``; the GatewayError it ends the request with, or None when the request continues."""
    try:
        waiting = stage(ctx)  # a plain-function stage returns None, an async one an awaitable (as in handle)
        if waiting is not None:
            await waiting
    except GatewayError as err:
        return err
    return None
