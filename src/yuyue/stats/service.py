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
included) on the hall's working days and the service's extra days and hours (`Supply`);
`waitlist` counts entries made that day; `mean_wait_s` averages called − issued of the day's
appointment tickets (null without any).

Bureaus' own booking systems (rules G5, G6; decision 0080) push their slots and bookings; each push
keeps `bureau_figures` (one row per system, slot date and service) up to date, and every query adds
those rows, for every day (never rolled up: a bureau may correct a past day), indexed by hall and
date, under the channel `bureau:<client id>`. Their `released` are the seats of their slots and
their `seats` (for utilisation) the seats their slots report sold.

For the console's dashboard (decision 0074): `figures_grouped` gives several groupings (and the
total) from one pass, `fill_by_hour` the fill of the slots by weekday × hour, `waitlist_length` the
waiting list per day; the same scope (a unit's subtree) and the same released seats (`Supply`).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Date,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    column,
    delete,
    exists,
    func,
    insert,
    inspect,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.calendar.service import WorkCalendar, load_overrides
from yuyue.catalogue.service import HALL_KINDS, hourly_starts, hours_tuple, slot_id, spread
from yuyue.clock import at, clock
from yuyue.db import on_postgres
from yuyue.errors import ValidationFailed
from yuyue.jobs.service import Job, daily, register
from yuyue.models import (
    Booking,
    CapacityPeriod,
    Closure,
    ExtraSupply,
    Service,
    Slot,
    StatsDaily,
    StatsDay,
    StatsHallDaily,
    StatsServiceDaily,
    Ticket,
    Unit,
    WaitlistEntry,
)
from yuyue.models.base import Base
from yuyue.models.bureau import BureauFigures, BureauSlot

GroupBy = Literal["day", "hall", "service", "channel"]
Grouping = Literal["day", "hall", "service", "channel", "total"]
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
BUREAU_CHANNEL = "bureau:"  # + the bureau system's client id (decision 0080)
BUREAU_COUNTS = ("released", "seats", "booked", "cancelled", "checked_in", "served", "no_show")


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


PLAN_DAY = date(2026, 1, 5)  # any date: a day's hourly slots depend on the opening hours only

Start = tuple[int, int]  # (hour, minute) of a slot's start


@dataclass
class Supply:
    """The seats released by some services over some days (rule G11): on each day its hall works, a
    service releases the slots of its opening hours with the daily capacity in force that day
    (rule G20: `capacity_periods` before a standing change, else `services.daily_capacity`) spread
    over them (`catalogue.service.spread`), except where a slot row is stored (slots are derived: a
    row appears with the first booking or a capacity change), whose capacity counts instead. Days
    the hall does not work release nothing, but for the service's extra days and extended hours
    (rule G12's remedies, `extra_supply`, decision 0093): there its plan is that day's own hours
    and days (`extra`), as the booking reads them (`ServiceInfo.hours_on`, `service_calendar`).

    What the stored rows change (their capacity less the planned seats of their hour) is computed in
    SQL (`_stored_deltas`), so the Python work is per service and day, not per slot."""

    starts: dict[int, tuple[Start, ...]]  # service -> the hourly starts of a working day of its hall
    daily: dict[int, int]  # service -> its standing daily capacity (`services.daily_capacity`)
    periods: dict[int, list[tuple[date, int]]]  # service -> (until, daily capacity), by `until`
    working: dict[int, list[date]]  # service -> the days its hall works
    # What stored planned slots change (capacity less planned seats), per (day, service) …
    changed: dict[tuple[date, int], int]
    # … or per (day, hour) of the start, over all the services (`_supply(per_hour=True)`)
    changed_hours: dict[tuple[date, int], int]
    # (day, service) of an extra day or a day of extended hours the service works -> seats per hour of
    # the slot's start, stored rows counted (these days are left out of `working` and `changed`)
    extra: dict[tuple[date, int], dict[int, int]] = field(default_factory=dict)

    def capacity_on(self, service_id: int, day: date) -> int:
        """The daily capacity in force on `day` (the reading of `ServiceInfo.capacity_on`)."""
        for until, capacity in self.periods.get(service_id, ()):
            if day < until:
                return capacity
        return self.daily[service_id]

    def per_day(self) -> dict[tuple[date, int], int]:
        """Seats per (day, service), for every day the hall works."""
        out: dict[tuple[date, int], int] = {}
        changes = self.changed
        for service_id, starts in self.starts.items():
            periods = self.periods.get(service_id)
            daily = self.daily[service_id]
            for day in self.working[service_id]:
                if not starts:
                    out[(day, service_id)] = 0
                    continue
                total = self.capacity_on(service_id, day) if periods else daily
                out[(day, service_id)] = total + changes.get((day, service_id), 0)
        for key, hours in self.extra.items():
            out[key] = sum(hours.values())
        return out

    def per_weekday_hour(self) -> dict[tuple[int, int], int]:
        """Seats per (weekday, hour of the slot's start)."""
        out: dict[tuple[int, int], int] = defaultdict(int)
        for service_id, starts in self.starts.items():
            if not starts:
                continue
            days = Counter(
                (day.weekday(), self.capacity_on(service_id, day)) for day in self.working[service_id]
            )
            for (weekday, capacity), n in days.items():
                for (hour, _), seats in zip(starts, spread(capacity, len(starts)), strict=True):
                    out[(weekday, hour)] += n * seats
        for (day, hour), delta in self.changed_hours.items():
            out[(day.weekday(), hour)] += delta
        for (day, _), hours in self.extra.items():
            for hour, seats in hours.items():
                out[(day.weekday(), hour)] += seats
        return dict(out)


def json_rows(session: AsyncSession, name: str, rows: list[dict[str, Any]], columns: dict[str, Any]) -> Any:
    """A small relation passed as one JSON parameter: `jsonb_to_recordset` on PostgreSQL, `json_each`
    on SQLite (the only difference between the two)."""
    payload = literal(json.dumps(rows, default=str), String)
    if on_postgres(session):
        return (
            func.jsonb_to_recordset(cast(payload, JSONB))
            .table_valued(*(column(key, kind) for key, kind in columns.items()))
            .render_derived(name=name, with_types=True)
        )
    each = func.json_each(payload).table_valued("value")
    return select(
        *(
            type_coerce(func.json_extract(each.c.value, f"$.{key}"), kind).label(key)
            for key, kind in columns.items()
        )
    ).subquery(name)


async def _stored_deltas(
    session: AsyncSession,
    starts: dict[str, tuple[Start, ...]],
    days: list[date],
    per_hour: bool,
) -> dict[tuple[date, int], int]:
    """What the stored slot rows of these halls' services change on these days, summed per (day,
    service id), or per (day, hour of the start) with `per_hour`: for each row that is a planned
    slot (its id is that of an hourly start of its hall's hours on its own day), its capacity less
    the seats the day's plan gives its hour, `spread(capacity in force, n)` at the start's index.
    All in SQL: the capacity in force is that of the `capacity_periods` row with the smallest
    `until` after the day, else `services.daily_capacity` (`ServiceInfo.capacity_on`)."""
    if not starts or not days:
        return {}
    plan = json_rows(
        session,
        "plan",
        [
            {"hall_id": hall_id, "hhmm": f"{h:02d}{m:02d}", "hour": h, "idx": i, "n": len(of_hall)}
            for hall_id, of_hall in starts.items()
            for i, (h, m) in enumerate(of_hall)
        ],
        {"hall_id": String, "hhmm": String, "hour": Integer, "idx": Integer, "n": Integer},
    )
    on_days = json_rows(
        session,
        "on_days",
        [{"day": d.isoformat(), "ymd": f"{d:%Y%m%d}"} for d in days],
        {"day": Date, "ymd": String},
    )
    in_force = (
        select(CapacityPeriod.daily_capacity)
        .where(CapacityPeriod.service_id == Slot.service_id, CapacityPeriod.until > Slot.day)
        .order_by(CapacityPeriod.until)
        .limit(1)
        .scalar_subquery()
    )
    stored = (
        select(
            Slot.service_id,
            Slot.day,
            Slot.capacity,
            plan.c.hour,
            plan.c.idx,
            plan.c.n,
            func.coalesce(in_force, Service.daily_capacity).label("daily"),
        )
        .join(Service, Service.id == Slot.service_id)
        .join(on_days, on_days.c.day == Slot.day)
        .join(
            plan,
            and_(
                plan.c.hall_id == Service.hall_id,  # the halls of these services: no list of ids
                plan.c.hhmm == func.substr(Slot.id, func.length(Slot.id) - 3),
            ),
        )
        .where(
            Slot.day >= days[0],
            Slot.day <= days[-1],
            Slot.id == cast(Slot.service_id, String) + "-" + on_days.c.ymd + plan.c.hhmm,
            ~exists().where(Closure.unit_id == Service.hall_id, Closure.day == Slot.day),  # closed: none
            ~exists().where(  # a day of extra supply has its own plan (`_extra`)
                ExtraSupply.service_id == Slot.service_id, ExtraSupply.day == Slot.day
            ),
        )
        .subquery()
    )
    planned = stored.c.daily // stored.c.n + case((stored.c.idx < stored.c.daily % stored.c.n, 1), else_=0)
    key = stored.c.hour if per_hour else stored.c.service_id
    rows = await session.execute(
        select(stored.c.day, key, func.sum(stored.c.capacity - planned)).group_by(stored.c.day, key)
    )
    return {(_day(day), int(k)): int(delta) for day, k, delta in rows.all() if delta}


async def _closures(session: AsyncSession, hall_ids: set[str], days: list[date]) -> dict[str, set[date]]:
    """The closures of these halls on these days, read in one query per 500 halls."""
    closed: dict[str, set[date]] = defaultdict(set)
    halls = sorted(hall_ids)
    for chunk in range(0, len(halls), 500):
        rows = await session.execute(
            select(Closure.unit_id, Closure.day).where(
                Closure.unit_id.in_(halls[chunk : chunk + 500]),
                Closure.day >= days[0],
                Closure.day <= days[-1],
            )
        )
        for unit_id, day in rows.all():
            closed[str(unit_id)].add(day)
    return closed


async def _extra(
    session: AsyncSession,
    services: list[tuple[int, str]],
    supply: Supply,
    hours: dict[str, tuple[tuple[str, str], ...]],
    days: list[date],
    national: WorkCalendar,
    closed: dict[str, set[date]],
) -> None:
    """Fill `supply.extra` (rule G12's remedies, decision 0093): on each date of `extra_supply` the
    service works (a working day of its hall, or a date it opened, "5+X"; the hall's closures win),
    its slots are the hourly starts of that date's hours (`ServiceInfo.hours_on`) with the capacity in
    force spread over them (`day_slots`), a stored row's capacity counting instead. Such dates are
    few (one row per date of an approved request): read in two queries per 500 services."""
    hall_of = dict(services)
    ids = sorted(hall_of)
    wanted = set(days)
    for chunk in range(0, len(ids), 500):
        some = ids[chunk : chunk + 500]
        rows = await session.execute(
            select(ExtraSupply.service_id, ExtraSupply.day, ExtraSupply.hours, ExtraSupply.open_day).where(
                ExtraSupply.service_id.in_(some), ExtraSupply.day >= days[0], ExtraSupply.day <= days[-1]
            )
        )
        plans: dict[tuple[date, int], list[tuple[str, int, int]]] = {}
        for sid, day, day_hours, open_day in rows.all():
            service_id, hall_id = int(sid), hall_of[int(sid)]
            if day not in wanted or day in closed[hall_id]:
                continue
            if not (open_day or national.is_working(day)):
                continue
            starts = hourly_starts(hours_tuple(day_hours) if day_hours else hours[hall_id], day)
            seats = spread(supply.capacity_on(service_id, day), len(starts)) if starts else []
            plans[(day, service_id)] = [
                (slot_id(service_id, start), start.hour, n) for start, n in zip(starts, seats, strict=True)
            ]
        if not plans:
            continue
        stored = await session.execute(
            select(Slot.id, Slot.capacity).where(
                Slot.service_id.in_({sid for _, sid in plans}),
                Slot.day.in_({day for day, _ in plans}),
            )
        )
        capacity = {str(stored_id): int(n) for stored_id, n in stored.all()}
        for key, plan in plans.items():
            per_hour: dict[int, int] = defaultdict(int)
            for planned_id, hour, planned in plan:
                per_hour[hour] += capacity.get(planned_id, planned)
            supply.extra[key] = dict(per_hour)


async def _supply(
    session: AsyncSession, services: list[tuple[int, str]], days: list[date], per_hour: bool = False
) -> Supply:
    supply = Supply({}, {}, {}, {}, {}, {})
    if not services or not days:
        return supply
    wanted = sorted(set(days))
    ids = [sid for sid, _ in services]
    hall_ids = {hall_id for _, hall_id in services}
    hours: dict[str, tuple[Start, ...]] = {}
    hall_hours: dict[str, tuple[tuple[str, str], ...]] = {}
    for chunk in range(0, len(ids), 500):
        rows = await session.execute(
            select(Service.id, Service.hall_id, Service.daily_capacity, Unit.hours)
            .join(Unit, Unit.id == Service.hall_id)
            .where(Service.id.in_(ids[chunk : chunk + 500]))
        )
        for row in rows.all():
            hall_id = str(row.hall_id)
            if hall_id not in hours:
                hall_hours[hall_id] = hours_tuple(row.hours)
                hours[hall_id] = tuple(
                    (s.hour, s.minute) for s in hourly_starts(hall_hours[hall_id], PLAN_DAY)
                )
            supply.starts[int(row.id)] = hours[hall_id]
            supply.daily[int(row.id)] = int(row.daily_capacity)
        periods = await session.execute(
            select(CapacityPeriod.service_id, CapacityPeriod.until, CapacityPeriod.daily_capacity)
            .where(CapacityPeriod.service_id.in_(ids[chunk : chunk + 500]))
            .order_by(CapacityPeriod.service_id, CapacityPeriod.until)
        )
        for service_id, until, capacity in periods.all():
            supply.periods.setdefault(int(service_id), []).append((until, int(capacity)))
    national = WorkCalendar(overrides=await load_overrides(session))  # closures: in `_stored_deltas`
    open_days = [day for day in wanted if national.is_working(day)]
    closed = await _closures(session, hall_ids, wanted)
    for service_id, hall_id in services:
        hall_hours.setdefault(hall_id, ())
        supply.starts.setdefault(service_id, ())
        supply.daily.setdefault(service_id, 0)
    await _extra(session, services, supply, hall_hours, wanted, national, closed)
    for service_id, hall_id in services:
        supply.working[service_id] = [
            day for day in open_days if day not in closed[hall_id] and (day, service_id) not in supply.extra
        ]
    planned = {hall_id: of_hall for hall_id, of_hall in hours.items() if of_hall}
    changed = await _stored_deltas(session, planned, open_days, per_hour)
    if per_hour:
        supply.changed_hours = changed
    else:
        supply.changed = changed
    return supply


async def _released(
    session: AsyncSession, services: list[tuple[int, str]], days: list[date]
) -> dict[tuple[date, int], int]:
    """Seats released per (day, service) on the hall's working days (see `Supply`)."""
    return (await _supply(session, services, days)).per_day()


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
    rows = [
        {"day": d, "service_id": sid, "channel": channel, "hall_id": halls.get(sid, ""), **values}
        for (d, sid, channel), values in figures.items()
    ]
    for chunk in range(0, len(rows), 1000):  # one executemany per 1000 rows, not one ORM object each
        await session.execute(insert(_core(StatsDaily)), rows[chunk : chunk + 1000])  # Core: no ORM bulk
    await sum_up(session, day, day)
    session.add(StatsDay(day=day, rolled_at=clock.now()))
    await session.flush()
    return len(figures)


def _core(model: type[Base]) -> Table:
    """A model's Core table: a plain executemany, without the ORM's bulk machinery."""
    return model.metadata.tables[model.__tablename__]


async def sum_up(session: AsyncSession, first: date, last: date) -> None:
    """Rewrite `stats_hall_daily` and `stats_service_daily` for days `first`–`last` from
    `stats_daily` (decision 0089): its rows summed per (day, hall, channel) and per (day, service)."""
    sums = [func.sum(getattr(StatsDaily, name)) for name in COUNTS]
    in_days = [StatsDaily.day >= first, StatsDaily.day <= last]
    for table, keys in (
        (StatsHallDaily, (StatsDaily.day, StatsDaily.hall_id, StatsDaily.channel)),
        (StatsServiceDaily, (StatsDaily.day, StatsDaily.service_id)),
    ):
        await session.execute(delete(table).where(table.day >= first, table.day <= last))
        columns = [key.key for key in keys]
        selected = [*keys]
        if table is StatsServiceDaily:
            columns.append("hall_id")
            selected.append(func.min(StatsDaily.hall_id))
        await session.execute(
            insert(_core(table)).from_select(
                [*columns, *COUNTS], select(*selected, *sums).where(*in_days).group_by(*keys)
            )
        )


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


def check_range(first: date, last: date) -> None:
    if last < first:
        raise ValidationFailed("'to' is before 'from'")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValidationFailed(f"a range covers at most {MAX_RANGE_DAYS} days")


async def _scope(session: AsyncSession, root_path: str) -> list[str] | None:
    """The hall ids of a subtree, or None for the whole city (no filter needed)."""
    hall_ids, _ = await hall_scope(session, root_path)
    return None if root_path == "platform/" else hall_ids


async def figures(
    session: AsyncSession, root_path: str, first: date, last: date, group_by: GroupBy
) -> list[dict[str, Any]]:
    """The figures of a subtree over slot dates `first`–`last`, grouped by day, hall, service or
    channel (rows sorted by key)."""
    return (await figures_grouped(session, root_path, first, last, (group_by,)))[group_by]


async def figures_grouped(
    session: AsyncSession, root_path: str, first: date, last: date, groupings: Sequence[Grouping]
) -> dict[Grouping, list[dict[str, Any]]]:
    """`figures` grouped several ways at once (the live days are computed once for all of them);
    grouping `total` gives one row, key `total`, for the whole subtree and period."""
    check_range(first, last)
    scope = await _scope(session, root_path)
    grouped: dict[Grouping, dict[str, Figures]] = {g: defaultdict(Figures) for g in groupings}

    def key_of(group_by: Grouping, day: date, service_id: int, hall_id: str, channel: str) -> str | None:
        if group_by == "day":
            return day.isoformat()
        if group_by == "hall":
            return hall_id
        if group_by == "service":
            return str(service_id)
        if group_by == "total":
            return "total"
        return None if channel == ANY_CHANNEL else channel

    # Rolled-up days: one indexed, grouped query per grouping.
    rolled = set(
        (
            await session.execute(select(StatsDay.day).where(StatsDay.day >= first, StatsDay.day <= last))
        ).scalars()
    )
    if rolled and (scope is None or scope):
        for group_by, groups in grouped.items():
            # decision 0089: the rows summed per (day, hall, channel), or per (day, service)
            table: type[StatsHallDaily] | type[StatsServiceDaily] = (
                StatsServiceDaily if group_by == "service" else StatsHallDaily
            )
            sums = [func.sum(getattr(table, name)) for name in COUNTS]
            in_period = [table.day >= first, table.day <= last]
            if scope is not None:
                in_period.append(table.hall_id.in_(scope))
            if group_by == "total":
                result = (await session.execute(select(*sums).where(*in_period))).one()
                groups["total"].add(dict(zip(COUNTS, result, strict=True)))
                continue
            key_column = {
                "day": StatsHallDaily.day,
                "hall": StatsHallDaily.hall_id,
                "service": StatsServiceDaily.service_id,
                "channel": StatsHallDaily.channel,
            }[group_by]
            query = select(key_column, *sums).where(*in_period).group_by(key_column)
            for result in (await session.execute(query)).all():
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
            counted = [(name, value) for name, value in values.items() if value]  # mostly one
            for group_by, groups in grouped.items():
                group_key = key_of(group_by, day, sid, service_halls.get(sid, ""), channel)
                if group_key is not None:
                    target = groups[group_key].values
                    for name, value in counted:
                        target[name] += value
    if scope is None or scope:
        await _add_bureaus(session, scope, first, last, grouped)
    if "total" in grouped:
        grouped["total"]["total"].add({})  # a total row even when nothing happened
    return {group_by: _rows(groups, group_by == "channel") for group_by, groups in grouped.items()}


async def _add_bureaus(
    session: AsyncSession,
    scope: list[str] | None,
    first: date,
    last: date,
    grouped: dict[Grouping, dict[str, Figures]],
) -> None:
    """What bureaus' own systems pushed (decision 0080): one indexed, grouped query per grouping over
    `bureau_figures`, whatever the day."""
    sums = [func.sum(getattr(BureauFigures, name)) for name in BUREAU_COUNTS]
    where = [BureauFigures.day >= first, BureauFigures.day <= last]
    if scope is not None:
        where.append(BureauFigures.hall_id.in_(scope))
    for group_by, groups in grouped.items():
        key_column = {
            "day": BureauFigures.day,
            "hall": BureauFigures.hall_id,
            "service": BureauFigures.service_id,
            "channel": BureauFigures.client_id,
            "total": None,
        }[group_by]
        query = select(*sums) if key_column is None else select(key_column, *sums).group_by(key_column)
        for result in (await session.execute(query.where(*where))).all():
            values = dict(zip(BUREAU_COUNTS, result[-len(BUREAU_COUNTS) :], strict=True))
            if key_column is None:
                if values["released"] is not None:  # an aggregate without rows gives NULLs
                    groups["total"].add(values)
                continue
            raw_key = result[0]
            if group_by == "channel":
                key = f"{BUREAU_CHANNEL}{raw_key}"
            else:
                key = raw_key.isoformat() if isinstance(raw_key, date) else str(raw_key)
            groups[key].add(values)


def _rows(groups: dict[str, Figures], per_channel: bool) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(groups):
        v = groups[key].values
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


async def fill_by_hour(
    session: AsyncSession, root_path: str, first: date, last: date
) -> list[dict[str, Any]]:
    """Slot fill by weekday × hour of day over slot dates `first`–`last` (the dashboard's heat map):
    `[{"weekday" (0 = Monday), "hour", "released", "seats", "fill"}]`, one row per weekday and hour
    that released seats or holds a booking, by weekday then hour. `released` and `seats` use the
    definitions of `figures` (seats of released slots, derived ones included; seats of bookings not
    cancelled), so the cells add up to the period's `released` and `utilisation`."""
    check_range(first, last)
    scope = await _scope(session, root_path)
    cells: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])  # released, seats
    if scope is not None and not scope:
        return []
    live = Booking.status.in_(("booked", "checked_in", "served", "no_show", "excused"))
    query = (
        select(Booking.slot_start, func.sum(Booking.quantity))
        .where(Booking.slot_day >= first, Booking.slot_day <= last, live)
        .group_by(Booking.slot_start)
    )
    if scope is not None:
        query = query.where(Booking.hall_id.in_(scope))
    for start, seats in (await session.execute(query)).all():
        moment = _dt(start)
        cells[(moment.weekday(), moment.hour)][1] += int(seats or 0)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    services = await _services(session, scope)
    for (weekday, hour), seats in (
        (await _supply(session, services, days, per_hour=True)).per_weekday_hour().items()
    ):
        cells[(weekday, hour)][0] += seats
    # bureaus' own systems (decision 0080): their slots' seats and the seats they report sold
    bureau = (
        select(BureauSlot.start, func.sum(BureauSlot.capacity), func.sum(BureauSlot.booked))
        .where(BureauSlot.day >= first, BureauSlot.day <= last)
        .group_by(BureauSlot.start)
    )
    if scope is not None:
        bureau = bureau.where(BureauSlot.hall_id.in_(scope))
    for start, released, sold in (await session.execute(bureau)).all():
        moment = _dt(start)
        cells[(moment.weekday(), moment.hour)][0] += int(released or 0)
        cells[(moment.weekday(), moment.hour)][1] += int(sold or 0)
    return [
        {
            "weekday": weekday,
            "hour": hour,
            "released": released,
            "seats": seats,
            "fill": round(seats / released, 4) if released else None,
        }
        for (weekday, hour), (released, seats) in sorted(cells.items())
    ]


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def waitlist_length(
    session: AsyncSession, root_path: str, first: date, last: date
) -> list[dict[str, Any]]:
    """The waiting list per day `first`–`last` (rules G11, G12): `[{"day", "joined", "left",
    "waiting"}]`, where `joined` counts entries made that day (the `waitlist` of `figures`), `left`
    those that stopped waiting that day (allocated a seat or withdrawn), and `waiting` the entries
    still waiting at the end of the day (now, for today; null for days still to come)."""
    check_range(first, last)
    scope = await _scope(session, root_path)
    start, end = at(first, "00:00"), at(last + timedelta(days=1), "00:00")
    in_scope = [] if scope is None else [WaitlistEntry.hall_id.in_(scope)]
    joined: dict[date, int] = {}
    left: dict[date, int] = {}
    waiting_before = 0
    if scope is None or scope:
        waiting_before = int(
            (
                await session.execute(
                    select(func.count()).where(
                        WaitlistEntry.created_at < start,
                        (WaitlistEntry.status == "waiting") | (WaitlistEntry.updated_at >= start),
                        *in_scope,
                    )
                )
            ).scalar_one()
        )
        made_on = func.date(WaitlistEntry.created_at)
        for day, n in (
            await session.execute(
                select(made_on, func.count())
                .where(WaitlistEntry.created_at >= start, WaitlistEntry.created_at < end, *in_scope)
                .group_by(made_on)
            )
        ).all():
            joined[_day(day)] = int(n)
        ended_on = func.date(WaitlistEntry.updated_at)  # updated only when it stops waiting
        for day, n in (
            await session.execute(
                select(ended_on, func.count())
                .where(
                    WaitlistEntry.status != "waiting",
                    WaitlistEntry.updated_at >= start,
                    WaitlistEntry.updated_at < end,
                    *in_scope,
                )
                .group_by(ended_on)
            )
        ).all():
            left[_day(day)] = int(n)
    today = clock.today()
    rows, waiting = [], waiting_before
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        waiting += joined.get(day, 0) - left.get(day, 0)
        rows.append(
            {
                "day": day.isoformat(),
                "joined": joined.get(day, 0),
                "left": left.get(day, 0),
                "waiting": waiting if day <= today else None,
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
