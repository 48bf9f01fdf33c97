"""app_credentials: with a credential mode on, APP APIs drop the credential headers before forwarding."""

from __future__ import annotations

from multidict import CIMultiDict

from gateway.model.plan import BackendRequest
from gateway.pipeline.stages.app_credentials import USED_KEY
from tests.support.auth_helpers import app
from tests.support.helpers import http_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of


async def test_api_key_mode_identifies_and_strips() -> None:
    doc = snapshot([http_api("a", "/a", "127.0.0.1:9", auth_type="APP"), http_api("n", "/n", "127.0.0.1:9")],
                   apps=[app("app1")], features=[{"name": "app_api_key", "enable": True, "config": {"enable": True}}])
    rt = compile_doc(doc)
    ep = endpoint(rt, "a")
    assert len(ep.backend.request_hooks) == 1 and endpoint(rt, "n").backend.request_hooks == ()
    auth = stage_of(ep, "app_auth")
    assert auth is not None
    ctx = request_context(rt, headers={"apikey": "app_key_0001"}, api_id="a")
    assert await run_stage(auth, ctx) is None and ctx.app_id == "app1"
    assert ctx.extras.get(USED_KEY)
    breq = BackendRequest(method="GET", path="/a", query=[], headers=CIMultiDict({"apikey": "app_key_0001"}),
                          body=b"")
    ep.backend.request_hooks[0](ctx, breq)
    assert "apikey" not in breq.headers
