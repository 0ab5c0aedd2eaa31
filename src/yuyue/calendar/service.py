"""Working days: the national calendar (chinese-calendar while its data lasts), the platform's
override table, and each hall's own closures (docs/rules.md "How the platform reads them: Working day").

A date that neither the package nor the override table covers counts Monday–Friday as working;
the daily `calendar_check` job raises one `calendar_missing` alert for it. Never an error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

import chinese_calendar
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.service import Acting, authorise
from yuyue.catalogue.service import HALL_KINDS, clear_caches, get_unit
from yuyue.db import after_commit
from yuyue.db import dialect_insert as _insert
from yuyue.errors import ValidationFailed
from yuyue.jobs.service import Job, daily, register
from yuyue.kit.cache import TTLCache
from yuyue.kit.events import Event, emit
from yuyue.models import Alert, CalendarDay, Closure

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


async def closures_of(session: AsyncSession, hall_id: str, since: date | None = None) -> list[Closure]:
    """A hall's own closed days, in date order (from `since` on when given)."""
    query = select(Closure).where(Closure.unit_id == hall_id)
    if since is not None:
        query = query.where(Closure.day >= since)
    return list((await session.execute(query.order_by(Closure.day))).scalars())


@dataclass
class DayClosed:
    """What `day.closed` announces (docs/rules.md "A closed day that has bookings"): `day` stopped
    being a working day in the halls `hall_ids` (None: every hall, a national override). Booking
    subscribes and cancels the day's live bookings in the same transaction, counting them in
    `cancelled`; the waiting list ends the entries that accepted only closed days."""

    day: date
    hall_ids: list[str] | None
    note: str
    cancelled: int = 0


async def announce_closed(session: AsyncSession, day: date, hall_ids: list[str] | None, note: str) -> int:
    """Announce a day that no longer works; returns how many bookings the subscribers cancelled."""
    closed = DayClosed(day=day, hall_ids=hall_ids, note=note)
    await emit(session, Event("day.closed", {"closed": closed}))
    return closed.cancelled


# --- orchestrations shared by the API routes and the console pages (issue 10 item 6) ------------
# Each one authorises (rules G3–G6, `yuyue.auth`), changes and audits (`yuyue.audit`); the caller
# commits, then clears the caches again.


@dataclass(slots=True, kw_only=True)
class DayOverride:
    """A national working-day override as set; checked by `DayOverrideOut`."""

    date: str
    working_day: bool
    note: str
    cancelled: int


@dataclass(slots=True, kw_only=True)
class ClosureSet:
    """A hall's closed day as set, with the bookings it cancelled; checked by `ClosureOut`."""

    unit_id: str
    date: str
    note: str
    cancelled: int


async def set_national_day(
    session: AsyncSession, who: Acting, day: date, working_day: bool, note: str
) -> DayOverride:
    """National working-day override: platform L1 only; audited."""
    authorise(who, "calendar", "platform/")
    row = await session.get(CalendarDay, day)
    before = {"working_day": row.working_day, "note": row.note} if row else None
    if row is None:
        session.add(CalendarDay(day=day, working_day=working_day, note=note))
    else:
        row.working_day, row.note = working_day, note
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    # a national change that makes the day non-working cancels its bookings in every hall
    cancelled = 0 if working_day else await announce_closed(session, day, None, note)
    after = DayOverride(date=day.isoformat(), working_day=working_day, note=note, cancelled=cancelled)
    await audit(session, who, "platform", "platform/", "calendar.set", day.isoformat(), before, asdict(after))
    return after


async def set_closure(session: AsyncSession, who: Acting, hall_id: str, day: date, note: str) -> ClosureSet:
    """A hall's own closed day ("Working day": the national calendar less the hall's closures), set
    by an admin who may configure the hall; audited."""
    unit = await get_unit(session, hall_id)
    if unit.kind not in HALL_KINDS:
        raise ValidationFailed("closures are set on halls")
    authorise(who, "configure", unit.path)
    row = await session.get(Closure, (hall_id, day))
    if row is None:
        session.add(Closure(unit_id=hall_id, day=day, note=note))
    else:
        row.note = note
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    # docs/rules.md "A closed day that has bookings": cancelled by the hall, in this transaction
    cancelled = await announce_closed(session, day, [hall_id], note)
    after = ClosureSet(unit_id=hall_id, date=day.isoformat(), note=note, cancelled=cancelled)
    await audit(session, who, unit.id, unit.path, "closure.set", day.isoformat(), None, asdict(after))
    return after


async def remove_closure(session: AsyncSession, who: Acting, unit_id: str, day: date) -> None:
    """Reopen a hall's closed day; audited."""
    unit = await get_unit(session, unit_id)
    authorise(who, "configure", unit.path)
    await session.execute(delete(Closure).where(Closure.unit_id == unit_id, Closure.day == day))
    await audit(session, who, unit.id, unit.path, "closure.delete", day.isoformat(), None, None)
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it


# --- the national calendar's data running out (a scheduled job) ---------------------------------


async def _calendar_check(session: AsyncSession, due: datetime) -> None:
    """docs/rules.md 'Working day': a date neither chinese-calendar nor the override table covers counts
    Monday–Friday as working and raises one `calendar_missing` alert (one per year)."""
    calendar = await national_calendar(session)
    missing = sorted(
        {day.year for day in (due.date() + timedelta(days=i) for i in range(60)) if not calendar.covered(day)}
    )
    for year in missing:
        alert = _insert(session, Alert).values(
            kind="calendar_missing",
            unit_id="platform",
            service_id=None,
            dedup_key=f"calendar_missing:{year}",
            raised_at=due,
            detail=f"No national calendar data for {year}: Monday–Friday counted as working days "
            "until platform admins enter the year's holidays (PUT /api/v1/admin/calendar/{date}).",
        )
        await session.execute(alert.on_conflict_do_nothing(index_elements=["dedup_key"]))


register(Job("calendar_check", daily("01:00"), _calendar_check))
