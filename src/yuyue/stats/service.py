"""Figures (rule G18): per hall, district and service, per day: seats released, booked, cancelled,
checked in, served, no-shows, utilisation, waiting entries, mean wait from check-in to call.

Finished days are rolled up once (`stats_rollup`, daily at 03:00, for the day before) into
`stats_daily`: one row per (slot date, service, channel), plus a row of channel '*' for what has no
channel (seats released, waits). A query reads those rows for rolled-up days, indexed by date and
hall, and computes the remaining days (today, the future, anything not yet rolled up) live from
`bookings`, `waitlist_entries` and `slots` with the same code, so both paths give the same figures.

Definitions (decision 0043): a booking counts on its slot's date; `booked` counts bookings made
for that date whatever became of them, `cancelled`, `checked_in` (checked in or served), `served`
and `no_show` count those that reached that state; `utilisation` is seats of bookings not
cancelled ÷ seats released; `released` is the capacity of the day's slots (on-site share
included) on the hall's working days; `waitlist` counts entries made that day; `mean_wait_s`
averages called − issued of the day's appointment tickets (null without any).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, case, delete, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.calendar.service import hall_calendar
from yuyue.catalogue.service import HALL_KINDS, day_slots, service_info
from yuyue.clock import at, clock
from yuyue.errors import ValidationFailed
from yuyue.jobs.service import Job, daily, register
from yuyue.models import Booking, Service, Slot, StatsDaily, StatsDay, Ticket, Unit, WaitlistEntry

GroupBy = Literal["day", "hall", "service", "channel"]
COLUMNS = (
    "key",
    "released",
    "booked",
    "cancelled",
    "checked_in",
    "served",
    "no_show",
    "utilisation",
    "waitlist",
    "mean_wait_s",
)
COUNTS = (
    "released",
    "booked",
    "seats",
    "cancelled",
    "checked_in",
    "served",
    "no_show",
    "waitlist",
    "wait_sum_s",
    "wait_n",
)
MAX_RANGE_DAYS = 366 * 2
ANY_CHANNEL = "*"


@dataclass
class Figures:
    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))

    def add(self, other: dict[str, Any]) -> None:
        for name in COUNTS:
            self.values[name] += int(other.get(name) or 0)


Key = tuple[date, int, str]  # (slot date, service id, channel)


# --- live computation ------------------------------------------------------------------------------


async def _services(session: AsyncSession, hall_ids: list[str] | None) -> list[tuple[int, str]]:
    query = select(Service.id, Service.hall_id)
    if hall_ids is not None:
        query = query.where(Service.hall_id.in_(hall_ids))
    return [(int(row.id), str(row.hall_id)) for row in (await session.execute(query)).all()]


async def _released(
    session: AsyncSession, services: list[tuple[int, str]], days: list[date]
) -> dict[tuple[date, int], int]:
    """Seats released per (day, service): the stored slot capacity, or the spread of the service's
    daily capacity where no slot row exists yet; nothing on days the hall does not work."""
    if not services or not days:
        return {}
    ids = [sid for sid, _ in services]
    stored: dict[tuple[date, int], dict[str, int]] = defaultdict(dict)
    for chunk in range(0, len(ids), 500):
        rows = await session.execute(
            select(Slot.id, Slot.service_id, Slot.day, Slot.capacity).where(
                Slot.service_id.in_(ids[chunk : chunk + 500]), Slot.day >= min(days), Slot.day <= max(days)
            )
        )
        for row in rows.all():
            stored[(row.day, int(row.service_id))][row.id] = int(row.capacity)
    released: dict[tuple[date, int], int] = {}
    wanted = set(days)
    for service_id, hall_id in services:
        info = await service_info(session, service_id)
        calendar = await hall_calendar(session, hall_id)
        for day in wanted:
            if not calendar.is_working(day):
                continue
            rows_of_day = stored.get((day, service_id), {})
            released[(day, service_id)] = sum(
                rows_of_day.get(spec.id, spec.capacity) for spec in day_slots(info, day)
            )
    return released


async def _tickets_waits(
    session: AsyncSession, service_ids: list[int], days: list[date]
) -> dict[tuple[date, int], tuple[int, int]]:
    """Sum and count of waits (called − issued) of appointment tickets, when the on-site tables
    exist; {} otherwise."""

    def has_tickets(connection: Any) -> bool:
        return bool(inspect(connection).has_table("tickets"))

    if not service_ids or not days:
        return {}
    connection = await session.connection()
    if not await connection.run_sync(has_tickets):
        return {}  # the on-site tables are not migrated in this database
    rows = (
        await session.execute(
            select(Ticket.day, Ticket.service_id, Ticket.issued_at, Ticket.called_at).where(
                Ticket.service_id.in_(service_ids),
                Ticket.day >= min(days),
                Ticket.day <= max(days),
                Ticket.kind == "appointment",
                Ticket.called_at.is_not(None),
            )
        )
    ).all()
    waits: dict[tuple[date, int], tuple[int, int]] = {}
    wanted = set(days)
    for row in rows:
        day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day))
        if day not in wanted:
            continue
        seconds = max(0, int((_dt(row.called_at) - _dt(row.issued_at)).total_seconds()))
        total, n = waits.get((day, int(row.service_id)), (0, 0))
        waits[(day, int(row.service_id))] = (total + seconds, n + 1)
    return waits


def _dt(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


async def compute(
    session: AsyncSession, days: list[date], hall_ids: list[str] | None
) -> dict[Key, dict[str, int]]:
    """The figures of these slot dates (and halls, or all), computed from the live tables."""
    if not days:
        return {}
    first, last = min(days), max(days)
    wanted = set(days)
    services = await _services(session, hall_ids)
    service_ids = [sid for sid, _ in services]
    out: dict[Key, dict[str, int]] = {}

    def row(key: Key) -> dict[str, int]:
        return out.setdefault(key, dict.fromkeys(COUNTS, 0))

    live = Booking.status.in_(("booked", "checked_in", "served", "no_show", "excused"))
    booking_filter = [Booking.slot_day >= first, Booking.slot_day <= last]
    if hall_ids is not None:
        booking_filter.append(Booking.hall_id.in_(hall_ids))
    booked = await session.execute(
        select(
            Booking.slot_day,
            Booking.service_id,
            Booking.channel,
            func.count(),
            func.sum(case((live, Booking.quantity), else_=0)),
            func.sum(case((Booking.status == "cancelled", 1), else_=0)),
            func.sum(case((Booking.status.in_(("checked_in", "served")), 1), else_=0)),
            func.sum(case((Booking.status == "served", 1), else_=0)),
            func.sum(case((Booking.status == "no_show", 1), else_=0)),
        )
        .where(and_(*booking_filter))
        .group_by(Booking.slot_day, Booking.service_id, Booking.channel)
    )
    for day, sid, channel, n, seats, cancelled, checked_in, served, no_show in booked.all():
        if day not in wanted:
            continue
        figures = row((day, int(sid), str(channel)))
        figures.update(
            booked=int(n),
            seats=int(seats or 0),
            cancelled=int(cancelled or 0),
            checked_in=int(checked_in or 0),
            served=int(served or 0),
            no_show=int(no_show or 0),
        )
    waiting_filter = [
        WaitlistEntry.created_at >= at(first, "00:00"),
        WaitlistEntry.created_at < at(last + timedelta(days=1), "00:00"),
    ]
    if hall_ids is not None:
        waiting_filter.append(WaitlistEntry.hall_id.in_(hall_ids))
    entries = await session.execute(
        select(WaitlistEntry.created_at, WaitlistEntry.service_id, WaitlistEntry.channel).where(
            and_(*waiting_filter)
        )
    )
    for created_at, sid, channel in entries.all():
        day = _dt(created_at).date()
        if day in wanted:
            row((day, int(sid), str(channel)))["waitlist"] += 1
    for (day, sid), seats in (await _released(session, services, sorted(wanted))).items():
        row((day, sid, ANY_CHANNEL))["released"] = seats
    for (day, sid), (total, n) in (await _tickets_waits(session, service_ids, sorted(wanted))).items():
        figures = row((day, sid, ANY_CHANNEL))
        figures["wait_sum_s"], figures["wait_n"] = total, n
    return out


# --- rollup ----------------------------------------------------------------------------------------


async def roll_up(session: AsyncSession, day: date) -> int:
    """Write the figures of one finished slot date into `stats_daily` (replacing any earlier run)."""
    figures = await compute(session, [day], None)
    halls = dict(await _services(session, None))
    await session.execute(delete(StatsDaily).where(StatsDaily.day == day))
    await session.execute(delete(StatsDay).where(StatsDay.day == day))
    for (d, sid, channel), values in figures.items():
        session.add(StatsDaily(day=d, service_id=sid, channel=channel, hall_id=halls.get(sid, ""), **values))
    session.add(StatsDay(day=day, rolled_at=clock.now()))
    await session.flush()
    return len(figures)


async def _rollup_job(session: AsyncSession, due: datetime) -> None:
    await roll_up(session, due.date() - timedelta(days=1))


register(Job("stats_rollup", daily("03:00"), _rollup_job))


# --- queries ---------------------------------------------------------------------------------------


async def hall_scope(session: AsyncSession, root_path: str) -> tuple[list[str], dict[str, str]]:
    """Hall ids of a subtree (and each hall's district, or '' outside districts)."""
    rows = (
        await session.execute(
            select(Unit.id, Unit.path).where(
                Unit.path.startswith(root_path, autoescape=True), Unit.kind.in_(HALL_KINDS)
            )
        )
    ).all()
    return [str(r.id) for r in rows], {str(r.id): str(r.path) for r in rows}


async def figures(
    session: AsyncSession, root_path: str, first: date, last: date, group_by: GroupBy
) -> list[dict[str, Any]]:
    if last < first:
        raise ValidationFailed("'to' is before 'from'")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValidationFailed(f"a range covers at most {MAX_RANGE_DAYS} days")
    hall_ids, _ = await hall_scope(session, root_path)
    whole_city = root_path == "platform/"
    scope = None if whole_city else hall_ids
    groups: dict[str, Figures] = defaultdict(Figures)

    def key_of(day: date, service_id: int, hall_id: str, channel: str) -> str | None:
        if group_by == "day":
            return day.isoformat()
        if group_by == "hall":
            return hall_id
        if group_by == "service":
            return str(service_id)
        return None if channel == ANY_CHANNEL else channel

    # Rolled-up days: one indexed, grouped query.
    rolled = set(
        (
            await session.execute(select(StatsDay.day).where(StatsDay.day >= first, StatsDay.day <= last))
        ).scalars()
    )
    if rolled and (scope is None or scope):
        key_column = {
            "day": StatsDaily.day,
            "hall": StatsDaily.hall_id,
            "service": StatsDaily.service_id,
            "channel": StatsDaily.channel,
        }[group_by]
        query = select(key_column, *(func.sum(getattr(StatsDaily, name)) for name in COUNTS)).where(
            StatsDaily.day >= first, StatsDaily.day <= last
        )
        if scope is not None:
            query = query.where(StatsDaily.hall_id.in_(scope))
        for result in (await session.execute(query.group_by(key_column))).all():
            raw_key = result[0]
            if group_by == "channel" and raw_key == ANY_CHANNEL:
                continue
            key = raw_key.isoformat() if isinstance(raw_key, date) else str(raw_key)
            groups[key].add(dict(zip(COUNTS, result[1:], strict=True)))
    # Days not rolled up yet: computed live with the same definitions.
    live_days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    live_days = [d for d in live_days if d not in rolled]
    if live_days and (scope is None or scope):
        service_halls = dict(await _services(session, scope))
        for (day, sid, channel), values in (await compute(session, live_days, scope)).items():
            group_key = key_of(day, sid, service_halls.get(sid, ""), channel)
            if group_key is not None:
                groups[group_key].add(values)
    rows = []
    for key in sorted(groups):
        v = groups[key].values
        per_channel = group_by == "channel"
        rows.append(
            {
                "key": key,
                "released": None if per_channel else v["released"],
                "booked": v["booked"],
                "cancelled": v["cancelled"],
                "checked_in": v["checked_in"],
                "served": v["served"],
                "no_show": v["no_show"],
                "utilisation": None
                if per_channel or not v["released"]
                else round(v["seats"] / v["released"], 4),
                "waitlist": v["waitlist"],
                "mean_wait_s": round(v["wait_sum_s"] / v["wait_n"], 1) if v["wait_n"] else None,
            }
        )
    return rows


def as_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if row[name] is None else row[name] for name in COLUMNS})
    return buffer.getvalue()
