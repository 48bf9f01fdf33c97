"""The vendor's Python management SDK (``huaweicloudsdkapig``) pointed at our admin listener.

A client is built exactly as a user script builds one: ``BasicCredentials(ak, sk, project_id)`` and
``ApigClient.new_builder().with_endpoints(["http://127.0.0.1:PORT"])``. The SDK signs every call with
SDK-HMAC-SHA256 using ``sk``; the admin listener accepts that signature when ``sk`` is the admin token.
The SDK is synchronous (``requests``): tests call it in a worker thread so the gateway's loop keeps running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
from huaweicloudsdkapig.v2 import ApigClient
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig

INSTANCE = "inst1"
PROJECT = "proj1"
TOKEN = "admin-token-for-the-sdk-tests-0123456789"
T = TypeVar("T")


def sdk_client(admin_url: str, sk: str = TOKEN) -> ApigClient:
    config = HttpConfig.get_default_config()
    config.timeout = (5, 30)
    return (ApigClient.new_builder()
            .with_http_config(config)
            .with_credentials(BasicCredentials("any-access-key", sk, PROJECT))
            .with_endpoints([admin_url])
            .build())


async def sdk(fn: Callable[..., T], *args: Any) -> T:
    """Run one SDK call off the event loop."""
    return await asyncio.to_thread(fn, *args)


async def sdk_error(fn: Callable[..., Any], *args: Any) -> ClientRequestException:
    """Run one SDK call that must fail; the vendor error it raised."""
    try:
        await asyncio.to_thread(fn, *args)
    except ClientRequestException as exc:
        return exc
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded")


def has(model: Any, *fields: str) -> None:
    """Every named field deserialized into the SDK model (not None)."""
    missing = [f for f in fields if getattr(model, f) is None]
    assert not missing, f"{type(model).__name__}: {missing} not returned ({model})"


async def served(url: str, path: str, host: str, **headers: str) -> tuple[int, str]:
    """(status, body) of a data-plane call."""
    async with aiohttp.ClientSession() as session, \
            session.get(url + path, headers={"Host": host, **headers}) as resp:
        return resp.status, (await resp.read()).decode()


async def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait for ``condition`` (polled every 50 ms) with a generous deadline; fail when it never holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.05)
