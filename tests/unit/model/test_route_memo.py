"""Runtime.route remembers what it found per (Host, X-Stage, method, path): a repeated request skips the host
parsing and the route search, gets the same answer (its own path parameter dict), and a preflight, an unknown
path or a new snapshot never reuses a remembered answer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.compiler import build_runtime
from gateway.core.errors import GatewayError
from gateway.core.settings import load_settings
from gateway.model import runtime as runtime_module
from gateway.model.context import RequestContext
from gateway.model.services import Services
from tests.support.helpers import GROUP_HOST, mock_api, snapshot


def compiled() -> Any:
    doc = snapshot([mock_api("a", "/users/{id}"), mock_api("b", "/static"),
                    mock_api("c", "/static", method="POST", cors=True)], envs=["TEST"], publish_in=["env-test"])
    return build_runtime(doc, Services(load_settings({})))


def ctx_for(runtime: Any, method: str, path: str, **headers: str) -> RequestContext:
    h = CIMultiDictProxy(CIMultiDict({"Host": f"{GROUP_HOST}:8080", **headers}))
    request = SimpleNamespace(method=method, path=path, query={}, headers=h, host=h["Host"])
    return RequestContext(request, "rid", runtime, "127.0.0.1", 1024)  # type: ignore[arg-type]


def routed(ctx: RequestContext) -> tuple[Any, ...]:
    return (ctx.host, ctx.group, ctx.env_id, ctx.env_name, ctx.endpoint, ctx.path_params, ctx.path_suffix)


def test_a_repeated_request_is_routed_from_memory_with_the_same_result() -> None:
    rt = compiled()
    first = ctx_for(rt, "GET", "/users/7")
    ep = rt.route(first)
    assert len(rt.routes) == 1 and first.path_params == {"id": "7"} and first.host == GROUP_HOST
    first.path_params["id"] = "changed"  # a stage may edit its own copy
    again = ctx_for(rt, "GET", "/users/7")
    assert rt.route(again) is ep
    assert routed(again) == (GROUP_HOST, first.group, first.env_id, first.env_name, ep, {"id": "7"}, "")
    staged = ctx_for(rt, "GET", "/users/7", **{"X-Stage": "test"})  # another environment: another entry
    assert rt.route(staged) is not ep and staged.env_name == "TEST" and len(rt.routes) == 2
    assert rt.route(ctx_for(rt, "GET", "/users/7", **{"X-Stage": "test"})) is staged.endpoint


def test_failures_and_preflights_are_not_remembered() -> None:
    rt = compiled()
    for method, path, headers in (("GET", "/nothing", {}), ("DELETE", "/static", {}),
                                  ("GET", "/static", {"X-Stage": "nope"})):
        with pytest.raises(GatewayError):
            rt.route(ctx_for(rt, method, path, **headers))
    rt.route(ctx_for(rt, "OPTIONS", "/static", **{"Access-Control-Request-Method": "POST"}))
    assert rt.routes == {}
    plain = ctx_for(rt, "GET", "/static")
    rt.route(plain)
    pre = ctx_for(rt, "OPTIONS", "/static", **{"Access-Control-Request-Method": "POST"})
    assert rt.route(pre) is not plain.endpoint and pre.extras.get("preflight") is True  # routed by the header
    assert compiled().routes == {}  # a new snapshot starts empty


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "_ROUTES_MAX", 3)
    rt = compiled()
    for n in range(10):
        rt.route(ctx_for(rt, "GET", f"/users/{n}"))
        assert 1 <= len(rt.routes) <= 3
