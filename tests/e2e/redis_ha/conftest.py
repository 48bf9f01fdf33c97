"""Session fixtures: a real 3-master/3-replica Redis Cluster and a real Sentinel set (1 primary, 1 replica,
3 sentinels), each started once per test session on free loopback ports and torn down at the end.

A missing ``redis-server`` is a failure, never a skip (``make test`` installs it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_topologies import RedisClusterTopology, RedisSentinelTopology, redis_binaries


def _require_binaries() -> None:
    try:
        redis_binaries()
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterTopology]:
    _require_binaries()
    topo = RedisClusterTopology()
    yield topo
    topo.stop_all()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelTopology]:
    _require_binaries()
    topo = RedisSentinelTopology()
    yield topo
    topo.stop_all()


@pytest.fixture
def cluster(redis_cluster: RedisClusterTopology) -> Iterator[RedisClusterTopology]:
    """The session cluster, healthy at the start of the test and healed (killed nodes restarted) after it."""
    redis_cluster.heal()
    yield redis_cluster
    redis_cluster.heal()


@pytest.fixture
def sentinel(redis_sentinel: RedisSentinelTopology) -> Iterator[RedisSentinelTopology]:
    redis_sentinel.heal()
    yield redis_sentinel
    redis_sentinel.heal()
