"""The public listener's connection protocol: aiohttp's low-level server plus a header-read timeout.

Role in the pipeline: step 0 (accept). aiohttp parses requests with bounded line and header sizes
(``max_line_bytes``, ``max_header_bytes``, ``max_headers``; oversize heads are answered 400 by aiohttp
itself before any of our code runs). What aiohttp lacks is a bound on how long a client may take to send
its request head (slow-loris): :class:`HeadTimeoutHandler` closes a connection whose *first* request head
is not complete within ``header_read_timeout_s``. Later requests on a keep-alive connection are bounded by
aiohttp's keep-alive timeout between requests (documented limitation).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler


class HeadTimeoutHandler(RequestHandler):
    head_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self.head_timeout_s, self._head_expired)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        timer = getattr(self, "_head_timer", None)
        if timer is not None and self._request_count > 0:
            timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._request_count == 0 and self.transport is not None:
            self.transport.close()


class PublicServer(web.Server):
    """``web.Server`` whose connections use :class:`HeadTimeoutHandler`."""

    def __init__(self, *args: Any, head_timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout_s = head_timeout_s

    def __call__(self) -> RequestHandler:
        handler = HeadTimeoutHandler(self, loop=self._loop, **self._kwargs)
        handler.head_timeout_s = self._head_timeout_s
        return handler
