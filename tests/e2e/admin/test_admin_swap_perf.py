"""Swap time for a 10,000-API snapshot pushed through ``PUT /v1/snapshot``, idle and under client load.

Prints the numbers (run with ``-s``); asserts that no request fails during the swap and that the old
snapshot answers until the new one is active. The numbers in docs/admin-api.md come from this test.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from tests.support.admin_helpers import V2, call
from tests.support.cluster_helpers import wait_for
from tests.support.helpers import GROUP_HOST, mock_api, snapshot

N = 10_000


def _big(tag: str) -> bytes:
    apis = [mock_api(f"api{i}", f"/svc/{i}/items/{{id}}", f"{tag}-{i}") for i in range(N)]
    apis.append(mock_api("probe", "/probe", tag))
    return orjson.dumps(snapshot(apis))


async def test_swap_10k_apis_idle_and_under_load(make_gateway):
    gw = await make_gateway(snapshot([mock_api("probe", "/probe", "v0")]))
    body_a, body_b = _big("va"), _big("vb")
    async with aiohttp.ClientSession() as admin:
        t0 = time.perf_counter()
        status, res, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=body_a,
                                    headers={"Content-Type": "application/json"})
        idle_s = time.perf_counter() - t0
        assert status == 200, res
        assert res["counts"]["apis"] == N + 1
        compile_idle = res["compile_ms"]

        stop = asyncio.Event()
        stats = {"ok": 0, "fail": 0, "max_ms": 0.0, "bodies": set()}

        async def load() -> None:
            async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
                while not stop.is_set():
                    t = time.perf_counter()
                    try:
                        async with s.get(gw.url + "/svc/9999/items/7") as r:
                            text = await r.text()
                            if r.status == 200:
                                stats["ok"] += 1
                                stats["bodies"].add(text)
                            else:
                                stats["fail"] += 1
                    except aiohttp.ClientError:
                        stats["fail"] += 1
                    stats["max_ms"] = max(stats["max_ms"], (time.perf_counter() - t) * 1000)

        clients = [asyncio.create_task(load()) for _ in range(4)]
        await wait_for(lambda: stats["ok"] > 20, 30)
        before_ok = stats["ok"]
        t0 = time.perf_counter()
        status, res, _ = await call(admin, gw.admin_url, "PUT", "/v1/snapshot", data=body_b,
                                    headers={"Content-Type": "application/json"})
        loaded_s = time.perf_counter() - t0
        during_ok = stats["ok"] - before_ok
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
        assert status == 200, res
        # one v2 change on top of the 10k-API snapshot (revalidates and recompiles the whole document)
        new_api = {k: v for k, v in mock_api("x", "/v2-made", "made").items() if k != "id"}
        t0 = time.perf_counter()
        status, made, _ = await call(admin, gw.admin_url, "POST", f"{V2}/apis", json=new_api)
        v2_s = time.perf_counter() - t0
        assert status == 201, made
    print(f"\nv2 create API on the 10k snapshot: {v2_s * 1000:.0f} ms")
    print(f"10k-API swap: idle {idle_s * 1000:.0f} ms (compile {compile_idle:.0f} ms); "
          f"under load {loaded_s * 1000:.0f} ms (compile {res['compile_ms']:.0f} ms); "
          f"requests ok={stats['ok']} (during the swap {during_ok}) failed={stats['fail']} "
          f"max latency {stats['max_ms']:.0f} ms")
    assert stats["fail"] == 0
    assert stats["bodies"] == {"va-9999", "vb-9999"}
    assert during_ok > 0  # the public listener kept answering while the new snapshot compiled
    assert idle_s < 60 and loaded_s < 60
