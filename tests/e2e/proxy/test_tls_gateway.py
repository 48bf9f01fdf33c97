"""TLS both ways with a test CA made in the test: HTTPS backends, client certificates, the HTTPS listener."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.compiler import compile_snapshot, validate
from gateway.core.errors import SnapshotError
from gateway.core.settings import Settings
from gateway.model.services import Services
from tests.support.helpers import GROUP_HOST, http_api, mock_api, snapshot
from tests.support.tls_helpers import TestCA, client_ssl, server_ssl


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
async def https_backend(tmp_path) -> AsyncIterator[Callable[..., Any]]:
    servers: list[TestServer] = []

    async def start(ca: TestCA, client_ca: TestCA | None = None) -> tuple[list[dict[str, Any]], str]:
        seen: list[dict[str, Any]] = []

        async def handle(request: web.Request) -> web.Response:
            peer = request.transport.get_extra_info("peercert") if request.transport else None
            seen.append({"path": request.path, "peer": peer})
            return web.json_response({"tls": True, "client_cert": bool(peer)})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        ctx = server_ssl(ca.issue("backend", dns=["localhost"], ips=["127.0.0.1"]), str(tmp_path), "backend",
                         client_ca)
        server = TestServer(app, host="127.0.0.1", ssl=ctx)  # type: ignore[call-arg]
        await server.start_server(ssl=ctx)
        servers.append(server)
        return seen, f"127.0.0.1:{server.port}"

    yield start
    for s in servers:
        await s.close()


def _https_api(addr: str, **extra: Any) -> dict[str, Any]:
    api = http_api("a1", "/tls", addr, backend_uri="/b", **extra)
    api["backend_api"]["req_protocol"] = "HTTPS"
    return api


async def test_https_backend_verified_and_untrusted(make_gateway, client, https_backend, ca, tmp_path) -> None:
    _seen, addr = await https_backend(ca)
    trusted = await make_gateway(snapshot([_https_api(addr)]), backend_ca_file=ca.write(str(tmp_path)))
    async with client.get(f"{trusted.url}/tls") as r:
        assert r.status == 200
        assert (await r.json())["tls"] is True
    untrusted = await make_gateway(snapshot([_https_api(addr)]))  # system store: the test CA is unknown
    async with client.get(f"{untrusted.url}/tls") as r:
        assert r.status == 502
        assert (await r.json())["error_code"] == "APIG.0202"
    unverified = await make_gateway(snapshot([_https_api(addr)]), backend_ssl_verify=False)
    async with client.get(f"{unverified.url}/tls") as r:
        assert r.status == 200


async def test_backend_client_certificate(make_gateway, client, https_backend, ca, tmp_path) -> None:
    client_ca = TestCA("Client CA")
    seen, addr = await https_backend(ca, client_ca)
    issued = client_ca.issue("gateway-client", client=True)
    feature = {"name": "backend_client_certificate", "enable": True,
               "config": {"enable": True, "content": issued.cert_pem, "key": issued.key_pem}}
    ca_file = ca.write(str(tmp_path))
    mtls_api = _https_api(addr)
    mtls_api["backend_api"]["enable_client_ssl"] = True
    gw = await make_gateway(snapshot([mtls_api], features=[feature]), backend_ca_file=ca_file)
    async with client.get(f"{gw.url}/tls") as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["client_cert"] is True
    assert dict(x[0] for x in seen[-1]["peer"]["subject"])["commonName"] == "gateway-client"
    # the same backend without enable_client_ssl: the backend refuses the handshake -> 502
    plain = await make_gateway(snapshot([_https_api(addr)], features=[feature]), backend_ca_file=ca_file)
    async with client.get(f"{plain.url}/tls") as r:
        assert r.status == 502
    # Settings files instead of the feature
    cert_file, key_file = issued.write(str(tmp_path), "gwclient")
    api = _https_api(addr)
    api["backend_api"]["enable_client_ssl"] = True
    files = await make_gateway(snapshot([api]), backend_ca_file=ca_file, backend_client_cert_file=cert_file,
                               backend_client_key_file=key_file)
    async with client.get(f"{files.url}/tls") as r:
        assert r.status == 200


def _problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_snapshot(validate(doc), Services(Settings()))
    except SnapshotError as err:
        return list(err.problems)
    return []


def test_tls_config_validation(ca) -> None:
    api = _https_api("127.0.0.1:1")
    api["backend_api"]["enable_client_ssl"] = True
    assert any("enable_client_ssl: no client certificate configured" in p for p in _problems(snapshot([api])))
    good = ca.issue("a.example", dns=["a.example"])
    other = ca.issue("b.example", dns=["b.example"])
    doc = snapshot([mock_api("m1", "/m")])
    doc["groups"][0]["url_domains"] = [
        {"domain": "a.example", "certificate": good.cert_pem, "private_key": other.key_pem},
        {"domain": "b.example", "certificate": "not a pem", "private_key": other.key_pem},
        {"domain": "c.example", "certificate": good.cert_pem},
        {"domain": "d.example", "certificate": good.cert_pem, "private_key": good.key_pem,
         "verified_client_certificate_enabled": True},
    ]
    problems = _problems(doc)
    assert "groups[0].url_domains[0].private_key: does not match the certificate" in problems
    assert "groups[0].url_domains[1].certificate: is not a PEM certificate chain" in problems
    assert "groups[0].url_domains[2]: certificate and private_key must be given together" in problems
    assert "groups[0].url_domains[3].verified_client_certificate_enabled: needs trusted_root_ca" in problems
    assert not any("PRIVATE KEY" in p for p in problems)


# --- HTTPS listener ---------------------------------------------------------------------------------

async def _https_get(port: int, sni: str, ctx: ssl.SSLContext, host: str | None = None,
                     path: str = "/m") -> tuple[int, bytes, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    peer = writer.get_extra_info("peercert")
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host or sni}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    if not raw:
        raise ConnectionError("connection closed without a response (handshake refused)")
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body, peer


@pytest.fixture
async def https_gateway(make_gateway, ca, tmp_path) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    default_cert, default_key = ca.issue("default.gw", dns=["default.gw"]).write(str(tmp_path), "default")
    a = ca.issue("a.example", dns=["a.example"])
    b = ca.issue("b.example", dns=["b.example"])
    c = ca.issue("c.example", dns=["c.example"])
    client_ca = TestCA("Client CA")
    apis = [mock_api("m1", "/m", "both"), mock_api("m2", "/https-only", "s", req_protocol="HTTPS"),
            mock_api("m3", "/http-only", "h", req_protocol="HTTP")]
    doc = snapshot(apis)
    doc["groups"][0]["url_domains"] = [
        {"domain": "a.example", "certificate": a.cert_pem, "private_key": a.key_pem, "min_ssl_version": "TLSv1.2"},
        {"domain": "b.example", "certificate": b.cert_pem, "private_key": b.key_pem},
        {"domain": "c.example", "certificate": c.cert_pem, "private_key": c.key_pem,
         "verified_client_certificate_enabled": True, "trusted_root_ca": client_ca.pem},
    ]
    gw = await make_gateway(doc, https_listen="127.0.0.1:0", tls_cert_file=default_cert, tls_key_file=default_key)
    yield gw, {"client_ca": client_ca, "tmp": str(tmp_path)}


def _cn(peer: dict[str, Any]) -> str:
    return str(dict(x[0] for x in peer["subject"])["commonName"])


async def test_https_listener_sni_picks_domain_certificate(https_gateway, ca) -> None:
    gw, _ = https_gateway
    port = gw.gw.https_port
    ctx = client_ssl(ca)  # verifies the chain and the host name
    for name in ("a.example", "b.example"):
        status, body, peer = await _https_get(port, name, ctx)
        assert status == 200 and body == b"both"
        assert _cn(peer) == name
    # an unknown name gets the default certificate
    ctx_nocheck = client_ssl(ca)
    ctx_nocheck.check_hostname = False
    _status, _body, peer = await _https_get(port, "zzz.example", ctx_nocheck, host=GROUP_HOST)
    assert _cn(peer) == "default.gw"


async def test_client_certificate_verification_per_domain(https_gateway, ca) -> None:
    gw, extra = https_gateway
    port = gw.gw.https_port
    status, body, _ = await _https_get(port, "c.example", client_ssl(ca))
    assert status == 400 and b"APIG.0205" in body
    issued = extra["client_ca"].issue("caller", client=True)
    with_cert = client_ssl(ca, issued, extra["tmp"])
    status, body, _ = await _https_get(port, "c.example", with_cert)
    assert status == 200 and body == b"both"
    # reaching c.example through another SNI name (whose context did not verify a certificate) fails
    status, body, _ = await _https_get(port, "b.example", client_ssl(ca), host="c.example")
    assert status == 400 and b"APIG.0205" in body
    # a certificate from an untrusted CA is refused in the handshake
    stranger = TestCA("Stranger").issue("stranger", client=True)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        await _https_get(port, "c.example", client_ssl(ca, stranger, extra["tmp"]))
    # domains without verification still work
    status, _, _ = await _https_get(port, "b.example", client_ssl(ca))
    assert status == 200


async def test_req_protocol_enforced(https_gateway, ca) -> None:
    gw, _ = https_gateway
    port = gw.gw.https_port
    ctx = client_ssl(ca)
    status, body, _ = await _https_get(port, "b.example", ctx, path="/https-only")
    assert status == 200 and body == b"s"
    status, body, _ = await _https_get(port, "b.example", ctx, path="/http-only")
    assert status == 400 and b"APIG.0607" in body and b"The following protocol is supported: HTTP" in body
    async with aiohttp.ClientSession(headers={"Host": "b.example"}) as s:
        async with s.get(f"{gw.url}/https-only") as r:
            assert r.status == 400
            doc = await r.json()
            assert doc["error_code"] == "APIG.0607"
            assert doc["error_msg"] == "The following protocol is supported: HTTPS"
        async with s.get(f"{gw.url}/http-only") as r:
            assert r.status == 200
        async with s.get(f"{gw.url}/m") as r:
            assert r.status == 200


async def test_https_listener_follows_snapshot_swaps(https_gateway, ca) -> None:
    gw, _ = https_gateway
    new_cert = ca.issue("new.example", dns=["new.example"])
    doc = snapshot([mock_api("m1", "/m", "swapped")])
    doc["groups"][0]["url_domains"] = [{"domain": "new.example", "certificate": new_cert.cert_pem,
                                        "private_key": new_cert.key_pem}]
    gw.gw.apply_document(doc)
    status, body, peer = await _https_get(gw.gw.https_port, "new.example", client_ssl(ca))
    assert status == 200 and body == b"swapped" and _cn(peer) == "new.example"
