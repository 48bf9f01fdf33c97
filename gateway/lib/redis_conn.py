"""Redis connections for every topology: one instance, a Redis Cluster, or a primary behind Sentinel.

Role: shared plumbing, never on the request path by itself. The throttling store
(:mod:`gateway.pipeline.stages.throttling.redis_store`) and the snapshot distribution
(:mod:`gateway.process.distribution`) both ask :func:`make_client` for a client built from the process
settings, so the two speak to the same deployment with the same credentials and TLS options:

* ``single``   — ``redis_url`` (as before; a ``rediss://`` URL means TLS);
* ``cluster``  — ``redis_nodes`` are seed nodes of a Redis Cluster; redis-py's cluster client learns
  the slot map, follows ``MOVED`` / ``ASK`` and refreshes the map after a failover;
* ``sentinel`` — ``redis_nodes`` are the sentinels and ``redis_sentinel_master`` the master name; every
  new connection asks the sentinels where the primary is, so a promoted replica is found by reconnecting.

Nothing connects here: clients connect on their first command, so a node can start while Redis is down.
The password is never part of :meth:`RedisTarget.describe` (the string that goes to logs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

MODES = ("single", "cluster", "sentinel")

Client = Redis | RedisCluster


@dataclass(frozen=True)
class RedisTarget:
    """Where and how to connect (built from the settings by :func:`target_from_settings`)."""

    mode: str = "single"
    url: str = ""
    nodes: tuple[tuple[str, int], ...] = ()
    master: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True

    @property
    def cluster(self) -> bool:
        return self.mode == "cluster"

    def describe(self) -> str:
        """For logs: mode and addresses, never credentials."""
        if self.mode == "single":
            u = urlsplit(self.url)
            return f"single {u.scheme}://{u.hostname}:{u.port or 6379}{u.path}"
        nodes = ",".join(f"{h}:{p}" for h, p in self.nodes)
        if self.mode == "sentinel":
            return f"sentinel master {self.master!r} via {nodes}"
        return f"cluster seeds {nodes}"


def parse_nodes(items: list[str] | str) -> tuple[tuple[str, int], ...]:
    """``["h1:7000", "[::1]:7001"]`` or ``"h1:7000,h2:7001"`` -> ((host, port), ...); ValueError names the bad item."""
    if isinstance(items, str):
        items = [x for x in items.split(",")]
    out: list[tuple[str, int]] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"redis_nodes: {item!r} is not HOST:PORT")
        out.append((host.strip("[]"), int(port)))
    return tuple(out)


def target_from_settings(s: Any) -> RedisTarget | None:
    """The configured Redis, or None when the gateway runs without Redis. ValueError says what is wrong."""
    mode = (getattr(s, "redis_mode", "single") or "single").strip().lower()
    if mode not in MODES:
        raise ValueError(f"redis_mode: {mode!r} is not one of {', '.join(MODES)}")
    common: dict[str, Any] = {
        "username": s.redis_username or None,
        "password": s.redis_password or None,
        "sentinel_password": s.redis_sentinel_password or None,
        "tls": bool(s.redis_tls),
        "tls_ca_file": s.redis_tls_ca_file or None,
        "tls_cert_file": s.redis_tls_cert_file or None,
        "tls_key_file": s.redis_tls_key_file or None,
        "tls_verify": bool(s.redis_tls_verify),
    }
    if mode == "single":
        if not s.redis_url:
            return None
        return RedisTarget(mode="single", url=str(s.redis_url), **common)
    nodes = parse_nodes(s.redis_nodes or [])
    if not nodes:
        raise ValueError(f"redis_nodes: redis_mode {mode} needs at least one HOST:PORT (GATEWAY_REDIS_NODES)")
    if mode == "sentinel":
        if not s.redis_sentinel_master:
            raise ValueError("redis_sentinel_master: redis_mode sentinel needs the master name "
                             "(GATEWAY_REDIS_SENTINEL_MASTER)")
        return RedisTarget(mode="sentinel", nodes=nodes, master=str(s.redis_sentinel_master), **common)
    return RedisTarget(mode="cluster", nodes=nodes, **common)


def enabled(s: Any) -> bool:
    """Is a Redis configured (in any mode)? Never raises: an invalid setup is reported by the CLI."""
    try:
        return target_from_settings(s) is not None
    except ValueError:
        return False


def _tls_kwargs(t: RedisTarget) -> dict[str, Any]:
    if not t.tls:
        return {}
    out: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required" if t.tls_verify else "none",
                           "ssl_check_hostname": bool(t.tls_verify)}
    if t.tls_ca_file:
        out["ssl_ca_certs"] = t.tls_ca_file
    if t.tls_cert_file:
        out["ssl_certfile"] = t.tls_cert_file
    if t.tls_key_file:
        out["ssl_keyfile"] = t.tls_key_file
    return out


def make_client(t: RedisTarget, *, socket_timeout: float, connect_timeout: float, retries: int = 0,
                max_connections: int = 64, health_check_interval: float = 0) -> Client:
    """A client for ``t``. ``retries`` is redis-py's own retry count (0 = the caller handles every error;
    in cluster mode one retry lets a command ride a topology change: the client re-reads the slot map)."""
    retry = Retry(NoBackoff(), retries)
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": health_check_interval,
        "lib_name": None,  # no CLIENT SETINFO round trips when a connection opens
        "lib_version": None,
    }
    auth: dict[str, Any] = {}
    if t.username:
        auth["username"] = t.username
    if t.password:
        auth["password"] = t.password
    tls = _tls_kwargs(t)
    if t.mode == "cluster":
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in t.nodes], retry=retry,
                            max_connections=max_connections, **common, **auth, **tls)
    if t.mode == "sentinel":
        # the sentinels get the same retry policy: redis-py's default (3 retries with backoff) would make
        # "no sentinel answers" slower than a request's throttling deadline
        sentinel_kwargs: dict[str, Any] = {"socket_timeout": socket_timeout, "retry": retry,
                                           "socket_connect_timeout": connect_timeout, **tls}
        if t.sentinel_password:
            sentinel_kwargs["password"] = t.sentinel_password
            if t.username:
                sentinel_kwargs["username"] = t.username
        sentinel = Sentinel(list(t.nodes), sentinel_kwargs=sentinel_kwargs, retry=retry, **common, **auth, **tls)
        client: Redis = sentinel.master_for(t.master, redis_class=Redis, connection_pool_class=SentinelConnectionPool,
                                            max_connections=max_connections)
        return client
    url = t.url
    if t.tls and url.startswith("redis://"):
        url = "rediss://" + url[len("redis://"):]
    kwargs: dict[str, Any] = {**common, **auth, **{k: v for k, v in tls.items() if k != "ssl"}}
    if not url.startswith("rediss://"):
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ssl_")}
    return Redis.from_url(url, retry=retry, max_connections=max_connections, **kwargs)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


async def ping(client: Client) -> bool:
    """PING the primary (sentinel, single) or every primary (cluster: all slots must be served)."""
    if isinstance(client, RedisCluster):
        await client.ping(target_nodes=RedisCluster.PRIMARIES)
        return True
    return bool(await client.ping())


async def reset(client: Client) -> None:
    """Drop pooled connections (to a dead or demoted server); the next command reconnects (and, in cluster
    mode, re-reads the slot map; in sentinel mode asks the sentinels for the primary again)."""
    if isinstance(client, RedisCluster):
        await client.aclose()  # the cluster client re-initialises on its next command
        return
    await client.connection_pool.disconnect()


async def close(client: Client) -> None:
    """Close the client and, in sentinel mode, the connections to the sentinels."""
    pool = getattr(client, "connection_pool", None)
    await client.aclose()
    manager = getattr(pool, "sentinel_manager", None) if isinstance(pool, SentinelConnectionPool) else None
    if manager is not None:
        for s in manager.sentinels:
            try:
                await s.aclose()
            except Exception:
                pass
