"""The credential and TLS settings against real Redis servers that require both: TLS with client
certificates (``tls-auth-clients yes``) and an ACL user with a password; one instance, and a 3-master
cluster with TLS on its bus too."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.core.settings import load_settings
from gateway.lib.redis_conn import close as close_client
from gateway.lib.redis_conn import make_client, target_from_settings
from gateway.process.distribution import RedisDistributor, current_snapshot, store_snapshot
from tests.conftest import free_port
from tests.support.helpers import GROUP_HOST
from tests.support.redis_ha_helpers import limited_doc, wait_until, warmed
from tests.support.redis_topologies import free_port_pair, redis_binaries, wait_sync
from tests.support.tls_helpers import TestCA


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: `make test` installs it (apt-get install redis-server)")
    ca = TestCA()
    ca_file = ca.write(str(tmp_path))
    server_cert, server_key = ca.issue("redis", ips=["127.0.0.1"]).write(str(tmp_path), "server")
    client_cert, client_key = ca.issue("gateway", client=True).write(str(tmp_path), "client")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--tls-cert-file", server_cert, "--tls-key-file", server_key, "--tls-ca-cert-file", ca_file,
         "--tls-auth-clients", "yes", "--user", "default", "off", "--user", "gw", "on", ">gw-s3cret", "~*", "&*",
         "+@all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = {"redis_url": f"redis://127.0.0.1:{port}/0", "redis_tls": True, "redis_tls_ca_file": ca_file,
                "redis_tls_cert_file": client_cert, "redis_tls_key_file": client_key, "redis_username": "gw",
                "redis_password": "gw-s3cret"}
    try:
        target = target_from_settings(load_settings(settings, environ={}))
        assert target is not None
        end = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < end:  # up when a TLS + AUTH PING succeeds
            out = subprocess.run(["redis-cli", "-p", str(port), "--tls", "--cacert", ca_file, "--cert", client_cert,
                                  "--key", client_key, "--user", "gw", "--pass", "gw-s3cret", "--no-auth-warning",
                                  "PING"], capture_output=True, text=True)
            if out.stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the TLS redis-server did not start")
        yield settings
    finally:
        proc.terminate()
        proc.wait(10)


async def test_tls_and_acl_user_for_throttling_and_distribution(tls_redis: dict[str, Any],
                                                                make_gateway: Any) -> None:
    prefix = f"gw{uuid.uuid4().hex[:8]}"
    opts = {**tls_redis, "throttle_key_prefix": uuid.uuid4().hex[:8], "distribution_prefix": prefix,
            "access_log": False, "throttle_redis_timeout_ms": 2000}
    g = await make_gateway(limited_doc(3, unit="HOUR", content="one"), **opts)
    await warmed([g])
    target = target_from_settings(g.gw.settings)
    assert target is not None and "gw-s3cret" not in target.describe()
    dist = RedisDistributor(g.gw, target, prefix)
    admin = make_client(target, socket_timeout=2, connect_timeout=2)
    try:
        await dist.start()
        async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
            statuses = []
            for _ in range(5):
                async with s.get(g.url + "/a") as resp:
                    statuses.append(resp.status)
        assert statuses == [200, 200, 200, 429, 429]
        st = g.gw.services.extras["throttle_stats"]
        assert st["decisions_redis"] == 5 and st["redis_fallbacks"] == 0
        await store_snapshot(admin, limited_doc(3, unit="HOUR", content="two", version="v2"), "v2", prefix)
        await wait_until(lambda: g.gw.runtime.version == "v2", 5, "the pushed snapshot")
        assert (await current_snapshot(admin, prefix) or {}).get("version") == "v2"
    finally:
        await dist.close()
        await close_client(admin)


async def test_wrong_password_is_an_outage_not_an_error(tls_redis: dict[str, Any], make_gateway: Any) -> None:
    opts = {**tls_redis, "redis_password": "wrong", "throttle_key_prefix": uuid.uuid4().hex[:8], "access_log": False}
    g = await make_gateway(limited_doc(3, unit="HOUR"), **opts)
    async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s, s.get(g.url + "/a") as resp:
        assert resp.status == 200  # decided by the local fallback, never a 5xx
    st = g.gw.services.extras["throttle_stats"]
    assert st["redis_fallbacks"] == 1 and st["decisions_redis"] == 0


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Three TLS-only cluster masters (TLS on the cluster bus too, client certificates required) with an ACL
    user, created by ``redis-cli --tls --cluster create``: the gateway settings to reach it."""
    server, cli = redis_binaries()
    ca = TestCA()
    ca_file = ca.write(str(tmp_path))
    server_cert, server_key = ca.issue("redis", ips=["127.0.0.1"]).write(str(tmp_path), "server")
    client_cert, client_key = ca.issue("gateway", client=True).write(str(tmp_path), "client")
    tls = ["--tls", "--cacert", ca_file, "--cert", client_cert, "--key", client_key, "--user", "gw", "--pass",
           "gw-s3cret", "--no-auth-warning"]
    ports = [free_port_pair() for _ in range(3)]
    procs = [subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(p), "--tls-cluster", "yes", "--tls-cert-file", server_cert,
         "--tls-key-file", server_key, "--tls-client-cert-file", client_cert, "--tls-client-key-file", client_key,
         "--tls-ca-cert-file", ca_file, "--tls-auth-clients", "yes", "--cluster-enabled", "yes",
         "--cluster-config-file", f"nodes-{p}.conf", "--dir", str(tmp_path), "--save", "", "--appendonly", "no",
         "--bind", "127.0.0.1", "--user", "default", "off", "--user", "gw", "on", ">gw-s3cret", "~*", "&*", "+@all"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path) for p in ports]
    try:
        def answers(p: int, *args: str) -> str:
            return subprocess.run([cli, *tls, "-p", str(p), *args], capture_output=True, text=True,
                                  timeout=10).stdout

        for p in ports:
            wait_sync(lambda p=p: answers(p, "PING").strip() == "PONG", 10, f"TLS node {p}")
        out = subprocess.run([cli, *tls, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                              "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_sync(lambda: all("cluster_state:ok" in answers(p, "CLUSTER", "INFO") for p in ports), 30, "TLS cluster ok")
        yield {"redis_mode": "cluster", "redis_nodes": [f"127.0.0.1:{ports[0]}"], "redis_tls": True,
               "redis_tls_ca_file": ca_file, "redis_tls_cert_file": client_cert, "redis_tls_key_file": client_key,
               "redis_username": "gw", "redis_password": "gw-s3cret"}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


async def test_tls_cluster_with_acl_user(tls_cluster: dict[str, Any], make_gateway: Any) -> None:
    """Cluster mode over TLS with client certificates and an ACL user: one seed, the slot map learnt from it,
    exact limits across two gateways, and a push through sharded pub/sub."""
    prefix = f"gw{uuid.uuid4().hex[:8]}"
    # a generous deadline: this test is about TLS and credentials, and TLS handshakes on a busy machine are slow
    opts = {**tls_cluster, "throttle_key_prefix": uuid.uuid4().hex[:8], "distribution_prefix": prefix,
            "access_log": False, "throttle_redis_timeout_ms": 2000}
    g1, g2 = [await make_gateway(limited_doc(3, unit="HOUR", content="one"), **opts) for _ in range(2)]
    await warmed([g1, g2])
    target = target_from_settings(g1.gw.settings)
    assert target is not None and target.cluster
    dists = [RedisDistributor(g.gw, target, prefix) for g in (g1, g2)]
    admin = make_client(target, socket_timeout=2, connect_timeout=2, retries=1)
    try:
        for d in dists:
            await d.start()
        async with aiohttp.ClientSession(headers={"Host": GROUP_HOST}) as s:
            statuses = []
            for i in range(5):
                async with s.get((g1, g2)[i % 2].url + "/a") as resp:
                    statuses.append(resp.status)
        assert statuses == [200, 200, 200, 429, 429]
        for g in (g1, g2):
            assert g.gw.services.extras["throttle_stats"]["redis_fallbacks"] == 0
        await store_snapshot(admin, limited_doc(3, unit="HOUR", content="two", version="v2"), "v2", prefix)
        await wait_until(lambda: all(g.gw.runtime.version == "v2" for g in (g1, g2)), 5, "the pushed snapshot")
    finally:
        for d in dists:
            await d.close()
        await close_client(admin)
