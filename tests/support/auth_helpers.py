"""Helpers for the authentication / access-control tests: snapshot pieces and a signing client."""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from gateway.lib.sdk_signer import sign_request
from tests.support.helpers import GROUP_HOST, RELEASE, http_api

APP_KEY = "app_key_0001"
APP_SECRET = "app_secret_0001_xyz"
APP_CODE = "A" * 32 + "b/c+d=e" + "9" * 32  # 71 chars, base64-like

CONTEXT_PARAMS = [
    {"origin": "SYSTEM", "name": "X-Ctx-App-Id", "location": "HEADER", "value": "$context.appId"},
    {"origin": "SYSTEM", "name": "X-Ctx-App-Name", "location": "HEADER", "value": "$context.appName"},
    {"origin": "SYSTEM", "name": "X-Ctx-User-Id", "location": "HEADER", "value": "$context.userId"},
    {"origin": "SYSTEM", "name": "X-Ctx-Source-Ip", "location": "HEADER", "value": "$context.sourceIp"},
]


def auth_api(api_id: str, uri: str, backend: str, auth_type: str = "APP", **extra: Any) -> dict[str, Any]:
    """An HTTP API with ``auth_type`` whose backend receives $context.appId/appName/userId/sourceIp."""
    extra.setdefault("backend_params", CONTEXT_PARAMS)
    return http_api(api_id, uri, backend, auth_type=auth_type, **extra)


def app(app_id: str = "app1", key: str = APP_KEY, secret: str = APP_SECRET, **extra: Any) -> dict[str, Any]:
    rec = {"id": app_id, "name": f"app_{app_id}", "app_key": key, "app_secret": secret, "status": 1}
    rec.update(extra)
    return rec


def grant(app_id: str, api_id: str, env_id: str = RELEASE, auth_id: str | None = None) -> dict[str, Any]:
    return {"id": auth_id or f"auth-{app_id}-{api_id}-{env_id}", "app_id": app_id, "api_id": api_id,
            "env_id": env_id}


def signed_headers(method: str, path_qs: str, body: bytes = b"", key: str = APP_KEY, secret: str = APP_SECRET,
                   headers: dict[str, str] | None = None, date: str | None = None) -> dict[str, str]:
    """Headers of a request to ``http://GROUP_HOST<path_qs>`` signed like the vendor SDK."""
    hdrs = {"Host": GROUP_HOST, **(headers or {})}
    return sign_request(key, secret, method, f"http://{GROUP_HOST}{path_qs}", hdrs, body, date=date)


async def call(client: aiohttp.ClientSession, base: str, method: str, path_qs: str, body: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """Send ``path_qs`` exactly as written (no re-encoding) and return (status, JSON body, response)."""
    url = URL(base + path_qs, encoded=True)
    async with client.request(method, url, data=body, headers=headers) as resp:
        raw = await resp.read()
        try:
            import json

            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {"_raw": raw.decode("utf-8", "replace")}
        return resp.status, doc, resp


def error_of(doc: dict[str, Any]) -> tuple[str, str]:
    return doc.get("error_code", ""), doc.get("error_msg", "")


# --- IAM tokens ------------------------------------------------------------------------------------

def rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def public_pem(private: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))


def jwks(*pairs: tuple[str, Any]) -> str:
    """A JWKS document of (kid, private key) public halves."""
    import json

    import jwt

    keys = []
    for kid, private in pairs:
        from cryptography.hazmat.primitives.asymmetric import rsa

        alg: Any = jwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
        jwk = json.loads(alg.to_jwk(private.public_key()))
        jwk["kid"] = kid
        keys.append(jwk)
    return json.dumps({"keys": keys})


def iam_token(private: Any, alg: str = "RS256", kid: str | None = None, ttl: float = 600, **claims: Any) -> str:
    import time

    import jwt

    body: dict[str, Any] = {"sub": "user-1", "user_name": "alice", "domain_id": "d-0001",
                            "domain_name": "acme", "iat": int(time.time()), "exp": int(time.time() + ttl)}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, private, algorithm=alg, headers={"kid": kid} if kid else None)
