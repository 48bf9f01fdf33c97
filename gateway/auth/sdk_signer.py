"""The SDK-HMAC-SHA256 request-signing algorithm (APIG App authentication), both sides.

Role in the pipeline: pure functions, no I/O. The APP authentication stage
(:mod:`gateway.auth.app_auth`) calls :func:`verify` on the caller's request; backend signing and the
tests call :func:`canonical_request` / :func:`sign_request` to produce the same bytes the vendor SDK
(``apig_sdk.signer``) produces. Spec 03 §1 is the description this follows byte for byte:

* CanonicalRequest = method, canonical URI, canonical query, canonical headers block, signed header
  list, payload hash, joined with ``\\n``. The URI is percent-decoded, split on ``/``, each segment
  re-encoded (RFC 3986 unreserved characters kept) and a ``/`` appended when missing; the query is
  decoded pairs sorted by key then value and re-encoded the same way (``k`` with no value gives ``k=``);
  headers are ``name:trimmed value`` lines for the signed names (lower-case, sorted), each ending in
  ``\\n``; the payload hash is the hex SHA-256 of the body, or the value of ``x-sdk-content-sha256``
  verbatim (``UNSIGNED-PAYLOAD`` leaves the body unsigned).
* StringToSign = ``SDK-HMAC-SHA256\\n<X-Sdk-Date>\\n<hex sha256(CanonicalRequest)>``.
* Signature = hex HMAC-SHA256(app secret, StringToSign).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
HEADER_DATE = "X-Sdk-Date"
HEADER_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_AUTH_RX = re.compile(
    r"^\s*SDK-HMAC-SHA256\s+Access=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9A-Fa-f]+)\s*$"
)
_DATE_RX = re.compile(r"^\d{8}T\d{6}Z$")
_PLAIN_RX = re.compile(r"[A-Za-z0-9._~-]*")


def encode(text: str) -> str:
    """Percent-encode everything except RFC 3986 unreserved characters (upper-case hex)."""
    if _PLAIN_RX.fullmatch(text):
        return text
    return quote(text, safe="~")


def _unquote(text: str) -> str:
    return unquote(text) if "%" in text else text


def canonical_uri(raw_path: str) -> str:
    """The canonical URI of a (percent-encoded) request path: decode, re-encode per segment, end in ``/``."""
    path = "/".join(encode(seg) for seg in _unquote(raw_path).split("/"))
    if not path.endswith("/"):
        path += "/"
    return path


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs of a raw query string, the way the SDK reads a URL.

    Keys and values are percent-decoded with ``unquote`` (a ``+`` stays a plus), empty keys are dropped,
    a key without ``=`` has the empty value.
    """
    out: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if key:
            out.append((_unquote(key), _unquote(value)))
    return out


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Sorted by key, then by value for a repeated key; each side encoded; joined with ``&``."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    parts: list[str] = []
    for key in sorted(grouped):
        k = encode(key)
        parts.extend(f"{k}={encode(v)}" for v in sorted(grouped[key]))
    return "&".join(parts)


def _lower_lookup(headers: Mapping[str, str]) -> Mapping[str, str]:
    if hasattr(headers, "getone"):  # multidict: already case-insensitive
        return headers
    return {k.lower(): v for k, v in headers.items()}


def canonical_headers(headers: Mapping[str, str], signed_headers: Iterable[str]) -> str:
    """``name:value\\n`` for each signed header (names lower-case, values trimmed).

    Raises KeyError naming the first signed header that the request does not carry.
    """
    lookup = _lower_lookup(headers)
    lines: list[str] = []
    for name in signed_headers:
        value = lookup.get(name)
        if value is None:
            raise KeyError(name)
        lines.append(f"{name}:{value.strip()}\n")
    return "".join(lines)


def signed_header_names(headers: Iterable[str]) -> list[str]:
    """The SignedHeaders list for a set of header names: lower-cased, sorted, ``authorization`` left out."""
    return sorted({h.lower() for h in headers if h.lower() != "authorization"})


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_request(method: str, path: str, query_pairs: Iterable[tuple[str, str]],
                      headers: Mapping[str, str], signed_headers: Iterable[str], payload_hash: str) -> str:
    """The CanonicalRequest text (``path`` percent-encoded, ``query_pairs`` decoded)."""
    names = list(signed_headers)
    return "\n".join((
        method.upper(),
        canonical_uri(path),
        canonical_query(query_pairs),
        canonical_headers(headers, names),
        ";".join(names),
        payload_hash,
    ))


def string_to_sign(canonical: str, sdk_date: str) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def sign(secret: str, to_sign: str) -> str:
    """Hex HMAC-SHA256 of the StringToSign with the app secret."""
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_value(key: str, signed_headers: Iterable[str], signature: str) -> str:
    return f"{ALGORITHM} Access={key}, SignedHeaders={';'.join(signed_headers)}, Signature={signature}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The parts of an ``Authorization: SDK-HMAC-SHA256 ...`` header."""

    access: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Credentials | None:
    """Parse the header leniently (spacing); None when it is not a well-formed SDK-HMAC-SHA256 value."""
    m = _AUTH_RX.match(value)
    if m is None:
        return None
    names = tuple(h for h in m.group(2).lower().split(";") if h)
    if not names:
        return None
    return Credentials(m.group(1), names, m.group(3).lower())


def parse_date(value: str) -> datetime | None:
    """``YYYYMMDDTHHMMSSZ`` as an aware UTC datetime, or None."""
    if not _DATE_RX.match(value):
        return None
    try:
        return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def format_date(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).strftime(DATE_FORMAT)


def verify(secret: str, signature: str, method: str, path: str, query_pairs: Iterable[tuple[str, str]],
           headers: Mapping[str, str], signed_headers: Iterable[str], payload_hash: str, sdk_date: str) -> bool:
    """Recompute the signature and compare in constant time (KeyError: a signed header is missing)."""
    canonical = canonical_request(method, path, query_pairs, headers, signed_headers, payload_hash)
    expected = sign(secret, string_to_sign(canonical, sdk_date))
    return hmac.compare_digest(expected, signature.lower())


def sign_request(key: str, secret: str, method: str, url: str, headers: Mapping[str, str] | None = None,
                 body: bytes | str = b"", date: str | None = None) -> dict[str, str]:
    """Client side, like ``apig_sdk.signer.Signer.Sign``: return the headers to send.

    Every given header is signed, plus ``host`` (taken from the URL when absent) and ``x-sdk-date``
    (now, unless ``date`` or an ``X-Sdk-Date`` header is given). The result includes ``Authorization``.
    """
    out: dict[str, str] = dict(headers or {})
    lower = {k.lower(): k for k in out}
    parts = urlsplit(url)
    if "x-sdk-date" in lower:
        sdk_date = out[lower["x-sdk-date"]]
    else:
        sdk_date = date or format_date()
        out[HEADER_DATE] = sdk_date
    if "host" not in lower:
        out["host"] = parts.netloc
    data = body.encode("utf-8") if isinstance(body, str) else body
    lower = {k.lower(): k for k in out}
    digest = out[lower["x-sdk-content-sha256"]] if "x-sdk-content-sha256" in lower else payload_hash(data)
    names = signed_header_names(out)
    canonical = canonical_request(method, parts.path or "/", parse_query(parts.query), out, names, digest)
    out["Authorization"] = authorization_value(key, names, sign(secret, string_to_sign(canonical, sdk_date)))
    return out
