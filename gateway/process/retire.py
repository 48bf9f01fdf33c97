"""Keep big swaps from stalling the event loop: garbage collection and freeing the replaced snapshot.

Role: control plane, never on the request path. A compiled 10,000-API snapshot is ~400,000 Python objects.
Two things would otherwise stop every request for a long moment when such a snapshot is replaced:

* the cyclic garbage collector: a full collection walks every tracked object (~250 ms at 10,000 APIs,
  seconds at 100,000), and the allocations of a whole-document compile trigger several. During a compile
  :func:`quiet_gc` turns the collector off (and shortens the interpreter's thread switch interval, so the
  event loop gets the interpreter back within a millisecond from a compiling worker thread), and after
  the swap :func:`settle` moves the (acyclic) snapshot objects to the collector's permanent generation
  (``gc.freeze``), so later collections only walk what is new;
* freeing the replaced snapshot: dropping its last reference frees everything at once (~130 ms at 10,000
  APIs). :func:`retire` keeps it for a grace period (requests still running on it finish), then releases
  its endpoints, groups and document elements in small slices, yielding to the loop between slices.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

GRACE_S = 2.0
SLICE = 500

_lock = threading.Lock()
_quiet = 0
_saved_interval = sys.getswitchinterval()
_was_enabled = True
SWITCH_INTERVAL_S = 0.001


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic collection while the block runs (nested and concurrent uses are counted)."""
    global _quiet, _saved_interval, _was_enabled
    with _lock:
        _quiet += 1
        if _quiet == 1:
            _was_enabled = gc.isenabled()
            gc.disable()
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_saved_interval, SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        with _lock:
            _quiet -= 1
            if _quiet == 0:
                sys.setswitchinterval(_saved_interval)
                if _was_enabled:
                    gc.enable()


def settle() -> None:
    """After a whole-snapshot swap: what is alive now is long-lived; keep it out of later collections."""
    gc.freeze()


def retire(runtime: Any, doc: dict[str, Any] | None, tasks: set[asyncio.Task[None]]) -> None:
    """Free ``runtime`` (and the elements of ``doc``) gradually, after :data:`GRACE_S`."""
    holders: list[list[Any]] = []
    endpoints = getattr(runtime, "endpoints", None)
    if isinstance(endpoints, dict):
        holders.append(list(endpoints.values()))
    groups = getattr(runtime, "groups", None)
    if isinstance(groups, dict):
        holders.append(list(groups.values()))
    for value in (doc or {}).values():
        if isinstance(value, list) and len(value) > SLICE:
            holders.append(list(value))
    if not holders:
        return
    task = asyncio.get_running_loop().create_task(_release(holders))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _release(holders: list[list[Any]]) -> None:
    await asyncio.sleep(GRACE_S)  # the swap dropped the other references; in-flight requests finish
    for items in holders:
        while items:
            del items[-SLICE:]  # frees what nothing else references, a slice at a time
            await asyncio.sleep(0)
