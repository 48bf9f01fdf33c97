"""Multi-node snapshot distribution through Redis (single instance, Redis Cluster or Sentinel).

Role: control plane, never on the request path. Every node keeps serving its own compiled runtime; this
module only decides *which* snapshot that is. Moving payloads through Redis is
:class:`gateway.process.transport.RedisTransport` (key layout, hash tags and sharded pub/sub are described
there and in docs/operations-cluster.md):

- ``{gw}:snapshot:<id>``  the snapshot payload, JSON ``{"id", "version", "doc", "origin", "stored_at"}``;
  ``<id>`` is :func:`gateway.process.reload.snapshot_id` (digest of version + canonical document), so keys are
  immutable. The previous current snapshot is kept for ``RETAIN_S`` (rollback window), then expires.
- ``{gw}:snapshot:current``  the id of the active snapshot (the pointer).
- channel ``{gw}:snapshot:events``  announces each new id (sharded pub/sub in cluster mode).

A store is one Lua script (SET payload, move the pointer, expire the old payload, publish), so readers never
see a pointer to a missing payload. A node that receives an announcement reads the *pointer* (not the
message) and loads it when it differs from its own: concurrent pushes converge on the last stored one.
A node that starts or reconnects compares the pointer with its active snapshot and catches up; when Redis
lost its data (restart without persistence, or a failover to a replica that had not received the last
writes) it re-seeds the pointer with its snapshot (only if absent).
A push made while Redis is down is kept as pending and stored on reconnect, unless another node moved the
pointer meanwhile (then the newer cluster snapshot wins and the pending push is dropped with a warning).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from typing import TYPE_CHECKING, Any

import orjson

from gateway.core.aio import cancel_and_wait
from gateway.core.errors import SnapshotError
from gateway.core.gcquiet import quiet_gc
from gateway.lib.redis_conn import Client, RedisTarget, make_client
from gateway.lib.redis_conn import close as close_client
from gateway.process.reload import ClusterState, snapshot_id
from gateway.process.transport import RETAIN_S, RedisTransport, keys, payload_key
from gateway.snapshot.delta import apply_delta, doc_delta, merge_deltas
from gateway.snapshot.load import SLICED_JSON_BYTES, dumps_sliced, loads_json

if TYPE_CHECKING:
    from gateway.model.runtime import Runtime
    from gateway.process.server import Gateway

__all__ = ["RETAIN_S", "RedisDistributor", "current_snapshot", "keys", "make_payload", "payload_key",
           "store_snapshot"]

log = logging.getLogger("gateway.process.distribution")

FULL_KEY = "full"  # {gw}:snapshot:full: the whole latest snapshot, rewritten at most every FULL_EVERY_S
FULL_EVERY_S = 1.0
MAX_CHAIN = 2000  # deltas walked back before falling back to the whole snapshot
POLL_S = 15.0  # safety-net poll of the pointer, in case an announcement was missed
RECONNECT_MAX_S = 2.0  # reconnect backoff: 0.1 s doubling to this, with jitter


def make_payload(doc: dict[str, Any], version: str, origin: str = "") -> tuple[str, bytes]:
    """(id, JSON payload) of a whole snapshot. Both are computed in pieces: call it in a worker thread for a big
    document (:func:`make_payload_off_loop`), so that the event loop keeps answering meanwhile."""
    sid = snapshot_id(doc, version)
    body = dumps_sliced({"id": sid, "version": version, "origin": origin, "stored_at": time.time(), "doc": doc})
    return sid, body


async def make_payload_off_loop(doc: dict[str, Any], version: str, origin: str = "") -> tuple[str, bytes]:
    """:func:`make_payload` in a worker thread (a 10,000-API document takes tens of milliseconds)."""
    return await asyncio.to_thread(make_payload, doc, version, origin)


async def parse_payload(raw: bytes) -> dict[str, Any]:
    """A stored payload, parsed in a worker thread, in pieces (gateway/snapshot/load.py ``loads_json``)."""
    if len(raw) <= SLICED_JSON_BYTES:
        value = orjson.loads(raw)
    else:
        with quiet_gc(freeze=True):  # a whole snapshot: long-lived once accepted (gateway/core/gcquiet.py)
            value = await asyncio.to_thread(loads_json, raw)
    if not isinstance(value, dict):
        raise ValueError("a snapshot payload must be a JSON object")
    return value


async def store_snapshot(redis: Client, doc: dict[str, Any], version: str, prefix: str = "gw", mode: str = "force",
                         expected: str = "", origin: str = "") -> tuple[str, int]:
    """Store ``doc`` as the cluster snapshot and announce it. Returns (id, 1 stored | 0 already | -1 refused).

    Usable from any process with any client (single, cluster, sentinel): nodes validate and compile what
    they receive, and a node that rejects a snapshot keeps serving its previous one (and logs every problem)."""
    sid, body = make_payload(doc, version, origin)
    return sid, await RedisTransport(redis, prefix).publish(sid, body, mode, expected)


async def current_snapshot(redis: Client, prefix: str = "gw") -> dict[str, Any] | None:
    """The payload the pointer names, or None."""
    _, raw = await RedisTransport(redis, prefix).latest()
    return orjson.loads(raw) if raw is not None else None


class RedisDistributor:
    """One node's link to the shared snapshot: push hook + subscriber loop with reconnect/backoff."""

    def __init__(self, gw: Gateway, target: RedisTarget | str, prefix: str = "gw") -> None:
        self.gw = gw
        self.prefix = prefix
        if isinstance(target, str):
            target = RedisTarget(mode="single", url=target)
        self.target = target
        # redis-py retries a command once (cluster: after re-reading the slot map, which is what follows a
        # failover or a MOVED storm); the loop below owns reconnecting, so a push never hangs on a dead Redis
        self.redis: Client = make_client(target, socket_timeout=10.0, connect_timeout=2.0,
                                         retries=2 if target.cluster else 1, max_connections=16,
                                         health_check_interval=5)
        self.transport = RedisTransport(self.redis, prefix)
        self.pointer, self.channel = self.transport.pointer_key, self.transport.channel
        self.state = ClusterState.of(gw)
        self.connected = False
        self.known: str | None = None  # last pointer value read from Redis
        self.failed: str | None = None  # an id this node rejected (not retried until the pointer moves)
        self.pending: tuple[dict[str, Any], str, str] | None = None  # (doc, version, base pointer)
        self.local: str | None = None  # id of the cluster snapshot this node serves (None: not from/to Redis)
        self.local_doc: dict[str, Any] | None = None  # the document of ``local``
        self._push_order = asyncio.Lock()
        self.deltas_sent = 0
        self.gaps = 0  # deltas whose base this node did not have (caught up from the whole snapshot)
        self._full_next: tuple[str, str, dict[str, Any]] | None = None
        self._full_task: asyncio.Task[None] | None = None
        self.syncs = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.origin = gw.settings.node_name or ""
        gw.services.extras["distribution"] = self

    # --- push side -----------------------------------------------------------------------------
    async def push_hook(self, doc: dict[str, Any], runtime: Runtime) -> None:
        """Registered in ``gateway.push_hooks``: store + announce a push accepted by this node.

        A per-API change made on top of the cluster's current snapshot travels as a delta (see
        :meth:`_push_delta`); anything else as the whole document."""
        # pushes reach Redis in the order they were accepted (delta bases); and never while :meth:`sync` runs:
        # the announcement of this node's own push must not be taken for another node's snapshot (it would
        # be replayed on a document that has moved on, and an older version activated again)
        async with self._push_order, self._lock:
            await self._push(doc, runtime)

    async def _push(self, doc: dict[str, Any], runtime: Runtime) -> None:
        base = self.known or ""
        try:
            if await self._push_delta(doc, runtime):
                return
            sid, body = await make_payload_off_loop(doc, runtime.version, self.origin)
            result = await self.transport.publish(sid, body)
            self.known = self.local = sid
            self.local_doc = doc
            self.state.record(doc, runtime.version, known_id=sid)
            log.info("snapshot %s (%s) distributed (%s)", runtime.version, sid,
                     "stored" if result == 1 else "already current")
        except Exception as exc:
            self.pending = (doc, runtime.version, base)
            log.warning("snapshot %s active here but not distributed (Redis unavailable: %s); "
                        "will store it when Redis returns", runtime.version, exc)

    async def _push_delta(self, doc: dict[str, Any], runtime: Runtime) -> bool:
        """Versioned delta: ``{"id", "version", "base", "delta"}`` where ``base`` is the id of the snapshot it
        applies to. Stored only if the pointer still names ``base`` (compare-and-set); a node whose snapshot is
        not ``base`` walks the chain of bases back to its own, or loads the whole snapshot (:meth:`_catch_up`).
        The whole document is written too, coalesced (at most one write per ``FULL_EVERY_S``)."""
        plan = self.gw.change_of.get(runtime)
        if plan is None or plan.index.doc is not doc or plan.base is not self.local_doc or not self.local \
                or self.local != self.known:
            return False  # not a change of the snapshot the cluster has from us: send the whole document
        delta = doc_delta(plan)
        raw = orjson.dumps(delta, option=orjson.OPT_NON_STR_KEYS, default=str)
        sid = hashlib.sha256(f"{self.local}\n{runtime.version}\n".encode() + raw).hexdigest()[:32]
        body = orjson.dumps({"id": sid, "version": runtime.version, "base": self.local, "delta": delta,
                             "origin": self.origin, "stored_at": time.time()},
                            option=orjson.OPT_NON_STR_KEYS, default=str)
        if await self.transport.publish(sid, body, mode="cas", expected=self.local) < 0:
            return False  # another node moved the pointer first: send the whole document (last writer wins)
        self.known = self.local = sid
        self.local_doc = doc
        self.state.record(doc, runtime.version, known_id=sid)
        self.deltas_sent += 1
        self._schedule_full(sid, runtime.version, doc)
        log.info("snapshot %s (%s) distributed as a delta of %s", runtime.version, sid, plan.collections)
        return True

    def _schedule_full(self, sid: str, version: str, doc: dict[str, Any]) -> None:
        self._full_next = (sid, version, doc)
        if self._full_task is None or self._full_task.done():
            self._full_task = asyncio.get_running_loop().create_task(self._write_full())

    async def _write_full(self) -> None:
        # at most one whole document per FULL_EVERY_S: under churn a write (serialising the 3.6 MB of a
        # 10,000-API snapshot) would otherwise start again as soon as the last one ended, for every change
        while self._full_next is not None:
            await asyncio.sleep(FULL_EVERY_S)
            if self._full_next is None:
                break
            sid, version, doc = self._full_next
            self._full_next = None
            body = await asyncio.to_thread(dumps_sliced, {"id": sid, "version": version, "origin": self.origin,
                                                          "stored_at": time.time(), "doc": doc})
            try:
                await self.redis.set(self.transport.payload_key(FULL_KEY), body, ex=RETAIN_S)
            except Exception as exc:
                log.warning("could not store the whole snapshot %s for catch-up: %s", version, exc)

    # --- subscribe side ------------------------------------------------------------------------
    async def start(self, initial_timeout_s: float = 3.0) -> None:
        """Catch up once (bounded wait, so a Redis outage never blocks start-up), then run the loop."""
        self.gw.push_hooks.append(self.push_hook)
        try:
            await asyncio.wait_for(self.sync(), initial_timeout_s)
        except Exception as exc:
            log.warning("Redis (%s) unavailable at start-up (%s: %s): serving the local snapshot, retrying",
                        self.target.describe(), type(exc).__name__, exc)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                if self.transport.cluster:
                    await self.transport.pointer()  # a keyed command first: refreshes a stale slot map
                async with self.transport.subscribe() as sub:
                    await self.sync()  # catch up with anything missed while disconnected
                    if not self.connected:
                        log.info("connected to Redis (%s): following %s", self.target.describe(), self.channel)
                    self.connected = True
                    backoff = 0.1
                    last_poll = time.monotonic()
                    while not self._closed:
                        msg = await sub.next(1.0)
                        if msg is not None or time.monotonic() - last_poll > POLL_S:
                            last_poll = time.monotonic()
                            await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    log.warning("lost Redis (%s: %s): serving snapshot %s, reconnecting", type(exc).__name__, exc,
                                self.gw.runtime.version if self.gw.runtime else None)
                self.connected = False
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def sync(self) -> None:
        """Compare the pointer with the active snapshot and load it when they differ."""
        async with self._lock:
            self.syncs += 1
            if self.pending is not None:
                pdoc, version, base = self.pending
                sid, body = await make_payload_off_loop(pdoc, version, self.origin)
                result = await self.transport.publish(sid, body, mode="cas", expected=base)
                self.pending = None
                if result >= 0 and self.gw.document is pdoc:
                    self.local, self.local_doc = sid, pdoc
                if result < 0:
                    log.warning("push %s made while Redis was down was superseded by a newer cluster snapshot",
                                version)
                else:
                    log.info("stored snapshot %s pushed while Redis was down", version)
            cur = await self.transport.pointer()
            if cur is None:
                cur = await self._migrate_legacy()
            if cur is None:
                active = self.gw.document
                if active is not None and self.state.version is not None:
                    sid, body = await make_payload_off_loop(active, self.state.version, self.origin)
                    if await self.transport.publish(sid, body, mode="absent") == 1:
                        self.local, self.local_doc = sid, active
                        log.info("Redis had no snapshot: seeded it with %s", self.state.version)
                return
            self.known = cur
            if cur == self.local or cur == self.failed:
                return
            if cur == self.state.snapshot_id:
                self.local, self.local_doc = cur, self.gw.document
                return
            stored = await self.transport.fetch(cur)
            if stored is None:
                log.warning("pointer names snapshot %s but its payload is missing", cur)
                return
            payload = await parse_payload(stored)
            doc = await self._catch_up(cur, payload) if "delta" in payload else payload.get("doc")
            if doc is None:
                return
            try:
                await self.gw.push_document(doc, version=str(payload["version"]), distribute=False,
                                           source="cluster")
            except SnapshotError as exc:
                self.failed = cur
                for problem in exc.problems:
                    log.error("cluster snapshot %s rejected: %s", payload.get("version"), problem)
                log.error("still serving snapshot %s", self.gw.runtime.version if self.gw.runtime else None)
                return
            self.local, self.local_doc = cur, doc
            self.state.record(doc, str(payload["version"]), known_id=cur)
            log.info("loaded cluster snapshot %s (%s)", payload["version"], cur)

    async def _catch_up(self, cur: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The document of delta snapshot ``cur``: this node's document with the chain of deltas from its own
        snapshot applied; on a gap (a base this node never had, or an expired link), the whole snapshot
        stored for catch-up plus the deltas after it."""
        chain = [payload]
        while chain[-1].get("base") != self.local and len(chain) < MAX_CHAIN:
            raw = await self.transport.fetch(str(chain[-1].get("base")))
            if raw is None:
                break
            prev = orjson.loads(raw)
            if "delta" not in prev:
                return self._replay(prev["doc"], chain)
            chain.append(prev)
        if chain[-1].get("base") == self.local and self.gw.document is not None:
            return self._replay(self.gw.document, chain)
        self.gaps += 1
        raw = await self.transport.fetch(FULL_KEY)
        full = orjson.loads(raw) if raw is not None else None
        if full is not None:
            ids = [p["id"] for p in chain]
            if full.get("id") == cur:
                whole: dict[str, Any] = full["doc"]
                return whole
            if full.get("id") in ids:
                return self._replay(full["doc"], chain[:ids.index(full["id"])])
        log.warning("snapshot %s: gap in the deltas from %s and no whole snapshot to start from yet; retrying",
                    cur, self.local)
        return None

    @staticmethod
    def _replay(doc: dict[str, Any], chain: list[dict[str, Any]]) -> dict[str, Any]:
        # the chain as one delta, applied on this node's indexed document (its cost follows the deltas)
        return apply_delta(doc, merge_deltas([p["delta"] for p in reversed(chain)]))

    async def _migrate_legacy(self) -> str | None:
        """No pointer: adopt the snapshot stored by a build before the hash-tagged keys, if any."""
        sid, body = await self.transport.legacy_latest()
        if sid is None or body is None:
            return None
        if await self.transport.publish(sid, body, mode="absent") == 1:
            log.info("moved cluster snapshot %s from the keys of a previous build to %s", sid, self.pointer)
        return await self.transport.pointer()

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait(self._task)
        await cancel_and_wait(self._full_task)
        try:
            await close_client(self.redis)
        except Exception:
            pass
