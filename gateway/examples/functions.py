"""Example function handlers for the sample config (``config/functions.yaml``) and the docs.

Role in the pipeline: none by themselves; ``functions`` records point at them (``entry:
"gateway.examples.functions:echo"``) and the function-invocation layer (:mod:`gateway.backends.invokers`) calls them
with the vendor's ``handler(event, context)`` signature. ``echo`` and ``hello`` are FUNCTION backends;
``token_authorizer`` is a custom authorizer (spec 03 §4 answer format).
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer with the event the gateway built (body decoded when it was Base64)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    out = dict(event, body=body, isBase64Encoded=False)
    return {
        "statusCode": 200,
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json", "X-Function": "echo"},
        "body": json.dumps(out, sort_keys=True),
    }


async def hello(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An async handler: greets ``?name=`` (or the frontend authorizer's user when mapped into a header)."""
    query = event.get("queryStringParameters") or {}
    headers = event.get("headers") or {}
    name = query.get("name") or headers.get("x-user") or "world"
    return {
        "statusCode": 200,
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": f"hello, {name}", "request_id": context.getRequestID()}),
    }


def token_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allow when the ``Authorization`` header is ``Bearer <user_data>``; context carries the user."""
    expected = "Bearer " + str(event.get("user_data") or "")
    given = (event.get("headers") or {}).get("authorization", "")
    allowed = hmac.compare_digest(given.encode(), expected.encode())
    body: dict[str, Any] = {"status": "allow" if allowed else "deny"}
    if allowed:
        body["context"] = {"user": "demo-user", "role": "reader"}
    return {"statusCode": 200, "body": json.dumps(body)}
