"""Coalesced socket writes (gateway.core.writebatch) and how the HTTP/1 listener uses them: the answers of a loop
pass go out together after it, in order, and nothing queued is lost or overtaken when the connection is closed
or written to directly."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.core.writebatch import WriteBatch
from tests.unit.process.test_http1 import FakeTransport, connect, until

REQ = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"


async def test_writes_of_a_loop_pass_go_out_together_after_it_in_order() -> None:
    loop = asyncio.get_running_loop()
    batch = WriteBatch()
    a, b = FakeTransport(), FakeTransport()
    batch.write(loop, a, b"1")
    batch.write(loop, b, b"x")
    batch.write(loop, a, b"2")
    assert a.out == b"" and b.out == b"" and len(batch) == 3  # nothing is written during the pass
    await asyncio.sleep(0)  # one loop turn: the scheduled flush runs
    assert a.out == b"12" and b.out == b"x" and len(batch) == 0
    batch.write(loop, a, b"3")  # the next pass schedules its own flush
    await until(lambda: a.out == b"123")


async def test_an_explicit_flush_writes_at_once_and_the_scheduled_one_then_has_nothing() -> None:
    loop = asyncio.get_running_loop()
    batch = WriteBatch()
    t = FakeTransport()
    batch.write(loop, t, b"head")
    batch.flush()  # what a writer that bypasses the batch does first
    t.write(b"+direct")
    await asyncio.sleep(0)
    assert t.out == b"head+direct"


async def test_a_transport_closing_before_the_flush_gets_nothing() -> None:
    loop = asyncio.get_running_loop()
    batch = WriteBatch()
    gone, alive = FakeTransport(), FakeTransport()
    batch.write(loop, gone, b"lost peer")
    batch.write(loop, alive, b"ok")
    gone.close()  # FakeTransport.write asserts when written after close
    await asyncio.sleep(0)
    assert gone.out == b"" and alive.out == b"ok"


async def test_a_batched_answer_is_written_before_the_connection_closes() -> None:
    """An answer after an I/O wait is batched; ``Connection: close`` then closes the connection in the same pass:
    the close flushes first, so the caller gets its answer."""
    async def waits(request: Any) -> web.Response:
        await asyncio.sleep(0)
        return web.Response(body=b"late")

    proto, t = connect(waits)
    proto.data_received(b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    await until(lambda: t.closed)
    assert t.out.startswith(b"HTTP/1.1 200 OK") and t.out.endswith(b"late")


async def test_a_direct_answer_never_overtakes_a_batched_one() -> None:
    """The first answer waits (answered after the wait, from its future's done-callback: batched); the next
    request arrives in the same loop pass and is answered from the read callback (written directly): the queue
    is flushed first, so the bytes keep the requests' order."""
    gate = asyncio.Event()

    async def handler(request: Any) -> web.Response:
        if request.path == "/slow":
            await gate.wait()
        return web.Response(body=request.path.encode())

    proto, t = connect(handler)
    await until(lambda: proto._wakeup is not None)  # the connection's task is parked
    proto.data_received(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(lambda: proto._handoff is None and proto.busy)  # the handler now waits on the gate
    loop = asyncio.get_running_loop()
    queued: list[int] = []

    def fast_arrives() -> None:  # runs after the step that answered /slow, before the batch's flush
        queued.append(len(proto.server.batch))
        proto.data_received(b"GET /fast HTTP/1.1\r\nHost: h\r\n\r\n")

    gate.set()  # schedules the handler's step (it answers /slow into the batch, whose flush is scheduled then) ...
    loop.call_soon(fast_arrives)  # ... and this runs right after that step, before the flush
    await until(lambda: t.out.count(b"HTTP/1.1 200 OK") == 2)
    assert queued == [1]  # /slow was still queued when /fast was answered directly
    assert t.out.index(b"/slow") < t.out.index(b"/fast")
