"""Control-plane benchmark: compile cost, single-change latency, stalls under load, churn, RSS.

Usage: ``python benchmarks/control_plane.py [--apis 10000] [--big-apis 100000] [--churn-s 30]
[--churn-rate 100] [--repeat 3] [--skip-big] [--skip-cluster]``

Everything runs on this machine on loopback: a private redis-server and two real gateway processes
(``python -m gateway run``) following each other through it. The snapshot (tests/support/bigdoc.py) has
``--apis`` APIs over ``apis / 100`` groups and two environments, with throttles, ACLs, apps and app
authorisations bound to a share of them. Figures printed:

* full compile (validate + compile) of the snapshot and of ``--big-apis`` APIs, in this process;
* RSS of a gateway process serving ``--big-apis`` APIs;
* for each single-API v2 change (update an API's backend, unpublish, publish, bind a throttle): time from
  the call until this node serves the change, and until the second node (through Redis) serves it;
* worst request latency of 4 clients (a separate process, keep-alive) during each change and during a
  full ``PUT /v1/snapshot`` of the whole snapshot;
* churn: ``--churn-rate`` single-API changes per second for ``--churn-s`` seconds under the same load:
  failed changes, failed requests, and whether both nodes end on the last version.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.throttle_common import Gateway as _Gateway  # noqa: E402
from benchmarks.throttle_common import Redis  # noqa: E402
from tests.support.bigdoc import RELEASE, big_document, group_host, make_api, probe_path  # noqa: E402

V2 = "/v2/proj/apigw/instances/inst"


class Gateway(_Gateway):
    """A real gateway process; waits up to ``wait_s`` for its ports (a 100,000-API start takes a while)."""

    def __init__(self, doc: dict[str, Any], redis_url: str | None = None, extra: list[str] | None = None,
                 wait_s: float = 600.0) -> None:
        super().__init__(doc, redis_url, extra=extra, wait_s=wait_s)


# --- compile figures (in this process) -----------------------------------------------------------------
def flat_document(n: int) -> dict[str, Any]:
    """The shape of benchmarks/run.py: one group, RELEASE only, MOCK APIs (one publication each)."""
    apis = [{"id": f"a{i}", "group_id": "g", "name": f"api{i}", "type": 1, "req_protocol": "BOTH",
             "req_method": "GET", "req_uri": f"/svc{i}/items/{{id}}" if i % 2 else f"/svc{i}/status",
             "auth_type": "NONE", "backend_type": "MOCK", "mock_info": {"result_content": "x"}} for i in range(n)]
    return {"groups": [{"id": "g", "name": "bench"}], "apis": apis,
            "publishes": [{"publish_id": f"p{i}", "api_id": f"a{i}", "env_id": RELEASE} for i in range(n)]}


def compile_figures(n: int, flat: bool = False) -> dict[str, float]:
    """validate + compile as the gateway runs them (collector paused: gateway/process/retire.py)."""
    from gateway.compiler import compile_snapshot, validate
    from gateway.core.settings import Settings
    from gateway.model.services import Services
    from gateway.process.retire import quiet_gc

    doc = flat_document(n) if flat else big_document(n)
    gc.collect()
    with quiet_gc():
        c0, t0 = time.process_time(), time.perf_counter()
        index = validate(doc)
        t1 = time.perf_counter()
        rt = compile_snapshot(index, Services(Settings()))
        c2, t2 = time.process_time(), time.perf_counter()
    out = {"apis": n, "publications": len(rt.endpoints), "validate_ms": (t1 - t0) * 1000,
           "compile_ms": (t2 - t1) * 1000, "total_ms": (t2 - t0) * 1000, "cpu_ms": (c2 - c0) * 1000}
    del rt, index, doc
    gc.collect()
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serving_rss(n: int) -> tuple[float, float]:
    """(seconds until ready, RSS MB) of a gateway process started on an n-API snapshot."""
    t0 = time.perf_counter()
    gw = Gateway(big_document(n), extra=["--set", "metrics=false"])
    try:
        asyncio.run(_wait_ready(gw.admin_port, 300))
        ready_s = time.perf_counter() - t0
        return ready_s, rss_mb(gw.proc.pid)
    finally:
        gw.stop()


async def _wait_ready(admin_port: int, timeout: float) -> str:
    import aiohttp

    end = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < end:
            try:
                async with s.get(f"http://127.0.0.1:{admin_port}/readyz") as r:
                    if r.status == 200:
                        return str((await r.json())["version"])
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("gateway not ready")


# --- load: 4 keep-alive clients in a separate process, every request recorded -----------------------
def _load_main(url: str, targets: list[tuple[str, str]], clients: int, conn: Any) -> None:
    async def run() -> list[tuple[float, float, int]]:
        import aiohttp

        records: list[tuple[float, float, int]] = []
        stop = False

        async def client(k: int) -> None:
            rnd = random.Random(k)
            async with aiohttp.ClientSession() as s:
                while not stop:
                    host, path = targets[rnd.randrange(len(targets))]
                    t = time.time()
                    try:
                        async with s.get(url + path, headers={"Host": host}) as r:
                            await r.read()
                            status = r.status
                    except Exception:
                        status = 0
                    records.append((t, (time.time() - t) * 1000, status))

        tasks = [asyncio.create_task(client(k)) for k in range(clients)]
        loop = asyncio.get_running_loop()
        conn_ready = asyncio.Event()
        loop.add_reader(conn.fileno(), conn_ready.set)
        await conn_ready.wait()
        stop = True
        await asyncio.gather(*tasks)
        return records

    conn.send(asyncio.run(run()))


class Load:
    def __init__(self, url: str, targets: list[tuple[str, str]], clients: int = 4) -> None:
        self.parent, child = mp.Pipe()
        self.proc = mp.get_context("fork").Process(target=_load_main, args=(url, targets, clients, child))
        self.proc.start()
        self.records: list[tuple[float, float, int]] = []

    def stop(self) -> list[tuple[float, float, int]]:
        self.parent.send("stop")
        self.records = self.parent.recv()
        self.proc.join(10)
        return self.records

    def window(self, t0: float, t1: float) -> tuple[int, int, float]:
        """(requests, failures, worst latency ms) of the requests that overlapped [t0, t1]."""
        sel = [r for r in self.records if r[0] <= t1 and r[0] + r[1] / 1000 >= t0]
        return len(sel), sum(1 for r in sel if r[2] != 200), max((r[1] for r in sel), default=0.0)


# --- the cluster part ------------------------------------------------------------------------------------
class Cluster:
    def __init__(self, n: int, redis_url: str) -> None:
        import aiohttp

        self.n = n
        self.doc = big_document(n, version="bench-1")
        self.a = Gateway(self.doc, redis_url=redis_url, extra=["--set", "metrics=false"])
        self.b = Gateway(self.doc, redis_url=redis_url, extra=["--set", "metrics=false"])
        self.session: aiohttp.ClientSession | None = None
        self.n_groups = max(1, n // 100)
        self.pub_ids: dict[int, str] = {}

    async def open(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        for g in (self.a, self.b):
            await _wait_ready(g.admin_port, 300)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        self.a.stop()
        self.b.stop()

    async def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None
                   ) -> tuple[int, Any, str]:
        assert self.session is not None
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        async with self.session.request(method, f"http://127.0.0.1:{self.a.admin_port}{path}", data=data,
                                        headers={"Content-Type": "application/json"}) as r:
            text = await r.read()
            return r.status, (orjson.loads(text) if text else None), r.headers.get("ETag", "").strip('"')

    async def probe(self, gw: Gateway, i: int) -> tuple[int, str, bool]:
        assert self.session is not None
        async with self.session.get(gw.url + probe_path(i), headers={"Host": group_host(i % self.n_groups)}) as r:
            body = await r.read()
            throttled = any(k.lower().startswith("x-apig-ratelimit-api") for k in r.headers)
            return r.status, body.decode(errors="replace"), throttled

    async def served(self, gw: Gateway, i: int, cond: Any, timeout: float = 60.0) -> float:
        """Time (s, perf_counter) at which ``cond(probe)`` first held."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            res = await self.probe(gw, i)
            if cond(res):
                return time.perf_counter()
            await asyncio.sleep(0.001)
        return float("nan")

    async def version(self, gw: Gateway) -> str | None:
        assert self.session is not None
        async with self.session.get(f"http://127.0.0.1:{gw.admin_port}/readyz") as r:
            return str((await r.json()).get("version")) if r.status == 200 else None

    async def change(self, kind: str, i: int, tag: str) -> tuple[float, float, float, int]:
        """Apply one single-API change to API ``i``; (call ms, local served ms, remote served ms, status)."""
        pre: tuple[str, str, Any] | None = None
        if kind == "update":  # edit the published API (a draft), then publish the draft
            api = make_api(i, self.n_groups, content=tag)
            api.pop("id")
            pre = ("PUT", f"{V2}/apis/a{i}", api)
            req: tuple[str, str, Any] = ("POST", f"{V2}/apis/action",
                                         {"action": "online", "api_id": f"a{i}", "env_id": RELEASE})

            def cond(r: tuple[int, str, bool]) -> bool:
                return r[1] == tag
        elif kind == "unpublish":
            req = ("POST", f"{V2}/apis/action", {"action": "offline", "api_id": f"a{i}", "env_id": RELEASE})

            def cond(r: tuple[int, str, bool]) -> bool:
                return r[0] == 404
        elif kind == "publish":
            req = ("POST", f"{V2}/apis/action", {"action": "online", "api_id": f"a{i}", "env_id": RELEASE})

            def cond(r: tuple[int, str, bool]) -> bool:
                return r[0] == 200
        else:  # bind a throttle
            pub = self.pub_ids.get(i, f"p-a{i}-{RELEASE}")
            req = ("POST", f"{V2}/throttle-bindings", {"strategy_id": "t3", "publish_ids": [pub]})

            def cond(r: tuple[int, str, bool]) -> bool:
                return r[2]
        t0 = time.perf_counter()
        local = asyncio.create_task(self.served(self.a, i, cond))
        remote = asyncio.create_task(self.served(self.b, i, cond))
        if pre is not None:
            status, body, _ = await self.call(*pre)
            if status >= 300:
                print(f"  {kind} a{i}: {status} {body}")
        status, body, _ = await self.call(*req)
        t_call = time.perf_counter()
        if status >= 300:
            local.cancel()
            remote.cancel()
            print(f"  {kind} a{i}: {status} {body}")
            return (t_call - t0) * 1000, float("nan"), float("nan"), status
        if kind == "publish" and isinstance(body, dict):
            self.pub_ids[i] = str(body.get("publish_id"))
        t_local, t_remote = await asyncio.gather(local, remote)
        return (t_call - t0) * 1000, (t_local - t0) * 1000, (t_remote - t0) * 1000, status


def _pick(n: int, rnd: random.Random, pred: Any) -> int:
    while True:
        i = rnd.randrange(n)
        if pred(i):
            return i


async def cluster_figures(args: argparse.Namespace) -> None:
    redis = Redis()
    cl = Cluster(args.apis, redis.url)
    load: Load | None = None
    try:
        await cl.open()
        n = args.apis
        rnd = random.Random(7)
        # load targets: MOCK APIs (even ids) never touched by the changes below (ids that are multiples of 4)
        targets = [(group_host(i % cl.n_groups), probe_path(i)) for i in range(2, n, 4) if i % 10 != 5][:500]
        load = Load(cl.a.url, targets)
        await asyncio.sleep(1.0)
        windows: list[tuple[str, float, float]] = []
        rows: list[tuple[str, float, float, float]] = []
        # MOCK APIs without APP auth, throttle or params: the probe answers 200 with the mock body
        def plain(i: int) -> bool:
            return i % 4 == 0 and i % 10 != 5 and i % 5 != 0 and i % 7 != 0

        for k in range(args.repeat):
            i = _pick(n, rnd, plain)
            for kind in ("update", "unpublish", "publish", "bind"):
                w0 = time.time()
                call_ms, local_ms, remote_ms, _ = await cl.change(kind, i, f"bench-{k}-{i}")
                windows.append((kind, w0, time.time()))
                rows.append((kind, call_ms, local_ms, remote_ms))
                await asyncio.sleep(0.2)
        # a full PUT /v1/snapshot of the whole document (every mock body changed)
        doc = big_document(n, version="bench-full")
        for api in doc["apis"]:
            if "mock_info" in api:
                api["mock_info"] = {"result_content": api["mock_info"]["result_content"] + "-full"}
        body = orjson.dumps(doc)
        w0 = time.time()
        t0 = time.perf_counter()
        status, _, _ = await cl.call("PUT", "/v1/snapshot", raw=body)
        put_ms = (time.perf_counter() - t0) * 1000
        probe_i = targets[0][1]
        t_remote = await cl.served(cl.b, int(probe_i.split("/")[1][3:]), lambda r: r[1].endswith("-full"))
        remote_put_ms = (t_remote - t0) * 1000
        windows.append(("full PUT", w0, time.time()))
        await asyncio.sleep(0.5)

        # churn
        churn_fail = 0
        churn_done = 0
        last_etag = ""
        w0 = time.time()
        t_end = time.perf_counter() + args.churn_s
        interval = 1.0 / args.churn_rate
        next_t = time.perf_counter()
        pending: set[asyncio.Task[Any]] = set()

        last_i: list[int] = []

        async def one(k: int) -> None:
            nonlocal churn_fail, churn_done, last_etag
            i = _pick(n, rnd, plain)
            if k % 2 == 0:  # edit an API (its draft) ...
                api = make_api(i, cl.n_groups, content=f"churn-{k}")
                api.pop("id")
                req: tuple[str, str, Any] = ("PUT", f"{V2}/apis/a{i}", api)
            else:  # ... or publish one (the last edited one's draft, or a re-publication)
                req = ("POST", f"{V2}/apis/action", {"action": "online", "api_id": f"a{last_i[0]}",
                                                     "env_id": RELEASE})
            last_i[0] = i
            try:
                status, _, etag = await cl.call(*req)
            except Exception:
                status, etag = 0, ""
            churn_done += 1
            if status >= 300:
                churn_fail += 1
            elif etag:
                last_etag = etag

        k = 0
        last_i.append(_pick(n, rnd, plain))
        if args.churn_s > 0:
            while time.perf_counter() < t_end:
                if len(pending) >= 8:  # at most 8 changes in flight: a control plane waits for its answers
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(one(k))
                pending.add(task)
                task.add_done_callback(pending.discard)
                k += 1
                next_t += interval
                await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
            await asyncio.gather(*pending)
        churn_elapsed = time.time() - w0
        windows.append(("churn", w0, time.time()))
        final_a = await cl.version(cl.a)
        t0 = time.perf_counter()
        converged = float("nan")
        while time.perf_counter() - t0 < 60:
            if await cl.version(cl.b) == final_a:
                converged = (time.perf_counter() - t0) * 1000
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        load.stop()

        print(f"\nsingle-API v2 changes on {n} APIs ({args.repeat} each; ms from the call; "
              f"load: 4 clients on node A)")
        print(f"{'change':<12}{'call ms':>9}{'node A ms':>11}{'node B ms':>11}{'worst req ms':>14}{'failed':>8}")
        for (kind, call_ms, local_ms, remote_ms), (_, w0, w1) in zip(rows, windows, strict=False):
            _, fails, worst = load.window(w0, w1)
            print(f"{kind:<12}{call_ms:>9.0f}{local_ms:>11.0f}{remote_ms:>11.0f}{worst:>14.1f}{fails:>8}")
        for name, w0, w1 in windows[len(rows):]:
            reqs, fails, worst = load.window(w0, w1)
            extra = ""
            if name == "full PUT":
                extra = f"  (PUT answered in {put_ms:.0f} ms, status {status}; node B served it after " \
                        f"{remote_put_ms:.0f} ms)"
            if name == "churn":
                extra = (f"  ({churn_done} changes in {churn_elapsed:.1f} s = {churn_done / churn_elapsed:.0f}/s, "
                         f"{churn_fail} failed; node B on A's last version {final_a} "
                         f"{f'after {converged:.0f} ms' if converged == converged else 'NEVER'}; "
                         f"last ETag {last_etag})")
            print(f"{name:<12} requests {reqs} failed {fails} worst latency {worst:.1f} ms{extra}")
        lat = sorted(r[1] for r in load.records)
        if lat:
            print(f"all load requests: {len(lat)}, p50 {lat[len(lat) // 2]:.1f} ms, "
                  f"p99 {lat[int(len(lat) * 0.99)]:.1f} ms, max {lat[-1]:.1f} ms, "
                  f"failed {sum(1 for r in load.records if r[2] != 200)}")
            # the machine's own noise: requests that overlapped no change, no push and no churn
            quiet = [r[1] for r in load.records
                     if not any(r[0] <= w1 and r[0] + r[1] / 1000 >= w0 for _, w0, w1 in windows)]
            if quiet:
                print(f"load requests outside any change: {len(quiet)}, worst latency {max(quiet):.1f} ms "
                      f"(the noise floor of this machine for the worst-latency figures above)")
    finally:
        if load is not None and load.proc.is_alive():
            load.proc.kill()
        await cl.close()
        redis.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apis", type=int, default=10000)
    ap.add_argument("--big-apis", type=int, default=100000)
    ap.add_argument("--churn-s", type=float, default=30.0)
    ap.add_argument("--churn-rate", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-cluster", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    sizes = [(args.apis, False)] + ([] if args.skip_big else [(args.big_apis, True), (args.big_apis, False)])
    print(f"\n{'snapshot':>10}{'APIs':>8}{'publications':>14}{'validate ms':>13}{'compile ms':>12}{'total ms':>10}"
          f"{'cpu ms':>9}")
    for n, flat in sizes:
        f = compile_figures(n, flat)
        print(f"{'flat' if flat else 'bench':>10}{n:>8}{int(f['publications']):>14}{f['validate_ms']:>13.0f}"
              f"{f['compile_ms']:>12.0f}{f['total_ms']:>10.0f}{f['cpu_ms']:>9.0f}")
    print("(bench: the benchmark snapshot, 2 environments; flat: one group, RELEASE only, MOCK APIs)")
    if not args.skip_big:
        ready_s, rss = serving_rss(args.big_apis)
        print(f"gateway serving {args.big_apis} APIs: ready after {ready_s:.1f} s, RSS {rss:.0f} MB")
    if not args.skip_cluster:
        asyncio.run(cluster_figures(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
