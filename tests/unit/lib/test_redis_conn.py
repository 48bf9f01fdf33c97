"""The Redis settings contract: names, environment variables, validation, and what reaches the logs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from gateway.core.settings import load_settings
from gateway.lib.redis_conn import enabled, make_client, parse_nodes, target_from_settings


def test_environment_names_select_the_mode() -> None:
    s = load_settings(environ={"GATEWAY_REDIS_MODE": "sentinel", "GATEWAY_REDIS_NODES": "10.0.0.1:26379, [::1]:26380",
                               "GATEWAY_REDIS_SENTINEL_MASTER": "mymaster", "GATEWAY_REDIS_PASSWORD": "s3cret",
                               "GATEWAY_REDIS_USERNAME": "gw", "GATEWAY_REDIS_TLS": "true"})
    t = target_from_settings(s)
    assert t is not None
    assert (t.mode, t.nodes, t.master, t.username, t.password, t.tls) == (
        "sentinel", (("10.0.0.1", 26379), ("::1", 26380)), "mymaster", "gw", "s3cret", True)
    assert "s3cret" not in t.describe() and "s3cret" not in repr(t)
    c = load_settings(environ={"GATEWAY_REDIS_MODE": "cluster", "GATEWAY_REDIS_NODES": "127.0.0.1:7000"})
    ct = target_from_settings(c)
    assert ct is not None and ct.cluster and ct.describe() == "cluster seeds 127.0.0.1:7000"


def test_single_mode_is_the_default_and_needs_a_url() -> None:
    assert target_from_settings(load_settings(environ={})) is None
    assert not enabled(load_settings(environ={}))
    t = target_from_settings(load_settings(environ={"GATEWAY_REDIS_URL": "redis://:pw@127.0.0.1:6390/2"}))
    assert t is not None and t.mode == "single" and t.describe() == "single redis://127.0.0.1:6390/2"


@pytest.mark.parametrize(("env", "message"), [
    ({"GATEWAY_REDIS_MODE": "ring"}, "redis_mode: 'ring' is not one of single, cluster, sentinel"),
    ({"GATEWAY_REDIS_MODE": "cluster"}, "redis_nodes: redis_mode cluster needs at least one HOST:PORT"),
    ({"GATEWAY_REDIS_MODE": "sentinel", "GATEWAY_REDIS_NODES": "h:1"}, "redis_sentinel_master:"),
    ({"GATEWAY_REDIS_MODE": "cluster", "GATEWAY_REDIS_NODES": "h:x"}, "redis_nodes: 'h:x' is not HOST:PORT"),
])
def test_invalid_setups_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        target_from_settings(load_settings(environ=env))
    assert not enabled(load_settings(environ=env))


def test_gateway_run_refuses_an_invalid_setup() -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "run", "--redis-mode", "cluster", "--listen",
                          "127.0.0.1:0"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "redis_nodes: redis_mode cluster needs" in out.stderr


async def test_clients_per_mode() -> None:
    base = {"GATEWAY_REDIS_NODES": "127.0.0.1:1,127.0.0.1:2"}
    for mode, kind in (("cluster", RedisCluster), ("sentinel", Redis)):
        env = {**base, "GATEWAY_REDIS_MODE": mode, "GATEWAY_REDIS_SENTINEL_MASTER": "m"}
        t = target_from_settings(load_settings(environ=env))
        assert t is not None
        client = make_client(t, socket_timeout=1, connect_timeout=1)  # nothing connects yet
        assert isinstance(client, kind)
        if mode == "sentinel":
            assert isinstance(client.connection_pool, SentinelConnectionPool)
        await client.aclose()
    assert parse_nodes("a:1,,b:2") == (("a", 1), ("b", 2))
