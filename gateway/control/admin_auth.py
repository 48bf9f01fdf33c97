"""Admin listener authentication: the admin token as a bearer token, or as the secret of an SDK signature.

Role: control plane, every admin request (when a token is required). Two ways to present the token:

* ``Authorization: Bearer <token>`` (scripts, curl);
* an ``SDK-HMAC-SHA256`` signature computed with the token as the secret key. This is what the vendor's
  management SDKs send when they are given an access key / secret key pair, so ``huaweicloudsdkapig``'s
  ``BasicCredentials(ak=<anything>, sk=<admin token>)`` works unchanged. The signed headers must include
  ``host``, the ``X-Sdk-Date`` must be within 15 minutes of ours, and the body is always signed (a claimed
  body hash must match the body; ``UNSIGNED-PAYLOAD`` is refused). The access key is not checked (the
  token is the only secret).

Every comparison is constant time; the token is never logged.
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import urlsplit

from aiohttp import web

from gateway.lib import sdk_signer

SKEW_S = 15 * 60


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
    body = await request.read()
    actual = sdk_signer.payload_hash(body)
    claimed = headers.get(sdk_signer.HEADER_CONTENT_SHA256)
    digest = claimed.strip() if claimed else actual
    if digest.lower() != actual:  # UNSIGNED-PAYLOAD too: an admin body is always signed
        return False
    parts = urlsplit(request.raw_path)
    try:
        return sdk_signer.verify(token, creds.signature, request.method, parts.path,
                                 sdk_signer.parse_query(parts.query), headers, creds.signed_headers, digest, sdk_date)
    except KeyError:
        return False
