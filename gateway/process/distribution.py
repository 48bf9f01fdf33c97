"""Multi-node snapshot distribution through Redis (``--redis-url``).

Role: control plane, never on the request path. Every node keeps serving its own compiled runtime; this
module only decides *which* snapshot that is.

Redis layout (prefix ``gw`` by default, ``Settings.distribution_prefix``):

- ``gw:snapshot:<id>``  the snapshot payload, JSON ``{"id", "version", "doc", "origin", "stored_at"}``;
  ``<id>`` is :func:`gateway.process.reload.snapshot_id` (digest of version + canonical document), so keys are
  immutable. The previous current snapshot is kept for ``RETAIN_S`` (rollback window), then expires.
- ``gw:snapshot:current``  the id of the active snapshot (the pointer).
- channel ``gw:snapshot:events``  announces each new id.

A store is one Lua script (SET payload, move the pointer, expire the old payload, PUBLISH), so readers never
see a pointer to a missing payload. A node that receives an announcement reads the *pointer* (not the
message) and loads it when it differs from its own: concurrent pushes converge on the last stored one.
A node that starts or reconnects compares the pointer with its active snapshot and catches up; when Redis
lost its data (restart without persistence) it re-seeds the pointer with its snapshot (only if absent).
A push made while Redis is down is kept as pending and stored on reconnect, unless another node moved the
pointer meanwhile (then the newer cluster snapshot wins and the pending push is dropped with a warning).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

import orjson

from gateway.core.aio import cancel_and_wait
from gateway.process.reload import ClusterState, snapshot_id
from gateway.snapshot.load import SnapshotError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gateway.model.runtime import Runtime
    from gateway.process.server import Gateway

log = logging.getLogger("gateway.process.distribution")

RETAIN_S = 86400
POLL_S = 15.0  # safety-net poll of the pointer, in case an announcement was missed
RECONNECT_MAX_S = 2.0  # reconnect backoff: 0.1 s doubling to this, with jitter

# KEYS: current pointer, payload key. ARGV: id, payload, channel, prefix, retain, mode, expected
# mode "force": always move the pointer; "absent": only if there is none; "cas": only if it is ARGV[7] or none.
_STORE_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return 0 end
if ARGV[6] == 'absent' and cur then return -1 end
if ARGV[6] == 'cas' and cur and cur ~= ARGV[7] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
if cur then redis.call('EXPIRE', ARGV[4] .. ':snapshot:' .. cur, tonumber(ARGV[5])) end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""


def keys(prefix: str = "gw") -> tuple[str, str]:
    """(pointer key, channel)"""
    return f"{prefix}:snapshot:current", f"{prefix}:snapshot:events"


def payload_key(prefix: str, sid: str) -> str:
    return f"{prefix}:snapshot:{sid}"


def make_payload(doc: dict[str, Any], version: str, origin: str = "") -> tuple[str, bytes]:
    sid = snapshot_id(doc, version)
    body = orjson.dumps({"id": sid, "version": version, "doc": doc, "origin": origin, "stored_at": time.time()},
                        option=orjson.OPT_NON_STR_KEYS, default=str)
    return sid, body


async def store_snapshot(redis: Redis, doc: dict[str, Any], version: str, prefix: str = "gw", mode: str = "force",
                         expected: str = "", origin: str = "") -> tuple[str, int]:
    """Store ``doc`` as the cluster snapshot and announce it. Returns (id, 1 stored | 0 already | -1 refused).

    Usable from any process (tests, a deploy tool): nodes validate and compile what they receive, and a
    node that rejects a snapshot keeps serving its previous one (and logs every problem)."""
    sid, body = make_payload(doc, version, origin)
    pointer, channel = keys(prefix)
    result = await redis.eval(_STORE_LUA, 2, pointer, payload_key(prefix, sid),  # type: ignore[misc,unused-ignore]
                              sid, body, channel, prefix, str(RETAIN_S), mode, expected)
    return sid, int(result)


async def current_snapshot(redis: Redis, prefix: str = "gw") -> dict[str, Any] | None:
    """The payload the pointer names, or None."""
    pointer, _ = keys(prefix)
    cur = await redis.get(pointer)
    if cur is None:
        return None
    raw = await redis.get(payload_key(prefix, cur.decode() if isinstance(cur, bytes) else str(cur)))
    return orjson.loads(raw) if raw is not None else None


class RedisDistributor:
    """One node's link to the shared snapshot: push hook + subscriber loop with reconnect/backoff."""

    def __init__(self, gw: Gateway, url: str, prefix: str = "gw") -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        self.gw = gw
        self.prefix = prefix
        self.pointer, self.channel = keys(prefix)
        # one quick retry per command: the loop below owns reconnecting (a push never hangs on a dead Redis)
        self.redis: Redis = Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0,
                                           health_check_interval=5,
                                           retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))
        self.state = ClusterState.of(gw)
        self.connected = False
        self.known: str | None = None  # last pointer value read from Redis
        self.failed: str | None = None  # an id this node rejected (not retried until the pointer moves)
        self.pending: tuple[dict[str, Any], str, str] | None = None  # (doc, version, base pointer)
        self.syncs = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.origin = gw.settings.node_name or ""
        gw.services.extras["distribution"] = self

    # --- push side -----------------------------------------------------------------------------
    async def push_hook(self, doc: dict[str, Any], runtime: Runtime) -> None:
        """Registered in ``gateway.push_hooks``: store + announce a push accepted by this node."""
        base = self.known or ""
        try:
            sid, result = await store_snapshot(self.redis, doc, runtime.version, self.prefix, origin=self.origin)
            self.known = sid
            log.info("snapshot %s (%s) distributed (%s)", runtime.version, sid,
                     "stored" if result == 1 else "already current")
        except Exception as exc:
            self.pending = (doc, runtime.version, base)
            log.warning("snapshot %s active here but not distributed (Redis unavailable: %s); "
                        "will store it when Redis returns", runtime.version, exc)

    # --- subscribe side ------------------------------------------------------------------------
    async def start(self, initial_timeout_s: float = 3.0) -> None:
        """Catch up once (bounded wait, so a Redis outage never blocks start-up), then run the loop."""
        self.gw.push_hooks.append(self.push_hook)
        try:
            await asyncio.wait_for(self.sync(), initial_timeout_s)
        except Exception as exc:
            log.warning("Redis unavailable at start-up (%s): serving the local snapshot, retrying", exc)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = 0.1
        while not self._closed:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self.sync()  # catch up with anything missed while disconnected
                if not self.connected:
                    log.info("connected to Redis: following %s", self.channel)
                self.connected = True
                backoff = 0.1
                last_poll = time.monotonic()
                while not self._closed:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None or time.monotonic() - last_poll > POLL_S:
                        last_poll = time.monotonic()
                        await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    log.warning("lost Redis (%s): serving snapshot %s, reconnecting", exc,
                                self.gw.runtime.version if self.gw.runtime else None)
                self.connected = False
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, RECONNECT_MAX_S)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    async def sync(self) -> None:
        """Compare the pointer with the active snapshot and load it when they differ."""
        async with self._lock:
            self.syncs += 1
            if self.pending is not None:
                doc, version, base = self.pending
                _, result = await store_snapshot(self.redis, doc, version, self.prefix, mode="cas",
                                                   expected=base, origin=self.origin)
                self.pending = None
                if result < 0:
                    log.warning("push %s made while Redis was down was superseded by a newer cluster snapshot",
                                version)
                else:
                    log.info("stored snapshot %s pushed while Redis was down", version)
            raw = await self.redis.get(self.pointer)
            cur = raw.decode() if isinstance(raw, bytes) else raw
            if cur is None:
                active = self.gw.document
                if active is not None and self.state.version is not None:
                    _, result = await store_snapshot(self.redis, active, self.state.version, self.prefix,
                                                       mode="absent", origin=self.origin)
                    if result == 1:
                        log.info("Redis had no snapshot: seeded it with %s", self.state.version)
                return
            self.known = cur
            if cur == self.state.snapshot_id or cur == self.failed:
                return
            body = await self.redis.get(payload_key(self.prefix, cur))
            if body is None:
                log.warning("pointer names snapshot %s but its payload is missing", cur)
                return
            payload = orjson.loads(body)
            try:
                await self.gw.push_document(payload["doc"], version=str(payload["version"]), distribute=False)
            except SnapshotError as exc:
                self.failed = cur
                for problem in exc.problems:
                    log.error("cluster snapshot %s rejected: %s", payload.get("version"), problem)
                log.error("still serving snapshot %s", self.gw.runtime.version if self.gw.runtime else None)
                return
            self.state.record(payload["doc"], str(payload["version"]), known_id=cur)
            log.info("loaded cluster snapshot %s (%s)", payload["version"], cur)

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait(self._task)
        try:
            await self.redis.aclose()
        except Exception:
            pass
