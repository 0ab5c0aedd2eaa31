"""Working days: the national calendar (chinese-calendar while its data lasts), the platform's
override table, and each hall's own closures (docs/rules.md "How the platform reads them: Working day").

A date that neither the package nor the override table covers counts Monday–Friday as working;
the daily `calendar_check` job raises one `calendar_missing` alert for it. Never an error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import chinese_calendar
from sqlalchemy import delete, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.service import Acting, authorise
from yuyue.calendar.files import CalendarFile
from yuyue.catalogue.service import HALL_KINDS, ServiceInfo, clear_caches, get_unit
from yuyue.clock import clock
from yuyue.db import after_commit
from yuyue.db import dialect_insert as _insert
from yuyue.errors import ValidationFailed
from yuyue.jobs.service import Job, daily, register
from yuyue.kit.cache import TTLCache
from yuyue.kit.events import Event, emit
from yuyue.models import Alert, Booking, CalendarDay, CalendarYear, Closure, ExtraSupply, Service

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
    years: frozenset[int] = frozenset()  # imported from a notice (decision 0092): covered
    opened: frozenset[date] = frozenset()  # a service's extra days ("5+X", decision 0093)

    def national_working(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        known = package_working_day(day)
        if known is None:
            return day.weekday() < 5
        return known

    def covered(self, day: date) -> bool:
        return day in self.overrides or day.year in self.years or package_working_day(day) is not None

    def is_working(self, day: date) -> bool:
        return day not in self.closures and (day in self.opened or self.national_working(day))

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
    since = TTLCache.generation()
    rows = (await session.execute(select(CalendarDay.day, CalendarDay.working_day))).all()
    overrides = {row.day: bool(row.working_day) for row in rows}
    cache.put("overrides", overrides, since)
    return overrides


async def imported_years(session: AsyncSession) -> frozenset[int]:
    hit = cache.get("years")
    if hit is not None:
        assert isinstance(hit, frozenset)
        return hit
    since = TTLCache.generation()
    years = frozenset(int(y) for y in (await session.execute(select(CalendarYear.year))).scalars())
    cache.put("years", years, since)
    return years


async def hall_calendar(session: AsyncSession, hall_id: str) -> WorkCalendar:
    key = ("hall", hall_id)
    hit = cache.get(key)
    if hit is not None:
        assert isinstance(hit, WorkCalendar)
        return hit
    since = TTLCache.generation()
    overrides = await load_overrides(session)
    closed = (await session.execute(select(Closure.day).where(Closure.unit_id == hall_id))).scalars().all()
    calendar = WorkCalendar(
        overrides=overrides, closures=frozenset(closed), years=await imported_years(session)
    )
    cache.put(key, calendar, since)
    return calendar


async def service_calendar(session: AsyncSession, info: ServiceInfo) -> WorkCalendar:
    """The working days of one service: its hall's, plus the extra days an approved capacity
    request opened for it (rule G12's "5+X", decision 0093); the hall's closures still win."""
    hall = await hall_calendar(session, info.hall_id)
    opened = info.extra_open_days
    if not opened:
        return hall
    key = ("service", info.hall_id, opened)
    hit = cache.get(key)
    if isinstance(hit, WorkCalendar) and hit.closures is hall.closures and hit.overrides == hall.overrides:
        return hit
    calendar = replace(hall, opened=opened)
    cache.put(key, calendar)
    return calendar


async def hall_day(
    session: AsyncSession, hall_id: str, hours: tuple[tuple[str, str], ...], day: date
) -> tuple[tuple[str, str], ...]:
    """The hall's opening hours on `day` (empty: closed): its own on its working days, widened by
    the extended hours and extra days approved for its services (decision 0093)."""
    calendar = await hall_calendar(session, hall_id)
    if day in calendar.closures:
        return ()
    extra = (
        await session.execute(
            select(ExtraSupply.hours, ExtraSupply.open_day)
            .join(Service, Service.id == ExtraSupply.service_id)
            .where(Service.hall_id == hall_id, ExtraSupply.day == day)
        )
    ).all()
    working = calendar.is_working(day) or any(row.open_day for row in extra)
    if not working:
        return ()
    widened = list(hours)
    for row in extra:
        widened.extend((str(h["start"]), str(h["end"])) for h in row.hours or [])
    return tuple(widened)


async def national_calendar(session: AsyncSession) -> WorkCalendar:
    return WorkCalendar(overrides=await load_overrides(session), years=await imported_years(session))


async def closed_note(session: AsyncSession, hall_id: str, day: date) -> str | None:
    """None when the hall works `day`; else why not (its closure's note, the national override's,
    or "" for a weekend or holiday): the hall display's 今日闭厅 (docs/rules.md "A closed day")."""
    calendar = await hall_calendar(session, hall_id)
    if calendar.is_working(day):
        return None
    closure = await session.get(Closure, (hall_id, day))
    if closure is not None:
        return closure.note
    national = await session.get(CalendarDay, day)
    return national.note if national is not None else ""


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


@dataclass(frozen=True)
class DayChanged:
    """What `day.changed` announces: whether `day` works may have changed for the halls `hall_ids`
    (None: every hall, a national override). Set, changed or removed closures and overrides all
    announce it (after `day.closed`, when that applies); the hall display stream subscribes and,
    for today, tells the screens (decision 0072)."""

    day: date
    hall_ids: list[str] | None


async def announce_changed(session: AsyncSession, day: date, hall_ids: list[str] | None) -> None:
    await emit(session, Event("day.changed", {"changed": DayChanged(day=day, hall_ids=hall_ids)}))


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
    before, after = await _set_national_day(session, day, working_day, note)
    await audit(session, who, "platform", "platform/", "calendar.set", day.isoformat(), before, asdict(after))
    return after


async def _set_national_day(
    session: AsyncSession, day: date, working_day: bool, note: str
) -> tuple[dict[str, Any] | None, DayOverride]:
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
    await announce_changed(session, day, None)
    return before, DayOverride(date=day.isoformat(), working_day=working_day, note=note, cancelled=cancelled)


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
    await announce_changed(session, day, [hall_id])
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
    await announce_changed(session, day, [unit_id])


# --- a year's calendar from a file (issue 18, decision 0092) -------------------------------------


@dataclass(frozen=True)
class ImportLine:
    """One date of the file against the calendar in force: `working_before` what the platform
    counts now, `bookings`/`citizens` the live bookings of that date (every hall) that making it a
    holiday would cancel."""

    day: date
    working_day: bool
    note: str
    working_before: bool
    bookings: int
    citizens: int

    @property
    def changes(self) -> bool:
        return self.working_day != self.working_before


@dataclass(frozen=True)
class ImportPreview:
    year: int
    kind: str
    lines: tuple[ImportLine, ...]
    applied: bool = False

    @property
    def changed(self) -> int:
        return sum(line.changes for line in self.lines)

    @property
    def bookings(self) -> int:
        return sum(line.bookings for line in self.lines if line.changes and not line.working_day)

    @property
    def citizens(self) -> int:
        return sum(line.citizens for line in self.lines if line.changes and not line.working_day)

    def as_dict(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "format": self.kind,
            "applied": self.applied,
            "changed": self.changed,
            "bookings": self.bookings,
            "citizens": self.citizens,
            "days": [
                {
                    "date": line.day.isoformat(),
                    "working_day": line.working_day,
                    "note": line.note,
                    "working_before": line.working_before,
                    "changes": line.changes,
                    "bookings": line.bookings if line.changes and not line.working_day else 0,
                }
                for line in self.lines
            ],
        }


async def preview_import(session: AsyncSession, parsed: CalendarFile) -> ImportPreview:
    """What importing `parsed` would change, and which bookings it would cancel (days from today on
    that become holidays; docs/rules.md "A closed day that has bookings")."""
    calendar = await national_calendar(session)
    days = [row.day for row in parsed.rows]
    counts = {
        row.slot_day: (int(row.n), int(row.people))
        for row in (
            await session.execute(
                select(
                    Booking.slot_day,
                    func.count().label("n"),
                    func.count(distinct(Booking.citizen_id)).label("people"),
                )
                .where(
                    Booking.slot_day.in_(days),
                    Booking.slot_day >= clock.today(),
                    Booking.status == "booked",  # a checked-in citizen keeps the ticket (decision 0093)
                )
                .group_by(Booking.slot_day)
            )
        ).all()
    }
    lines = tuple(
        ImportLine(
            row.day,
            row.working_day,
            row.note,
            calendar.national_working(row.day),
            *counts.get(row.day, (0, 0)),
        )
        for row in parsed.rows
    )
    return ImportPreview(parsed.year, parsed.kind, lines)


async def import_calendar(
    session: AsyncSession, who: Acting | None, parsed: CalendarFile, source: str, *, apply: bool
) -> ImportPreview:
    """Preview (`apply` false) or import a year's national calendar: every listed date becomes an
    override (`set_national_day`, so a new holiday cancels its bookings in every hall), and the year
    counts as covered from now on (no `calendar_missing`). Platform L1 only (`who` None: the
    server's operator at the command line, as `yuyue admin create`); audited once."""
    if who is not None:
        authorise(who, "calendar", "platform/")
    preview = await preview_import(session, parsed)
    if not apply:
        return preview
    for row in parsed.rows:
        await _set_national_day(session, row.day, row.working_day, row.note)
    year = await session.get(CalendarYear, parsed.year)
    if year is None:
        session.add(CalendarYear(year=parsed.year, source=source[:200], imported_at=clock.now()))
    else:
        year.source, year.imported_at = source[:200], clock.now()
    await session.flush()
    clear_caches()
    summary = {
        "year": parsed.year,
        "source": source[:200],
        "days": len(parsed.rows),
        "changed": preview.changed,
    }
    await audit(session, who, "platform", "platform/", "calendar.import", str(parsed.year), None, summary)
    return ImportPreview(preview.year, preview.kind, preview.lines, applied=True)


# --- the national calendar's data running out (a scheduled job) ---------------------------------


MISSING_AHEAD_DAYS = 90  # issue 18: raised 90 days before the data runs out, not when it has


async def _calendar_check(session: AsyncSession, due: datetime) -> None:
    """docs/rules.md 'Working day': a date neither chinese-calendar, an imported year nor the
    override table covers counts Monday–Friday as working; one `calendar_missing` alert per year is
    raised as soon as such a date comes within 90 days."""
    calendar = await national_calendar(session)
    ahead = (due.date() + timedelta(days=i) for i in range(MISSING_AHEAD_DAYS))
    missing = sorted({day.year for day in ahead if not calendar.covered(day)})
    for year in missing:
        alert = _insert(session, Alert).values(
            kind="calendar_missing",
            unit_id="platform",
            service_id=None,
            dedup_key=f"calendar_missing:{year}",
            raised_at=due,
            detail=f"No national calendar data for {year}: Monday–Friday counted as working days "
            "until platform admins import the year's notice (yuyue calendar import FILE, or the "
            "console's calendar page) or enter its holidays (PUT /api/v1/admin/calendar/{date}).",
        )
        await session.execute(alert.on_conflict_do_nothing(index_elements=["dedup_key"]))


register(Job("calendar_check", daily("01:00"), _calendar_check))
