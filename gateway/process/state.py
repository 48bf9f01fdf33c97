"""Persisted state: the last accepted snapshot survives a restart (``state_dir``), and who wins a reload.

Role: control plane, never on the request path. With ``state_dir`` set, every snapshot this process
accepts (admin API, config file, Redis, worker relay) is written to ``<state_dir>/snapshot.json``
atomically: serialised to a temporary file in the same directory, ``fsync``-ed, renamed over the old
file, and the directory ``fsync``-ed. A crash at any point leaves either the old file or the new one,
never a torn one. Writes run in a worker thread and are coalesced: when snapshots are accepted faster
than they can be written, the newest one is written next (the ones in between are skipped).

Start-up rule (:func:`choose_startup`), documented in docs/operations-cluster.md:

1. only one of the persisted snapshot and ``--config`` exists (or is valid): use it;
2. the persisted snapshot records the digest of the config document it was built on; when ``--config``
   still has that digest, the file has not changed since, so the persisted snapshot (the file plus
   every change accepted after it) wins;
3. otherwise the newer one wins, by version: a version that starts with a UTC timestamp (the ones this
   gateway generates, ``2026-11-30T18:35:47Z-26``) is dated by it; any other version is dated by the time
   the state was saved, or the modification time of the newest config file; a tie goes to ``--config``.

Reload rule (SIGHUP / ``--watch``, :func:`reload_decision`): the config file wins only when its content
changed since it was last loaded. A reload of an unchanged file keeps the changes made through the admin
API (or received from the cluster) since then; a changed file replaces them. Both cases are logged at
WARNING when admin changes are involved.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway.snapshot.load import canonical

if TYPE_CHECKING:
    from gateway.model.runtime import Runtime
    from gateway.process.server import Gateway

log = logging.getLogger("gateway.process.state")

STATE_FILE = "snapshot.json"
FORMAT = 1
_TS_VERSION = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z(?:-(\d+))?")
TRACKER_KEY = "config_origin"


def config_digest(doc: dict[str, Any]) -> str:
    """Digest of a config document's content (independent of key order and formatting)."""
    return hashlib.sha256(canonical(doc)).hexdigest()[:32]


def version_time(version: str | None) -> tuple[float, int] | None:
    """(UTC seconds, sequence) of a timestamp version, or None for any other version."""
    m = _TS_VERSION.match(version or "")
    if m is None:
        return None
    import calendar

    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = float(m.group(7)) if m.group(7) else 0.0
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + frac, int(m.group(8) or 0)


@dataclass
class Persisted:
    version: str
    doc: dict[str, Any]
    saved_at: float
    source: str
    config_digest: str | None


# --- writing ---------------------------------------------------------------------------------------------
def _dump(record: dict[str, Any]) -> bytes:
    """Serialise in slices: the document's big lists are dumped in chunks, so a writer thread releases the
    interpreter between chunks and the event loop keeps answering while 100,000 APIs are written."""
    doc = record["doc"]
    head = orjson.dumps({k: v for k, v in record.items() if k != "doc"}, option=orjson.OPT_NON_STR_KEYS,
                        default=str)
    parts: list[bytes] = [head[:-1], b',"doc":{']
    first = True
    for key, value in doc.items():
        if not first:
            parts.append(b",")
        first = False
        parts.append(orjson.dumps(str(key)) + b":")
        if isinstance(value, list) and len(value) > 500:
            parts.append(b"[")
            for i in range(0, len(value), 500):
                chunk = orjson.dumps(value[i:i + 500], option=orjson.OPT_NON_STR_KEYS, default=str)
                parts.append((b"," if i else b"") + chunk[1:-1])
            parts.append(b"]")
        else:
            parts.append(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str))
    parts.append(b"}}")
    return b"".join(parts)


def write_atomic(path: Path, data: bytes) -> None:
    """temp file in the same directory -> write -> fsync -> rename over ``path`` -> fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class StateStore:
    """``<state_dir>/snapshot.json``: load at start, coalesced atomic writes afterwards."""

    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.dir / STATE_FILE
        self.writes = 0
        self.write_failures = 0
        self._next: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def load(self) -> Persisted | None:
        """The persisted snapshot, or None (no file, or an unreadable one: logged, never fatal)."""
        for stale in self.dir.glob(f".{STATE_FILE}.*.tmp"):  # left by a crash mid-write: never read
            stale.unlink(missing_ok=True)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            rec = orjson.loads(raw)
            if not isinstance(rec, dict) or not isinstance(rec.get("doc"), dict) or not rec.get("version"):
                raise ValueError("not a snapshot record")
            return Persisted(version=str(rec["version"]), doc=rec["doc"], saved_at=float(rec.get("saved_at") or 0),
                             source=str(rec.get("source") or ""), config_digest=rec.get("config_digest"))
        except (ValueError, TypeError) as exc:
            log.warning("persisted state %s is unreadable (%s): ignored", self.path, exc)
            return None

    def record(self, doc: dict[str, Any], version: str, source: str, digest: str | None) -> dict[str, Any]:
        return {"format": FORMAT, "version": version, "saved_at": time.time(), "source": source,
                "config_digest": digest, "doc": doc}

    def write_now(self, rec: dict[str, Any]) -> None:
        write_atomic(self.path, _dump(rec))
        self.writes += 1

    def schedule(self, rec: dict[str, Any]) -> None:
        """Write ``rec`` soon, in a worker thread; a newer record replaces one not yet written."""
        self._next = rec
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._next is not None:
            rec, self._next = self._next, None
            try:
                await asyncio.to_thread(self.write_now, rec)
            except Exception as exc:  # disk full, permissions ...: keep serving, say so
                self.write_failures += 1
                log.error("could not persist snapshot %s to %s: %s", rec["version"], self.path, exc)

    async def flush(self) -> None:
        """Wait until the newest scheduled record is on disk (used at shutdown and by tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


# --- where the active snapshot came from ----------------------------------------------------------------
class ConfigOrigin:
    """Per process: digest of the config file as last loaded, and the admin changes accepted since."""

    def __init__(self, gw: Gateway, store: StateStore | None) -> None:
        self.gw = gw
        self.store = store
        self.file_digest: str | None = None
        self.admin_changes = 0  # snapshots accepted from the admin API / cluster since the file was loaded
        self.last_source = ""

    @staticmethod
    def of(gw: Gateway) -> ConfigOrigin:
        origin = gw.services.extras.get(TRACKER_KEY)
        if origin is None:
            state_dir = gw.settings.state_dir
            store = StateStore(state_dir) if state_dir else None
            origin = gw.services.extras[TRACKER_KEY] = ConfigOrigin(gw, store)
            gw.activate_hooks.append(origin.on_activate)
        assert isinstance(origin, ConfigOrigin)
        return origin

    def on_activate(self, doc: dict[str, Any], runtime: Runtime, source: str) -> None:
        self.last_source = source
        if source == "file":
            self.admin_changes = 0
        elif source != "restore":
            self.admin_changes += 1
        if self.store is not None and source != "restore":
            rec = self.store.record(doc, runtime.version, source, self.file_digest)
            try:
                self.store.schedule(rec)
            except RuntimeError:  # no running loop (synchronous start-up load): write now
                self.store.write_now(rec)


def reload_decision(origin: ConfigOrigin, digest: str, path: str, active_version: str | None) -> bool:
    """Whether a reload of the config file (content ``digest``) replaces the active snapshot."""
    if digest == origin.file_digest:
        if origin.admin_changes:
            log.warning("reload: %s is unchanged since it was last loaded; keeping snapshot %s with the %d "
                        "change(s) accepted through the admin API or the cluster since (edit the file to "
                        "replace them)", path, active_version, origin.admin_changes)
            return False
        return True
    if origin.admin_changes:
        log.warning("reload: %s changed on disk: it replaces snapshot %s and the %d change(s) accepted through "
                    "the admin API or the cluster since the file was last loaded", path, active_version,
                    origin.admin_changes)
    return True


def _newest_mtime(path: str) -> float:
    p = Path(path)
    files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
    return max((f.stat().st_mtime for f in files), default=0.0)


def choose_startup(persisted: Persisted | None, file_doc: dict[str, Any] | None, file_version: str | None,
                   config_path: str | None, digest: str | None) -> str:
    """``"state"`` or ``"file"`` (see the module docstring for the rule)."""
    if persisted is None:
        return "file"
    if file_doc is None:
        return "state"
    if persisted.config_digest is not None and persisted.config_digest == digest:
        return "state"
    state_t = version_time(persisted.version) or (persisted.saved_at, 0)
    file_t = version_time(file_version) or (_newest_mtime(config_path) if config_path else 0.0, 0)
    return "state" if state_t > file_t else "file"
