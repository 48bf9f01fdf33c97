"""The admin document store: the one write path of the control plane.

Role: control plane, off the request path. Every admin write (``PUT /v1/snapshot``, each v2 change, an
OpenAPI import) goes through :meth:`DocumentStore.apply` or :meth:`DocumentStore.replace`: under the admin
lock, a change function edits a fresh copy of the active document, and the result is pushed through the
:class:`~gateway.control.port.ControlPort` (validated, compiled in a worker thread, swapped atomically). The
lock lives here, one per process port, not in the data plane's service bag.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from gateway.control.common import commit
from gateway.control.port import ControlPort
from gateway.model.runtime import Runtime

log = logging.getLogger("gateway.control.app")
Doc = dict[str, Any]
Change = Callable[[Doc], str | None]

_STORES: weakref.WeakKeyDictionary[Any, DocumentStore] = weakref.WeakKeyDictionary()


def fresh(doc: Doc) -> Doc:
    """A new document sharing the unchanged collections (elements are never mutated in place)."""
    out = dict(doc)
    out.pop("version", None)  # a change gets a new version id
    return out


class DocumentStore:
    """The active admin document of one process, and the lock that serialises admin writes."""

    def __init__(self, port: ControlPort) -> None:
        self.port = port
        self.lock = asyncio.Lock()
        self.tasks: dict[str, dict[str, Any]] = {}  # finished async import/export tasks (control/openapi/routes)

    @classmethod
    def of(cls, port: ControlPort) -> DocumentStore:
        """The store of ``port`` (one per process, shared by every admin route module)."""
        store = _STORES.get(port)
        if store is None:
            store = _STORES[port] = cls(port)
        return store

    @property
    def doc(self) -> Doc:
        return self.port.document if self.port.document is not None else {}

    @property
    def runtime(self) -> Runtime | None:
        return self.port.runtime

    async def apply(self, change: Change, expected_version: str | None = None, label: str = "") -> Runtime:
        """Run ``change`` on a fresh copy of the active document and push it (optimistic on the version).

        ``change`` returns the path prefix of the changed element (``apis[3]``) so that problems are
        reported relative to it, or None. Without an explicit ``expected_version`` the version the
        change was computed from is expected, so a concurrent push (file reload, another node) is caught.
        ``change`` runs in a worker thread (it may validate a large document); it only edits ``new``.
        """
        async with self.lock:
            rt = self.port.runtime
            if expected_version is None and rt is not None:
                expected_version = rt.version
            new = fresh(self.doc)
            prefix = await asyncio.to_thread(change, new)
            runtime = await commit(self.port, new, expected_version, prefix)
        if label:
            log.info("admin change %s -> snapshot %s", label, runtime.version)
        return runtime

    async def replace(self, build: Callable[[Doc | None], Doc], expected_version: str | None = None) -> Runtime:
        """Push the document ``build(current)`` returns (a whole-snapshot write), under the admin lock. ``build``
        walks the whole document (unmasking secrets): it runs in a worker thread, off the event loop."""
        async with self.lock:
            return await commit(self.port, await asyncio.to_thread(build, self.port.document), expected_version)
