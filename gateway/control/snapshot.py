"""Admin API: the whole snapshot at once (``GET/PUT /v1/snapshot``, ``GET /v1/snapshot/version``).

Role: control plane, off the request path. ``PUT`` replaces the whole configuration: the body (JSON or
YAML) is parsed, validated and compiled in a worker thread by :meth:`ControlPort.push_document`, then swapped
in atomically; on any problem the old snapshot keeps serving and the answer lists every problem.
``If-Match: <version>`` makes the write conditional (412 when another write got there first). ``GET``
returns the active document with credentials masked (see :data:`gateway.control.common.SECRET_FIELDS`);
sending a masked value back in a ``PUT`` keeps the stored secret of the resource with the same id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from gateway.control.common import (
    AdminError,
    current_document,
    if_match,
    json_response,
    leftover_masks,
    mask,
    may_hold_mask,
    unmask_document,
    version_headers,
)
from gateway.control.port import ControlPort
from gateway.control.store import DocumentStore
from gateway.core.errors import SnapshotError
from gateway.core.gcquiet import quiet_gc
from gateway.snapshot.load import parse_bytes

log = logging.getLogger("gateway.control.app")


def _summary(gateway: ControlPort) -> dict[str, Any]:
    rt = gateway.runtime
    if rt is None:
        return {"version": None, "counts": {}}
    return {"version": rt.version, "counts": rt.counts, "compile_ms": round(rt.compile_ms, 1),
            "compiled_at": rt.compiled_at}


def _unmasked(doc: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """``doc`` with masked secrets put back from ``current``; 400 if a mask has no stored secret."""
    doc = unmask_document(doc, current)
    masked = leftover_masks(doc)
    if masked:
        raise AdminError(400, "APIG.2012", "Invalid snapshot document", problems=masked)
    return doc


def _parse(data: bytes, content_type: str | None) -> tuple[dict[str, Any], bool]:
    """(the document, whether it may hold masked secrets): in a worker thread."""
    return parse_bytes(data, "body", content_type), may_hold_mask(data)


def install(app: web.Application, store: DocumentStore) -> None:
    gateway = store.port

    async def get_snapshot(request: web.Request) -> web.StreamResponse:
        rt = gateway.runtime
        if rt is None:
            return AdminError(404, "APIG.3007", "No snapshot is loaded.").response()
        doc = mask(current_document(gateway))
        doc["version"] = rt.version
        return json_response(doc, headers=version_headers(rt))

    async def get_version(request: web.Request) -> web.StreamResponse:
        return json_response(_summary(gateway), headers=version_headers(gateway.runtime))

    async def put_snapshot(request: web.Request) -> web.StreamResponse:
        try:
            data = await request.read()
            if not data.strip():
                raise AdminError(400, "APIG.2001", "The request body must be specified.")
            # a whole snapshot is megabytes of JSON: parsed, validated and compiled off the event loop, with the
            # collector paused and the result frozen once accepted (gateway/core/gcquiet.py)
            with quiet_gc(freeze=True):
                try:
                    doc, masked = await asyncio.to_thread(_parse, data, request.headers.get("Content-Type"))
                except SnapshotError as exc:
                    raise AdminError(400, "APIG.2012", "Invalid snapshot document", problems=exc.problems) from None
                del data
                rt = await store.replace(lambda current: _unmasked(doc, current) if masked else doc,
                                         if_match(request))
            log.info("admin PUT /v1/snapshot -> snapshot %s", rt.version)
        except AdminError as err:
            resp = err.response()
            resp.headers.update(version_headers(gateway.runtime))
            return resp
        return json_response(_summary(gateway), headers=version_headers(rt))

    app.router.add_get("/v1/snapshot", get_snapshot)
    app.router.add_put("/v1/snapshot", put_snapshot)
    app.router.add_get("/v1/snapshot/version", get_version)

