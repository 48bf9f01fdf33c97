"""Helpers for the function-backend and authorizer tests: real handlers, a real HTTP function endpoint,
snapshot builders."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import Counter
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from tests.support.helpers import RELEASE

PKG = "tests.support.functions_helpers"
CALLS: Counter[str] = Counter()  # handler name / token -> invocations
EVENTS: list[dict[str, Any]] = []
_lock = threading.Lock()


def _count(key: str, event: dict[str, Any]) -> None:
    with _lock:
        CALLS[key] += 1
        EVENTS.append(event)


def reset() -> None:
    CALLS.clear()
    EVENTS.clear()


# --- in-process backend handlers -------------------------------------------------------------------

def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _count("echo", event)
    return {"statusCode": 200, "headers": {"Content-Type": "application/json", "X-Fn": "echo",
                                           "X-Remaining": context.getRemainingTimeInMilliSeconds()},
            "body": json.dumps(event)}


async def aecho(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _count("aecho", event)
    await asyncio.sleep(0)
    return {"statusCode": 201, "headers": {"X-Multi": ["a", "b"], "X-Fn": "aecho"}, "body": json.dumps(event)}


def sleepy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _count("sleepy", event)
    time.sleep(float((event.get("queryStringParameters") or {}).get("s", "1")))
    return {"statusCode": 200, "body": "late"}


async def asleepy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _count("asleepy", event)
    await asyncio.sleep(float((event.get("queryStringParameters") or {}).get("s", "1")))
    return {"statusCode": 200, "body": "late"}


def shaped(event: dict[str, Any], context: Any) -> Any:
    """The answer's shape is chosen by ?shape=."""
    _count("shaped", event)
    shape = (event.get("queryStringParameters") or {}).get("shape", "")
    if shape == "raise":
        raise RuntimeError("database password is hunter2")
    if shape == "string":
        return "Hello, FunctionGraph"
    if shape == "nostatus":
        return {"body": "x"}
    if shape == "badb64":
        return {"statusCode": 200, "isBase64Encoded": True, "body": "***"}
    if shape == "binary":
        return {"statusCode": 200, "isBase64Encoded": True, "headers": {"Content-Type": "image/png"},
                "body": base64.b64encode(b"\x89PNG\x00\xff").decode()}
    if shape == "text":
        return {"statusCode": 418, "body": "short and stout"}
    if shape == "bodyobj":
        return {"statusCode": 200, "body": {"a": 1}}
    return {"statusCode": 200, "body": ""}


def named(name: str) -> Any:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        _count(name, event)
        return {"statusCode": 200, "body": json.dumps({"function": name})}
    return handler


version_one = named("version_one")
base_fn = named("base_fn")


# --- in-process authorizers ------------------------------------------------------------------------

def authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Decision by the Authorization header (or ?token=): good / bad / boom / slow / status / junk / nested."""
    headers = event.get("headers") or {}
    token = headers.get("authorization") or (event.get("queryStringParameters") or {}).get("token", "")
    token = token.removeprefix("Bearer ")
    _count(f"auth:{token}", event)
    if token.startswith("good"):
        ctx = {"user": f"alice-{token}", "level": 3, "admin": True, "data": event.get("user_data", "")}
        return {"statusCode": 200, "body": json.dumps({"status": "allow", "context": ctx})}
    if token == "slow":
        time.sleep(0.2)
        return {"statusCode": 200, "body": json.dumps({"status": "allow", "context": {"user": "slowpoke"}})}
    if token == "boom":
        raise ValueError("authorizer crashed")
    if token == "status":
        return {"statusCode": 403, "body": json.dumps({"status": "allow"})}
    if token == "junk":
        return {"statusCode": 200, "body": "not json"}
    if token == "nested":
        return {"statusCode": 200, "body": json.dumps({"status": "allow", "context": {"a": {"b": 1}}})}
    return {"statusCode": 200, "body": json.dumps({"status": "deny"})}


def backend_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _count("backend_auth", event)
    if (event.get("headers") or {}).get("x-deny"):
        return {"statusCode": 200, "body": json.dumps({"status": "deny"})}
    return {"statusCode": 200,
            "body": json.dumps({"status": "allow", "context": {"token": f"backend-{event.get('user_data')}"}})}


# --- a real HTTP function endpoint -----------------------------------------------------------------

class FunctionEndpoint:
    """An aiohttp app that receives events (POST JSON) and answers like a function."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.request_headers: list[CIMultiDict[str]] = []
        self.status = 200
        self.delay = 0.0
        self.raw: bytes | None = None  # answer these bytes instead of JSON
        self.answer: Any = None  # None: echo-style answer

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        event = await request.json()
        self.events.append(event)
        self.request_headers.append(CIMultiDict(request.headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.raw is not None:
            return web.Response(status=self.status, body=self.raw)
        answer = self.answer if self.answer is not None else {
            "statusCode": 200, "headers": {"Content-Type": "application/json", "X-Fn": "http"},
            "body": json.dumps({"via": "http", "method": event.get("httpMethod"), "path": event.get("path")}),
        }
        return web.json_response(answer, status=self.status)


# --- snapshot builders -----------------------------------------------------------------------------

def function(urn: str, entry: str | None = None, url: str | None = None, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"function_urn": urn}
    if entry is not None:
        rec["entry"] = entry if ":" in entry else f"{PKG}:{entry}"
    if url is not None:
        rec["url"] = url
    rec.update(extra)
    return rec


def urn(name: str) -> str:
    return f"urn:fss:test-1:0123456789abcdef:function:default:{name}"


def func_api(api_id: str, uri: str, function_urn: str, *, method: str = "ANY", timeout: int = 3000,
             invocation_type: str = "sync", func_extra: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    api: dict[str, Any] = {
        "id": api_id, "group_id": "g1", "name": f"api_{api_id}".replace("-", "_"), "type": 1,
        "req_protocol": "BOTH", "req_method": method, "req_uri": uri, "auth_type": "NONE",
        "backend_type": "FUNCTION",
        "func_info": {"function_urn": function_urn, "invocation_type": invocation_type, "timeout": timeout,
                      **(func_extra or {})},
    }
    api.update(extra)
    return api


def authorizer_record(aid: str, function_urn: str, *, kind: str = "FRONTEND", ttl: int = 0,
                      identities: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": aid, "name": f"auth_{aid}".replace("-", "_"), "type": kind, "authorizer_type": "FUNC",
        "authorizer_uri": function_urn, "ttl": ttl,
        "identities": identities if identities is not None else [{"name": "Authorization", "location": "HEADER"}],
    }
    rec.update(extra)
    return rec


__all__ = ["CALLS", "EVENTS", "RELEASE", "FunctionEndpoint", "authorizer_record", "func_api", "function", "reset",
           "urn"]

