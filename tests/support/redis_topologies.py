"""Real Redis topologies on free loopback ports: a 3-master/3-replica Redis Cluster and a Sentinel set.

Used by the session fixtures of tests/e2e/redis_ha (started once per test session) and by
benchmarks/throttle_accuracy.py (``--redis-mode cluster|sentinel``). Every process is a real
``redis-server`` (``--cluster-enabled yes`` nodes joined by ``redis-cli --cluster create ... --cluster-replicas 1
--cluster-yes``; sentinels are ``redis-server <conf> --sentinel``). Failure detection is tuned short
(``NODE_TIMEOUT_MS``) so a failover completes in a few seconds, and a sentinel election that splits its
votes is retried after 2 x ``failover-timeout`` (4 s) instead of 20 s; no persistence, all files in a temp dir.

The helpers kill a node (``kill``), wait for the promotion (``wait_*``) and bring the killed node back as a
replica (``restart``), so a test that fails a master over leaves a healthy 3+3 / 1+1 topology behind.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

NODE_TIMEOUT_MS = 1500  # cluster-node-timeout and sentinel down-after-milliseconds
MASTER = "gwmaster"


def free_port_pair() -> int:
    """A port P with P free and P + 10000 free (a cluster node's bus port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = int(s.getsockname()[1])
        if p + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 10000))
            except OSError:
                continue
        return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_sync(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = cond()
        except (redis.RedisError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")


def redis_binaries() -> tuple[str, str]:
    """(redis-server, redis-cli); raises RuntimeError when missing (tests turn it into a failure)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise RuntimeError("redis-server / redis-cli not found: `make test` installs them "
                           "(apt-get install redis-server)")
    return server, cli


class _Procs:
    def __init__(self, prefix: str) -> None:
        self.server, self.cli = redis_binaries()
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.args: dict[int, list[str]] = {}

    def spawn(self, port: int, args: list[str]) -> None:
        self.args[port] = args
        log = (self.dir / f"{port}.log").open("ab")
        self.procs[port] = subprocess.Popen(args, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def client(self, port: int, **kw: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1, **kw)

    def alive(self, port: int) -> bool:
        p = self.procs.get(port)
        return p is not None and p.poll() is None

    def kill(self, port: int) -> None:
        """SIGKILL: the process dies at once, as in a crash (clients see their connections reset)."""
        p = self.procs[port]
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

    def restart(self, port: int, extra: list[str] | None = None) -> None:
        assert not self.alive(port)
        args = self.args[port]
        self.spawn(port, args + (extra or []))
        self.args[port] = args
        wait_sync(lambda: self.client(port).ping(), 10, f"redis on {port} answering")

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisClusterTopology(_Procs):
    """Six ``--cluster-enabled yes`` nodes: 3 masters, each with one replica."""

    def __init__(self, masters: int = 3, replicas: int = 1, attempts: int = 3) -> None:
        super().__init__("apigw-redis-cluster-")
        # Ports are picked free but can be taken by a neighbour (another test run on this machine) before the
        # node binds them; such a node dies at start and the cluster never becomes healthy. Start afresh on new
        # ports then (a few times), reporting why each attempt failed if none succeeds.
        failures: list[str] = []
        for attempt in range(attempts):
            if attempt:
                self.procs, self.args = {}, {}
                self.dir = Path(tempfile.mkdtemp(prefix="apigw-redis-cluster-"))
            try:
                self._form(masters, replicas)
                return
            except BaseException as exc:
                failures.append(f"attempt {attempt + 1}: {exc}; {self._diagnosis()}")
                self.stop_all()
                if not isinstance(exc, (AssertionError, RuntimeError, redis.RedisError)):
                    raise
        raise AssertionError("no healthy redis cluster formed:\n" + "\n".join(failures))

    def _form(self, masters: int, replicas: int) -> None:
        self.ports = [free_port_pair() for _ in range(masters * (1 + replicas))]
        for port in self.ports:
            self.spawn(port, [self.server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                              "--cluster-config-file", f"nodes-{port}.conf",
                              "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no",
                              "--dir", str(self.dir), "--protected-mode", "no", "--repl-diskless-sync-delay", "0",
                              "--repl-ping-replica-period", "1"])
        for port in self.ports:
            wait_sync(self.client(port).ping, 10, f"cluster node {port} answering")
        out = subprocess.run([self.cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                              "--cluster-replicas", str(replicas), "--cluster-yes"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout}\n{out.stderr}")
        self.wait_healthy()

    def _diagnosis(self) -> str:
        """Which nodes died, with the last lines of their logs (read before the directory is removed)."""
        dead = [p for p in self.procs if not self.alive(p)]
        parts = [f"dead nodes: {dead or 'none'}"]
        for p in dead[:2]:
            try:
                tail = (self.dir / f"{p}.log").read_text(errors="replace").strip().splitlines()[-3:]
            except OSError:
                tail = []
            parts.append(f"{p}: {' | '.join(tail)}")
        return "; ".join(parts)

    @property
    def nodes(self) -> str:
        """The ``redis_nodes`` value: every node as a seed."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _shards(self, via: int) -> list[tuple[int, int, int, list[int]]]:
        """(start slot, end slot, master port, replica ports) from CLUSTER SLOTS on node ``via``."""
        out = []
        for entry in self.client(via).execute_command("CLUSTER SLOTS"):
            start, end, master, *reps = entry
            out.append((int(start), int(end), int(master[1]), [int(r[1]) for r in reps]))
        return out

    def _info(self, port: int) -> dict[str, Any]:
        info = self.client(port).execute_command("CLUSTER INFO")
        return info if isinstance(info, dict) else {}

    def _live(self) -> list[int]:
        return [p for p in self.ports if self.alive(p)]

    def owner(self, slot: int) -> int:
        """Port of the master serving ``slot``, as the live nodes see it."""
        for start, end, master, _reps in self._shards(self._live()[0]):
            if start <= slot <= end:
                return master
        raise AssertionError(f"slot {slot} not covered")

    def owner_of_key(self, key: str) -> int:
        return self.owner(int(self.client(self._live()[0]).execute_command("CLUSTER KEYSLOT", key)))

    def healthy(self) -> bool:
        """cluster_state ok on every live node, every node alive, 3 masters each with a live replica."""
        if len(self._live()) != len(self.ports):
            return False
        for p in self.ports:
            info = self._info(p)
            if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(self.ports):
                return False
        masters = {m for _s, _e, m, _r in self._shards(self.ports[0])}
        if len(masters) != len(self.ports) // 2:
            return False
        for p in self.ports:  # every node knows every replica as a replica (votes need it), none failing
            nodes = self.client(p).execute_command("CLUSTER NODES")
            flags = [str(n.get("flags", "")) for n in nodes.values()] if isinstance(nodes, dict) else []
            if sum("slave" in f for f in flags) != len(self.ports) - len(masters):
                return False
            if any("fail" in f or "handshake" in f or "noaddr" in f for f in flags):
                return False
        for m in masters:  # each master streams to one online replica (ROLE: master, offset, [[ip, port, off]])
            role = self.client(m).execute_command("ROLE")
            if role[0] != b"master" or len(role[2]) != 1:
                return False
        return True

    def wait_healthy(self, timeout: float = 30.0) -> None:
        wait_sync(self.healthy, timeout, "a healthy redis cluster", 0.1)

    def wait_promoted(self, slot: int, old_master: int, timeout: float = 30.0) -> int:
        """Wait until a node other than ``old_master`` serves ``slot`` and the cluster is ok; its port."""
        def promoted() -> int:
            live = self._live()
            for p in live:
                if self._info(p).get("cluster_state") != "ok":
                    return 0
            new = self.owner(slot)
            return new if new != old_master else 0
        return int(wait_sync(promoted, timeout, f"a replica promoted for slot {slot}", 0.02))

    def graceful_failover(self, slot: int) -> tuple[int, int]:
        """``CLUSTER FAILOVER`` on the replica of ``slot``'s master (an operator's planned switch: the replica
        catches up first, no write is lost); waits for the switch. Returns (old master, new master)."""
        old = self.owner(slot)
        replica = next(p for p in self.ports if p != old and self.alive(p)
                       and self.client(p).execute_command("ROLE")[0] == b"slave"
                       and int(self.client(p).execute_command("ROLE")[2]) == old)
        for attempt in range(3):  # an election can miss its majority on a busy machine: ask again
            self.client(replica).execute_command("CLUSTER FAILOVER")
            try:
                return old, self.wait_promoted(slot, old, timeout=12.0)
            except AssertionError:
                if attempt == 2:
                    raise AssertionError(f"CLUSTER FAILOVER on {replica} (replica of {old}) did not complete: "
                                         + (self.dir / f"{replica}.log").read_text()[-2000:]) from None
        raise AssertionError("unreachable")

    def heal(self) -> None:
        """Restart every killed node (it rejoins as a replica) and wait for a healthy 3+3 cluster."""
        for p in self.ports:
            if not self.alive(p):
                self.restart(p)
        self.wait_healthy()


class RedisSentinelTopology(_Procs):
    """One primary, one replica, three ``redis-server --sentinel`` processes watching ``MASTER``."""

    def __init__(self, sentinels: int = 3) -> None:
        super().__init__("apigw-redis-sentinel-")
        self.data_ports = [_free_port(), _free_port()]
        self.sentinel_ports = [_free_port() for _ in range(sentinels)]
        try:
            primary, replica = self.data_ports
            base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                    "--protected-mode", "no", "--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"]
            self.spawn(primary, [self.server, "--port", str(primary), *base])
            self.spawn(replica, [self.server, "--port", str(replica), *base, "--replicaof", "127.0.0.1", str(primary)])
            # the sentinels learn the replicas from the primary's INFO, refreshed only every 10 s: start them
            # once the replica is attached, so they see it at their first look
            def attached() -> bool:
                role = self.client(primary).execute_command("ROLE")
                return role[0] == b"master" and len(role[2]) == 1
            wait_sync(attached, 10, "the replica attached to the primary")
            for port in self.sentinel_ports:
                conf = self.dir / f"sentinel-{port}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.dir}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
                    f"sentinel down-after-milliseconds {MASTER} {NODE_TIMEOUT_MS}\n"
                    f"sentinel failover-timeout {MASTER} 4000\n"
                    f"sentinel parallel-syncs {MASTER} 1\n")
                self.spawn(port, [self.server, str(conf), "--sentinel"])
            self.wait_healthy()
        except BaseException:
            self.stop_all()
            raise

    @property
    def nodes(self) -> str:
        """The ``redis_nodes`` value: the sentinels."""
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def primary(self, via: int | None = None) -> int:
        """Port of the primary according to sentinel ``via`` (default: the first one that answers)."""
        for port in [via] if via is not None else self.sentinel_ports:
            try:
                addr = self.client(port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
            except redis.RedisError:
                continue
            if addr:
                return int(addr[1])
        raise AssertionError("no sentinel knows the primary")

    def healthy(self) -> bool:
        """Every sentinel agrees on a live primary, knows the 2 other sentinels and a live, synced replica."""
        if not all(self.alive(p) for p in self.data_ports + self.sentinel_ports):
            return False
        primaries = {self.primary(s) for s in self.sentinel_ports}
        if len(primaries) != 1:
            return False
        primary = primaries.pop()
        role = self.client(primary).execute_command("ROLE")
        if role[0] != b"master" or len(role[2]) != 1:
            return False
        for s in self.sentinel_ports:
            c = self.client(s)
            if len(c.execute_command("SENTINEL", "SENTINELS", MASTER)) != len(self.sentinel_ports) - 1:
                return False
            reps = c.execute_command("SENTINEL", "REPLICAS", MASTER)
            flags = [r.get(b"flags", b"") if isinstance(r, dict) else b"" for r in reps]
            if not any(f == b"slave" for f in flags):
                return False
        return True

    def wait_healthy(self, timeout: float = 30.0) -> None:
        wait_sync(self.healthy, timeout, "a healthy sentinel set", 0.1)

    def wait_promoted(self, old_primary: int, timeout: float = 30.0) -> int:
        """Wait until the sentinels name another primary and it answers as master; its port."""
        def promoted() -> int:
            new = self.primary()
            if new == old_primary:
                return 0
            return new if self.client(new).execute_command("ROLE")[0] == b"master" else 0
        return int(wait_sync(promoted, timeout, "the replica promoted by the sentinels", 0.02))

    def graceful_failover(self) -> tuple[int, int]:
        """``SENTINEL FAILOVER``: the sentinels promote the replica and make the old primary its replica
        (both stay up). Returns (old primary, new primary)."""
        old = self.primary()
        self.client(self.sentinel_ports[0]).execute_command("SENTINEL", "FAILOVER", MASTER)
        return old, self.wait_promoted(old)

    def heal(self) -> None:
        """Restart killed processes; an old primary comes back as a replica of the current one (what an
        operator does; the sentinels alone would convert it too, but only at their next 10 s INFO refresh)."""
        for p in self.sentinel_ports:
            if not self.alive(p):
                self.restart(p)
        primary = self.primary()
        for p in self.data_ports:
            if not self.alive(p):
                args = [a for a in self.args[p]]
                if "--replicaof" in args:
                    i = args.index("--replicaof")
                    del args[i:i + 3]
                self.args[p] = args
                self.restart(p, ["--replicaof", "127.0.0.1", str(primary)])
        self.wait_healthy()
