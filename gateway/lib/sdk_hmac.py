"""SDK-HMAC-SHA256: the vendor's request-signing algorithm as small pure functions (spec 03 §1).

Role in the pipeline: used by backend signing (:mod:`gateway.pipeline.stages.signing`, step 16 of spec 02 §11.2) to sign
the request the gateway sends to a backend, and by :mod:`gateway.contrib.verify` (backend-side verification).
The functions reproduce the vendor's ``apig_sdk`` signer byte for byte (spec 03 §1 test vectors c1-c3,
``tests/test_signing_sdk_hmac.py``):

    CanonicalRequest = METHOD \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n SignedHeaders \\n PayloadHash
    StringToSign     = ALGORITHM \\n X-Sdk-Date \\n hex(sha256(CanonicalRequest))
    Signature        = hex(hmac_sha256(secret, StringToSign))
    Authorization    = "SDK-HMAC-SHA256 Access=<key>, SignedHeaders=<h1;h2>, Signature=<hex>"

Nothing here does I/O; everything is deterministic given the date.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote, unquote


class BackendRequest(Protocol):
    """What signing reads and writes of an outgoing request (``gateway.model.plan.BackendRequest`` is one)."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def query(self) -> Any: ...  # sequence of (name, value) pairs

    @property
    def headers(self) -> MutableMapping[str, str]: ...

    def body_bytes(self) -> bytes: ...

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
DATE_HEADER = "X-Sdk-Date"
CONTENT_SHA256_HEADER = "x-sdk-content-sha256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Headers the gateway signs toward a backend (when present): enough to bind the signature to the
# target host and time; content-type binds the body's interpretation.
BACKEND_SIGNED = ("content-type", "host", "x-sdk-date")


_PLAIN_RX = re.compile(r"[A-Za-z0-9._~-]*")


def encode(text: str) -> str:
    """RFC 3986 encoding used by the SDK: unreserved ``A-Za-z0-9-._~`` kept, the rest ``%XX`` (upper hex)."""
    if _PLAIN_RX.fullmatch(text):  # fast path: nothing to encode
        return text
    return quote(text, safe="~")


_PLAIN_PATH_RX = re.compile(r"[A-Za-z0-9._~/-]*")


def canonical_uri(path: str) -> str:
    """Decode the (percent-encoded) path, re-encode each segment, always end with ``/``."""
    path = path or "/"
    if _PLAIN_PATH_RX.fullmatch(path):  # fast path: no segment needs decoding or encoding
        return path if path.endswith("/") else path + "/"
    out = "/".join(encode(seg) for seg in (unquote(path) if "%" in path else path).split("/"))
    return out if out.endswith("/") else out + "/"


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """Decoded (key, value) pairs -> ``k=v`` sorted by key, repeated keys' values sorted, joined with ``&``."""
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        if key == "":
            continue
        grouped.setdefault(key, []).append(value)
    parts: list[str] = []
    for key in sorted(grouped):
        ek = encode(key)
        for value in sorted(grouped[key]):
            parts.append(f"{ek}={encode(value)}")
    return "&".join(parts)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.items():
        out.setdefault(key.lower(), value)  # first value of a repeated header, like a plain dict lookup
    return out


def payload_hash(headers: Mapping[str, str], signed_headers: Sequence[str], body: bytes | None) -> str:
    """The last line: a signed ``x-sdk-content-sha256`` header value verbatim, else sha256(body) hex."""
    if CONTENT_SHA256_HEADER in signed_headers:
        value = _lower_headers(headers).get(CONTENT_SHA256_HEADER)
        if value is not None:
            return value.strip()
    return hashlib.sha256(body or b"").hexdigest()


def canonical_request(method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
                      signed_headers: Sequence[str], body: bytes | None = b"",
                      content_hash: str | None = None) -> str:
    """The six-line CanonicalRequest. ``signed_headers`` are lower-case and sorted; each must be in ``headers``
    (raises KeyError otherwise)."""
    low = _lower_headers(headers)
    lines = "".join(f"{name}:{low[name].strip()}\n" for name in signed_headers)
    digest = content_hash if content_hash is not None else payload_hash(headers, signed_headers, body)
    return "\n".join((method.upper(), canonical_uri(path), canonical_query(query), lines,
                      ";".join(signed_headers), digest))


def string_to_sign(canonical: str, sdk_date: str, algorithm: str = ALGORITHM) -> str:
    return f"{algorithm}\n{sdk_date}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def signature(secret: str, to_sign: str) -> str:
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(key: str, signed_headers: Sequence[str], sig: str, algorithm: str = ALGORITHM) -> str:
    return f"{algorithm} Access={key}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"


def sdk_date(now: float | None = None) -> str:
    return time.strftime(DATE_FORMAT, time.gmtime(time.time() if now is None else now))


def signed_header_names(headers: Mapping[str, str], wanted: Iterable[str] = BACKEND_SIGNED) -> list[str]:
    low = _lower_headers(headers)
    return sorted(name for name in set(wanted) if name in low)


def backend_string_to_sign(breq: BackendRequest, body: bytes | None, algorithm: str = ALGORITHM,
                           now: float | None = None) -> tuple[str, list[str]]:
    """Stamp ``X-Sdk-Date`` on a backend request and return (StringToSign, signed header names)."""
    date = sdk_date(now)
    breq.headers[DATE_HEADER] = date
    signed = signed_header_names(breq.headers)
    canonical = canonical_request(breq.method, breq.path, breq.query, breq.headers, signed, body)
    return string_to_sign(canonical, date, algorithm), signed


def sign_headers(breq: BackendRequest, key: str, secret: str, body: bytes | None = None,
                 header: str = "Authorization", now: float | None = None) -> str:
    """Client-side signing of a BackendRequest in place: sets ``X-Sdk-Date`` and ``header`` (Authorization).

    ``body`` defaults to the request's bytes body. Signs ``host``, ``x-sdk-date`` and ``content-type``
    when present. Returns the header value written.
    """
    to_sign, signed = backend_string_to_sign(breq, breq.body_bytes() if body is None else body, ALGORITHM, now)
    value = authorization(key, signed, signature(secret, to_sign))
    breq.headers[header] = value
    return value
