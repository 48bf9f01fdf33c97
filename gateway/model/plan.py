"""Shapes shared by every backend kind: the backend plan and the outgoing request.

Role in the pipeline: after the pre-backend stages (auth, validation, throttling) the endpoint picks a
:class:`BackendPlan` (the default backend, or the first backend policy whose conditions hold), runs its
own stages (backend authorizer), builds a :class:`BackendRequest` from the caller's request with the
plan's parameter mapping, lets the plan's request hooks (backend signing) edit it before each attempt,
and hands it to the plan's :class:`Target` which writes the response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import StreamReader, web
from multidict import CIMultiDict

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.pipeline.spec import Stage
    from gateway.pipeline.stages.params import MappingPlan, UriTemplate


@dataclass(slots=True)
class BackendRequest:
    """The request the gateway is about to send to a backend (edited by signing hooks)."""

    method: str
    path: str  # percent-encoded path
    query: list[tuple[str, str]]  # decoded pairs (what signers canonicalise)
    headers: CIMultiDict[str]
    body: bytes | StreamReader | None
    scheme: str = "http"
    host: str = ""  # connect address, filled per attempt by the target
    port: int = 0
    host_header: str = ""
    # the query text as sent: the caller's unmapped parameters verbatim, then the mapped ones encoded
    # (None: encode ``query``)
    query_text: str | None = None

    def query_string(self) -> str:
        if self.query_text is not None:
            return self.query_text
        from urllib.parse import quote

        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.query)

    def body_bytes(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else b""


RequestHook = Callable[["RequestContext", BackendRequest], Awaitable[None] | None]


class Target(Protocol):
    """Something that answers a backend request: an HTTP upstream, a mock, a function."""

    kind: str

    async def invoke(self, ctx: RequestContext, breq: BackendRequest | None, plan: BackendPlan
                     ) -> web.StreamResponse:
        ...


@dataclass(slots=True)
class BackendPlan:
    """One backend (the API's default or one policy's) compiled for one environment."""

    name: str  # "default" or the policy name
    target: Target
    mapping: MappingPlan
    uri: UriTemplate | None
    method: str  # backend method; "ANY" keeps the caller's
    stages: tuple[tuple[str, Stage], ...] = ()
    request_hooks: list[RequestHook] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
