"""App-credential modes switched on by gateway features (app_api_key, app_basic, app_secret, app_jwt,
app_token) end to end: real gateways (in-process and as 2 processes), real echo backend, real Redis for
refresh tokens spent on every node."""

from __future__ import annotations

import base64
import hashlib
import signal
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.core.errors import SnapshotError
from gateway.pipeline.stages.app_tokens import ACCESS, mint
from gateway.pipeline.stages.apps import App
from tests.conftest import free_port
from tests.support.auth_helpers import APP_KEY, APP_SECRET, app, auth_api, call, error_of, grant
from tests.support.cluster_helpers import GatewayProcess, ready_version, wait_for, write_doc
from tests.support.helpers import snapshot
from tests.support.throttle_helpers import binding, policy

TOKEN_URI = "/v1/apigw/oauth2/token"


def feature(name: str, config: Any = "on", enable: bool = True) -> dict[str, Any]:
    return {"name": name, "enable": enable, "config": config}


def _doc(backend: str, features: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    apis = [auth_api("a1", "/orders", backend, method="ANY"), auth_api("a2", "/other", backend)]
    kw.setdefault("apps", [app("app1"), app("app2", key="second_key_02", secret="second_secret_02"),
                           app("app3", key="frozen_key_03", secret="frozen_secret_03", status=2)])
    kw.setdefault("app_auths", [grant("app1", "a1"), grant("app2", "a1"), grant("app3", "a1")])
    return snapshot(apis, features=features, **kw)


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def jwt_headers(key: str = APP_KEY, secret: str = APP_SECRET, stamp: str | None = None,
                header: str = "Authorization") -> dict[str, str]:
    stamp = stamp or str(int(time.time() * 1000))
    return {"X-HW-ID": key, "Timestamp": stamp, header: hashlib.sha256(f"{key}{secret}{stamp}".encode()).hexdigest()}


async def token(client: aiohttp.ClientSession, base: str, **form: str) -> tuple[int, dict[str, Any]]:
    async with client.post(base + TOKEN_URI, data=form) as r:
        return r.status, await r.json()


async def test_modes_off_by_default(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    gw = await make_gateway(_doc(addr, []))
    for headers in ({"apikey": APP_KEY}, {"Authorization": basic(APP_KEY, APP_SECRET)},
                    {"X-HW-ID": APP_KEY, "X-HW-AppKey": APP_SECRET}, jwt_headers()):
        st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=headers)
        assert st == 401 and error_of(doc)[0] == "APIG.0303", (headers, doc)
    async with client.post(gw.url + TOKEN_URI, data={"grant_type": "client_credentials"}) as r:
        assert r.status == 404  # no token endpoint without the feature
    assert backend.hits == 0


async def test_api_key_basic_secret_and_jwt(make_gateway, echo_backend, client) -> None:
    backend, addr = echo_backend
    feats = [feature("app_api_key"), feature("app_basic", '{"enable": true}'), feature("app_jwt", {"enable": True})]
    gw = await make_gateway(_doc(addr, feats))
    cases = [({"apikey": APP_KEY}, "app1"), ({"Authorization": basic("second_key_02", "second_secret_02")}, "app2"),
             (jwt_headers(), "app1")]
    for headers, who in cases:
        st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=headers)
        assert st == 200, (headers, doc)
        assert doc["headers"]["X-Ctx-App-Id"] == who
        sent = {k.lower() for k in doc["headers"]}
        assert not sent & {"apikey", "authorization", "x-hw-id", "timestamp"}, sent  # credentials not forwarded
    # wrong credentials: 401 APIG.0303, and the secret never appears in the answer
    for headers in ({"apikey": "nope-nope-nope"}, {"Authorization": basic(APP_KEY, "wrong_secret_99")},
                    {"Authorization": "Basic !!!"}, jwt_headers(secret="wrong_secret_99"),
                    jwt_headers(stamp=str(int(time.time() * 1000) - 3_600_000))):
        st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=headers)
        assert st == 401 and error_of(doc)[0] == "APIG.0303", (headers, doc)
        assert "wrong_secret_99" not in str(doc) and APP_SECRET not in str(doc)
    # same app checks as the signature: frozen app, app not authorized for the API
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers={"apikey": "frozen_key_03"})
    assert st == 405 and error_of(doc)[0] == "APIG.0502"
    st, doc, _ = await call(client, gw.url, "GET", "/other", headers={"apikey": APP_KEY})
    assert st == 403 and error_of(doc)[0] == "APIG.0304"
    assert backend.hits == 3


async def test_app_secret_mode_and_custom_jwt_header(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    feats = [feature("app_secret"), feature("app_jwt", {"enable": True, "auth_header": "X-Jwt"})]
    gw = await make_gateway(_doc(addr, feats))
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers={"X-HW-ID": APP_KEY, "X-HW-AppKey": APP_SECRET})
    assert st == 200 and doc["headers"]["X-Ctx-App-Id"] == "app1"
    assert "X-HW-AppKey" not in doc["headers"] and "x-hw-appkey" not in doc["headers"]
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers={"X-HW-ID": APP_KEY, "X-HW-AppKey": "bad"})
    assert st == 401
    st, doc, _ = await call(client, gw.url, "GET", "/orders", headers=jwt_headers(header="X-Jwt"))
    assert st == 200 and doc["headers"]["X-Ctx-App-Id"] == "app1"


async def test_modes_feed_quotas_and_app_throttling(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    doc = _doc(addr, [feature("app_api_key")], throttles=[policy("t1", 100, app=2, unit="MINUTE")],
               throttle_bindings=[binding("t1", "a1")])
    gw = await make_gateway(doc, throttle_default_api_limit=0)
    got = [(await call(client, gw.url, "GET", "/orders", headers={"apikey": APP_KEY}))[0] for _ in range(3)]
    assert got == [200, 200, 429]


@pytest.mark.parametrize(("feats", "reason"), [
    ([feature("app_token", {"enable": True, "app_token_expire_time": 0})],
     "features[0].config.app_token_expire_time: must be 1..72000"),
    ([feature("app_token", {"enable": True, "app_token_uri": "token"})],
     "features[0].config.app_token_uri: must be an absolute path"),
    ([feature("app_jwt", {"enable": True, "auth_header": "bad header"})],
     "features[0].config.auth_header: must be a header name"),
    ([feature("app_api_key"), feature("app_secret")], "app_secret authentication needs app_api_key to be off"),
])
async def test_bad_feature_config_rejected(make_gateway, feats: list[dict[str, Any]], reason: str) -> None:
    with pytest.raises(SnapshotError) as exc:
        await make_gateway(_doc("127.0.0.1:9", feats))
    assert any(reason in p for p in exc.value.problems), exc.value.problems


async def test_app_token_endpoint_bearer_refresh_and_push(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    feats = [feature("app_token", {"enable": True, "app_token_expire_time": 600, "refresh_token_expire_time": 900,
                                   "app_token_key": "tok-key-0123456789abcdef"})]
    doc = _doc(addr, feats)
    gw = await make_gateway(doc)
    async with client.get(gw.admin_url + "/v1/snapshot") as r:
        assert r.status == 200 and "tok-key-0123456789abcdef" not in await r.text()  # masked like a secret
    st, tok = await token(client, gw.url, grant_type="client_credentials", client_id=APP_KEY,
                          client_secret=APP_SECRET)
    assert st == 200 and tok["token_type"] == "Bearer" and tok["expires_in"] == 600
    assert tok["refresh_expires_in"] == 900
    bearer = {"Authorization": f"Bearer {tok['access_token']}"}
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=bearer)
    assert st == 200 and body["headers"]["X-Ctx-App-Id"] == "app1" and "Authorization" not in body["headers"]
    # client authentication as HTTP Basic works too; bad client -> 401 invalid_client
    async with client.post(gw.url + TOKEN_URI, data={"grant_type": "client_credentials"},
                           headers={"Authorization": basic("second_key_02", "second_secret_02")}) as r:
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    st, err = await token(client, gw.url, grant_type="client_credentials", client_id=APP_KEY, client_secret="x")
    assert st == 401 and err["error"] == "invalid_client" and err["error_code"] == "APIG.2201"
    st, err = await token(client, gw.url, grant_type="password", client_id=APP_KEY, client_secret=APP_SECRET)
    assert st == 400 and err["error"] == "unsupported_grant_type" and err["error_code"] == "APIG.2209"
    st, err = await token(client, gw.url, client_id=APP_KEY, client_secret=APP_SECRET)
    assert st == 400 and err["error_code"] == "APIG.2210"
    st, err = await token(client, gw.url, grant_type="client_credentials", client_id=APP_KEY)
    assert st == 400 and err["error_code"] == "APIG.2212"
    st, err = await token(client, gw.url, grant_type="refresh_token", client_id=APP_KEY, client_secret=APP_SECRET)
    assert st == 400 and err["error_code"] == "APIG.2213"
    async with client.get(gw.url + TOKEN_URI) as r:
        assert r.status == 405
    # a config push keeps tokens valid
    gw.gw.apply_document(_doc(addr, feats, app_auths=[grant("app1", "a1"), grant("app1", "a2")]))
    st, _body, _ = await call(client, gw.url, "GET", "/other", headers=bearer)
    assert st == 200
    # refresh: a new pair; the used refresh token is spent
    st, tok2 = await token(client, gw.url, grant_type="refresh_token", refresh_token=tok["refresh_token"],
                           client_id=APP_KEY, client_secret=APP_SECRET)
    assert st == 200 and tok2["access_token"] != tok["access_token"]
    st, err = await token(client, gw.url, grant_type="refresh_token", refresh_token=tok["refresh_token"],
                          client_id=APP_KEY, client_secret=APP_SECRET)
    assert st == 400 and err["error"] == "invalid_grant" and err["error_code"] == "APIG.2202"
    # a wrong token, a refresh token used as a bearer: 401
    for value in ("Bearer nope", f"Bearer {tok2['refresh_token']}"):
        st, body, _ = await call(client, gw.url, "GET", "/orders", headers={"Authorization": value})
        assert st == 401 and error_of(body)[0] == "APIG.0303"
    # resetting the app's secret revokes its tokens
    gw.gw.apply_document(_doc(addr, feats, apps=[app("app1", secret="new_secret_0001_xyz")],
                              app_auths=[grant("app1", "a1")]))
    bearer = {"Authorization": f"Bearer {tok2['access_token']}"}
    st, body, _ = await call(client, gw.url, "GET", "/orders", headers=bearer)
    assert st == 401


async def test_refresh_tokens_spent_on_every_node_through_redis(make_gateway, echo_backend, client,
                                                               redis_url: str) -> None:
    """With Redis, a refresh token used on one node is spent on all of them."""
    _backend, addr = echo_backend
    doc = _doc(addr, [feature("app_token", {"enable": True, "app_token_expire_time": 60})])
    prefix = f"t{uuid.uuid4().hex[:8]}"
    gw1 = await make_gateway(doc, redis_url=redis_url, throttle_key_prefix=prefix)
    gw2 = await make_gateway(doc, redis_url=redis_url, throttle_key_prefix=prefix)
    st, tok = await token(client, gw1.url, grant_type="client_credentials", client_id=APP_KEY,
                          client_secret=APP_SECRET)
    assert st == 200
    st, body, _ = await call(client, gw2.url, "GET", "/orders",
                             headers={"Authorization": f"Bearer {tok['access_token']}"})
    assert st == 200 and body["headers"]["X-Ctx-App-Id"] == "app1"
    st, _tok2 = await token(client, gw2.url, grant_type="refresh_token", refresh_token=tok["refresh_token"],
                           client_id=APP_KEY, client_secret=APP_SECRET)
    assert st == 200
    st, err = await token(client, gw1.url, grant_type="refresh_token", refresh_token=tok["refresh_token"],
                          client_id=APP_KEY, client_secret=APP_SECRET)
    assert st == 400 and err["error"] == "invalid_grant"  # spent on the other node


def _versioned(doc: dict[str, Any], version: str) -> dict[str, Any]:
    doc["version"] = version
    return doc


async def test_app_tokens_valid_on_every_process_without_redis(tmp_path: Path, echo_backend, client) -> None:
    """Two gateway processes on the same config file and no Redis: a token issued by one is accepted by the
    other, also after a config push (SIGHUP reload); an expired token is rejected; changing the app's secret
    revokes every token on both."""
    _backend, addr = echo_backend
    feats = [feature("app_token", {"enable": True, "app_token_expire_time": 600, "refresh_token_expire_time": 900})]
    conf = tmp_path / "gw.json"
    write_doc(conf, _versioned(_doc(addr, feats), "v1"))
    ports = [(free_port(), free_port()) for _ in range(2)]
    procs = [GatewayProcess(["--config", str(conf), "--listen", f"127.0.0.1:{port}", "--admin-listen",
                             f"127.0.0.1:{admin}", "--no-access-log"]) for port, admin in ports]
    urls = [f"http://127.0.0.1:{port}" for port, _ in ports]
    admins = [f"http://127.0.0.1:{admin}" for _, admin in ports]

    async def on_version(version: str) -> None:
        for admin in admins:
            await wait_for(lambda a=admin: _is(ready_version(client, a), version), 30)

    async def status(url: str, access: str, path: str = "/orders") -> int:
        st, body, _ = await call(client, url, "GET", path, headers={"Authorization": f"Bearer {access}"})
        assert st != 200 or body["headers"]["X-Ctx-App-Id"] == "app1"
        return st

    try:
        await on_version("v1")
        st, tok = await token(client, urls[0], grant_type="client_credentials", client_id=APP_KEY,
                              client_secret=APP_SECRET)
        assert st == 200
        assert [await status(u, tok["access_token"]) for u in urls] == [200, 200]
        # a refresh token issued by process 1, used at process 2; the new access token works on process 1
        st, tok2 = await token(client, urls[1], grant_type="refresh_token", refresh_token=tok["refresh_token"],
                               client_id=APP_KEY, client_secret=APP_SECRET)
        assert st == 200 and await status(urls[0], tok2["access_token"]) == 200
        # a config push (a new grant) reaches both: the tokens stay valid
        write_doc(conf, _versioned(_doc(addr, feats, app_auths=[grant("app1", "a1"), grant("app1", "a2")]), "v2"))
        for gp in procs:
            gp.signal(signal.SIGHUP)
        await on_version("v2")
        for u in urls:
            assert await status(u, tok["access_token"], "/other") == 200
            assert await status(u, tok2["access_token"]) == 200
        # the documented format: a token made with the app's secret is accepted, unless it has expired
        registry_app = App(id="app1", name="app_app1", key=APP_KEY, secret=APP_SECRET, status=1)
        assert await status(urls[1], mint(registry_app, ACCESS, 600)) == 200
        expired = mint(registry_app, ACCESS, 600, now=time.time() - 601)
        assert [await status(u, expired) for u in urls] == [401, 401]
        # changing the app's secret revokes every token, on every process
        write_doc(conf, _versioned(_doc(addr, feats, apps=[app("app1", secret="new_secret_0001_xyz")],
                                        app_auths=[grant("app1", "a1")]), "v3"))
        for gp in procs:
            gp.signal(signal.SIGHUP)
        await on_version("v3")
        for u in urls:
            for access in (tok["access_token"], tok2["access_token"]):
                st, body, _ = await call(client, u, "GET", "/orders", headers={"Authorization": f"Bearer {access}"})
                assert st == 401 and error_of(body)[0] == "APIG.0303"
        st, err = await token(client, urls[0], grant_type="refresh_token", refresh_token=tok2["refresh_token"],
                              client_id=APP_KEY, client_secret="new_secret_0001_xyz")
        assert st == 400 and err["error"] == "invalid_grant"
        st, tok3 = await token(client, urls[1], grant_type="client_credentials", client_id=APP_KEY,
                               client_secret="new_secret_0001_xyz")
        assert st == 200 and await status(urls[0], tok3["access_token"]) == 200
        for gp in procs:  # no token ever reaches the logs
            assert tok["access_token"] not in gp.log_text() and tok["refresh_token"] not in gp.log_text()
    finally:
        for gp in procs:
            gp.stop()


async def _is(value: Awaitable[str | None], expected: str) -> bool:
    return await value == expected
