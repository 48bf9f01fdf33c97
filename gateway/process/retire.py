"""Keep big swaps from stalling the event loop: garbage collection and freeing the replaced snapshot.

Role: control plane, never on the request path. A compiled 10,000-API snapshot is ~400,000 Python objects.
Two things would otherwise stop every request for a long moment when such a snapshot is replaced:

* the cyclic garbage collector: a full collection walks every tracked object (~250 ms at 10,000 APIs,
  seconds at 100,000), and the allocations of a whole-document compile trigger several. During a compile
  :func:`quiet_gc` (gateway/core/gcquiet.py) turns the collector off (and shortens the interpreter's thread
  switch interval, so the event loop gets the interpreter back within a millisecond from a compiling worker
  thread) and, before turning it back on, moves the new (acyclic) snapshot objects to the collector's
  permanent generation (``gc.freeze``), so later collections only walk what is new; :func:`settle` does the
  same after the swap;
* freeing the replaced snapshot: dropping its last reference frees everything at once (~130 ms at 10,000
  APIs, plus ~60 ms for the indexes it was validated and planned with). :func:`retire` keeps all of it for
  a grace period (requests still running on it finish), then releases it in small steps, yielding to the
  loop between steps.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from gateway.core.gcquiet import quiet_gc

__all__ = ["GRACE_S", "quiet_gc", "retire", "settle"]

GRACE_S = 2.0
MANY = 64  # a container with more elements than this is released gradually
STEP_BUDGET_S = 0.002  # what one release step may take (the step size adapts to it)


def settle() -> None:
    """After a whole-snapshot swap: what is alive now is long-lived; keep it out of later collections."""
    gc.freeze()


def retire(runtime: Any, doc: dict[str, Any] | None, tasks: set[asyncio.Task[None]], also: tuple[Any, ...] = ()
           ) -> None:
    """Free ``runtime``, the elements of ``doc`` and the objects in ``also`` (the indexes the replaced snapshot
    was compiled and planned with) gradually, after :data:`GRACE_S`.

    Nothing is modified: the big containers of each object (its fields, and the fields of small maps of
    collections) are copied into lists that hold their elements. When the grace period ends the objects
    themselves are dropped, which frees only their skeletons, then the lists are emptied a few elements at
    a time, each step well under :data:`STEP_BUDGET_S`, yielding to the loop between steps."""
    holders: list[list[Any]] = []
    roots = [r for r in (runtime, doc, *also) if r is not None]
    for root in roots:
        for value in _fields(root):
            _spread(value, holders)
    if not holders:
        return
    task = asyncio.get_running_loop().create_task(_release(roots, holders))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _fields(obj: Any) -> list[Any]:
    """The attribute values of ``obj`` (``__dict__`` and ``__slots__``), or the values of a dict."""
    if isinstance(obj, dict):
        return list(obj.values())
    out = list(getattr(obj, "__dict__", {}).values())
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            value = getattr(obj, name, None)
            if value is not None:
                out.append(value)
    return out


def _spread(value: Any, holders: list[list[Any]], depth: int = 2) -> None:
    """Hold the elements of a big container in a new list; look inside small maps of collections."""
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        return
    if len(items) > MANY:
        holders.append(items)
    elif depth > 0:  # e.g. Index.by_id: collection -> {id: element}
        for item in items:
            _spread(item, holders, depth - 1)


async def _release(roots: list[Any], holders: list[list[Any]]) -> None:
    await asyncio.sleep(GRACE_S)  # the swap dropped the other references; in-flight requests finish
    roots.clear()  # their containers go; every element is still held below
    await asyncio.sleep(0)
    step = 16
    for items in holders:
        while items:
            t0 = time.perf_counter()
            del items[-step:]  # frees what nothing else references, a few elements at a time
            spent = time.perf_counter() - t0
            if spent < STEP_BUDGET_S / 4 and step < 4096:
                step *= 2
            elif spent > STEP_BUDGET_S and step > 1:
                step //= 2
            await asyncio.sleep(0)
