"""Admin listener authentication: the admin token as a bearer token, or as the secret of an SDK signature.

Role: control plane, every admin request (when a token is required). Two ways to present the token:

* ``Authorization: Bearer <token>`` (scripts, curl);
* an ``SDK-HMAC-SHA256`` signature computed with the token as the secret key. This is what the vendor's
  management SDKs send when they are given an access key / secret key pair, so ``huaweicloudsdkapig``'s
  ``BasicCredentials(ak=<anything>, sk=<admin token>)`` works unchanged. The signed headers must include
  ``host``, the ``X-Sdk-Date`` must be within 15 minutes of ours, and a claimed body hash must match the
  body. The SDKs send ``UNSIGNED-PAYLOAD`` for bodies that are not JSON (a multipart import): that is
  accepted only for such bodies, and each such signature only once (a captured request cannot be replayed
  with another body). The access key is not checked (the token is the only secret).

Every comparison is constant time; the token is never logged.
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import urlsplit

from aiohttp import web

from gateway.lib import sdk_signer

SKEW_S = 15 * 60
MAX_SEEN = 10000
# signatures of UNSIGNED-PAYLOAD requests already accepted -> when they stop mattering (date + skew)
_SEEN: dict[str, float] = {}


def _first_use(signature: str, expires: float) -> bool:
    now = time.time()
    if len(_SEEN) >= MAX_SEEN:
        for key in [k for k, until in _SEEN.items() if until < now]:
            del _SEEN[key]
        if len(_SEEN) >= MAX_SEEN:  # a flood of fresh signatures: refuse rather than forget
            return False
    if signature in _SEEN:
        return False
    _SEEN[signature] = expires
    return True


async def authorized(request: web.Request, expected_bearer: bytes, token: str) -> bool:
    """Whether ``request`` presents the admin token (either way)."""
    given = request.headers.get("Authorization", "")
    if given.startswith("SDK-HMAC-SHA256"):
        return await _signature_ok(request, given, token)
    return hmac.compare_digest(given.encode(), expected_bearer)


async def _signature_ok(request: web.Request, value: str, token: str) -> bool:
    creds = sdk_signer.parse_authorization(value)
    if creds is None or "host" not in creds.signed_headers:
        return False
    sdk_date = request.headers.get(sdk_signer.HEADER_DATE, "")
    when = sdk_signer.parse_date(sdk_date)
    if when is None or abs(time.time() - when.timestamp()) > SKEW_S:
        return False
    headers = request.headers
    if any(len(headers.getall(name, ())) != 1 for name in creds.signed_headers):
        return False
    claimed = headers.get(sdk_signer.HEADER_CONTENT_SHA256)
    unsigned = claimed is not None and claimed.strip() == sdk_signer.UNSIGNED_PAYLOAD
    if unsigned and request.content_type.startswith(("application/json", "application/bson")):
        return False  # the SDKs sign JSON bodies: an unsigned one was not made by them
    if unsigned:
        digest = sdk_signer.UNSIGNED_PAYLOAD
    else:
        actual = sdk_signer.payload_hash(await request.read())
        digest = claimed.strip() if claimed else actual
        if digest.lower() != actual:
            return False
    parts = urlsplit(request.raw_path)
    try:
        ok = sdk_signer.verify(token, creds.signature, request.method, parts.path,
                               sdk_signer.parse_query(parts.query), headers, creds.signed_headers, digest, sdk_date)
    except KeyError:
        return False
    return ok and (not unsigned or _first_use(creds.signature, when.timestamp() + SKEW_S))
