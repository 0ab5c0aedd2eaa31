"""A small time-bounded memo for data that is read on every request and changes rarely
(catalogue, policies, calendar). Writes in this process clear it at once; other processes see a
change within YUYUE_CACHE_TTL seconds."""

from __future__ import annotations

import time
from typing import Any, ClassVar


class TTLCache:
    # How many times any TTLCache was cleared in this process (a write to what they hold): answers
    # derived from cached data compare it to know they are still current (decision 0013).
    clears = 0
    # Every cache of this process, so that one call clears (or retunes) them all without the module
    # that writes knowing the modules that read (catalogue, policy, calendar).
    instances: ClassVar[list[TTLCache]] = []

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._data: dict[Any, tuple[float, Any]] = {}
        TTLCache.instances.append(self)

    @classmethod
    def clear_all(cls) -> None:
        for each in cls.instances:
            each.clear()

    @classmethod
    def set_ttl_all(cls, ttl: float) -> None:
        for each in cls.instances:
            each.ttl = ttl

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
