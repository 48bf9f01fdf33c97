"""The HTTP/1 listener's eager answers (gateway.process.http1): a request without a body is answered from the
read callback when the pipeline needs no I/O wait, and driven from the done-callbacks of the futures it waits
on when it does (the connection's task stays parked); in both cases ``asyncio.current_task()`` is the
connection's task, timeouts and cancellation behave as inside it, and the order of pipelined answers holds."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tests.unit.process.test_http1 import connect, until

REQ = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"


async def parked(proto: Any) -> None:
    await until(lambda: proto._wakeup is not None)  # the connection's task started and waits for requests


async def test_a_synchronous_answer_is_written_inside_the_read_callback() -> None:
    tasks: list[Any] = []

    async def sync_handler(request: Any) -> web.Response:
        tasks.append(asyncio.current_task())
        return web.Response(body=b"now")

    proto, t = connect(sync_handler)
    await parked(proto)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: (proto.data_received(REQ + REQ), done.set_result(bytes(t.out))))
    out = await done  # what was written before the read callback returned
    assert out.count(b"HTTP/1.1 200 OK") == 2 and out.endswith(b"now")
    assert tasks == [proto._task, proto._task]  # the pipeline ran as the connection's task
    assert not proto.busy and proto._wakeup is not None and not proto._wakeup.done()  # no wake-up needed


async def test_an_answer_that_waits_is_driven_to_its_end_in_order() -> None:
    seen: list[str] = []

    async def handler(request: Any) -> web.Response:
        task = asyncio.current_task()
        if request.path == "/slow":
            await asyncio.sleep(0.02)
        assert asyncio.current_task() is task  # the same task before and after the wait
        seen.append(request.path)
        return web.Response(body=request.path.encode())

    proto, t = connect(handler)
    await parked(proto)
    proto.data_received(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
    assert t.out == b""  # the first answer waits: nothing (not even the second, ready one) is written yet
    await until(lambda: t.out.count(b"HTTP/1.1 200") == 2)
    out = bytes(t.out)
    assert seen == ["/slow", "/fast"] and out.index(b"/slow") < out.index(b"/fast")
    # a request that does not wait is still answered inside the read callback after one that did
    await parked(proto)
    proto.data_received(REQ)
    assert t.out.count(b"HTTP/1.1 200") == 3


async def test_answers_that_wait_never_wake_the_parked_task() -> None:
    """Handlers that wait on futures (an upstream call) are driven from the futures' done-callbacks: the
    connection's task stays parked on the same wake-up future across requests, pipelined ones included, and
    ``current_task()`` is the connection's task at every step."""
    tasks: list[Any] = []

    async def handler(request: Any) -> web.Response:
        tasks.append(asyncio.current_task())
        await asyncio.sleep(0.001)
        tasks.append(asyncio.current_task())
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.001, fut.set_result, request.path)
        path = await fut
        tasks.append(asyncio.current_task())
        return web.Response(body=path.encode())

    proto, t = connect(handler)
    await parked(proto)
    wakeup = proto._wakeup
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(lambda: b"/1" in t.out)
    proto.data_received(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(lambda: t.out.count(b"HTTP/1.1 200") == 3)
    out = bytes(t.out)
    assert out.index(b"/1") < out.index(b"/2") < out.index(b"/3")
    assert proto._wakeup is wakeup and not wakeup.done()  # never woken
    assert tasks == [proto._task] * 9 and not proto.busy


async def test_a_failed_wait_is_raised_where_the_driven_handler_waits() -> None:
    async def handler(request: Any) -> web.Response:
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_exception, ConnectionResetError("upstream gone"))
        try:
            await fut
        except ConnectionResetError as exc:
            return web.Response(status=502, body=str(exc).encode())
        return web.Response(body=b"never")

    proto, t = connect(handler)
    await parked(proto)
    proto.data_received(REQ)
    await until(lambda: b"upstream gone" in t.out)
    assert t.out.startswith(b"HTTP/1.1 502") and not t.closed


async def test_a_bare_yield_hands_the_handler_to_the_task() -> None:
    seen: list[Any] = []

    async def handler(request: Any) -> web.Response:
        await asyncio.sleep(0)  # a bare yield, not a future: the task continues the coroutine
        seen.append(asyncio.current_task())
        return web.Response(body=request.path.encode())

    proto, t = connect(handler)
    await parked(proto)
    proto.data_received(REQ + REQ)
    await until(lambda: t.out.count(b"HTTP/1.1 200") == 2)
    assert seen == [proto._task, proto._task]


async def test_a_lost_client_keeps_the_task_until_the_driven_handler_ends() -> None:
    release = asyncio.Event()
    timed_out: list[bool] = []

    async def handler(request: Any) -> web.Response:
        await release.wait()
        try:
            async with asyncio.timeout(0.01):  # needs a live current task to fire
                await asyncio.sleep(5)
        except TimeoutError:
            timed_out.append(True)
        return web.Response(body=b"late")

    proto, t = connect(handler)
    await parked(proto)
    task = proto._task
    proto.data_received(REQ)
    proto.connection_lost(None)
    await asyncio.sleep(0.01)
    assert not task.done()  # the handler still runs as this task
    release.set()
    await until(lambda: task.done())
    assert timed_out == [True] and not task.cancelled() and b"late" not in t.out


async def test_a_cancellation_the_driven_handler_lets_through_ends_the_connection() -> None:
    async def handler(request: Any) -> web.Response:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        await asyncio.sleep(5)
        return web.Response(body=b"never")

    proto, t = connect(handler)
    await parked(proto)
    task = proto._task
    proto.data_received(REQ)
    await until(lambda: task.done())
    assert task.cancelled() and t.closed and b"never" not in t.out


async def test_a_timeout_started_in_the_read_callback_fires_inside_the_handler() -> None:
    async def handler(request: Any) -> web.Response:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)
        except TimeoutError:
            return web.Response(status=504, body=b"late")
        return web.Response(body=b"never")

    proto, t = connect(handler)
    await parked(proto)
    proto.data_received(REQ)
    await until(lambda: b"late" in t.out)
    assert t.out.startswith(b"HTTP/1.1 504") and not t.closed
    await parked(proto)
    assert not proto._task.cancelling()  # the cancellation was consumed by the timeout, not left on the task


async def test_a_timeout_expiring_as_the_awaited_answer_arrives_loses_no_queued_request() -> None:
    """The race of a timeout and the answer it guards, in one loop pass, timeout first: the timeout cancels the
    connection's task (what ``asyncio.timeout`` does), then the answer resumes the driven handler, which ends
    normally (the timeout withdraws its cancellation on exit). The cancellation the task still receives is
    then not a request to end the connection: the pipelined request with a body is answered too."""
    loop = asyncio.get_running_loop()
    waits: dict[str, Any] = {}

    async def handler(request: Any) -> web.Response:
        if request.path == "/race":
            fut = loop.create_future()
            async with asyncio.timeout(30) as cm:
                waits["cm"], waits["fut"] = cm, fut
                await fut
            return web.Response(body=b"in time")
        return web.Response(body=b"body " + await request.content.read())

    proto, t = connect(handler)
    await parked(proto)
    proto.data_received(b"GET /race HTTP/1.1\r\nHost: h\r\n\r\n"
                        b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
    await until(lambda: "fut" in waits)

    def race() -> None:  # in one callback: the timeout's expiry is scheduled first, then the answer's wake-up
        waits["cm"].reschedule(loop.time() - 1)
        waits["fut"].set_result(None)

    loop.call_soon(race)
    await until(lambda: b"body hi" in t.out)
    assert t.out.index(b"in time") < t.out.index(b"body hi") and not t.closed
    await parked(proto)
    assert not proto._task.cancelling()


async def test_a_withdrawn_cancellation_never_reaches_the_next_driven_handler() -> None:
    """The same race, the next pipelined request without a body and waiting too (driven at once): the withdrawn
    cancellation must not be delivered to it; it gets its own answer and the connection stays open."""
    loop = asyncio.get_running_loop()
    waits: dict[str, Any] = {}

    async def handler(request: Any) -> web.Response:
        fut = loop.create_future()
        if request.path == "/race":
            async with asyncio.timeout(30) as cm:
                waits["cm"], waits["fut"] = cm, fut
                await fut
            return web.Response(body=b"in time")
        waits["next"] = fut
        await fut
        return web.Response(body=b"next answered")

    proto, t = connect(handler)
    await parked(proto)
    proto.data_received(b"GET /race HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    await until(lambda: "fut" in waits)

    def race() -> None:
        waits["cm"].reschedule(loop.time() - 1)
        waits["fut"].set_result(None)

    loop.call_soon(race)
    await until(lambda: "next" in waits and b"in time" in t.out)
    await until(lambda: not proto._task.cancelling() and proto._wakeup is not None)  # the stale cancel is spent
    waits["next"].set_result(None)
    await until(lambda: b"next answered" in t.out)
    assert not t.closed


async def test_a_cancel_before_the_task_resumes_reaches_the_handler() -> None:
    """The handler cancels its task, then waits: the task is woken by the cancellation before it took the
    handed-over coroutine; the CancelledError is delivered where the handler waits."""
    async def handler(request: Any) -> web.Response:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            return web.Response(status=503, body=b"cancelled")
        return web.Response(body=b"never")

    proto, t = connect(handler)
    await parked(proto)
    proto.data_received(REQ)
    await until(lambda: b"cancelled" in t.out)
    await parked(proto)
    proto.data_received(REQ)
    await until(lambda: t.out.count(b"cancelled") == 2)


async def test_an_answer_written_while_the_client_does_not_read_waits_for_drain() -> None:
    async def handler(request: Any) -> web.Response:
        return web.Response(body=b"x")

    proto, t = connect(handler)
    await parked(proto)
    proto.data_received(REQ)
    proto.pause_writing()
    proto.data_received(REQ * 3)
    assert t.out.count(b"HTTP/1.1 200") == 2  # one more answer, then the next waits for the client
    await asyncio.sleep(0.02)
    assert t.out.count(b"HTTP/1.1 200") == 2
    proto.resume_writing()
    await until(lambda: t.out.count(b"HTTP/1.1 200") == 4)


async def test_connection_close_stops_answering_and_ends_the_task() -> None:
    proto, t = connect()
    await parked(proto)
    task = proto._task
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + REQ)
    assert t.closed and t.out.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in t.out
    await until(lambda: task.done())


async def test_lost_connection_ends_the_parked_task() -> None:
    proto, _ = connect()
    await parked(proto)
    task = proto._task
    proto.connection_lost(None)
    await until(lambda: task.done())
    assert not task.cancelled()


async def test_head_deadline_after_keep_alive_and_none_while_answering() -> None:
    """A head that begins on an idle keep-alive connection and stays incomplete is cut after the header
    timeout; a complete head whose answer takes longer than that timeout is not."""
    release = asyncio.Event()

    async def handler(request: Any) -> web.Response:
        if request.path == "/wait":
            await release.wait()
        return web.Response(body=request.path.encode())

    proto, t = connect(handler, header_read_timeout_s=0.1, keepalive_timeout_s=5)
    await parked(proto)
    proto.data_received(b"GET /wait HTTP/1.1\r\nHost: h\r\n\r\nGET /next HT")  # the second head is pipelined
    await asyncio.sleep(0.3)  # three header timeouts: the connection is busy, no deadline runs
    assert not t.closed
    release.set()
    await until(lambda: b"/wait" in t.out)
    await until(lambda: t.closed, timeout=2)  # now idle with an incomplete head: the header timeout applies
    assert b"/next" not in t.out

    proto, t = connect(handler, header_read_timeout_s=0.1, keepalive_timeout_s=5)
    await parked(proto)
    proto.data_received(REQ)
    assert b"HTTP/1.1 200" in t.out
    proto.data_received(b"GET /slow-loris HTTP/1.1\r\n")
    await until(lambda: t.closed, timeout=2)


async def test_a_streamed_answer_begun_in_the_read_callback_is_finished_by_the_task() -> None:
    async def streamed(request: Any) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"X-S": "1"})
        await resp.prepare(request)
        await resp.write(b"part-one,")
        await resp.write(b"part-two")
        return resp  # prepared: the listener ends it (write_eof) in the task

    proto, t = connect(streamed)
    await parked(proto)
    proto.data_received(REQ + REQ)
    await until(lambda: t.out.count(b"0\r\n\r\n") == 2)
    out = bytes(t.out)
    assert out.count(b"Transfer-Encoding: chunked") == 2 and out.count(b"part-two") == 2 and not t.closed


async def test_a_handler_that_raises_in_the_read_callback_is_answered_500_and_closed() -> None:
    async def broken(request: Any) -> web.Response:
        raise RuntimeError("boom")

    proto, t = connect(broken)
    await parked(proto)
    proto.data_received(REQ + REQ)
    assert t.out.startswith(b"HTTP/1.1 500") and t.out.count(b"HTTP/1.1") == 1 and t.closed
