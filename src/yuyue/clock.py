"""The platform's "now": real in production, settable in development and test.

`clock.now()` is the only source of time for rules. In non-production the offset from real time
is kept in the database (table `platform_state`, key `clock_offset_us`), so every process — all
`serve` workers and every `yuyue worker` — sees the same "now"; each process re-reads it at most
once a second. Token lifetimes use real time (`clock.real_now()`), per docs/api.md.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

TZ = ZoneInfo("Asia/Shanghai")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")  # a wall-clock time of day as settings write it
OFFSET_KEY = "clock_offset_us"


class Clock:
    def __init__(self) -> None:
        self.settable = False
        self._offset = timedelta(0)
        self._checked_at = 0.0

    def real_now(self) -> datetime:
        return datetime.now(TZ)

    def now(self) -> datetime:
        return datetime.now(TZ) + self._offset

    def today(self) -> date:
        return self.now().date()

    @property
    def offset(self) -> timedelta:
        return self._offset

    def _apply(self, offset_us: int) -> None:
        self._offset = timedelta(microseconds=offset_us)
        self._checked_at = time.monotonic()

    async def refresh(self, engine: AsyncEngine, *, force: bool = False) -> None:
        """Pick up an offset another process stored (non-production only)."""
        if not self.settable:
            return
        if not force and time.monotonic() - self._checked_at < 1.0:
            return
        async with engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT value FROM platform_state WHERE key = :k"), {"k": OFFSET_KEY})
            ).first()
        self._apply(int(row[0]) if row else 0)

    async def store(self, engine: AsyncEngine, new_now: datetime) -> None:
        """Make `new_now` the platform's now, for every process sharing this database."""
        offset = new_now - datetime.now(TZ)
        offset_us = int(offset / timedelta(microseconds=1))
        async with engine.begin() as conn:
            updated = await conn.execute(
                text("UPDATE platform_state SET value = :v WHERE key = :k"),
                {"k": OFFSET_KEY, "v": str(offset_us)},
            )
            if updated.rowcount == 0:
                await conn.execute(
                    text("INSERT INTO platform_state (key, value) VALUES (:k, :v)"),
                    {"k": OFFSET_KEY, "v": str(offset_us)},
                )
        self._apply(offset_us)


def as_local(value: datetime) -> datetime:
    """An aware datetime in the platform's zone (naive input is taken as platform-local)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=TZ)
    return value.astimezone(TZ)


def at(day: date, hhmm: str) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


clock = Clock()
