"""Backend signing end to end: the real gateway signs, a real aiohttp backend verifies with gateway.contrib.verify."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.contrib import verify
from tests.support.helpers import GROUP_HOST, RELEASE, http_api, mock_api, snapshot

HMAC_KEY, HMAC_SECRET = "gw_sign_key1", "Gw-secret_0123456789!@#"


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"method": request.method, "path": request.rel_url.raw_path,
                              "query": list(request.query.items()), "headers": dict(request.headers),
                              "body": body, "verified": request.get(verify.SIGNATURE)})
        return web.json_response({"ok": True, "verified": request.get(verify.SIGNATURE)})


@pytest.fixture
async def signed_backend() -> AsyncIterator[Callable[..., Any]]:
    servers: list[TestServer] = []

    async def start(middleware: Any) -> tuple[Recorder, str]:
        rec = Recorder()
        app = web.Application(middlewares=[middleware] if middleware else [])
        app.router.add_route("*", "/{tail:.*}", rec.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return rec, f"127.0.0.1:{server.port}"

    yield start
    for s in servers:
        await s.close()


def _doc(backend: str, sign: dict[str, Any], *, features: list[dict[str, Any]] | None = None,
         extra_apis: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    apis = [http_api("a1", "/items/{id}", backend, method="ANY", backend_uri="/v1/items/{id}",
                     req_params=[{"name": "id", "location": "PATH", "type": "STRING", "required": 1}],
                     backend_params=[{"name": "id", "location": "PATH", "origin": "REQUEST", "value": "id"}]),
            *(extra_apis or [])]
    doc = snapshot(apis, signs=[sign], sign_bindings=[{"id": "b1", "sign_id": sign["id"],
                                                       "publish_id": f"p-a1-{RELEASE}"}])
    if features:
        doc["features"] = features
    return doc


HMAC_SIGN = {"id": "s1", "name": "sign_one", "sign_type": "hmac", "sign_key": HMAC_KEY, "sign_secret": HMAC_SECRET}


async def test_hmac_signed_request_verifies_in_backend(make_gateway, client, signed_backend) -> None:
    rec, addr = await signed_backend(verify.signature_middleware("hmac", key=HMAC_KEY, secret=HMAC_SECRET))
    gw = await make_gateway(_doc(addr, HMAC_SIGN))
    url = f"{gw.url}/items/a%20b?z=1&a=x%2By&a=2&empty="
    async with client.post(url, data=b'{"n": 1}', headers={"Content-Type": "application/json",
                                                            "Authorization": "caller-token"}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["verified"] == {"kind": "hmac", "key": HMAC_KEY}
    got = rec.requests[-1]
    auth = got["headers"]["Authorization"]
    assert auth.startswith(f"SDK-HMAC-SHA256 Access={HMAC_KEY}, SignedHeaders=content-type;host;x-sdk-date, "
                           "Signature=")
    assert "caller-token" not in auth  # the gateway's value replaced the caller's Authorization
    assert len(got["headers"]["X-Sdk-Date"]) == 16
    # GET without body, and a chunked (streamed) body: both signed over what was sent
    async with client.get(f"{gw.url}/items/7") as r:
        assert r.status == 200

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"abc", b"def" * 1000):
            yield part

    async with client.put(f"{gw.url}/items/8", data=chunks()) as r:
        assert r.status == 200
    assert rec.requests[-1]["body"] == b"abc" + b"def" * 1000


async def test_tampered_requests_fail_verification(make_gateway, client, signed_backend) -> None:
    rec, addr = await signed_backend(None)  # records without checking
    gw = await make_gateway(_doc(addr, HMAC_SIGN))
    async with client.post(f"{gw.url}/items/1?q=1", data=b"payload", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 200
    got = rec.requests[-1]
    args = (got["method"], got["path"], got["query"], got["headers"], got["body"])
    assert verify.verify_hmac(*args, HMAC_KEY, HMAC_SECRET)
    assert not verify.verify_hmac(*args[:4], b"payload!", HMAC_KEY, HMAC_SECRET)  # body changed
    assert not verify.verify_hmac(got["method"], got["path"], [("q", "2")], got["headers"], got["body"],
                                  HMAC_KEY, HMAC_SECRET)  # query changed
    assert not verify.verify_hmac("PUT", *args[1:], HMAC_KEY, HMAC_SECRET)  # method changed
    assert not verify.verify_hmac(got["method"], "/v1/items/2", *args[2:], HMAC_KEY, HMAC_SECRET)  # path
    assert not verify.verify_hmac(*args, HMAC_KEY, "another-secret-0123456")  # wrong secret
    assert not verify.verify_hmac(*args, "other_key", HMAC_SECRET)  # wrong key
    headers = dict(got["headers"], Host="evil.example")
    assert not verify.verify_hmac(*args[:3], headers, got["body"], HMAC_KEY, HMAC_SECRET)  # signed header changed
    assert not verify.verify_hmac(*args, HMAC_KEY, HMAC_SECRET, now=__import__("time").time() + 16 * 60)  # expired
    with pytest.raises(verify.SignatureError, match="signature expired"):
        verify.check_hmac(*args, HMAC_KEY, HMAC_SECRET, now=__import__("time").time() - 16 * 60)

    # a forged request sent straight to a verifying backend is refused
    rec2, addr2 = await signed_backend(verify.signature_middleware("hmac", key=HMAC_KEY, secret=HMAC_SECRET))
    forged = dict(got["headers"])
    forged.pop("Content-Length", None)
    async with aiohttp.ClientSession() as s, s.post(f"http://{addr2}{got['path']}?q=1", data=b"other",
                                                    headers=forged) as r:
        assert r.status == 401
        assert (await r.json())["reason"] == "signature mismatch"
    assert rec2.requests == []


async def test_basic_signature(make_gateway, client, signed_backend) -> None:
    sign = {"id": "s2", "name": "sign_basic", "sign_type": "basic", "sign_key": "gwuser", "sign_secret": "p@ss-word1"}
    _rec, addr = await signed_backend(verify.signature_middleware("basic", key="gwuser", secret="p@ss-word1"))
    gw = await make_gateway(_doc(addr, sign))
    async with client.get(f"{gw.url}/items/1", headers={"Authorization": "Bearer caller"}) as r:
        assert r.status == 200
    expected = "Basic " + base64.b64encode(b"gwuser:p@ss-word1").decode()
    assert _rec.requests[-1]["headers"]["Authorization"] == expected
    assert not verify.verify_basic({"Authorization": expected}, "gwuser", "p@ss-word2")


@pytest.mark.parametrize("algorithm,key", [("aes-128-cfb", "0123456789abcdef"),
                                           ("aes-256-cfb", "0123456789abcdef0123456789ABCDEF")])
async def test_aes_signature(make_gateway, client, signed_backend, algorithm: str, key: str) -> None:
    iv = "iv_+/=abcdefghij"
    sign = {"id": "s3", "name": "sign_aes", "sign_type": "aes", "sign_key": key, "sign_secret": iv,
            "sign_algorithm": algorithm}
    rec, addr = await signed_backend(verify.signature_middleware("aes", key=key, secret=iv, algorithm=algorithm))
    gw = await make_gateway(_doc(addr, sign))
    async with client.post(f"{gw.url}/items/5?x=1", data=b"hello") as r:
        assert r.status == 200, await r.text()
    got = rec.requests[-1]
    token = "SDK-" + algorithm.upper()
    assert got["headers"]["Authorization"].startswith(f"{token} SignedHeaders=content-type;host;x-sdk-date, Signature=")
    # the plaintext is the StringToSign: token, date, hash of the canonical request
    sig = got["headers"]["Authorization"].rsplit("Signature=", 1)[1]
    plain = verify.decrypt_aes(sig, key, iv).decode()
    assert plain.split("\n")[:2] == [token, got["headers"]["X-Sdk-Date"]]
    assert not verify.verify_aes(got["method"], got["path"], got["query"], got["headers"], b"hellO", key, iv,
                                 algorithm)


def _b64_der_pair(private: Any) -> tuple[str, str]:
    pub = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    priv = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return base64.b64encode(pub).decode(), base64.b64encode(priv).decode()


@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_public_key_signature_and_key_endpoint(make_gateway, client, signed_backend, kind: str) -> None:
    private = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    pub_b64, priv_b64 = _b64_der_pair(private)
    sign = {"id": "s4", "name": "sign_pk", "sign_type": "public_key", "sign_key": pub_b64, "sign_secret": priv_b64}
    features = [{"name": "public_key", "enable": True,
                 "config": '{"public_key_uri_prefix": "/apigw/authadv/v2/public-key/"}'}]
    rec, addr = await signed_backend(verify.signature_middleware("public_key", public_key=pub_b64))
    gw = await make_gateway(_doc(addr, sign, features=features))
    async with client.delete(f"{gw.url}/items/9") as r:
        assert r.status == 200, await r.text()
    token = "SDK-RSA-SHA256" if kind == "rsa" else "SDK-ECDSA-SHA256"
    assert rec.requests[-1]["headers"]["Authorization"].startswith(f"{token} Access=s4, SignedHeaders=")
    # the backend can fetch the public key from the gateway; the private key is never served
    async with client.get(f"{gw.url}/apigw/authadv/v2/public-key/s4") as r:
        assert r.status == 200
        doc = await r.json()
        raw = await r.read()
    assert doc["public_key"] == pub_b64 and doc["algorithm"] == token
    assert priv_b64.encode() not in raw
    got = rec.requests[-1]
    assert verify.verify_public_key(got["method"], got["path"], got["query"], got["headers"], got["body"],
                                    doc["public_key_pem"])
    async with client.get(f"{gw.url}/apigw/authadv/v2/public-key/nope") as r:
        assert r.status == 404
        assert (await r.json())["error_code"] == "APIG.0101"


async def test_custom_backend_sign_header(make_gateway, client, signed_backend) -> None:
    mw = verify.signature_middleware("hmac", key=HMAC_KEY, secret=HMAC_SECRET, header="X-Backend-Sign")
    rec, addr = await signed_backend(mw)
    features = [{"name": "custom_auth_header", "enable": True, "config": {"backend_sign_header": "X-Backend-Sign"}}]
    gw = await make_gateway(_doc(addr, HMAC_SIGN, features=features))
    async with client.get(f"{gw.url}/items/3", headers={"Authorization": "Bearer caller"}) as r:
        assert r.status == 200
    got = rec.requests[-1]["headers"]
    assert got["Authorization"] == "Bearer caller"  # forwarded untouched
    assert got["X-Backend-Sign"].startswith("SDK-HMAC-SHA256 Access=")


async def test_only_bound_http_publications_are_signed(make_gateway, client, signed_backend) -> None:
    rec, addr = await signed_backend(None)
    doc = _doc(addr, HMAC_SIGN, extra_apis=[http_api("a2", "/free", addr), mock_api("m1", "/mock", "hi")])
    doc["sign_bindings"].append({"id": "b2", "sign_id": "s1", "publish_id": f"p-m1-{RELEASE}"})
    gw = await make_gateway(doc)
    async with client.get(f"{gw.url}/free") as r:
        assert r.status == 200
    assert "X-Sdk-Date" not in rec.requests[-1]["headers"]
    async with client.get(f"{gw.url}/mock") as r:
        assert r.status == 200 and await r.text() == "hi"


async def test_signing_failure_is_apig_0705(make_gateway, signed_backend) -> None:
    rec, addr = await signed_backend(None)
    gw = await make_gateway(_doc(addr, HMAC_SIGN))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gw.public_port)
    # a Content-Type with a byte that is not UTF-8: the canonical request cannot be encoded
    writer.write(b"GET /items/1 HTTP/1.1\r\nHost: " + GROUP_HOST.encode() +
                 b"\r\nContent-Type: text/\xff\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500"), raw[:200]
    assert b'"error_code":"APIG.0705"' in body.replace(b" ", b"")
    assert b"Backend signature calculation failed." in body
    assert rec.requests == []


def _problems(doc: dict[str, Any]) -> list[str]:
    from gateway.compiler import compile_snapshot, validate
    from gateway.core.errors import SnapshotError
    from gateway.core.settings import Settings
    from gateway.model.services import Services

    try:
        compile_snapshot(validate(doc), Services(Settings()))
    except SnapshotError as err:
        return list(err.problems)
    return []


def test_sign_validation_rules() -> None:
    base = _doc("127.0.0.1:1", HMAC_SIGN)
    assert _problems(base) == []
    bad = [
        ({"sign_type": "hmac", "sign_key": "short", "sign_secret": HMAC_SECRET}, "signs[0].sign_key: must be 8-32"),
        ({"sign_type": "hmac", "sign_key": HMAC_KEY, "sign_secret": "tiny"}, "signs[0].sign_secret: must be 16-64"),
        ({"sign_type": "basic", "sign_key": "1user", "sign_secret": "password1"}, "starting with a letter"),
        ({"sign_type": "aes", "sign_key": "0123456789abcdef", "sign_secret": "0123456789abcdef"},
         "sign_algorithm: is required for sign_type aes"),
        ({"sign_type": "aes", "sign_key": "0123456789abcdef", "sign_secret": "0123456789abcdef",
          "sign_algorithm": "aes-256-cfb"}, "must be exactly 32 characters"),
        ({"sign_type": "aes", "sign_key": "0123456789abcdef", "sign_secret": "0123456789",
          "sign_algorithm": "aes-128-cfb"}, "sign_secret: must be exactly 16 characters"),
        ({"sign_type": "hmac", "sign_key": HMAC_KEY, "sign_secret": HMAC_SECRET, "sign_algorithm": "aes-128-cfb"},
         "sign_algorithm: only allowed for sign_type aes"),
        ({"sign_type": "public_key", "sign_key": "AAAAAAAAAAAA", "sign_secret": "AAAAAAAAAAAAAAAAAAAA"},
         "public_key needs the public_key feature enabled"),
        ({"sign_type": "rot13", "sign_key": HMAC_KEY, "sign_secret": HMAC_SECRET}, "signs[0].sign_type: must be one"),
    ]
    for fields, needle in bad:
        doc = _doc("127.0.0.1:1", {"id": "s1", "name": "sign_one", **fields})
        problems = _problems(doc)
        assert any(needle in p for p in problems), (fields, problems)
        assert not any(HMAC_SECRET in p for p in problems)  # secrets are never echoed
    doc = _doc("127.0.0.1:1", HMAC_SIGN)
    doc["sign_bindings"] += [{"id": "b2", "sign_id": "s1", "publish_id": f"p-a1-{RELEASE}"},
                             {"id": "b3", "sign_id": "nope", "publish_id": "p-x"}]
    problems = _problems(doc)
    assert any(p.startswith("sign_bindings[1].publish_id: publication") and "already has" in p for p in problems)
    assert "sign_bindings[2].sign_id: unknown signature key 'nope'" in problems
    assert any(p.startswith("sign_bindings[2].publish_id: unknown publication 'p-x'") for p in problems)
    pk = {"id": "s1", "name": "sign_one", "sign_type": "public_key", "sign_key": "AAAAAAAAAAAA",
          "sign_secret": "AAAAAAAAAAAAAAAAAAAA"}
    problems = _problems(_doc("127.0.0.1:1", pk, features=[{"name": "public_key", "enable": True, "config": "on"}]))
    assert "signs[0].sign_key: is not a base64 DER (SubjectPublicKeyInfo) public key" in problems
    feat = [{"name": "custom_auth_header", "enable": True, "config": '{"backend_sign_header": "x-sdk-sign"}'}]
    assert any("backend_sign_header" in p for p in _problems(_doc("127.0.0.1:1", HMAC_SIGN, features=feat)))
