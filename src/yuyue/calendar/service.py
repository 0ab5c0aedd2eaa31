"""Working days: the national calendar (chinese-calendar while its data lasts), the platform's
override table, and each hall's own closures (RULES.md "How the platform reads them: Working day").

A date that neither the package nor the override table covers counts Monday–Friday as working;
the daily `calendar_check` job raises one `calendar_missing` alert for it. Never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.kit.cache import TTLCache
from yuyue.models import CalendarDay, Closure

cache = TTLCache(2.0)


@lru_cache(maxsize=8192)
def package_working_day(day: date) -> bool | None:
    """What chinese-calendar says, or None beyond its data (it raises NotImplementedError)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


@dataclass(frozen=True)
class WorkCalendar:
    overrides: dict[date, bool] = field(default_factory=dict)
    closures: frozenset[date] = frozenset()

    def national_working(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        known = package_working_day(day)
        if known is None:
            return day.weekday() < 5
        return known

    def covered(self, day: date) -> bool:
        return day in self.overrides or package_working_day(day) is not None

    def is_working(self, day: date) -> bool:
        return day not in self.closures and self.national_working(day)

    def nth_working_after(self, day: date, n: int) -> date:
        """The n-th working day strictly after `day` (n >= 1)."""
        current, found = day, 0
        while found < n:
            current += timedelta(days=1)
            if self.is_working(current):
                found += 1
        return current

    def nth_working_before(self, day: date, n: int) -> date:
        current, found = day, 0
        while found < n:
            current -= timedelta(days=1)
            if self.is_working(current):
                found += 1
        return current

    def previous_working_day(self, day: date) -> date:
        return self.nth_working_before(day, 1)


async def load_overrides(session: AsyncSession) -> dict[date, bool]:
    hit = cache.get("overrides")
    if hit is not None:
        return dict(hit)
    rows = (await session.execute(select(CalendarDay.day, CalendarDay.working_day))).all()
    overrides = {row.day: bool(row.working_day) for row in rows}
    cache.put("overrides", overrides)
    return overrides


async def hall_calendar(session: AsyncSession, hall_id: str) -> WorkCalendar:
    key = ("hall", hall_id)
    hit = cache.get(key)
    if hit is not None:
        assert isinstance(hit, WorkCalendar)
        return hit
    overrides = await load_overrides(session)
    closed = (await session.execute(select(Closure.day).where(Closure.unit_id == hall_id))).scalars().all()
    calendar = WorkCalendar(overrides=overrides, closures=frozenset(closed))
    cache.put(key, calendar)
    return calendar


async def national_calendar(session: AsyncSession) -> WorkCalendar:
    return WorkCalendar(overrides=await load_overrides(session))
