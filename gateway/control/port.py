"""What the control plane may use of the serving process: a small Protocol, not the process class.

Role: control plane, off the request path. Admin modules type against :class:`ControlPort`; the process
(:class:`gateway.process.server.Gateway`) satisfies it structurally and imports the control plane, never the
reverse. A write goes through :meth:`ControlPort.push_document` (validate + compile in a worker thread, one
atomic swap); :class:`VersionConflict` is what it raises when ``If-Match`` names a version that is no longer
active.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.core.settings import Settings
from gateway.model.runtime import Runtime
from gateway.model.services import Services


class VersionConflict(Exception):
    """An ``If-Match`` version that is not the active one (answered 412 by the admin API)."""

    def __init__(self, current: str | None) -> None:
        super().__init__(f"active version is {current}")
        self.current = current


class ControlPort(Protocol):
    """The process as the admin API sees it."""

    settings: Settings
    services: Services
    document: dict[str, Any] | None
    public_port: int | None  # the bound public listener (None before start): apis/debug calls through it

    @property
    def runtime(self) -> Runtime | None: ...

    async def push_document(self, doc: dict[str, Any], expected_version: str | None = None,
                            version: str | None = None, distribute: bool = True) -> Runtime: ...
