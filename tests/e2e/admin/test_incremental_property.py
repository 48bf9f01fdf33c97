"""Incremental compile equals full compile: random sequences of v2 changes (seeded generator).

Gateway A takes the changes through the v2 admin API (incremental path): API creates, draft edits, deletes,
publishing and taking offline, switching an environment to a recorded version (its publication then carries
its own copy of the API) and taking a version offline, bindings, invalid edits. After every step, gateway B is
given A's document and compiles it from scratch (``apply_document``: validate + compile the whole thing).
Both answer the same fixed probe requests over real sockets; the answers (status, body, headers other than
request ids and latencies) must be identical, and both export the same document. A rejected change must
leave A's version and document untouched. The second test plants a bug in the change planner (binding and
publication changes no longer recompile their API) and checks that the same procedure catches it.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.process import server as server_mod
from gateway.snapshot import delta
from tests.support.admin_helpers import V2, call
from tests.support.bigdoc import ENVS, big_document, group_host, make_api, probe_path

N_APIS = 300
N_GROUPS = 3
PROBED = 24  # APIs a0..a23 are probed (and changed)
NEW_PATHS = [f"/new{k}/status" for k in range(6)]
VOLATILE = {"x-request-id", "x-apig-latency", "x-apig-upstream-latency", "date", "server", "content-length",
            "x-apig-ratelimit-api", "x-apig-ratelimit-api-allenv", "retry-after"}


def _probes() -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for i in range(PROBED):
        for stage in (None, "TEST"):
            out.append((group_host(i % N_GROUPS), probe_path(i), stage))
    for path in NEW_PATHS:
        for g in range(N_GROUPS):
            for stage in (None, "TEST"):
                out.append((group_host(g), path, stage))
    return out


PROBES = _probes()


async def _answers(session: aiohttp.ClientSession, url: str) -> list[Any]:
    sem = asyncio.Semaphore(16)

    async def one(host: str, path: str, stage: str | None) -> Any:
        headers = {"Host": host}
        if stage:
            headers["X-Stage"] = stage
        async with sem, session.get(url + path, headers=headers) as r:
            body = (await r.read()).decode(errors="replace")
            rid = r.headers.get("X-Request-Id")
            if rid:
                body = body.replace(rid, "<rid>")
            kept = sorted((k.lower(), v) for k, v in r.headers.items() if k.lower() not in VOLATILE)
            return (host, path, stage, r.status, body, kept)

    return list(await asyncio.gather(*(one(*p) for p in PROBES)))


class Driver:
    """Random v2 changes on gateway A, each followed by the comparison with a from-scratch compile on B."""

    def __init__(self, a: Any, b: Any, session: aiohttp.ClientSession, seed: int) -> None:
        self.a, self.b, self.s = a, b, session
        self.rnd = random.Random(seed)
        self.made = 0
        self.copies = 0  # steps after which some publication served its own copy of the API

    def doc(self) -> dict[str, Any]:
        return self.a.gw.document  # type: ignore[no-any-return]

    def _apis(self) -> list[dict[str, Any]]:
        probed = {f"a{i}" for i in range(PROBED)}
        return [x for x in self.doc()["apis"] if x["id"] in probed or x["name"].startswith("made_")]

    def _pubs(self) -> list[dict[str, Any]]:
        ids = {x["id"] for x in self._apis()}
        return [p for p in self.doc()["publishes"] if p["api_id"] in ids]

    def _api_body(self, api: dict[str, Any] | None) -> dict[str, Any]:
        rnd = self.rnd
        i = rnd.randrange(PROBED)
        body = make_api(i, N_GROUPS, content=f"c{rnd.randrange(1000)}")
        body.pop("id")
        if api is not None:
            body["name"], body["group_id"], body["req_uri"] = api["name"], api["group_id"], api["req_uri"]
        if rnd.random() < 0.5:
            body["req_uri"] = rnd.choice(NEW_PATHS)  # may collide with another API: rejected, nothing changes
        if rnd.random() < 0.3:
            body["group_id"] = f"g{rnd.randrange(N_GROUPS)}"
        if rnd.random() < 0.1:
            body["group_id"] = "no-such-group"  # rejected
        return body

    async def step(self) -> tuple[str, int]:
        rnd = self.rnd
        op = rnd.choice(["create", "update", "update", "delete", "publish", "publish", "unpublish", "switch",
                         "bind", "bind", "unbind", "invalid"])
        apis = self._apis()
        if op == "create" or not apis:
            self.made += 1
            body = self._api_body(None)
            body["name"] = f"made_{self.made}"
            body["req_uri"] = rnd.choice(NEW_PATHS)
            return op, await self._call("POST", f"{V2}/apis", body)
        api = rnd.choice(apis)
        if op in ("publish", "switch") and rnd.random() < 0.6:  # favour APIs with a draft / a version history
            marked = ({x["id"] for x in self.doc().get("api_drafts") or []} if op == "publish"
                      else {x["api_id"] for x in self.doc().get("api_versions") or []})
            candidates = [x for x in apis if x["id"] in marked]
            api = rnd.choice(candidates) if candidates else api
        if op == "update":
            return op, await self._call("PUT", f"{V2}/apis/{api['id']}", self._api_body(api))
        if op == "invalid":  # an update the validation rejects: nothing may change
            body = self._api_body(api)
            body["req_method"] = "BREW"
            return op, await self._call("PUT", f"{V2}/apis/{api['id']}", body)
        if op == "delete":
            return op, await self._call("DELETE", f"{V2}/apis/{api['id']}")
        if op in ("publish", "unpublish"):
            body = {"action": "online" if op == "publish" else "offline", "api_id": api["id"],
                    "env_id": rnd.choice(ENVS)}
            return op, await self._call("POST", f"{V2}/apis/action", body)
        if op == "switch":  # serve a recorded version again in its environment, or take it offline
            rows = [v for v in self.doc().get("api_versions") or [] if v["api_id"] == api["id"]]
            if not rows:
                return "noop", 0
            version = rnd.choice(rows)
            if rnd.random() < 0.25:
                return "version_offline", await self._call("DELETE", f"{V2}/apis/versions/{version['id']}")
            return op, await self._call("PUT", f"{V2}/apis/publish/{api['id']}", {"version_id": version["id"]})
        pubs = self._pubs()
        if op == "bind" and pubs:
            pub = rnd.choice(pubs)
            if rnd.random() < 0.5:
                body = {"strategy_id": f"t{rnd.randrange(20)}", "publish_ids": [pub["publish_id"]]}
                return op, await self._call("POST", f"{V2}/throttle-bindings", body)
            body = {"acl_id": f"acl{rnd.randrange(10)}", "publish_ids": [pub["publish_id"]]}
            return op, await self._call("POST", f"{V2}/acl-bindings", body)
        pub_ids = {p["publish_id"] for p in pubs}
        rows = [("throttle-bindings", r) for r in self.doc().get("throttle_bindings") or []
                if r["publish_id"] in pub_ids]
        rows += [("acl-bindings", r) for r in self.doc().get("acl_bindings") or [] if r.get("publish_id") in pub_ids]
        if not rows:
            return "noop", 0
        path, row = rnd.choice(rows)
        return "unbind", await self._call("DELETE", f"{V2}/{path}/{row['id']}")

    async def _call(self, method: str, path: str, body: Any = None) -> int:
        status, res, _ = await call(self.s, self.a.admin_url, method, path, json=body)
        assert status < 500, res
        return status

    async def compare(self) -> str | None:
        """None when A (incremental) and B (from scratch) agree, else a description of the first difference."""
        doc = self.doc()
        self.copies += any("api_definition" in p for p in doc.get("publishes") or [])
        self.b.gw.apply_document(doc, self.a.gw.runtime.version)
        got, want = await _answers(self.s, self.a.url), await _answers(self.s, self.b.url)
        for g, w in zip(got, want, strict=True):
            if g != w:
                return f"probe {g[:3]}: incremental {g[3:]} != full {w[3:]}"
        _, exp_a, _ = await call(self.s, self.a.admin_url, "GET", "/v1/snapshot")
        _, exp_b, _ = await call(self.s, self.b.admin_url, "GET", "/v1/snapshot")
        if orjson.dumps(exp_a, option=orjson.OPT_SORT_KEYS) != orjson.dumps(exp_b, option=orjson.OPT_SORT_KEYS):
            return "exported documents differ"
        return None

    async def run(self, steps: int) -> tuple[str | None, int, int]:
        """(first difference or None, accepted changes, rejected changes)"""
        accepted = rejected = 0
        for _ in range(steps):
            before_version, before_doc = self.a.gw.runtime.version, self.doc()
            op, status = await self.step()
            if status >= 400:
                rejected += 1
                assert self.a.gw.runtime.version == before_version, op  # a rejection changes nothing
                assert self.doc() is before_doc
                continue
            if op != "noop":
                accepted += 1
            diff = await self.compare()
            if diff is not None:
                return f"after {op}: {diff}", accepted, rejected
        return None, accepted, rejected


async def _pair(make_gateway: Any) -> tuple[Any, Any]:
    doc = big_document(N_APIS, version="start")
    a = await make_gateway(doc, app_code_allow_http=True, access_log=False)
    b = await make_gateway(doc, app_code_allow_http=True, incremental_compile=False, access_log=False)
    return a, b


@pytest.mark.parametrize("seed", [1, 2])
async def test_incremental_equals_full_on_random_v2_changes(make_gateway: Any, seed: int) -> None:
    a, b = await _pair(make_gateway)
    async with aiohttp.ClientSession() as s:
        driver = Driver(a, b, s, seed)
        assert await driver.compare() is None
        diff, accepted, rejected = await driver.run(40)
    assert diff is None, diff
    assert accepted >= 20 and rejected >= 1
    assert driver.copies >= 1  # environments served different versions of one API at some point
    # the incremental path served (nearly) every accepted change
    assert a.gw.services.extras.get("incremental_compiles", 0) >= accepted * 0.9


async def test_planted_bug_is_caught(make_gateway: Any, monkeypatch: Any) -> None:
    """Plant a bug: publication and binding changes no longer recompile their API. The procedure must see it."""
    real = delta.plan_change

    def buggy(old: delta.DocIndex, new: dict[str, Any], max_apis: int = 500) -> delta.ChangePlan | None:
        plan = real(old, new, max_apis)
        if plan is not None and "apis" not in plan.collections:
            plan.apis = set()
        return plan

    monkeypatch.setattr(server_mod, "plan_change", buggy)
    a, b = await _pair(make_gateway)
    async with aiohttp.ClientSession() as s:
        driver = Driver(a, b, s, 3)
        diff, _, _ = await driver.run(40)
    assert diff is not None, "the planted bug went unnoticed"
