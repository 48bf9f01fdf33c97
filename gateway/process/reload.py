"""Config-file reloads and snapshot identity, shared by the single process, workers and Redis nodes.

Role: control plane only, never on the request path. ``reload_file`` re-reads ``--config`` (SIGHUP or
``--watch``) and swaps it in all-or-nothing through :meth:`Gateway.push_document`; a bad file is logged
problem by problem and the previous snapshot keeps serving. The file wins only when its content changed
since it was last loaded (admin changes made since are otherwise kept; both cases are logged at
WARNING, :func:`gateway.process.state.reload_decision`). ``load_file`` is the start-up load, which also weighs
the snapshot persisted in ``state_dir`` against the file (:func:`gateway.process.state.choose_startup`).
``FileWatcher`` polls the modification
times of the file (or every file of the directory) once a second: no extra dependency.

Snapshot identity: a snapshot is identified by ``snapshot_id(doc, version)``, a digest of its version and
its canonical JSON, so a document edited without changing its ``version`` field is still a new snapshot,
and the same file reloaded by N workers (or N nodes) is one snapshot (its version is content-derived when
the file has none), which lets the relay and Redis distribution skip duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.aio import cancel_and_wait
from gateway.core.errors import SnapshotError
from gateway.snapshot.load import canonical_parts, load_path

if TYPE_CHECKING:
    from gateway.process.server import Gateway

log = logging.getLogger("gateway.process.reload")

STATE_KEY = "cluster"


class ClusterState:
    """Which snapshot is active in this process, by identity; kept in ``services.extras``.

    A swap hook records every swap (file, admin push, relay, Redis); the digest is computed lazily,
    only when a control-plane event needs to compare identities."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] | None = None
        self.version: str | None = None
        self._id: str | None = None

    @property
    def snapshot_id(self) -> str | None:
        if self._id is None and self.doc is not None and self.version is not None:
            self._id = snapshot_id(self.doc, self.version)
        return self._id

    def record(self, doc: dict[str, Any] | None, version: str, known_id: str | None = None) -> None:
        self.doc, self.version, self._id = doc, version, known_id

    @staticmethod
    def of(gw: Gateway) -> ClusterState:
        state = gw.services.extras.get(STATE_KEY)
        if state is None:
            state = gw.services.extras[STATE_KEY] = ClusterState()

            def on_swap(runtime: Any) -> None:
                state.record(gw.document, runtime.version)

            gw.services.swap_hooks.append(on_swap)
            if gw.runtime is not None:
                state.record(gw.document, gw.runtime.version)
        return state  # type: ignore[no-any-return,unused-ignore]


def snapshot_id(doc: dict[str, Any], version: str) -> str:
    h = hashlib.sha256(version.encode())
    h.update(b"\n")
    for part in canonical_parts(doc):  # in pieces: a worker thread computing it lets the event loop run
        h.update(part)
    return h.hexdigest()[:32]


def file_version(doc: dict[str, Any]) -> str:
    """The document's own ``version`` or one derived from its content (equal on every worker/node)."""
    given = doc.get("version")
    if given:
        return str(given)
    h = hashlib.sha256()
    for part in canonical_parts(doc):
        h.update(part)
    return "file-" + h.hexdigest()[:16]


def load_file(gw: Gateway, path: str | None) -> None:
    """Start-up load (synchronous): raises SnapshotError; records the snapshot identity.

    With ``state_dir`` set, the persisted snapshot and ``path`` are compared and the newer one is loaded
    (rule in :mod:`gateway.process.state`); a persisted snapshot that no longer validates is skipped."""
    from gateway.process.state import ConfigOrigin, choose_startup, config_digest

    ClusterState.of(gw)
    origin = ConfigOrigin.of(gw)
    persisted = origin.store.load() if origin.store is not None else None
    doc: dict[str, Any] | None = None
    file_error: SnapshotError | None = None
    if path:
        try:
            doc = load_path(path)
        except SnapshotError as exc:
            if persisted is None:
                raise
            file_error = exc
    digest = config_digest(doc) if doc is not None else None
    version = file_version(doc) if doc is not None else None
    if choose_startup(persisted, doc, version, path, digest) == "state" and persisted is not None:
        try:
            origin.file_digest = persisted.config_digest
            gw.apply_document(persisted.doc, persisted.version, source="restore")
        except SnapshotError as exc:
            for problem in exc.problems:
                log.error("persisted snapshot %s rejected: %s", persisted.version, problem)
            if doc is None:
                raise
        else:
            # restored from state_dir: admin changes made on top of the file stay "admin changes"
            origin.admin_changes = 0 if persisted.source == "file" else 1
            if file_error is not None:
                for problem in file_error.problems:
                    log.error("config %s rejected: %s", path, problem)
            if doc is not None and digest != persisted.config_digest:
                log.warning("start-up: persisted snapshot %s is newer than %s (version %s): serving it",
                            persisted.version, path, version)
            else:
                log.info("start-up: serving persisted snapshot %s from %s", persisted.version, origin.store.path
                         if origin.store is not None else "")
            return
    assert doc is not None and version is not None
    if persisted is not None and persisted.source != "file":
        log.warning("start-up: %s (version %s) is newer than the persisted snapshot %s: the file replaces it "
                    "and the admin changes it carried", path, version, persisted.version)
    origin.file_digest = digest
    gw.apply_document(doc, version, source="file")
    from gateway.snapshot.validate import validate
    from gateway.snapshot.warnings import snapshot_warnings

    # the warnings read only core collections: the core schema suffices (the document passed the full one)
    for warning in snapshot_warnings(validate(doc), gw.settings.default_group):
        log.warning("config %s: %s", path, warning)


async def reload_file(gw: Gateway, path: str, distribute: bool = True) -> bool:
    """Reload ``path`` all-or-nothing; returns False (and logs every problem) when it is rejected.

    With ``distribute`` the push hooks run (Redis distribution, the worker relay), so a SIGHUP on one
    node or worker makes the file the snapshot of all of them (duplicates are skipped by identity)."""
    try:
        try:
            doc = await asyncio.to_thread(load_path, path)
        except SnapshotError:
            gw.services.reload_failures += 1  # push_document counts the validation failures
            raise
        from gateway.process.state import ConfigOrigin, config_digest, reload_decision

        version = file_version(doc)
        state = ClusterState.of(gw)
        origin = ConfigOrigin.of(gw)
        digest = await asyncio.to_thread(config_digest, doc)
        if not reload_decision(origin, digest, path, gw.runtime.version if gw.runtime else None):
            return True
        if state.snapshot_id == snapshot_id(doc, version):
            origin.file_digest = digest
            log.info("reload: %s unchanged (snapshot %s already active)", path, version)
            return True
        previous = origin.file_digest
        origin.file_digest = digest
        try:
            await gw.push_document(doc, version=version, distribute=distribute, source="file")
        except SnapshotError:
            origin.file_digest = previous
            raise
    except SnapshotError as exc:
        for problem in exc.problems:
            log.error("reload rejected: %s", problem)
        log.error("reload of %s rejected (%d problem(s)); still serving snapshot %s", path, len(exc.problems),
                  gw.runtime.version if gw.runtime else None)
        return False
    except Exception:
        log.exception("reload of %s failed; still serving the previous snapshot", path)
        return False
    return True


def _signature(path: str) -> tuple[tuple[str, int, int], ...]:
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")) if p.is_dir() else [p]
    out: list[tuple[str, int, int]] = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


class FileWatcher:
    """Polls the config path's files (name, mtime, size) and calls ``on_change`` when they differ."""

    def __init__(self, path: str, on_change: Callable[[], Awaitable[Any]], interval_s: float = 1.0) -> None:
        self.path = path
        self.on_change = on_change
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._last = _signature(path)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                sig = await asyncio.to_thread(_signature, self.path)
                if sig != self._last:
                    self._last = sig
                    log.info("config %s changed on disk: reloading", self.path)
                    await self.on_change()
            except Exception:
                log.exception("config watcher failed; retrying")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
