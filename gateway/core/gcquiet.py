"""Pause the cyclic garbage collector while a big, long-lived structure is built (a snapshot document or
runtime), and keep the event loop responsive while a worker thread builds it.

Role: control plane, never on the request path. Used around a whole-snapshot push: parsing the body,
validating and compiling it (gateway/process/retire.py explains the costs). While at least one
:func:`quiet_gc` block runs:

* the collector is off: a full collection walks every tracked object (~250 ms at 10,000 APIs), and the
  allocations of a big build would trigger several;
* the interpreter's thread switch interval is 1 ms, so the event loop gets the interpreter back within a
  millisecond from a busy worker thread.

When the last block ends, and one that asked for ``freeze`` succeeded, everything alive is moved to the
collector's permanent generation (``gc.freeze``) before the collector is turned back on. Without it, the
first collection afterwards would walk every object allocated during the blocks (all still in the youngest
generation) in one step that holds the interpreter: ~300 ms at 10,000 APIs.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SWITCH_INTERVAL_S = 0.001

_lock = threading.Lock()
_quiet = 0
_saved_interval = sys.getswitchinterval()
_was_enabled = True
_freeze = False  # a block that asked for gc.freeze() succeeded: freeze when the last block ends


@contextmanager
def quiet_gc(freeze: bool = False) -> Iterator[None]:
    """No cyclic collection while the block runs (nested and concurrent uses are counted, across threads
    and across ``await``). ``freeze``: what the block built is long-lived; on success, freeze it."""
    global _quiet, _saved_interval, _was_enabled, _freeze
    with _lock:
        _quiet += 1
        if _quiet == 1:
            _was_enabled = gc.isenabled()
            gc.disable()
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_saved_interval, SWITCH_INTERVAL_S))
    ok = False
    try:
        yield
        ok = True
    finally:
        with _lock:
            _quiet -= 1
            _freeze = _freeze or (freeze and ok)
            if _quiet == 0:
                sys.setswitchinterval(_saved_interval)
                if _freeze:
                    gc.freeze()  # O(1): the generations' lists are spliced onto the permanent one
                    _freeze = False
                if _was_enabled:
                    gc.enable()


def quiet() -> bool:
    """Whether a :func:`quiet_gc` block is running."""
    return _quiet > 0
