"""A whole-snapshot PUT keeps the event loop answering: requests are served while the push is parsed,
validated and compiled; what the push built is frozen out of the collector's sight; the replaced snapshot and
the indexes it was built with are freed after the grace period (gateway/core/gcquiet.py,
gateway/process/retire.py)."""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref

import aiohttp
import orjson

from gateway.compiler.compiler import index_of
from gateway.process import retire
from tests.support.admin_helpers import call
from tests.support.cluster_helpers import wait_for
from tests.support.helpers import GROUP_HOST, http_api, mock_api, snapshot

N = 4000


def _body(tag: str) -> bytes:
    apis = [mock_api(f"api{i}", f"/svc/{i}/items/{{id}}", f"{tag}-{i}") for i in range(N)]
    apis.append(mock_api("probe", "/probe", tag))
    return orjson.dumps(snapshot(apis))


async def test_requests_are_answered_while_a_big_push_is_processed(make_gateway, monkeypatch) -> None:
    monkeypatch.setattr(retire, "GRACE_S", 0.2)
    gw = await make_gateway(snapshot([mock_api("probe", "/probe", "v0")]))
    async with aiohttp.ClientSession() as admin:
        status, res, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=_body("va"),
                                    headers={"Content-Type": "application/json"})
        assert status == 200, res
        old_runtime = gw.gw.runtime
        assert old_runtime is not None
        old_refs = [weakref.ref(old_runtime), weakref.ref(index_of(old_runtime))]
        if gw.gw.doc_index is not None:
            old_refs.append(weakref.ref(gw.gw.doc_index))
        del old_runtime
        frozen = gc.get_freeze_count()

        body = _body("vb")
        put = asyncio.create_task(call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=body,
                                       headers={"Content-Type": "application/json"}))
        answered_during = 0
        async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as client:
            while not put.done():  # the loop keeps serving while the new snapshot is parsed and compiled
                async with client.get(gw.url + "/probe") as r:
                    text = await r.text()
                    assert r.status == 200 and text in ("va", "vb")
                if not put.done():
                    answered_during += 1
        status, res, _ = await put
        assert status == 200, res
        assert answered_during > 0
        # the new snapshot went to the permanent generation before the collector was turned back on
        assert gc.get_freeze_count() >= frozen + N
        # the replaced runtime, its validated index and the change-planning index are all freed after the grace
        await wait_for(lambda: all(r() is None for r in old_refs), 30)


async def test_error_answers_leave_no_reference_cycles(make_gateway) -> None:
    """A whole push pauses the collector, then freezes what is alive: garbage that requests leave in reference
    cycles meanwhile would be kept for good. Error answers (unknown API, missing credentials, backend refused)
    leave none: the error's traceback, which holds the frames that hold the request, is dropped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once the socket is closed
    app_api = dict(mock_api("app", "/app", "x"), auth_type="APP")
    gw = await make_gateway(snapshot([mock_api("probe", "/probe", "x"), app_api, http_api("h", "/refused", closed)]))
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as client:
        statuses = set()
        for path in ("/missing", "/app", "/refused"):  # warm-up: first-use caches are not garbage
            async with client.get(gw.url + path) as r:
                await r.read()
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                for path in ("/missing", "/app", "/refused"):
                    async with client.get(gw.url + path) as r:
                        await r.read()
                        statuses.add(r.status)
            found = gc.collect()
        finally:
            gc.enable()
    assert statuses == {404, 401, 502}, statuses
    assert found < 60, f"{found} objects in reference cycles after 60 error answers"
