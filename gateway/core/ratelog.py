"""Rate-limited warnings: at most one log line per key and interval, with a count of what was left out.

Role: the process log for events that can happen on every request (backend failures). A dead backend under load
must produce a few actionable lines, not one per request; the suppressed count keeps the volume visible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable

MAX_KEYS = 4096  # distinct keys remembered (bounded memory whatever the traffic)


class RateLimitedLog:
    """``warning(key, msg, *args)`` logs at most once per ``interval_s`` for each ``key``."""

    __slots__ = ("_last", "_logger", "interval_s")

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._logger = logger
        self.interval_s = interval_s
        self._last: dict[Hashable, tuple[float, int]] = {}  # key -> (last logged at, suppressed since)

    def warning(self, key: Hashable, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval_s`` ago; True when logged."""
        if not self._logger.isEnabledFor(logging.WARNING):
            return False
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return False
        suppressed = last[1] if last is not None else 0
        if len(self._last) >= MAX_KEYS and key not in self._last:
            self._last.clear()
        self._last[key] = (now, 0)
        if suppressed:
            msg += " (%d similar in the last %.0f s not logged)"
            args = (*args, suppressed, self.interval_s)
        self._logger.warning(msg, *args)
        return True
