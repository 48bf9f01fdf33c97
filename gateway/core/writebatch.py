"""Coalesced socket writes: the complete answers and backend requests of one event-loop pass, sent together.

Role in the pipeline: the last step of a request on the HTTP/1 listener (its answer) and of the upstream
client (a backend request with its whole body). Instead of one ``transport.write`` at the moment each is
ready, they are queued here and written back to back at the end of the loop pass that produced them (one
``call_soon``). On a busy gateway one pass handles many connections; their writes then leave in one burst, and
a peer that sleeps between reads (the load generator, a backend on the same host) is woken once per burst
rather than once per answer. That wake-up is a costly cross-CPU interrupt on virtual machines: measured on a
2-core VM it was about 8 % of the gateway's CPU per forwarded request. An idle gateway gains nothing and
loses nothing (the flush runs before the loop next waits for I/O, so no answer waits for more traffic).

Rules that keep the bytes in order and never lose them:

* everything written to a transport while it has queued data must follow that data: a writer that bypasses
  the batch (a streamed body, a final error, ``100 Continue``) calls :meth:`WriteBatch.flush` first;
* a transport is flushed before it is closed by its owner (:meth:`WriteBatch.flush` from the close path);
* a transport that is already closing when the batch is flushed gets nothing (its peer is gone).
"""

from __future__ import annotations

import asyncio


class WriteBatch:
    """The writes queued during the current loop pass, flushed together by one scheduled callback."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[tuple[asyncio.WriteTransport, bytes]] = []

    def write(self, loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport, data: bytes) -> None:
        """Queue ``data`` for ``transport``; the first write of a pass schedules the flush on ``loop``."""
        items = self._items
        if not items:
            loop.call_soon(self.flush)
        items.append((transport, data))

    def flush(self) -> None:
        """Write everything queued, in order (idempotent: a flush with nothing queued does nothing)."""
        items = self._items
        if not items:
            return
        self._items = []
        for transport, data in items:
            if not transport.is_closing():
                transport.write(data)

    def __len__(self) -> int:
        return len(self._items)
