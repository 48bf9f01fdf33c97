"""The Redis transport of snapshot distribution: store + announce, follow, fetch — in every Redis mode.

Role: control plane, never on the request path. :mod:`gateway.process.distribution` decides *what* a node
serves; this module only moves identified payloads through Redis. The interface is three operations:

* :meth:`RedisTransport.publish` — store ``payload`` under ``version_id``, move the pointer to it and
  announce it, atomically (one Lua script);
* :meth:`RedisTransport.subscribe` — a :class:`Subscription` that yields announcements;
* :meth:`RedisTransport.latest` / :meth:`RedisTransport.pointer` / :meth:`RedisTransport.fetch` — read
  the current pointer and payloads (catch-up after a reconnect or a missed announcement).

Key layout (prefix ``gw`` = ``Settings.distribution_prefix``): every key and the channel carry the hash
tag ``{gw}``, so in a Redis Cluster they all live in one slot and the store script may touch them together:

- ``{gw}:snapshot:<id>``   the payload (immutable; the previous current one expires after ``RETAIN_S``);
- ``{gw}:snapshot:current`` the id of the cluster's active snapshot;
- channel ``{gw}:snapshot:events`` announces each new id.

Announcements: ``PUBLISH`` on one instance or behind Sentinel; **sharded** pub/sub (``SPUBLISH`` /
``SSUBSCRIBE``, Redis 7) in cluster mode. A shard channel lives on the master that owns its slot (and
its replicas), so announcements are not broadcast over the cluster bus to every node as classic
``PUBLISH`` is, and redis-py's asyncio cluster client moves the subscription when the slot moves. An
announcement can be lost (pub/sub is fire-and-forget, e.g. during a failover); the subscriber therefore
always re-reads the pointer after (re)subscribing and periodically (see ``distribution.POLL_S``).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.lib.redis_conn import Client, is_cluster

RETAIN_S = 86400

# KEYS: current pointer, payload key. ARGV: id, payload, channel, payload-key prefix, retain, mode, expected,
# publish command. mode "force": always move the pointer; "absent": only if there is none; "cas": only if it
# is ARGV[7] or none. The old payload key is in the same hash slot as KEYS (same {tag}).
_STORE_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return 0 end
if ARGV[6] == 'absent' and cur then return -1 end
if ARGV[6] == 'cas' and cur and cur ~= ARGV[7] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
if cur then redis.call('EXPIRE', ARGV[4] .. cur, tonumber(ARGV[5])) end
redis.call(ARGV[8], ARGV[3], ARGV[1])
return 1
"""


def tag(prefix: str) -> str:
    """``gw`` -> ``{gw}``: the hash tag shared by every distribution key of that prefix."""
    return prefix if prefix.startswith("{") else "{" + prefix + "}"


def keys(prefix: str = "gw") -> tuple[str, str]:
    """(pointer key, channel)"""
    t = tag(prefix)
    return f"{t}:snapshot:current", f"{t}:snapshot:events"


def payload_key(prefix: str, sid: str) -> str:
    return f"{tag(prefix)}:snapshot:{sid}"


class Subscription:
    """Announcements of new ids; ``async with transport.subscribe() as sub: await sub.next(1.0)``.

    Raises on connection problems (the caller reconnects); ``next`` returns None on timeout."""

    PRIMARY_CHECK_S = 1.0  # how often an idle subscriber checks it still follows the primary / slot owner

    def __init__(self, client: Client, channel: str) -> None:
        self._client = client
        self._channel = channel
        self._cluster = is_cluster(client)
        self._pubsub: Any = None
        # Sentinel: a planned failover (SENTINEL FAILOVER) leaves this connection open on the old primary,
        # now a replica, where PUBLISH never arrives (Redis does not replicate it). Detect it by asking the
        # sentinels (one query per PRIMARY_CHECK_S while idle) and reconnect.
        pool = getattr(client, "connection_pool", None)
        self._sentinel_pool = pool if isinstance(pool, SentinelConnectionPool) else None
        self._next_check = 0.0
        self._node: str | None = None  # cluster: the node holding our shard subscription

    async def __aenter__(self) -> Subscription:
        self._pubsub = self._client.pubsub()
        if self._cluster:
            await self._pubsub.ssubscribe(self._channel)
            self._node = self._client.get_node_from_key(self._channel).name  # type: ignore[union-attr]
        else:
            await self._pubsub.subscribe(self._channel)
        return self

    async def next(self, timeout: float) -> str | None:
        if self._cluster:
            msg = await self._pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=timeout)
        else:
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if msg is None:
            if time.monotonic() >= self._next_check:
                self._next_check = time.monotonic() + self.PRIMARY_CHECK_S
                if self._sentinel_pool is not None:
                    await self._check_primary(self._sentinel_pool)
                elif self._cluster:
                    await self._check_owner()
            return None
        data = msg.get("data")
        return data.decode() if isinstance(data, bytes) else str(data)

    async def _check_primary(self, pool: SentinelConnectionPool) -> None:
        host, port = await pool.get_master_address()
        conn = self._pubsub.connection
        if conn is not None and conn.host and (str(conn.host), int(conn.port)) != (str(host), int(port)):
            raise RedisConnectionError(f"the primary moved to {host}:{port}: following it")

    async def _check_owner(self) -> None:
        """Cluster: a planned failover or a slot migration moves the channel's slot while this subscription
        stays open on the old node, where SPUBLISH no longer arrives. A keyed command on the channel's slot
        (EXISTS, answered MOVED when it moved) refreshes the slot map; if the owner changed, reconnect."""
        client = self._client
        assert isinstance(client, RedisCluster)
        await client.exists(self._channel)
        node = client.get_node_from_key(self._channel)
        owner = node.name if node is not None else None
        if owner != self._node:
            raise RedisConnectionError(f"the shard channel moved to {owner}: following it")

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:
                pass
            self._pubsub = None


class RedisTransport:
    """Snapshot payloads in Redis for one ``prefix``, over any :mod:`gateway.lib.redis_conn` client."""

    def __init__(self, client: Client, prefix: str = "gw") -> None:
        self.client = client
        self.prefix = prefix
        self.pointer_key, self.channel = keys(prefix)
        self.cluster = is_cluster(client)

    def payload_key(self, version_id: str) -> str:
        return payload_key(self.prefix, version_id)

    async def publish(self, version_id: str, payload: bytes, mode: str = "force", expected: str = "") -> int:
        """Store ``payload`` as ``version_id``, move the pointer and announce it, atomically.
        Returns 1 stored, 0 already current (nothing announced), -1 refused by ``mode``."""
        result = await self.client.eval(  # type: ignore[misc,unused-ignore]
            _STORE_LUA, 2, self.pointer_key, self.payload_key(version_id),
            version_id, payload, self.channel, self.payload_key(""), str(RETAIN_S), mode, expected,
            "SPUBLISH" if self.cluster else "PUBLISH")
        return int(result)

    async def pointer(self) -> str | None:
        raw = await self.client.get(self.pointer_key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def fetch(self, version_id: str) -> bytes | None:
        raw = await self.client.get(self.payload_key(version_id))
        if raw is None:
            return None
        return raw.encode() if isinstance(raw, str) else bytes(raw)

    async def latest(self) -> tuple[str | None, bytes | None]:
        """(pointer, its payload); (None, None) when Redis has no snapshot."""
        cur = await self.pointer()
        if cur is None:
            return None, None
        return cur, await self.fetch(cur)

    async def legacy_latest(self) -> tuple[str | None, bytes | None]:
        """(pointer, payload) in the layout of builds before the hash tags (``gw:snapshot:current``), or
        (None, None). Read once by a node that finds no pointer, so an upgrade keeps the cluster snapshot."""
        if self.cluster or self.prefix.startswith("{"):
            return None, None  # no cluster ever used the old layout
        raw = await self.client.get(f"{self.prefix}:snapshot:current")
        if raw is None:
            return None, None
        sid = raw.decode() if isinstance(raw, bytes) else str(raw)
        body = await self.client.get(f"{self.prefix}:snapshot:{sid}")
        if body is None:
            return None, None
        return sid, body.encode() if isinstance(body, str) else bytes(body)

    def subscribe(self) -> Subscription:
        return Subscription(self.client, self.channel)
