"""Hot reload in one process: in-flight requests keep their snapshot, pools survive, 100 pushes under load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.core.errors import SnapshotError
from gateway.process.reload import ClusterState, FileWatcher, load_file, reload_file
from tests.support.cluster_helpers import PortBackend, get_json, start_backend, wait_for, write_doc
from tests.support.helpers import http_api, mock_api, snapshot


async def test_inflight_request_finishes_on_its_snapshot(make_gateway: Any) -> None:
    backend = PortBackend(delay=1.0)
    server, hostport = await start_backend(backend)
    try:
        v1 = snapshot([http_api("slow", "/slow", hostport, timeout=5000), mock_api("m", "/mock", "one")])
        v1["version"] = "v1"
        rg = await make_gateway(v1)
        async with aiohttp.ClientSession() as session:
            inflight = asyncio.create_task(get_json(session, f"{rg.url}/slow"))
            await asyncio.wait_for(backend.slow_started.wait(), 5)
            v2 = snapshot([mock_api("m", "/mock", "two")])  # /slow is gone in the new snapshot
            v2["version"] = "v2"
            await rg.gw.push_document(v2)
            # new requests see v2 at once: the route is gone, the mock answers "two"
            status, _ = await get_json(session, f"{rg.url}/slow")
            assert status == 404
            assert await get_json(session, f"{rg.url}/mock") == (200, "two")
            assert not inflight.done()
            status, body = await inflight
            assert status == 200, body
            assert body["path"] == "/slow"
            assert backend.received.count("/slow") == 1
    finally:
        await server.close()


async def test_backend_connection_pool_survives_swaps(make_gateway: Any) -> None:
    backend = PortBackend()
    server, hostport = await start_backend(backend)
    try:
        def doc(n: int) -> dict[str, Any]:
            d = snapshot([http_api("a", "/a", hostport, backend_uri=f"/v/{n}")])
            d["version"] = f"v{n}"
            return d

        rg = await make_gateway(doc(1))
        session_before = rg.gw.services.http_session()
        async with aiohttp.ClientSession() as session:
            status, first = await get_json(session, f"{rg.url}/a")
            assert status == 200 and first["path"] == "/v/1"
            for n in range(2, 6):
                await rg.gw.push_document(doc(n))
                status, body = await get_json(session, f"{rg.url}/a")
                assert status == 200 and body["path"] == f"/v/{n}"
                # same keep-alive connection from the gateway to the backend: the pool was kept
                assert body["peer_port"] == first["peer_port"]
        assert rg.gw.services.http_session() is session_before
    finally:
        await server.close()


async def test_100_pushes_under_steady_traffic(make_gateway: Any) -> None:
    """Every response must come from a snapshot that was active while the request was in flight."""
    backends = [PortBackend(name=f"b{i}") for i in range(3)]
    servers = [await start_backend(b) for b in backends]
    try:
        def doc(n: int) -> dict[str, Any]:
            hostport = servers[n % 3][1]
            d = snapshot([http_api("live", "/live", hostport, backend_uri=f"/v/{n}"),
                          mock_api("m", "/mock", f"m{n}"),
                          mock_api(f"only{n}", f"/only/{n}", f"only{n}")])
            d["version"] = f"v{n}"
            return d

        rg = await make_gateway(doc(0))
        active = [0]  # the newest version whose push has returned
        stats = {"requests": 0, "failed": 0, "misrouted": 0}
        done = asyncio.Event()

        def check(lo: int, hi: int, got: int) -> None:
            if not lo <= got <= hi:
                stats["misrouted"] += 1

        async def client_loop(session: aiohttp.ClientSession) -> None:
            while not done.is_set():
                lo = active[0]
                status, body = await get_json(session, f"{rg.url}/live")
                hi = active[0] + 1  # a push may be swapping in while we wait
                stats["requests"] += 1
                if status != 200:
                    stats["failed"] += 1
                    continue
                got = int(body["path"].rsplit("/", 1)[1])
                check(lo, hi, got)
                if body["name"] != f"b{got % 3}":
                    stats["misrouted"] += 1
                lo = active[0]
                status, text = await get_json(session, f"{rg.url}/mock")
                hi = active[0] + 1
                stats["requests"] += 1
                if status != 200:
                    stats["failed"] += 1
                    continue
                check(lo, hi, int(str(text)[1:]))

        pushes = 100
        async with aiohttp.ClientSession() as session:
            clients = [asyncio.create_task(client_loop(session)) for _ in range(4)]
            t0 = time.perf_counter()
            for n in range(1, pushes + 1):
                await rg.gw.push_document(doc(n))
                active[0] = n
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - t0
            # the route of a replaced snapshot is gone, the current one's is there
            assert (await get_json(session, f"{rg.url}/only/{pushes}"))[0] == 200
            assert (await get_json(session, f"{rg.url}/only/{pushes - 1}"))[0] == 404
            done.set()
            await asyncio.gather(*clients)
        print(f"\n100-push reload: {pushes} pushes in {elapsed:.2f} s, {stats['requests']} requests, "
              f"{stats['failed']} failed, {stats['misrouted']} misrouted")
        assert stats["requests"] > 200
        assert stats["failed"] == 0
        assert stats["misrouted"] == 0
        assert rg.gw.runtime is not None and rg.gw.runtime.version == f"v{pushes}"
        assert rg.gw.services.reloads == pushes + 1
    finally:
        for server, _ in servers:
            await server.close()


async def test_file_reload_all_or_nothing(make_gateway: Any, tmp_path: Path) -> None:
    path = tmp_path / "gw.json"
    write_doc(path, snapshot([mock_api("m", "/m", "one")]))
    rg = await make_gateway()
    load_file(rg.gw, str(path))
    async with aiohttp.ClientSession() as session:
        assert await get_json(session, f"{rg.url}/m") == (200, "one")
        write_doc(path, snapshot([mock_api("m", "/m", "two")]))
        assert await reload_file(rg.gw, str(path)) is True
        assert await get_json(session, f"{rg.url}/m") == (200, "two")
        # a bad file is rejected whole: the previous snapshot keeps serving
        bad = snapshot([mock_api("m", "/m", "three"), mock_api("x", "/x", "x", req_method="BREW")])
        write_doc(path, bad)
        failures = rg.gw.services.reload_failures
        assert await reload_file(rg.gw, str(path)) is False
        assert rg.gw.services.reload_failures == failures + 1
        assert await get_json(session, f"{rg.url}/m") == (200, "two")
        # unchanged file: nothing is recompiled
        write_doc(path, snapshot([mock_api("m", "/m", "two")]))
        reloads = rg.gw.services.reloads
        assert await reload_file(rg.gw, str(path)) is True
        assert rg.gw.services.reloads == reloads


async def test_file_without_version_gets_content_version(make_gateway: Any, tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    write_doc(path, snapshot([mock_api("m", "/m", "one")]))
    rg = await make_gateway()
    load_file(rg.gw, str(path))
    state = ClusterState.of(rg.gw)
    assert rg.gw.runtime is not None and rg.gw.runtime.version.startswith("file-")
    first = state.snapshot_id
    # an admin-style push changes the identity; the same content with the same version maps to the same id
    await rg.gw.push_document(snapshot([mock_api("m", "/m", "pushed")]), version="p1")
    assert state.snapshot_id != first and state.version == "p1"


async def test_watcher_reloads_on_change(make_gateway: Any, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    write_doc(conf / "a.json", snapshot([mock_api("m", "/m", "one")]))
    rg = await make_gateway()
    load_file(rg.gw, str(conf))
    watcher = FileWatcher(str(conf), lambda: reload_file(rg.gw, str(conf)), interval_s=0.1)
    watcher.start()
    try:
        async with aiohttp.ClientSession() as session:
            write_doc(conf / "a.json", snapshot([mock_api("m", "/m", "two")]))
            await wait_for(lambda: get_json(session, f"{rg.url}/m"), 5)
            await wait_for(lambda: _is(get_json(session, f"{rg.url}/m"), (200, "two")), 5)
            # a broken file is logged and skipped
            (conf / "a.json").write_text("{not json")
            await wait_for(lambda: rg.gw.services.reload_failures >= 1, 5)
            assert await get_json(session, f"{rg.url}/m") == (200, "two")
    finally:
        await watcher.stop()


async def _is(coro: Any, expected: Any) -> bool:
    return bool(await coro == expected)


def test_bad_document_raises_with_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"apis": 3}')
    from gateway.core.settings import load_settings
    from gateway.process.server import Gateway

    gw = Gateway(load_settings({}, environ={}))
    try:
        load_file(gw, str(path))
    except SnapshotError as exc:
        assert any("apis" in p for p in exc.problems)
    else:
        raise AssertionError("a bad file must be rejected")
    assert gw.runtime is None
