"""Security regressions: admin listener exposure and outbound clients that must never follow redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.core.settings import load_settings
from gateway.process.server import Gateway
from tests.support.auth_helpers import auth_api, call
from tests.support.helpers import mock_api, snapshot


def _gateway(**overrides: Any) -> Gateway:
    settings = load_settings({"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", **overrides}, environ={})
    gw = Gateway(settings)
    gw.apply_document(snapshot([mock_api("a1", "/one")]))
    return gw


async def test_start_refuses_public_admin_address_without_token() -> None:
    gw = _gateway(admin_listen="0.0.0.0:0")
    with pytest.raises(SystemExit):
        await gw.start()
    assert gw.public_port is None  # refused before any socket opened
    await gw.stop()
    gw = _gateway()  # a worker/embedder passing its own admin address is checked too
    with pytest.raises(SystemExit):
        await gw.start(admin="0.0.0.0:0")
    assert gw.public_port is None
    await gw.stop()


async def test_admin_address_passed_to_start_decides_whether_token_is_required() -> None:
    """settings.admin_listen is loopback, but the address actually bound is not: the token is required."""
    gw = _gateway(admin_token="s3cr3t-admin-token")
    await gw.start(admin="0.0.0.0:0")
    try:
        base = f"http://127.0.0.1:{gw.admin_port}"
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/healthz") as r:
                assert r.status == 200  # probes need no secret
            async with s.get(base + "/readyz") as r:
                assert r.status == 401
                assert "s3cr3t" not in await r.text()
            async with s.get(base + "/v1/snapshot", headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with s.get(base + "/readyz", headers={"Authorization": "Bearer s3cr3t-admin-token"}) as r:
                assert r.status == 200
    finally:
        await gw.stop()


async def test_admin_api_is_not_served_on_the_public_listener(make_gateway, client) -> None:
    gw = await make_gateway(snapshot([mock_api("a1", "/one")]), admin_token="tok-xyz")
    for path in ("/v1/snapshot", "/metrics", "/readyz", "/healthz", "/v2/projects/default/apigw/instances"):
        async with client.get(gw.url + path, headers={"Authorization": "Bearer tok-xyz"}) as r:
            assert r.status == 404, path
            assert "apis" not in await r.text()


class Redirector:
    """A real endpoint that answers every call with a redirect to a second server, which records hits."""

    def __init__(self) -> None:
        self.target_hits: list[dict[str, str]] = []

    async def target(self, request: web.Request) -> web.Response:
        self.target_hits.append(dict(request.headers))
        return web.json_response({"token": {"user": {"id": "u-evil", "name": "evil",
                                                     "domain": {"id": "d", "name": "d"}}}})


@pytest.fixture
async def redirector() -> AsyncIterator[tuple[Redirector, str]]:
    red = Redirector()
    target_app = web.Application()
    target_app.router.add_route("*", "/{tail:.*}", red.target)
    target = TestServer(target_app, host="127.0.0.1")
    await target.start_server()

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{target.port}/stolen")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield red, f"http://127.0.0.1:{server.port}/v3/auth/tokens"
    await server.close()
    await target.close()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_iam_remote_verifier_never_follows_redirects(make_gateway, echo_backend, client, redirector,
                                                           method: str) -> None:
    _backend, addr = echo_backend
    red, url = redirector
    gw = await make_gateway(snapshot([auth_api("i1", "/me", addr, auth_type="IAM")]), iam_remote_url=url,
                            iam_remote_method=method)
    st, body, _ = await call(client, gw.url, "GET", "/me", headers={"X-Auth-Token": "caller-token-123"})
    assert (st, body["error_code"]) == (503, "APIG.0613")
    assert red.target_hits == []  # the caller's token never travelled to the redirect target


async def test_backend_redirect_is_relayed_not_followed(make_gateway, client, redirector) -> None:
    from tests.support.helpers import http_api

    red, url = redirector
    addr = url.split("/")[2]
    for upstream in ("fast", "aiohttp"):
        gw = await make_gateway(snapshot([http_api("r1", "/r", addr)]), upstream_client=upstream)
        async with client.get(gw.url + "/r", allow_redirects=False) as r:
            assert r.status == 302
    assert red.target_hits == []
