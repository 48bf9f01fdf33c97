"""The function-invocation layer shared by FUNCTION backends and custom authorizers.

Role in the pipeline: the data plane cannot call FunctionGraph, so a function URN is resolved through the
snapshot's ``functions`` collection (spec 00-snapshot, 02 §7.3) to one of

* an in-process Python callable, ``entry: "package.module:callable"``, with the vendor's handler signature
  ``handler(event, context)``; ``async def`` handlers run on the event loop, plain ``def`` handlers in a
  bounded thread pool (``function_workers``) so they never block the loop;
* an HTTP function endpoint, ``url: "http://host:port/path"``: the gateway POSTs the event as JSON and the
  endpoint's JSON answer is the function's result (any non-2xx status is a function error).

Config-load time: :func:`check_functions` (listed in :mod:`gateway.pipeline.chain`) rejects a record that has
both or neither of ``entry``/``url`` or whose ``entry`` cannot be imported, and :func:`resolve` /
:func:`invoker_for` map a URN (plus ``version`` / alias URN) to an :class:`Invoker`. Request time:
``await invoker.invoke(event, ...)`` returns the decoded result or raises :class:`FunctionError`
(``FunctionTimeout`` when the deadline passed).

URN matching (documented in docs/functions.md): candidates are tried in order — the alias URN (an alias
wins over a version, seed 002 §3.15.1), ``<urn>:<version>``, the URN itself — each first exactly, then
without its version/alias qualifier (``urn:fss:<region>:<project>:function:<package>:<name>`` is the base
of ``...:<name>:<qualifier>``; URNs in other schemes with three or more ``:`` parts drop their last one).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson

from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from gateway.model.services import Services

log = logging.getLogger("gateway.backends.invokers")

_POOL_KEY = "functions.pool"


class FunctionError(Exception):
    """The function could not produce a result; ``reason`` is safe to show to a caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FunctionTimeout(FunctionError):
    """The function did not answer before its deadline."""


class FunctionContext:
    """The ``context`` argument of a Python handler (the subset of the vendor's runtime context we can honour)."""

    __slots__ = ("deadline", "function_urn", "request_id")

    def __init__(self, function_urn: str, request_id: str, deadline: float) -> None:
        self.function_urn = function_urn
        self.request_id = request_id
        self.deadline = deadline  # time.monotonic() value

    def getRequestID(self) -> str:  # the vendor's spelling
        return self.request_id

    def getRemainingTimeInMilliSeconds(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def getFunctionName(self) -> str:
        parts = self.function_urn.split(":")
        return parts[6] if self.function_urn.startswith("urn:fss:") and len(parts) > 6 else self.function_urn

    def getLogger(self) -> logging.Logger:
        return logging.getLogger(f"gateway.backends.invokers.{self.getFunctionName()}")


class Invoker(Protocol):
    urn: str

    async def invoke(self, event: dict[str, Any], request_id: str, timeout_s: float) -> Any:
        ...


def load_entry(entry: str) -> Callable[..., Any]:
    """Import ``module:callable``; raises ValueError with a reason fit for ``functions[i].entry: reason``."""
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is a config problem
        raise ValueError(f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from None
    func = getattr(module, attr, None)
    if func is None:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}")
    if not callable(func):
        raise ValueError(f"{entry!r} is not callable")
    return func


def _pool(services: Services) -> ThreadPoolExecutor:
    pool = services.extras.get(_POOL_KEY)
    if pool is None:
        pool = ThreadPoolExecutor(max_workers=max(1, services.settings.function_workers),
                                  thread_name_prefix="function")
        services.extras[_POOL_KEY] = pool

        async def close() -> None:
            pool.shutdown(wait=False, cancel_futures=True)

        services.close_hooks.append(close)
    return pool


class PythonInvoker:
    """An in-process handler ``handler(event, context)``; sync handlers run in the shared thread pool.

    A sync handler that overruns its deadline is answered as a timeout, but its thread cannot be killed:
    it finishes in the background and its result is dropped (the pool size bounds how many can pile up).
    """

    __slots__ = ("func", "is_async", "services", "urn")

    def __init__(self, urn: str, func: Callable[..., Any], services: Services) -> None:
        self.urn = urn
        self.func = func
        call = type(func).__call__ if not inspect.isroutine(func) else None
        self.is_async = inspect.iscoroutinefunction(func) or (call is not None and inspect.iscoroutinefunction(call))
        self.services = services

    async def invoke(self, event: dict[str, Any], request_id: str, timeout_s: float) -> Any:
        fctx = FunctionContext(self.urn, request_id, time.monotonic() + timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                if self.is_async:
                    return await self.func(event, fctx)
                loop = asyncio.get_running_loop()
                call = functools.partial(contextvars.copy_context().run, self.func, event, fctx)
                return await loop.run_in_executor(_pool(self.services), call)
        except TimeoutError:
            raise FunctionTimeout(f"function did not answer within {int(timeout_s * 1000)} ms") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("function %s raised on request %s", self.urn, request_id, exc_info=True)
            raise FunctionError(f"function raised {type(exc).__name__}") from None


class HttpInvoker:
    """A function behind an HTTP endpoint: POST the event as JSON, the JSON answer is the result."""

    __slots__ = ("services", "url", "urn")

    def __init__(self, urn: str, url: str, services: Services) -> None:
        self.urn = urn
        self.url = url
        self.services = services

    async def invoke(self, event: dict[str, Any], request_id: str, timeout_s: float) -> Any:
        session = self.services.http_session()
        limit = self.services.settings.function_max_response_bytes
        headers = {"Content-Type": "application/json", "X-Request-Id": request_id, "X-Function-Urn": self.urn}
        try:
            async with asyncio.timeout(timeout_s):
                async with session.post(self.url, data=orjson.dumps(event), headers=headers,
                                        allow_redirects=False) as resp:
                    if resp.content_length is not None and resp.content_length > limit:
                        raise FunctionError(f"function answer is larger than {limit} bytes")
                    body = bytearray()
                    async for chunk in resp.content.iter_any():
                        body += chunk
                        if len(body) > limit:
                            raise FunctionError(f"function answer is larger than {limit} bytes")
                    status = resp.status
                    encoding = resp.headers.get("Content-Encoding", "")
        except TimeoutError:
            raise FunctionTimeout(f"function did not answer within {int(timeout_s * 1000)} ms") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FunctionError(f"function endpoint unreachable ({type(exc).__name__})") from None
        if not 200 <= status < 300:
            raise FunctionError(f"function endpoint answered HTTP {status}")
        if encoding and encoding != "identity":
            raise FunctionError(f"function endpoint answered with Content-Encoding {encoding}")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FunctionError("function endpoint answer is not JSON") from None


# --- URN resolution --------------------------------------------------------------------------------

def base_urn(urn: str) -> str | None:
    """The URN without its version/alias qualifier, or None when it has none."""
    parts = urn.split(":")
    if urn.startswith("urn:fss:"):
        return ":".join(parts[:7]) if len(parts) > 7 else None
    return ":".join(parts[:-1]) if len(parts) > 2 else None


def candidate_urns(urn: str, version: str | None = None, alias_urn: str | None = None) -> list[str]:
    exact: list[str] = []
    if alias_urn:
        exact.append(alias_urn)
    if version:
        exact.append(f"{urn}:{version}")
    exact.append(urn)
    out: list[str] = []
    for u in exact:
        if u not in out:
            out.append(u)
    for u in exact:
        b = base_urn(u)
        if b is not None and b not in out:
            out.append(b)
    return out


def resolve(index: Index, urn: str, version: str | None = None,
            alias_urn: str | None = None) -> dict[str, Any] | None:
    """The ``functions`` record a URN (with optional version / alias URN) resolves to."""
    table = index.by_id.get("functions", {})
    for cand in candidate_urns(urn, version, alias_urn):
        rec = table.get(cand)
        if rec is not None:
            return rec
    return None


def invoker_for(record: dict[str, Any], services: Services) -> Invoker:
    """Build the invoker of a resolved ``functions`` record (validation guaranteed it is usable)."""
    urn = str(record["function_urn"])
    if record.get("entry"):
        return PythonInvoker(urn, load_entry(str(record["entry"])), services)
    return HttpInvoker(urn, str(record["url"]), services)


def compile_invoker(index: Index, services: Services, urn: str, version: str | None, alias_urn: str | None,
                    problems: list[str], unknown: str, where: str) -> tuple[dict[str, Any], Invoker] | None:
    """Resolve a URN and build its invoker at compile time; a problem (``unknown`` when the URN resolves to
    no record, else the reason) is reported at ``where`` and None returned."""
    record = resolve(index, urn, version, alias_urn)
    if record is None:
        problems.append(unknown)
        return None
    try:
        return record, invoker_for(record, services)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None


def effective_timeout_ms(requested: int | None, record: dict[str, Any], cap_ms: int, default_ms: int = 5000) -> int:
    """The call deadline: the caller's timeout, bounded by the function's own ``timeout`` and the gateway cap."""
    value = int(requested or default_ms)
    if record.get("timeout"):
        value = min(value, int(record["timeout"]))
    return max(1, min(value, cap_ms))


# --- load-time checks ------------------------------------------------------------------------------

def check_functions(index: Index, problems: list[str]) -> None:
    for i, rec in enumerate(index.items("functions")):
        path = f"functions[{i}]"
        entry, url = rec.get("entry"), rec.get("url")
        if bool(entry) == bool(url):
            problems.append(f"{path}: exactly one of entry or url is required")
            continue
        if isinstance(entry, str) and entry:
            try:
                load_entry(entry)
            except ValueError as exc:
                problems.append(f"{path}.entry: {exc}")


def check_function_refs(index: Index, problems: list[str]) -> None:
    for i, api in enumerate(index.items("apis")):
        if api.get("backend_type") != "FUNCTION" and not api.get("policy_functions"):
            continue
        refs: list[tuple[str, dict[str, Any]]] = []
        if api.get("backend_type") == "FUNCTION" and isinstance(api.get("func_info"), dict):
            refs.append((f"apis[{i}].func_info", api["func_info"]))
        for j, pol in enumerate(api.get("policy_functions") or []):
            if isinstance(pol, dict):
                refs.append((f"apis[{i}].policy_functions[{j}]", pol))
        for path, ref in refs:
            urn = ref.get("function_urn")
            if not isinstance(urn, str) or not urn:
                continue
            if resolve(index, urn, ref.get("version"), ref.get("alias_urn")) is None:
                problems.append(f"{path}.function_urn: unknown function {urn!r} (add it to functions)")

