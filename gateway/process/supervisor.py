"""``gateway run --workers N``: a supervisor process and N worker processes sharing one port.

Role: process management only; the supervisor serves no traffic. Each worker is a full gateway
(``python -m gateway run ... --worker-index K --supervisor-fd FD``) binding the public port with
SO_REUSEPORT (the kernel spreads connections) and its own admin listener on admin port + K.

- A worker that dies is restarted (backoff 0.1 s doubling to 5 s, reset once a worker lived 10 s); during
  the initial start a worker exiting before it is ready aborts the start with that exit code (a bad config
  must not restart forever).
- SIGTERM/SIGINT: forwarded to every worker (each drains), then the supervisor exits 0 when they all did
  (workers still alive after ``shutdown_timeout_s`` + 5 s are killed, exit 1).
- SIGHUP: forwarded to every worker (each reloads ``--config``). ``--watch``: the supervisor polls the
  config's mtimes and sends SIGHUP to the workers.
- Pushes: see :mod:`gateway.process.relay` (the supervisor relays each worker's push to all, and keeps the latest
  for workers it starts later).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from typing import Any

import orjson

from gateway.core.settings import Settings
from gateway.lib.redis_conn import enabled as redis_enabled
from gateway.process.relay import encode, frame, read_frame
from gateway.process.reload import FileWatcher

log = logging.getLogger("gateway.process.supervisor")

RESTART_BACKOFF_MIN_S = 0.1
RESTART_BACKOFF_MAX_S = 5.0
HEALTHY_AFTER_S = 10.0


class WorkerSlot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ready = asyncio.Event()
        self.started_at = 0.0
        self.restarts = 0
        self.admin_port: int | None = None


class Supervisor:
    def __init__(self, settings: Settings, argv: list[str]) -> None:
        self.settings = settings
        self.argv = argv  # the worker command line (run args without --workers handling)
        self.slots = [WorkerSlot(i) for i in range(settings.workers)]
        self.latest: bytes | None = None  # JSON of the latest relayed snapshot payload
        self.latest_id: str | None = None
        self.stopping = False
        self.relay = not redis_enabled(settings)
        self._stop = asyncio.Event()
        self._initial_failure: int | None = None

    # --- workers -------------------------------------------------------------------------------
    async def _spawn(self, slot: WorkerSlot) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cmd = [sys.executable, "-m", "gateway", "run", *self.argv,
               "--worker-index", str(slot.index), "--supervisor-fd", str(child.fileno())]
        slot.ready.clear()
        # own session: a terminal Ctrl-C reaches only the supervisor, which forwards one SIGTERM
        slot.proc = await asyncio.create_subprocess_exec(*cmd, pass_fds=(child.fileno(),), start_new_session=True)
        child.close()
        slot.started_at = time.monotonic()
        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=2**20)
        slot.writer = writer
        hello: dict[str, Any] = {"type": "hello", "snapshot": None}
        if self.latest is not None:
            writer.write(frame(b'{"type":"hello","snapshot":' + self.latest + b"}"))
        else:
            writer.write(encode(hello))
        await writer.drain()
        asyncio.get_running_loop().create_task(self._read(slot, reader))
        log.info("worker %d started (pid %d)", slot.index, slot.proc.pid)

    async def _read(self, slot: WorkerSlot, reader: asyncio.StreamReader) -> None:
        while True:
            raw = await read_frame(reader)
            if raw is None:
                return
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            kind = msg.get("type")
            if kind == "ready":
                slot.admin_port = msg.get("admin_port")
                slot.ready.set()
            elif kind == "snapshot" and self.relay:
                sid = str(msg.get("id") or "")
                if sid and sid == self.latest_id:
                    continue
                self.latest_id = sid
                self.latest = raw
                data = frame(raw)
                for other in self.slots:
                    if other.writer is not None and not other.writer.is_closing():
                        try:
                            other.writer.write(data)
                        except Exception:
                            pass
                log.info("relayed snapshot %s from worker %d to %d worker(s)", msg.get("version"), slot.index,
                         len(self.slots))

    async def _keep(self, slot: WorkerSlot) -> None:
        backoff = RESTART_BACKOFF_MIN_S
        while not self.stopping:
            try:
                await self._spawn(slot)
            except Exception:
                log.exception("could not start worker %d: retrying in %.1f s", slot.index, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)
                continue
            assert slot.proc is not None
            rc = await slot.proc.wait()
            if slot.writer is not None:
                slot.writer.close()
                slot.writer = None
            if self.stopping:
                return
            if not slot.ready.is_set() and slot.restarts == 0 and self._initial_failure is None:
                log.error("worker %d exited with %s before it was ready: stopping", slot.index, rc)
                self._initial_failure = rc if rc else 1
                self._stop.set()
                return
            if time.monotonic() - slot.started_at > HEALTHY_AFTER_S:
                backoff = RESTART_BACKOFF_MIN_S
            log.warning("worker %d (pid %d) exited with %s: restarting in %.1f s", slot.index, slot.proc.pid, rc,
                        backoff)
            slot.restarts += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)

    def _signal_all(self, sig: int) -> None:
        for slot in self.slots:
            if sig == signal.SIGHUP and not slot.ready.is_set():
                continue  # still starting (no handler yet: SIGHUP would kill it); it loads the file anyway
            if slot.proc is not None and slot.proc.returncode is None:
                try:
                    slot.proc.send_signal(sig)
                except ProcessLookupError:
                    pass

    # --- main ----------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._signal_all(signal.SIGHUP))
        keepers = [loop.create_task(self._keep(slot)) for slot in self.slots]
        ready: asyncio.Future[list[Any]] = asyncio.gather(*(slot.ready.wait() for slot in self.slots))
        stop_wait = loop.create_task(self._stop.wait())
        await asyncio.wait([ready, stop_wait], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        watcher: FileWatcher | None = None
        if ready.done() and not self._stop.is_set():
            log.info("%d workers ready (pids %s)", len(self.slots),
                     ", ".join(str(s.proc.pid) for s in self.slots if s.proc))
            if self.settings.watch and self.settings.config:
                async def hup() -> None:
                    self._signal_all(signal.SIGHUP)

                watcher = FileWatcher(self.settings.config, hup, self.settings.watch_interval_s)
                watcher.start()
        else:
            ready.cancel()
        await stop_wait
        self.stopping = True
        if watcher is not None:
            await watcher.stop()
        log.info("supervisor stopping: forwarding SIGTERM to workers")
        self._signal_all(signal.SIGTERM)
        deadline = self.settings.shutdown_timeout_s + 5.0
        procs = [s.proc for s in self.slots if s.proc is not None]
        rc = 0
        try:
            codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), deadline)
            # a worker still starting up may die of the SIGTERM itself (no handler yet): that is a clean stop too
            rc = 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1
        except TimeoutError:
            log.error("workers still running after %.0f s: killing them", deadline)
            self._signal_all(signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in procs))
            rc = 1
        for k in keepers:
            k.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        if self._initial_failure is not None:
            return self._initial_failure
        return rc


def worker_admin_listen(admin_listen: str, index: int) -> str:
    """Worker K's admin listener: the configured port + K (port 0 stays 0: each gets its own)."""
    host, _, port = admin_listen.rpartition(":")
    p = int(port)
    return f"{host}:{p + index if p else 0}"

