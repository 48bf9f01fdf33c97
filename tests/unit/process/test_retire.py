"""Whole-snapshot swaps without long pauses: the collector is paused and the result frozen
(gateway/core/gcquiet.py), and the replaced snapshot is freed gradually (gateway/process/retire.py)."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import weakref

import pytest

from gateway.core.gcquiet import quiet, quiet_gc
from gateway.process import retire


class Node:
    """A weak-referenceable element."""

    def __init__(self, i: int) -> None:
        self.i = i


def test_quiet_gc_freezes_what_the_block_built_before_collecting_again() -> None:
    assert gc.isenabled()
    saved = sys.getswitchinterval()
    frozen = gc.get_freeze_count()
    with quiet_gc(freeze=True):
        assert quiet() and not gc.isenabled()
        assert sys.getswitchinterval() <= 0.001
        built = [Node(i) for i in range(5000)]
    assert gc.isenabled() and not quiet()
    assert sys.getswitchinterval() == saved
    assert gc.get_freeze_count() >= frozen + len(built)  # nothing left young for the next collection to walk
    assert gc.get_count()[0] < 100


def test_quiet_gc_nested_and_failed_blocks() -> None:
    frozen = gc.get_freeze_count()
    with pytest.raises(ValueError), quiet_gc(freeze=True):
        junk = [Node(i) for i in range(3000)]
        raise ValueError(len(junk))
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen  # a failed build is garbage: not frozen
    with quiet_gc():
        with quiet_gc(freeze=True):
            built = [{"i": i} for i in range(3000)]
        assert not gc.isenabled()  # the outer block still runs
        assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(built)


class Snapshot:
    __slots__ = ("endpoints", "groups")

    def __init__(self, endpoints: dict[str, Node], groups: dict[str, Node]) -> None:
        self.endpoints = endpoints
        self.groups = groups


class Index:
    def __init__(self, by_id: dict[str, dict[str, Node]], per_api: dict[str, list[Node]]) -> None:
        self.by_id = by_id
        self.per_api = per_api


async def test_retire_frees_everything_after_the_grace_period_and_modifies_nothing(monkeypatch) -> None:
    monkeypatch.setattr(retire, "GRACE_S", 0.2)
    nodes = [Node(i) for i in range(3000)]
    shared = [Node(-i) for i in range(1000)]  # a collection the next document still uses
    doc = {"apis": nodes[:1000], "shared": shared}
    rt = Snapshot({f"e{i}": n for i, n in enumerate(nodes[1000:2000])}, {"g": Node(0)})
    ix = Index({"apis": {f"a{i}": n for i, n in enumerate(nodes[:1000])}},
               {f"a{i}": [n] for i, n in enumerate(nodes[2000:])})
    refs = [weakref.ref(n) for n in nodes]
    tasks: set[asyncio.Task[None]] = set()
    retire.retire(rt, doc, tasks, also=(ix, None))
    assert len(tasks) == 1
    del rt, ix, doc, nodes
    t0 = time.monotonic()
    await asyncio.sleep(0.05)
    assert all(r() is not None for r in refs)  # held through the grace period (in-flight requests)
    async with asyncio.timeout(30):
        while any(r() is not None for r in refs):
            await asyncio.sleep(0.01)
    assert time.monotonic() - t0 >= 0.2
    assert len(shared) == 1000 and all(isinstance(n, Node) for n in shared)  # nothing was modified
    async with asyncio.timeout(30):
        while tasks:
            await asyncio.sleep(0.01)
