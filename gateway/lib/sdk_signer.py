"""SDK-HMAC-SHA256 on the caller side: verify an app's signature, and sign requests like the vendor SDK.

Role in the pipeline: pure functions, no I/O. The APP authentication stage
(:mod:`gateway.pipeline.stages.app_auth`) calls :func:`verify` on the caller's request; tests and tools call
:func:`sign_request` to produce exactly what the vendor SDK (``apig_sdk.signer``) sends. The shared
canonicalisation primitives live in :mod:`gateway.lib.sdk_hmac` (also used by backend signing); this module
adds what the verifying side needs (spec 03 §1):

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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from gateway.lib import sdk_hmac
from gateway.lib.sdk_hmac import (
    ALGORITHM,
    DATE_FORMAT,
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    canonical_query,
    canonical_uri,
    encode,
    string_to_sign,
)

__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "DATE_STAMPS",
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "PreparedKey",
    "authorization_value",
    "canonical_query",
    "canonical_request",
    "canonical_target",
    "canonical_uri",
    "encode",
    "format_date",
    "parse_authorization",
    "parse_date",
    "parse_query",
    "parse_signature",
    "payload_hash",
    "prepare_key",
    "sign",
    "sign_request",
    "signed_header_names",
    "string_to_sign",
    "verify",
    "verify_lines",
    "verify_prepared",
    "verify_target",
]

HEADER_DATE = "X-Sdk-Date"
HEADER_CONTENT_SHA256 = "X-Sdk-Content-Sha256"

# the Authorization value up to its (last) ``Signature=``: constant per app and signed-header list, so parsed once
# per exact text; with ``Signature=`` + ASCII hex + optional trailing whitespace after it, this is exactly
# ``^\s*SDK-HMAC-SHA256\s+Access=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9A-Fa-f]+)\s*$``
# (a hex signature holds no ``Signature=``, so the last one is the one that pattern would match)
_PREFIX_RX = re.compile(r"\s*SDK-HMAC-SHA256\s+Access=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*")
_HEX_RX = re.compile(r"[0-9A-Fa-f]+")
_DATE_RX = re.compile(r"^\d{8}T\d{6}Z$", re.ASCII)

V = TypeVar("V")
_MISSING = object()


class _Memo(Generic[V]):
    """A bounded memo of a *pure* function of one string (request-time parsing that repeats: the same
    ``X-Sdk-Date`` second, the same SignedHeaders list, the same request target). Never caches a verdict on a
    signature: each call's HMAC is still computed. Keys longer than ``max_key`` are not remembered, and the
    table is emptied when full, so a caller sending endless distinct values costs bounded memory."""

    __slots__ = ("data", "fn", "max_key", "size")

    def __init__(self, fn: Callable[[str], V], size: int = 1024, max_key: int = 1024) -> None:
        self.fn = fn
        self.size = size
        self.max_key = max_key
        self.data: dict[str, V] = {}

    def __call__(self, key: str) -> V:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            value = self.fn(key)
            if len(key) <= self.max_key:
                if len(self.data) >= self.size:
                    self.data.clear()
                self.data[key] = value
        return value  # type: ignore[return-value]


def _unquote(text: str) -> str:
    return unquote(text) if "%" in text else text


def split_target(raw_path: str) -> tuple[str, str]:
    """A request target as signed: (path, raw query). An absolute-form target keeps only its path."""
    path, _, query = raw_path.partition("?")
    if "://" in path[:10]:  # absolute-form request target
        rest = path.split("://", 1)[1]
        path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return path or "/", query


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


def signed_header_names(headers: Iterable[str]) -> list[str]:
    """The SignedHeaders list for a set of header names: lower-cased, sorted, ``authorization`` left out."""
    return sorted({h.lower() for h in headers if h.lower() != "authorization"})


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256  # most signed calls have no body


def canonical_request(method: str, path: str, query_pairs: Iterable[tuple[str, str]],
                      headers: Mapping[str, str], signed_headers: Iterable[str], payload_hash: str) -> str:
    """The CanonicalRequest text (``path`` percent-encoded, ``query_pairs`` decoded, ``payload_hash`` the last
    line). Raises KeyError when a signed header is not in ``headers``."""
    return sdk_hmac.canonical_request(method, path, query_pairs, headers, list(signed_headers), None,
                                      content_hash=payload_hash)


def sign(secret: str, to_sign: str) -> str:
    """Hex HMAC-SHA256 of the StringToSign with the app secret."""
    return sdk_hmac.signature(secret, to_sign)


def authorization_value(key: str, signed_headers: Iterable[str], signature: str) -> str:
    return sdk_hmac.authorization(key, list(signed_headers), signature)


@dataclass(slots=True)
class Credentials:
    """The parts of an ``Authorization: SDK-HMAC-SHA256 ...`` header (not frozen: a frozen dataclass costs
    a ``object.__setattr__`` per field on every request)."""

    access: str
    signed_headers: tuple[str, ...]
    signature: str


def _names(raw: str) -> tuple[str, ...]:
    return tuple(h for h in raw.lower().split(";") if h)


def _prefix(head: str) -> tuple[str, tuple[str, ...], str] | None:
    m = _PREFIX_RX.fullmatch(head)
    if m is None:
        return None
    names = _names(m.group(2))
    if not names:
        return None
    return m.group(1), names, ";".join(names)


# (access, signed names, SignedHeaders as signed) per exact text before ``Signature=``: an app signs with the same
# key and header list call after call, so this parses once while every signature differs
_prefixes = _Memo(_prefix, size=256, max_key=1024)


def parse_signature(value: str) -> tuple[str, tuple[str, ...], str, str] | None:
    """The request path's parse of an ``Authorization: SDK-HMAC-SHA256 ...`` value: (access key, signed header
    names lower-cased, those names joined with ``;`` as signed, the signature lower-cased), or None when the
    value is not well formed. Lenient about spacing exactly as :func:`parse_authorization`; the part before
    ``Signature=`` is parsed once per exact text (bounded memo), the signature itself on every call."""
    head, sep, tail = value.rpartition("Signature=")
    if not sep:
        return None
    parsed = _prefixes.data.get(head)
    if parsed is None:  # not remembered, or remembered as malformed (the memo answers None again)
        parsed = _prefixes(head)
        if parsed is None:
            return None
    sig = tail.rstrip()
    if not sig:
        return None
    try:  # an even number of hex digits (the usual 64) in C; blanks inside would shorten the bytes
        hex_only = len(bytes.fromhex(sig)) * 2 == len(sig)
    except ValueError:
        hex_only = False
    if not hex_only and _HEX_RX.fullmatch(sig) is None:  # an odd count of hex digits is still hex
        return None
    access, names, signed = parsed
    return access, names, signed, sig.lower()


def parse_authorization(value: str) -> Credentials | None:
    """Parse the header leniently (spacing); None when it is not a well-formed SDK-HMAC-SHA256 value."""
    parsed = parse_signature(value)
    if parsed is None:
        return None
    return Credentials(parsed[0], parsed[1], parsed[3])


def parse_date(value: str) -> datetime | None:
    """``YYYYMMDDTHHMMSSZ`` as an aware UTC datetime, or None. The format is fixed, so the fields are sliced
    (``strptime`` costs ~10x more on the request path); ``datetime`` still rejects impossible dates."""
    if len(value) != 16 or not _DATE_RX.match(value):
        return None
    try:
        return datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]), int(value[11:13]),
                        int(value[13:15]), tzinfo=UTC)
    except ValueError:
        return None


def _date_stamp(value: str) -> float | None:
    when = parse_date(value)
    return None if when is None else when.timestamp()


_date_stamps = _Memo(_date_stamp, size=256, max_key=64)  # every call signed in the same second shares one
# the memo of X-Sdk-Date instants, for a verifier's inline probe of a remembered (stripped, well-formed) date
DATE_STAMPS = _date_stamps


def check_date(raw_date: str | None, skew: float) -> tuple[str, str | None]:
    """A call's ``X-Sdk-Date`` (stripped) and why it is unacceptable (missing, malformed, more than ``skew``
    seconds from now), or None when it is fine. The one clock-skew window of every SDK-HMAC-SHA256 verifier
    (APP signatures, IAM AK/SK calls). The parsed instant is memoised per exact text; the clock is read
    on every call."""
    if not raw_date:
        return "", "x-sdk-date not found"
    sdk_date = raw_date.strip()
    stamp = _date_stamps.data.get(sdk_date)
    if stamp is None:  # not remembered (or remembered as malformed: the memo answers that again)
        stamp = _date_stamps(sdk_date)
    if stamp is None:
        return sdk_date, "invalid x-sdk-date, expected the form 20240326T030801Z"
    now = time.time()
    if abs(now - stamp) > skew:
        server = format_date(datetime.fromtimestamp(now, UTC))
        return sdk_date, f"signature expired, signature time:{sdk_date},server time:{server}"
    return sdk_date, None


def format_date(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).strftime(DATE_FORMAT)


class PreparedKey(Protocol):
    """An HMAC-SHA256 keyed once (:func:`prepare_key`): copied per verification, never used directly."""

    def copy(self) -> PreparedKey: ...

    def update(self, msg: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...

    def hexmac(self, msg: bytes, /) -> str: ...


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class _PaddedKey:
    """HMAC-SHA256 (RFC 2104) keyed once: the SHA-256 states after the inner and the outer padded key. Each
    MAC copies both states (OpenSSL's own HMAC object costs more per copy and per digest); the states are never
    changed in place."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, inner: hashlib._Hash, outer: hashlib._Hash) -> None:
        self._inner = inner
        self._outer = outer

    def copy(self) -> _PaddedKey:
        return _PaddedKey(self._inner.copy(), self._outer)

    def update(self, msg: bytes, /) -> None:
        self._inner.update(msg)

    def hexdigest(self) -> str:
        outer = self._outer.copy()
        outer.update(self._inner.digest())
        return outer.hexdigest()

    def hexmac(self, msg: bytes, /) -> str:
        """The hex HMAC of ``msg`` (this key unchanged)."""
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def prepare_key(secret: str) -> PreparedKey:
    """An HMAC-SHA256 keyed with ``secret``, prepared once (compile time): the inner and outer SHA-256 states
    of RFC 2104, copied per verification (the same MAC as ``hmac.new(secret, msg, sha256)``)."""
    key = secret.encode("utf-8")
    if len(key) > 64:  # the SHA-256 block size
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return _PaddedKey(hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


def verify_prepared(key: PreparedKey, signature: str, method: str, path: str, query_pairs: Iterable[tuple[str, str]],
                    headers: Mapping[str, str], signed_headers: Sequence[str], payload_hash: str,
                    sdk_date: str) -> bool:
    """:func:`verify` for the request path: ``key`` from :func:`prepare_key`, ``headers`` a case-insensitive
    mapping (each signed name is looked up directly) and the canonical request built with one join."""
    lines = "".join([f"{name}:{headers[name].strip()}\n" for name in signed_headers])
    canonical = "\n".join((method.upper(), canonical_uri(path), canonical_query(query_pairs), lines,
                           ";".join(signed_headers), payload_hash))
    mac = key.hexmac(f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}".encode())
    return hmac.compare_digest(mac, signature.lower())


def _canonical_target(raw_target: str) -> str:
    path, query = split_target(raw_target)
    return f"{canonical_uri(path)}\n{canonical_query(parse_query(query))}"


# the CanonicalURI and CanonicalQuery lines (joined by a newline) of a request target as received, memoised per
# exact target: an endpoint is called with the same path and query over and over
canonical_target = _Memo(_canonical_target, size=1024, max_key=1024)  # <= ~4 MB even for hostile targets


def verify_target(key: PreparedKey, signature: str, method: str, raw_target: str, headers: Mapping[str, str],
                  signed_headers: Sequence[str], payload_hash: str, sdk_date: str) -> bool:
    """:func:`verify_prepared` from the raw request target: the URI and query lines come from
    :func:`canonical_target`; the header lines, the hash of the canonical request and the HMAC are computed
    on every call (``headers`` case-insensitive, each signed name looked up directly)."""
    lines = "".join([f"{name}:{headers[name].strip()}\n" for name in signed_headers])
    canonical = f"{method.upper()}\n{canonical_target(raw_target)}\n{lines}\n{';'.join(signed_headers)}\n{payload_hash}"
    mac = key.hexmac(f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}".encode())
    return hmac.compare_digest(mac, signature.lower())


def verify_lines(key: PreparedKey, signature: str, method: str, raw_target: str, header_lines: str,
                 signed: str, payload_hash: str, sdk_date: str) -> bool:
    """:func:`verify_target` when the caller already made the canonical header lines (``name:value`` + newline
    per signed header, the values stripped) and the ``;``-joined signed names (:func:`parse_signature`);
    ``signature`` lower-case. The hash of the canonical request and the HMAC are computed on every call and
    compared in constant time."""
    target = canonical_target.data.get(raw_target)
    if target is None:
        target = canonical_target(raw_target)
    canonical = f"{method.upper()}\n{target}\n{header_lines}\n{signed}\n{payload_hash}"
    mac = key.hexmac(f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}".encode())
    return hmac.compare_digest(mac, signature)


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
