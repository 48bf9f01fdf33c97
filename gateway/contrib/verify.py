"""Backend-side verification of the gateway's backend signatures (for backend authors).

Role: not part of the gateway's request path. A backend behind the gateway imports this module to check
that a request really came from the gateway with the signature key bound to the API (docs/signing.md).
Pure functions per key type return True/False (``check_*`` variants raise :class:`SignatureError` with a
reason instead), and :func:`signature_middleware` wraps them as an aiohttp middleware::

    app = web.Application(middlewares=[signature_middleware("hmac", key="my_key_1", secret="...")])

Every check is constant-time in the secret material, recomputes the signature from what the backend
actually received (method, raw path, decoded query pairs, the signed headers, the body) and, for the
dated kinds, rejects an ``X-Sdk-Date`` more than ``max_skew`` seconds (default 15 min, as the vendor's
``backend_signature.py``) away from the backend's clock.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB lives in the "decrepit" module since cryptography 47
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from gateway.lib import sdk_hmac

MAX_SKEW_S = 15 * 60
_AUTH_RX = re.compile(
    r"(SDK-[A-Z0-9-]+)\s+(?:Access=([^,]+),\s?)?SignedHeaders=([^,]+),\s?Signature=([A-Za-z0-9+/=]+)\s*$")
# What a verified request carries: request[SIGNATURE] == {"kind": ..., "key": ...}
SIGNATURE: web.RequestKey[dict[str, Any]] = web.RequestKey("apig_signature", dict)
AES_TOKENS = {"aes-128-cfb": "SDK-AES-128-CFB", "aes-256-cfb": "SDK-AES-256-CFB"}


class SignatureError(Exception):
    """Verification failed; ``str(err)`` is a reason safe to log (it never contains secret material)."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    low = name.lower()
    for key, value in headers.items():
        if key.lower() == low:
            return value
    return None


def parse_authorization(value: str) -> tuple[str, str | None, list[str], str]:
    """``ALG [Access=k, ]SignedHeaders=a;b, Signature=s`` -> (alg, access, signed headers, signature)."""
    m = _AUTH_RX.match(value.strip())
    if m is None:
        raise SignatureError("malformed signature header")
    return m.group(1), m.group(2), [h.strip().lower() for h in m.group(3).split(";") if h.strip()], m.group(4)


def _string_to_sign(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
                    body: bytes | None, algorithm: str, signed: list[str], max_skew: float,
                    now: float | None) -> str:
    if "x-sdk-date" not in signed:
        raise SignatureError("x-sdk-date is not signed")
    if signed != sorted(signed):
        raise SignatureError("SignedHeaders are not sorted")
    picked: dict[str, str] = {}
    for name in signed:
        value = _header(headers, name)
        if value is None:
            raise SignatureError(f"signed header {name} is missing")
        picked[name] = value
    date = picked["x-sdk-date"].strip()
    try:
        stamp = calendar.timegm(time.strptime(date, sdk_hmac.DATE_FORMAT))
    except ValueError:
        raise SignatureError("bad X-Sdk-Date") from None
    current = time.time() if now is None else now
    if abs(current - stamp) > max_skew:
        raise SignatureError("signature expired")
    canonical = sdk_hmac.canonical_request(method, path, query, picked, signed, body)
    return sdk_hmac.string_to_sign(canonical, date, algorithm)


def _auth_value(headers: Mapping[str, str], header: str) -> str:
    value = _header(headers, header)
    if not value:
        raise SignatureError(f"{header} header is missing")
    return value


# --- hmac -------------------------------------------------------------------------------------------

def check_hmac(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
               body: bytes | None, key: str, secret: str, max_skew: float = MAX_SKEW_S,
               header: str = "Authorization", now: float | None = None) -> None:
    """SDK-HMAC-SHA256 check, the same rules as the vendor's ``backend_signature.py``."""
    alg, access, signed, sig = parse_authorization(_auth_value(headers, header))
    if alg != sdk_hmac.ALGORITHM:
        raise SignatureError(f"unexpected algorithm {alg}")
    if access is None or not hmac.compare_digest(access.strip().encode(), key.encode()):
        raise SignatureError("unknown key")
    sts = _string_to_sign(method, path, query, headers, body, sdk_hmac.ALGORITHM, signed, max_skew, now)
    if not hmac.compare_digest(sdk_hmac.signature(secret, sts).encode(), sig.encode()):
        raise SignatureError("signature mismatch")


def verify_hmac(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
                body: bytes | None, key: str, secret: str, max_skew: float = MAX_SKEW_S,
                header: str = "Authorization", now: float | None = None) -> bool:
    try:
        check_hmac(method, path, query, headers, body, key, secret, max_skew, header, now)
    except SignatureError:
        return False
    return True


# --- basic ------------------------------------------------------------------------------------------

def check_basic(headers: Mapping[str, str], key: str, secret: str, header: str = "Authorization") -> None:
    value = _auth_value(headers, header).strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        raise SignatureError("not Basic credentials")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed Basic credentials") from None
    if not hmac.compare_digest(decoded, f"{key}:{secret}".encode()):
        raise SignatureError("wrong Basic credentials")


def verify_basic(headers: Mapping[str, str], key: str, secret: str, header: str = "Authorization") -> bool:
    try:
        check_basic(headers, key, secret, header)
    except SignatureError:
        return False
    return True


# --- aes --------------------------------------------------------------------------------------------

def decrypt_aes(signature_b64: str, key: str, iv: str) -> bytes:
    """AES-CFB(128-bit segments) decryption of the base64 Signature with the key (16 or 32 chars) and IV."""
    try:
        data = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed AES signature") from None
    dec = Cipher(algorithms.AES(key.encode("utf-8")), CFB(iv.encode("utf-8"))).decryptor()
    return dec.update(data) + dec.finalize()


def check_aes(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
              body: bytes | None, key: str, iv: str, algorithm: str = "aes-128-cfb",
              max_skew: float = MAX_SKEW_S, header: str = "Authorization", now: float | None = None) -> None:
    token = AES_TOKENS.get(algorithm)
    if token is None:
        raise ValueError("algorithm must be aes-128-cfb or aes-256-cfb")
    alg, _access, signed, sig = parse_authorization(_auth_value(headers, header))
    if alg != token:
        raise SignatureError(f"unexpected algorithm {alg}")
    sts = _string_to_sign(method, path, query, headers, body, token, signed, max_skew, now)
    if not hmac.compare_digest(decrypt_aes(sig, key, iv), sts.encode("utf-8")):
        raise SignatureError("signature mismatch")


def verify_aes(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
               body: bytes | None, key: str, iv: str, algorithm: str = "aes-128-cfb",
               max_skew: float = MAX_SKEW_S, header: str = "Authorization", now: float | None = None) -> bool:
    try:
        check_aes(method, path, query, headers, body, key, iv, algorithm, max_skew, header, now)
    except SignatureError:
        return False
    return True


# --- public_key -------------------------------------------------------------------------------------

def load_public_key(public_key: Any) -> Any:
    """A key object, PEM text/bytes, or the sign_key form (base64 DER SubjectPublicKeyInfo)."""
    if isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return public_key
    raw = public_key.encode("ascii") if isinstance(public_key, str) else bytes(public_key)
    if raw.lstrip().startswith(b"-----BEGIN"):
        return serialization.load_pem_public_key(raw)
    return serialization.load_der_public_key(base64.b64decode(raw, validate=True))


def check_public_key(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
                     body: bytes | None, public_key: Any, max_skew: float = MAX_SKEW_S,
                     header: str = "Authorization", now: float | None = None) -> None:
    key = load_public_key(public_key)
    alg, _access, signed, sig = parse_authorization(_auth_value(headers, header))
    expected = ("SDK-RSA-SHA256" if isinstance(key, rsa.RSAPublicKey) else
                "SDK-ECDSA-SHA256" if isinstance(key, ec.EllipticCurvePublicKey) else "SDK-ED25519")
    if alg != expected:
        raise SignatureError(f"unexpected algorithm {alg}")
    sts = _string_to_sign(method, path, query, headers, body, alg, signed, max_skew, now).encode("utf-8")
    try:
        raw = base64.b64decode(sig, validate=True)
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, sts, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, sts, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(raw, sts)
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError("signature mismatch") from None


def verify_public_key(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
                      body: bytes | None, public_key: Any, max_skew: float = MAX_SKEW_S,
                      header: str = "Authorization", now: float | None = None) -> bool:
    try:
        check_public_key(method, path, query, headers, body, public_key, max_skew, header, now)
    except SignatureError:
        return False
    return True


# --- aiohttp middleware -----------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def signature_middleware(kind: str, *, key: str | None = None, secret: str | None = None,
                         secrets: Mapping[str, str] | None = None, public_key: Any = None,
                         algorithm: str = "aes-128-cfb", header: str = "Authorization",
                         max_skew: float = MAX_SKEW_S) -> Callable[[web.Request, Handler],
                                                                  Awaitable[web.StreamResponse]]:
    """An aiohttp middleware answering 401 ``{"error": "...", "reason": "..."}`` to unsigned requests.

    ``kind``: ``hmac`` (``key``+``secret``, or ``secrets`` = {key: secret} for several keys), ``basic``
    (``key``+``secret``), ``aes`` (``key``, ``secret`` = IV, ``algorithm``), ``public_key`` (``public_key``).
    A verified request carries ``request[SIGNATURE] = {"kind": ..., "key": ...}``.
    """
    if kind not in ("hmac", "basic", "aes", "public_key"):
        raise ValueError(f"unknown signature kind {kind!r}")
    pub = load_public_key(public_key) if kind == "public_key" else None
    table = dict(secrets or {})
    if key is not None and secret is not None:
        table.setdefault(key, secret)

    def _check_hmac(request: web.Request, body: bytes) -> str:
        value = _header(request.headers, header) or ""
        try:
            access = parse_authorization(value)[1] if value else None
        except SignatureError:
            access = None
        chosen = (access or "").strip()
        secret_for = table.get(chosen)
        if secret_for is None:
            raise SignatureError("unknown key" if value else f"{header} header is missing")
        check_hmac(request.method, request.rel_url.raw_path, list(request.query.items()), request.headers, body,
                   chosen, secret_for, max_skew, header)
        return chosen

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if kind == "basic":
                check_basic(request.headers, str(key), str(secret), header)
                used = key
            else:
                body = await request.read()
                if kind == "hmac":
                    used = _check_hmac(request, body)
                elif kind == "aes":
                    check_aes(request.method, request.rel_url.raw_path, list(request.query.items()),
                              request.headers, body, str(key), str(secret), algorithm, max_skew, header)
                    used = None
                else:
                    check_public_key(request.method, request.rel_url.raw_path, list(request.query.items()),
                                     request.headers, body, pub, max_skew, header)
                    used = None
        except SignatureError as err:
            return web.json_response({"error": "signature verification failed", "reason": str(err)}, status=401)
        request[SIGNATURE] = {"kind": kind, "key": used}
        return await handler(request)

    return middleware
