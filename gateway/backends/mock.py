"""MOCK backends: answer with the configured ``result_content`` without calling anything.

Role in the pipeline: the terminal step for ``backend_type`` MOCK (and ``policy_mocks``). The body,
status (``status_code``, 200 by default; the vendor's ``mock_status_code_and_header`` feature) and
headers are prepared at config-load time; the Content-Type is ``application/json`` (what the vendor's own
mock example answers, even for a body such as ``mock success``) unless a configured header sets it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.model.answer import dynamic_lines, preset_head
from gateway.model.context import set_latency_headers
from gateway.model.plan import BackendPlan, BackendRequest

if TYPE_CHECKING:
    from gateway.model.context import RequestContext


MOCK_CONTENT_TYPE = "application/json"


class MockTarget:
    kind = "MOCK"
    __slots__ = ("body", "content_type", "headers", "preset", "status")

    def __init__(self, info: dict[str, Any]) -> None:
        content = info.get("result_content") or ""
        self.body = content.encode()
        self.status = int(info.get("status_code") or 200)
        listed = info.get("headers")
        self.headers = tuple((h["key"], h["value"]) for h in listed) if listed else ()
        ctype = next((v for k, v in self.headers if k.lower() == "content-type"), None) if listed else None
        self.content_type = ctype if ctype is not None else MOCK_CONTENT_TYPE
        # the answer's fixed head, serialised now (None when this answer cannot be preset: gateway.model.answer)
        self.preset = preset_head(self.status, (("Content-Type", self.content_type), *self.headers), self.body)

    async def invoke(self, ctx: RequestContext, breq: BackendRequest | None, plan: BackendPlan
                     ) -> web.StreamResponse:
        preset = self.preset
        if preset is not None and ctx.preset_ok and ctx.method != "HEAD":
            ep = ctx.endpoint
            if ep is None or not ep.response_hooks:
                dynamic = dynamic_lines(ctx, preset.names)
                if dynamic is not None:
                    ctx.status = self.status
                    ctx.bytes_sent = len(self.body)
                    # only the HTTP/1 listener gets one (ctx.preset_ok); whatever wraps a target reads .status
                    return preset.answer(dynamic)  # type: ignore[return-value]
        resp = web.Response(status=self.status, body=self.body)
        h = resp.headers
        h["Content-Type"] = self.content_type
        for k, v in self.headers:
            h[k] = v
        h.update(ctx.response_headers)
        h["X-Request-Id"] = ctx.request_id
        set_latency_headers(ctx, h)
        ctx.status = self.status
        ctx.bytes_sent = len(self.body)
        return resp
