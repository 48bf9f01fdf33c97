"""Long-lived services shared by every snapshot: connection pools, stores, caches, the active runtime.

Role in the pipeline: a config swap replaces the immutable :class:`gateway.model.runtime.Runtime` but keeps
these (spec: "connection pools to backends that still exist are kept", counters survive swaps). Feature
modules attach their own long-lived state in ``extras`` under their module name, created lazily.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from gateway.core.settings import Settings
from gateway.lib.h1client import H1Client

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.runtime import Runtime

CompletionHook = Callable[["RequestContext"], None]
CloseHook = Callable[[], Awaitable[None]]


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self._session: aiohttp.ClientSession | None = None
        self._h1: H1Client | None = None
        self.completion_hooks: list[CompletionHook] = []  # run after each response (logs, metrics)
        self.swap_hooks: list[Callable[[Runtime], None]] = []  # run after each successful swap
        self.close_hooks: list[CloseHook] = []
        self.extras: dict[str, Any] = {}
        self.reloads = 0
        self.reload_failures = 0

    def http_session(self) -> aiohttp.ClientSession:
        """The shared keep-alive client session (created on first use inside the running loop)."""
        if self._session is None or self._session.closed:
            ctx: ssl.SSLContext | bool = True
            if self.settings.backend_ca_file:
                ctx = ssl.create_default_context(cafile=self.settings.backend_ca_file)
            connector = aiohttp.TCPConnector(
                limit=self.settings.pool_size_total,
                limit_per_host=self.settings.pool_size_per_host,
                keepalive_timeout=self.settings.backend_keepalive_s,
                ttl_dns_cache=30,
                ssl=ctx,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            # retries are ours (retry_count rule of the spec): turn aiohttp's silent one-retry off
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    def h1_client(self) -> H1Client:
        """The shared pooled HTTP/1.1 client of the backend hot path (gateway/lib/h1client.py)."""
        if self._h1 is None:
            s = self.settings
            self._h1 = H1Client(s.pool_size_per_host, s.backend_keepalive_s, s.backend_ca_file)
        return self._h1

    async def close(self) -> None:
        for hook in self.close_hooks:
            try:
                await hook()
            except Exception:
                pass
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._h1 is not None:
            await self._h1.close()
            self._h1 = None
