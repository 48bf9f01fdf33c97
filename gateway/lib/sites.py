"""An aiohttp site whose connections get a protocol of our choosing.

Role: start-up only. ``web.TCPSite`` always uses the runner's HTTP/1.1 protocol; the HTTPS listener (ALPN
``h2`` or ``http/1.1``) and the plain listener with prior-knowledge ``h2c`` need a dispatcher in front of it.
The site still belongs to the runner, so ``runner.cleanup()`` closes it like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web


class ProtocolSite(web.TCPSite):
    """``web.TCPSite`` with ``factory`` as the protocol factory."""

    def __init__(self, runner: web.BaseRunner, factory: Callable[[], asyncio.BaseProtocol], *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(runner, *args, **kwargs)
        self._factory = factory

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
