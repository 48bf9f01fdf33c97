"""signing plan stage: a bound key becomes a request hook that signs the final backend request."""

from __future__ import annotations

from multidict import CIMultiDict

from gateway.model.plan import BackendRequest
from tests.support.helpers import RELEASE, http_api, mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context

SIGN = {"id": "s1", "name": "sign_one", "sign_type": "basic", "sign_key": "gwuser", "sign_secret": "p@ss-word1"}


def _doc(**extra: object) -> dict:
    return snapshot([http_api("a", "/a", "127.0.0.1:9"), http_api("b", "/b", "127.0.0.1:9"), mock_api("m", "/m")],
                    signs=[SIGN], sign_bindings=[{"id": "b1", "sign_id": "s1", "publish_id": f"p-a-{RELEASE}"},
                                                 {"id": "b2", "sign_id": "s1", "publish_id": f"p-m-{RELEASE}"}],
                    **extra)


async def test_bound_http_backend_is_signed_last() -> None:
    rt = compile_doc(_doc())
    hooks = endpoint(rt, "a").backend.request_hooks
    assert len(hooks) == 1
    assert endpoint(rt, "b").backend.request_hooks == ()  # not bound
    assert endpoint(rt, "m").backend.request_hooks == ()  # MOCK backends are not signed
    breq = BackendRequest(method="GET", path="/a", query=[], headers=CIMultiDict(), body=b"")
    res = hooks[0](request_context(rt, api_id="a"), breq)
    if res is not None:
        await res
    assert breq.headers["Authorization"] == "Basic Z3d1c2VyOnBAc3Mtd29yZDE="


async def test_public_key_endpoint_is_a_pre_route_table() -> None:
    plain = compile_doc(_doc())
    assert plain.pre_route == ()  # nothing per request without the feature
    rt = compile_doc(_doc(features=[{"name": "public_key", "enable": True, "config": {}}]))
    assert len(rt.pre_route) == 1
    ctx = request_context(rt, "GET", "/apigw/authadv/v2/public-key/s1")
    import pytest

    from gateway.core.errors import GatewayError

    with pytest.raises(GatewayError) as exc:  # s1 is a basic key: no public key to serve
        rt.pre_route[0](ctx)
    assert exc.value.status == 404
    assert rt.pre_route[0](request_context(rt, "GET", "/other")) is None
