"""A small time-bounded memo for data that is read on every request and changes rarely
(catalogue, policies, calendar). Writes in this process clear it at once; other processes see a
change within YUYUE_CACHE_TTL seconds."""

from __future__ import annotations

import time
from typing import Any


class TTLCache:
    # How many times any TTLCache was cleared in this process (a write to what they hold): answers
    # derived from cached data compare it to know they are still current (decision 0013).
    clears = 0

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._data: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        stamp, value = hit
        if time.monotonic() - stamp > self.ttl:
            self._data.pop(key, None)
            return None
        return value

    def put(self, key: Any, value: Any) -> None:
        if self.ttl > 0:
            if len(self._data) > 50_000:
                self._data.clear()
            self._data[key] = (time.monotonic(), value)

    def clear(self) -> None:
        self._data.clear()
        TTLCache.clears += 1
