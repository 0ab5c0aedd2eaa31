"""A small time-bounded memo for data that is read on every request and changes rarely
(catalogue, policies, calendar). Writes in this process clear it at once; other processes see a
change within YUYUE_CACHE_TTL seconds.

On PostgreSQL the bound holds without reloading everything every TTL (decision 0103): every write
to a table these caches read bumps `platform_state['config_version']` in the writer's own
transaction (triggers of migration 0031). `confirm` reads that one row at most once per TTL; while it
is unchanged, an entry loaded since it was first seen stays good (a change shows at the next read, so
still within the TTL), and when it changed every cache is cleared. An entry is only kept for that if
no clear came while it was being loaded (`put(..., since=generation())`): a load begun before a
change is never confirmed by a later read. Without a recent read (SQLite, an idle process, a read
that failed) entries expire after the TTL as before.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_VERSION = text("SELECT value FROM platform_state WHERE key = 'config_version'")


class TTLCache:
    # How many times any TTLCache was cleared in this process (a write to what they hold): answers
    # derived from cached data compare it to know they are still current (decision 0013).
    clears = 0
    # Every cache of this process, so that one call clears (or retunes) them all without the module
    # that writes knowing the modules that read (catalogue, policy, calendar).
    instances: ClassVar[list[TTLCache]] = []
    # The configuration version as `confirm` last read it, when (monotonic) it was last read
    # unchanged, and since when entries were loaded under it (decision 0103).
    version: ClassVar[str | None] = None
    confirmed_at: ClassVar[float] = -math.inf
    valid_since: ClassVar[float] = math.inf

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._data: dict[Any, tuple[float, Any, bool]] = {}
        TTLCache.instances.append(self)

    @classmethod
    def clear_all(cls) -> None:
        for each in cls.instances:
            each.clear()
        # A write in this process bumps the version (or `confirm` saw it bumped, and sets this again
        # at once): the next read reads it afresh, so that what is reloaded after the write is kept
        # under the new version rather than thrown away once more when the TTL's read finds "a
        # change" that was this process's own.
        cls.confirmed_at = -math.inf

    @classmethod
    def set_ttl_all(cls, ttl: float) -> None:
        for each in cls.instances:
            each.ttl = ttl

    @classmethod
    def generation(cls) -> int:
        """Taken before a load, given to `put` as `since`."""
        return cls.clears

    def get(self, key: Any) -> Any | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        stamp, value, confirmable = hit
        now = time.monotonic()
        if now - stamp > self.ttl and not (
            confirmable and stamp >= TTLCache.valid_since and now - TTLCache.confirmed_at <= self.ttl
        ):
            self._data.pop(key, None)
            return None
        return value

    def put(self, key: Any, value: Any, since: int | None = None) -> None:
        """Keep `value`. With `since` (`generation()` before it was loaded from the database): not
        kept if a clear came meanwhile (it may predate a change), else kept while `confirm` finds the
        configuration unchanged. Without it: kept for the TTL only."""
        if self.ttl <= 0 or (since is not None and since != TTLCache.clears):
            return
        if len(self._data) > 50_000:
            self._data.clear()
        self._data[key] = (time.monotonic(), value, since is not None)

    def clear(self) -> None:
        self._data.clear()
        TTLCache.clears += 1


async def confirm(session: AsyncSession, ttl: float | None = None) -> None:
    """Read the configuration version if the last read is older than the TTL (PostgreSQL only):
    unchanged, the entries loaded under it stay good for another TTL; changed, every cache is
    cleared. Called where the cached reads start (`catalogue.service.service_info`)."""
    bind = session.bind
    if bind is None or bind.dialect.name != "postgresql":
        return
    limit = ttl if ttl is not None else min((c.ttl for c in TTLCache.instances), default=0.0)
    started = time.monotonic()
    if limit <= 0 or started - TTLCache.confirmed_at <= limit:
        return
    version = (await session.execute(_VERSION)).scalar_one_or_none()
    version = version or "0"  # no write since the migration
    if version != TTLCache.version:
        TTLCache.clear_all()
        TTLCache.version = version
        TTLCache.valid_since = started  # loads from now on see this version or a later one
    TTLCache.confirmed_at = started
