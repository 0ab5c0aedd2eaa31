"""Watching the figures (rules G19, G15, G18; issue 23).

- `watch_figures` (the nightly job `watch_figures`, 03:30, after the stats rollup at 03:00) checks
  every hall and service against the lines of `yuyue.watch.rules`, with the thresholds of the
  hall's effective policy (knobs `watch_*`), and raises each abnormal-figure alert through
  `admin.alerts.raise_alert`, once per service (or hall, channel, bureau system) until an admin
  resolves it (the kinds are RECURRING there: a resolved alert may come back).
- `hoarding` ranks citizens whose bookings in a subtree fit a hoarding pattern, with the evidence
  (rule G15, last clause: an admin may then ban; nothing here bans); the job `hoarding_rankings`
  (03:45) stores the ranking of each admin's unit for the console's 限制预约 page (decision 0102).
- `quality_report` gives the month's figures per child unit (rule G18, Art. 22).

Figures come from the nightly rollup (`stats_daily` summed per day and hall or service, decision
0089) for finished days; the sell-out times from `bookings`, in SQL (decision 0102); the waiting
list's length from `waitlist_entries`; bureau silence from the bureau tables.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import xlsxwriter
from sqlalchemy import Date, DateTime, Integer, and_, case, func, or_, select, type_coerce, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.alerts import raise_alert
from yuyue.auth.service import Acting, authorise
from yuyue.calendar.service import WorkCalendar, hall_calendar
from yuyue.catalogue.service import (
    HALL_KINDS,
    day_slots,
    get_unit,
    parse_slot_id,
    service_info,
    service_infos,
)
from yuyue.clock import as_local, at, clock
from yuyue.db import dialect_insert, on_postgres
from yuyue.errors import ValidationFailed
from yuyue.jobs.service import Job, daily, register
from yuyue.models import (
    Admin,
    Alert,
    Booking,
    CapacityRequest,
    Citizen,
    HoardingRanking,
    Service,
    Slot,
    StatsDay,
    StatsHallDaily,
    StatsServiceDaily,
    Unit,
    WaitlistEntry,
)
from yuyue.models.base import LocalDateTime
from yuyue.models.bureau import BureauBooking, BureauSlot
from yuyue.models.identity import ApiClient
from yuyue.penalties.service import citizen_ref
from yuyue.policy.presets import Knobs
from yuyue.policy.service import cancel_deadline, day_opens_at, effective_policy, onsite_hold
from yuyue.stats.service import figures_grouped, json_rows
from yuyue.watch import rules
from yuyue.watch.rules import Finding

BASELINE_WEEKS = 4  # no_show_high and channel_surge: last week against the 4 weeks before
SPREAD_DAYS = 10  # waitlist_growing suggests the capacity that clears the list in 10 working days (G12)
LOOKBACK_DAYS = 45  # sold_out_fast: released days are looked for among slot dates this far back …
LOOKAHEAD_DAYS = 62  # … and this far ahead (beyond every preset's horizon)
CHART = "/admin/dashboard?unit_id="  # the console's charts of a unit (decision 0074)


@dataclass
class Raised:
    kind: str
    unit_id: str
    service_id: int | None
    key: str
    detail: str
    figure: Finding
    suggestion: dict[str, Any] | None = None


async def _knobs(session: AsyncSession, cache: dict[str, Knobs], unit_id: str) -> Knobs:
    if unit_id not in cache:
        cache[unit_id] = (await effective_policy(session, unit_id)).knobs
    return cache[unit_id]


async def _calendar(session: AsyncSession, cache: dict[str, WorkCalendar], hall_id: str) -> WorkCalendar:
    if hall_id not in cache:
        cache[hall_id] = await hall_calendar(session, hall_id)
    return cache[hall_id]


class Context:
    """Caches of one pass: knobs and calendars per unit."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self.session = session
        self.now = now
        self.today = now.date()
        self.knobs: dict[str, Knobs] = {}
        self.calendars: dict[str, WorkCalendar] = {}

    async def knobs_of(self, unit_id: str) -> Knobs:
        return await _knobs(self.session, self.knobs, unit_id)

    async def calendar_of(self, hall_id: str) -> WorkCalendar:
        return await _calendar(self.session, self.calendars, hall_id)

    async def suggestion(self, service_id: int, hall_id: str, daily_capacity: int) -> dict[str, Any]:
        """A capacity request to pre-fill (rule G20): its first day the 2nd working day from today."""
        date_from = (await self.calendar_of(hall_id)).nth_working_after(self.today, 2)
        return {"daily_capacity": max(1, daily_capacity), "date_from": date_from.isoformat()}


# --- the nightly pass ------------------------------------------------------------------------------


async def watch_figures(session: AsyncSession, now: datetime | None = None) -> list[Raised]:
    """Check every hall and service; raise each alert found (once per key). Returns the new ones."""
    ctx = Context(session, now or clock.now())
    found: list[Raised] = []
    found += await _sold_out_fast(ctx)
    found += await _low_utilisation(ctx)
    found += await _no_show_high(ctx)
    found += await _waitlist_growing(ctx)
    found += await _channel_surge(ctx)
    found += await _bureau_silent(ctx)
    new = []
    for alert in found:
        if await raise_alert(
            session,
            alert.kind,
            alert.unit_id,
            alert.service_id,
            alert.key,
            alert.detail,
            raised_at=ctx.now,
            figure=alert.figure.as_dict(),
            suggestion=alert.suggestion,
        ):
            new.append(alert)
    return new


async def _watch_job(session: AsyncSession, due: datetime) -> None:
    await watch_figures(session, due)


register(Job("watch_figures", daily("03:30"), _watch_job))


async def _hall_services(session: AsyncSession) -> dict[int, str]:
    rows = await session.execute(
        select(Service.id, Service.hall_id)
        .join(Unit, Unit.id == Service.hall_id)
        .where(Unit.kind.in_(HALL_KINDS))
    )
    return {int(r.id): str(r.hall_id) for r in rows.all()}


async def _sold_out_fast(ctx: Context) -> list[Raised]:
    """Rule G19: off-site seats gone within minutes of release on several released days running."""
    session = ctx.session
    out: list[Raised] = []
    services = await _hall_services(session)
    by_hall: dict[str, list[int]] = defaultdict(list)
    for sid, hall_id in services.items():
        by_hall[hall_id].append(sid)
    released: dict[str, list[tuple[datetime, date]]] = {}
    for hall_id in by_hall:
        knobs, calendar = await ctx.knobs_of(hall_id), await ctx.calendar_of(hall_id)
        days = []
        for i in range(-LOOKBACK_DAYS, LOOKAHEAD_DAYS):
            day = ctx.today + timedelta(days=i)
            if not calendar.is_working(day):
                continue
            opens = day_opens_at(knobs, calendar, day)
            if opens <= ctx.now - timedelta(minutes=knobs.watch_sold_out_minutes):
                days.append((opens, day))
        released[hall_id] = sorted(days)[-knobs.watch_sold_out_days :]
    wanted = {day for days in released.values() for _, day in days}
    if not wanted:
        return out
    stored: dict[tuple[int, date], dict[datetime, int]] = defaultdict(dict)
    slots = await session.execute(
        select(Slot.id, Slot.service_id, Slot.day, Slot.capacity).where(Slot.day.in_(sorted(wanted)))
    )
    for slot_id, sid, day, capacity in slots.all():
        parsed = parse_slot_id(str(slot_id))
        if parsed is not None:
            stored[(int(sid), day)][parsed[1]] = int(capacity)
    infos = await service_infos(session, sorted(services))  # one batch, not one each
    # The off-site seats of each released day of each service, and the moment its release opened:
    # the sell-out moments are then found in SQL (`_sold_out_moments`), not by reading the bookings.
    days_in_full: dict[str, list[tuple[datetime, date]]] = {}
    asked: list[tuple[int, date, int, datetime, datetime]] = []
    for hall_id, sids in by_hall.items():
        knobs = await ctx.knobs_of(hall_id)
        days = released[hall_id]
        if len(days) < knobs.watch_sold_out_days:
            continue
        days_in_full[hall_id] = days
        line = timedelta(minutes=knobs.watch_sold_out_minutes)
        for sid in sids:
            info = infos[sid]
            for opens, day in days:
                seats = 0
                for spec in day_slots(info, day):
                    capacity = stored[(sid, day)].get(spec.start, spec.capacity)
                    seats += capacity - onsite_hold(knobs, capacity)
                if seats > 0:  # no seat: never sold out (`rules.sold_out_minutes`)
                    asked.append((sid, day, seats, opens, opens + line))
    sold = await _sold_out_moments(session, asked)
    for hall_id, days in days_in_full.items():
        knobs = await ctx.knobs_of(hall_id)
        for sid in by_hall[hall_id]:
            minutes: list[float | None] = []
            for opens, day in days:
                moment = sold.get((sid, day))
                minutes.append(None if moment is None else max(0.0, (moment - opens).total_seconds() / 60))
            finding = rules.sold_out_fast(minutes, knobs.watch_sold_out_minutes, knobs.watch_sold_out_days)
            if finding is None:
                continue
            last_day = days[-1][1]
            capacity = infos[sid].capacity_on(last_day)
            out.append(
                Raised(
                    "sold_out_fast",
                    hall_id,
                    sid,
                    f"sold_out_fast:{sid}",
                    f"service {sid}: the off-site seats of each of the last {len(days)} days released "
                    f"(to {last_day.isoformat()}) were gone within {finding.value:g} minutes of release "
                    f"(line: {knobs.watch_sold_out_minutes}); chart: {CHART}{hall_id}",
                    finding,
                    await ctx.suggestion(sid, hall_id, math.ceil(capacity * 1.2)),
                )
            )
    return out


def _stored_moment(moment: datetime) -> str:
    """A moment as `LocalDateTime` stores it (naive local time; SQLite compares the text)."""
    return as_local(moment).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


async def _sold_out_moments(
    session: AsyncSession, asked: list[tuple[int, date, int, datetime, datetime]]
) -> dict[tuple[int, date], datetime]:
    """For each (service, day, off-site seats, release moment, line) asked, the first moment the
    off-site seats held reached the seats, when that was by the line; computed in SQL, the same as
    `rules.sold_out_minutes`: each off-site booking made by the line holds its quantity from the
    moment it was made, a cancelled one frees it at its last change, a moment before the release
    counts as the release, and at one moment the seats freed count before the seats taken."""
    if not asked:
        return {}
    wanted = json_rows(
        session,
        "wanted",
        [
            {
                "service_id": sid,
                "day": day.isoformat(),
                "seats": seats,
                "opens": _stored_moment(opens),
                "until": _stored_moment(until),
            }
            for sid, day, seats, opens, until in asked
        ],
        {"service_id": Integer, "day": Date, "seats": Integer, "opens": DateTime, "until": DateTime},
    )
    greatest = func.greatest if on_postgres(session) else func.max  # SQLite's 2-argument max is scalar
    made = and_(
        Booking.service_id == wanted.c.service_id,
        Booking.slot_day == wanted.c.day,
        Booking.created_at <= wanted.c.until,
        Booking.channel != "onsite",
    )
    days = sorted({day for _, day, _, _, _ in asked})  # lets the planner narrow the bookings read first
    taken = (
        select(
            Booking.service_id,
            Booking.slot_day,
            wanted.c.seats,
            greatest(Booking.created_at, wanted.c.opens).label("moment"),
            Booking.quantity.label("change"),
        )
        .join(wanted, made)
        .where(Booking.slot_day.in_(days))
    )
    freed = (
        select(
            Booking.service_id,
            Booking.slot_day,
            wanted.c.seats,
            greatest(Booking.updated_at, wanted.c.opens).label("moment"),
            (-Booking.quantity).label("change"),
        )
        .join(wanted, made)
        .where(Booking.slot_day.in_(days), Booking.status == "cancelled")
    )
    events = union_all(taken, freed).subquery("events")
    held = (
        select(
            events.c.service_id,
            events.c.slot_day,
            events.c.seats,
            events.c.moment,
            func.sum(events.c.change)
            .over(
                partition_by=(events.c.service_id, events.c.slot_day),
                order_by=(events.c.moment, events.c.change),
                rows=(None, 0),
            )
            .label("held"),
        )
    ).subquery("held")
    rows = await session.execute(
        select(held.c.service_id, held.c.slot_day, type_coerce(func.min(held.c.moment), LocalDateTime))
        .where(held.c.held >= held.c.seats)
        .group_by(held.c.service_id, held.c.slot_day)
    )
    return {(int(sid), day): moment for sid, day, moment in rows.all()}


async def _rolled_days(session: AsyncSession, first: date, last: date) -> set[date]:
    rows = await session.execute(select(StatsDay.day).where(StatsDay.day >= first, StatsDay.day <= last))
    return set(rows.scalars())


async def _low_utilisation(ctx: Context) -> list[Raised]:
    """Rule G19: seats released that nobody takes, week after week."""
    session = ctx.session
    out: list[Raised] = []
    yesterday = ctx.today - timedelta(days=1)
    max_weeks = 12
    first = yesterday - timedelta(days=7 * max_weeks - 1)
    # per service and week in SQL, from the per (day, service) sums (decision 0089)
    week = case(
        *((StatsServiceDaily.day >= yesterday - timedelta(days=7 * (w + 1) - 1), w) for w in range(max_weeks))
    )
    rows = await session.execute(
        select(
            StatsServiceDaily.service_id,
            StatsServiceDaily.hall_id,
            week,
            func.sum(StatsServiceDaily.released),
            func.sum(StatsServiceDaily.seats),
            func.sum(case((StatsServiceDaily.released > 0, 1), else_=0)),
        )
        .where(StatsServiceDaily.day >= first, StatsServiceDaily.day <= yesterday)
        .group_by(StatsServiceDaily.service_id, StatsServiceDaily.hall_id, week)
    )
    weeks: dict[tuple[int, str], list[list[int]]] = {}
    days_released: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0] * max_weeks)
    for sid, hall_id, w, released, seats, released_days in rows.all():  # w 0: the last 7 days
        cells = weeks.setdefault((int(sid), str(hall_id)), [[0, 0] for _ in range(max_weeks)])
        cells[int(w)][0] += int(released or 0)
        cells[int(w)][1] += int(seats or 0)
        days_released[(int(sid), str(hall_id))][int(w)] += int(released_days or 0)
    rolled = await _rolled_days(session, first, yesterday)
    for (sid, hall_id), cells in weeks.items():
        knobs = await ctx.knobs_of(hall_id)
        n = knobs.watch_utilisation_weeks
        # only whole weeks that the rollup covers count
        if any(yesterday - timedelta(days=i) not in rolled for i in range(7 * n)):
            continue
        series = [(r, s) for r, s in reversed(cells[:n])]
        finding = rules.low_utilisation(series, knobs.watch_utilisation_floor_pct, n)
        if finding is None:
            continue
        booked = sum(s for _, s in series)
        working = sum(days_released[(sid, hall_id)][:n]) or 1
        out.append(
            Raised(
                "low_utilisation",
                hall_id,
                sid,
                f"low_utilisation:{sid}",
                f"service {sid}: utilisation {finding.value:.0%} over the last {n} weeks, each under "
                f"{knobs.watch_utilisation_floor_pct}%; chart: {CHART}{hall_id}",
                finding,
                await ctx.suggestion(
                    sid,
                    hall_id,
                    rules.capacity_for_floor(booked / working, knobs.watch_utilisation_floor_pct),
                ),
            )
        )
    return out


async def _recent_and_usual(
    ctx: Context, columns: list[Any], keys: list[Any]
) -> tuple[dict[tuple[Any, ...], list[int]], dict[tuple[Any, ...], list[int]]] | None:
    """Sums of `columns` of `stats_hall_daily` (`stats_daily` per day, hall and channel, decision
    0089) per `keys` over last week and the 4 weeks before it (None unless the rollup covers those
    5 weeks)."""
    yesterday = ctx.today - timedelta(days=1)
    week_start = yesterday - timedelta(days=6)
    first = week_start - timedelta(days=7 * BASELINE_WEEKS)
    rolled = await _rolled_days(ctx.session, first, yesterday)
    if len(rolled) < (yesterday - first).days + 1:
        return None
    recent_flag = case((StatsHallDaily.day >= week_start, 1), else_=0)
    rows = await ctx.session.execute(
        select(*keys, recent_flag, *[func.sum(c) for c in columns])
        .where(StatsHallDaily.day >= first, StatsHallDaily.day <= yesterday)
        .group_by(*keys, recent_flag)
    )
    recent: dict[tuple[Any, ...], list[int]] = {}
    usual: dict[tuple[Any, ...], list[int]] = {}
    for row in rows.all():
        key = tuple(row[: len(keys)])
        target = recent if row[len(keys)] else usual
        target[key] = [int(v or 0) for v in row[len(keys) + 1 :]]
    return recent, usual


async def _no_show_high(ctx: Context) -> list[Raised]:
    """Rule G19: a hall's no-show rate last week far above its own rate of the 4 weeks before."""
    sums = await _recent_and_usual(
        ctx,
        [StatsHallDaily.no_show, StatsHallDaily.booked, StatsHallDaily.cancelled],
        [StatsHallDaily.hall_id],
    )
    if sums is None:
        return []
    recent, usual = sums
    out = []
    for (hall_id,), (no_show, booked, cancelled) in recent.items():
        knobs = await ctx.knobs_of(str(hall_id))
        base = usual.get((hall_id,), [0, 0, 0])
        finding = rules.no_show_high(
            (no_show, booked - cancelled),
            (base[0], base[1] - base[2]),
            knobs.watch_no_show_factor_pct,
            knobs.watch_min_count,
        )
        if finding is None:
            continue
        out.append(
            Raised(
                "no_show_high",
                str(hall_id),
                None,
                f"no_show_high:{hall_id}",
                f"hall {hall_id}: no-show rate {finding.value:.1%} last week against "
                f"{base[0]}/{base[1] - base[2]} over the {BASELINE_WEEKS} weeks before "
                f"(line {finding.threshold:.1%}); chart: {CHART}{hall_id}",
                finding,
            )
        )
    return out


async def _channel_surge(ctx: Context) -> list[Raised]:
    """Rule G19: one channel's (or partner's) share of a hall's bookings surging last week."""
    sums = await _recent_and_usual(
        ctx, [StatsHallDaily.booked], [StatsHallDaily.hall_id, StatsHallDaily.channel]
    )
    if sums is None:
        return []
    recent, usual = sums
    totals_recent: dict[str, int] = defaultdict(int)
    totals_usual: dict[str, int] = defaultdict(int)
    for (hall_id, _channel), (n,) in recent.items():
        totals_recent[str(hall_id)] += n
    for (hall_id, _channel), (n,) in usual.items():
        totals_usual[str(hall_id)] += n
    out = []
    for (hall_id, channel), (n,) in sorted(recent.items()):
        if channel == "*":
            continue
        knobs = await ctx.knobs_of(str(hall_id))
        usual_n = usual.get((hall_id, channel), [0])[0]
        finding = rules.channel_surge(
            (n, totals_recent[str(hall_id)]),
            (usual_n, totals_usual[str(hall_id)]),
            knobs.watch_channel_surge_factor_pct,
            knobs.watch_min_count,
        )
        if finding is None:
            continue
        out.append(
            Raised(
                "channel_surge",
                str(hall_id),
                None,
                f"channel_surge:{hall_id}:{channel}",
                f"hall {hall_id}: channel {channel} took {finding.value:.0%} of last week's bookings "
                f"({n}), its usual share being {usual_n}/{totals_usual[str(hall_id)]} "
                f"(line {finding.threshold:.0%}); chart: {CHART}{hall_id}",
                finding,
            )
        )
    return out


async def _waitlist_growing(ctx: Context) -> list[Raised]:
    """Rule G19 (and G12): a service's waiting list longer at the end of each day than the day before."""
    session = ctx.session
    out: list[Raised] = []
    horizon = 31
    ends = [at(ctx.today - timedelta(days=i), "00:00") for i in range(horizon, -1, -1)]  # oldest first
    rows = await session.execute(
        select(
            WaitlistEntry.service_id,
            WaitlistEntry.hall_id,
            WaitlistEntry.created_at,
            WaitlistEntry.updated_at,
            WaitlistEntry.status,
        ).where(
            WaitlistEntry.created_at < ends[-1],
            or_(WaitlistEntry.status == "waiting", WaitlistEntry.updated_at >= ends[0]),
        )
    )
    lengths: dict[tuple[int, str], list[int]] = {}
    for sid, hall_id, created, updated, status in rows.all():
        series = lengths.setdefault((int(sid), str(hall_id)), [0] * len(ends))
        for i, end in enumerate(ends):
            if created < end and (status == "waiting" or updated >= end):
                series[i] += 1
    for (sid, hall_id), series in lengths.items():
        knobs = await ctx.knobs_of(hall_id)
        finding = rules.waitlist_growing(series, knobs.watch_waitlist_days)
        if finding is None:
            continue
        info = await service_info(session, sid)
        calendar = await ctx.calendar_of(hall_id)
        date_from = calendar.nth_working_after(ctx.today, 2)
        capacity = info.capacity_on(date_from) + math.ceil(series[-1] / SPREAD_DAYS)
        out.append(
            Raised(
                "waitlist_growing",
                hall_id,
                sid,
                f"waitlist_growing:{sid}",
                f"service {sid}: the waiting list grew {finding.value:g} days running to {series[-1]} "
                f"(line: {knobs.watch_waitlist_days} days); chart: {CHART}{hall_id}",
                finding,
                await ctx.suggestion(sid, hall_id, capacity),
            )
        )
    return out


async def _bureau_silent(ctx: Context) -> list[Raised]:
    """Rules G2, G5, G6 (Art. 22: data sent on time): a bureau's own system that stopped sending."""
    session = ctx.session
    out: list[Raised] = []
    found = (
        await session.execute(
            select(ApiClient).where(ApiClient.channel == "bureau", ApiClient.active.is_(True))
        )
    ).scalars()
    clients = list(found)
    if not clients:
        return out
    last: dict[str, datetime] = {}
    for table in (BureauSlot, BureauBooking):
        rows = await session.execute(
            select(table.client_id, func.max(table.received_at)).group_by(table.client_id)
        )
        for client_id, received in rows.all():
            moment = received if isinstance(received, datetime) else datetime.fromisoformat(str(received))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ctx.now.tzinfo)
            if str(client_id) not in last or moment > last[str(client_id)]:
                last[str(client_id)] = moment
    for client in clients:
        unit_id = client.unit_id or "platform"
        knobs = await ctx.knobs_of(unit_id)
        since = last.get(client.id, client.created_at)
        finding = rules.bureau_silent(since, ctx.now, knobs.watch_bureau_silent_hours)
        if finding is None:
            continue
        out.append(
            Raised(
                "bureau_silent",
                unit_id,
                None,
                f"bureau_silent:{client.id}",
                f"bureau system {client.id} ({client.name}) has sent nothing since {since.isoformat()} "
                f"(line: {knobs.watch_bureau_silent_hours} h)",
                finding,
            )
        )
    return out


# --- hoarding evidence (rule G15, last clause) -------------------------------------------------------

# The lines are the `hoarding_*` knobs of the examined unit's effective policy (docs/policies.md).
PATTERN_WEIGHT = {"late_cancel": 3, "many_halls": 2, "no_show_districts": 2, "burst": 1}
MAX_RANGE = 366


def _area(path: str) -> str:
    """The unit right under the platform (a district, or a city body) that a hall belongs to."""
    parts = [p for p in path.split("/") if p]
    return parts[1] if len(parts) > 1 else parts[0]


async def hoarding(
    session: AsyncSession,
    secret: str,
    who: Acting,
    unit_id: str | None,
    first: date | None,
    last: date | None,
) -> list[dict[str, Any]]:
    """Citizens whose bookings in the subtree over slot dates `first`–`last` fit a hoarding pattern,
    strongest first; personal data masked, `id` the opaque citizen id of the ban endpoints. The
    lines are the `hoarding_*` knobs of the unit's effective policy. Nothing is banned here."""
    unit = await get_unit(session, unit_id or who.unit_id)
    authorise(who, "view", unit.path)
    last = last or clock.today()
    first = first or last - timedelta(days=30)
    if last < first:
        raise ValidationFailed("'to' is before 'from'")
    if (last - first).days >= MAX_RANGE:
        raise ValidationFailed(f"a range covers at most {MAX_RANGE} days")
    return with_refs(secret, await rank_hoarding(session, unit, first, last))


def with_refs(secret: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of `rank_hoarding` with `id` first, the opaque citizen id of the ban endpoints."""
    return [{"id": citizen_ref(secret, int(row["citizen_id"])), **row} for row in rows]


async def rank_hoarding(session: AsyncSession, unit: Unit, first: date, last: date) -> list[dict[str, Any]]:
    """`hoarding` for the unit's subtree without its checks and without the opaque ids."""
    knobs = (await effective_policy(session, unit.id)).knobs
    in_range = (
        Unit.path.startswith(unit.path, autoescape=True),
        Booking.slot_day >= first,
        Booking.slot_day <= last,
    )
    # Only a citizen with that many bookings in range (or that many no-shows) can fit a pattern:
    # the others are left in the database, and the rest read as plain rows, not entities.
    fewest = min(knobs.hoarding_late_cancel_min, knobs.hoarding_many_halls_min, knobs.hoarding_burst_min)
    candidates = (
        select(Booking.citizen_id)
        .join(Unit, Unit.id == Booking.hall_id)
        .where(*in_range)
        .group_by(Booking.citizen_id)
        .having(
            or_(
                func.count() >= fewest,
                func.sum(case((Booking.status == "no_show", 1), else_=0)) >= knobs.hoarding_no_show_areas_min,
            )
        )
    )
    rows = (
        await session.execute(
            select(*BOOKING_COLUMNS, Unit.path, Service.item_code)
            .join(Unit, Unit.id == Booking.hall_id)
            .join(Service, Service.id == Booking.service_id)
            .where(*in_range, Booking.citizen_id.in_(candidates))
            .order_by(Booking.citizen_id, Booking.created_at)
        )
    ).all()
    per_citizen: dict[int, list[tuple[Made, str, str]]] = defaultdict(list)
    for *columns, path, item_code in rows:
        booking = Made(*columns)
        per_citizen[booking.citizen_id].append(
            (booking, str(path), item_code or f"service:{booking.service_id}")
        )
    ctx = Context(session, clock.now())
    found: list[dict[str, Any]] = []
    for citizen_id, bookings in per_citizen.items():
        for pattern, evidence in await _patterns(ctx, knobs, bookings):
            found.append(
                {
                    "citizen_id": citizen_id,
                    "pattern": pattern,
                    "evidence": evidence,
                    "score": len(evidence) * PATTERN_WEIGHT[pattern],
                }
            )
    if not found:
        return []
    citizens = {
        c.id: c
        for c in (
            await session.execute(select(Citizen).where(Citizen.id.in_({f["citizen_id"] for f in found})))
        ).scalars()
    }
    for row in found:
        citizen = citizens[row["citizen_id"]]
        row["citizen"] = {
            "name": citizen.name_masked,
            "id_number": citizen.id_masked,
            "phone": citizen.phone_masked,
        }
    found.sort(key=lambda f: (-f["score"], f["citizen_id"], f["pattern"]))
    return [{k: f[k] for k in ("citizen_id", "citizen", "pattern", "evidence", "score")} for f in found]


# --- the 限制预约 page's ranking, stored nightly (issue 23) -------------------------------------------

PAGE_DAYS_BACK = 29  # the page looks at slot dates of the last 30 days …
PAGE_DAYS_AHEAD = 14  # … and the next 14 (hoarding is done on days to come)


def page_range(today: date) -> tuple[date, date]:
    return today - timedelta(days=PAGE_DAYS_BACK), today + timedelta(days=PAGE_DAYS_AHEAD)


async def store_rankings(session: AsyncSession, now: datetime, unit_ids: list[str] | None = None) -> int:
    """The job `hoarding_rankings` (nightly, 03:45): the 限制预约 page's ranking of each unit that
    has an active admin (or of `unit_ids`), over the page's slot dates, stored for the page to read.
    Returns how many units were ranked."""
    first, last = page_range(now.date())
    ids = select(Admin.unit_id).where(Admin.active.is_(True)) if unit_ids is None else unit_ids
    units = (await session.execute(select(Unit).where(Unit.id.in_(ids)).order_by(Unit.id))).scalars()
    ranked = 0
    for unit in list(units):
        rows = await rank_hoarding(session, unit, first, last)
        values = {"first": first, "last": last, "computed_at": now, "rows": rows}
        statement = dialect_insert(session, HoardingRanking).values(unit_id=unit.id, **values)
        await session.execute(statement.on_conflict_do_update(index_elements=["unit_id"], set_=values))
        ranked += 1
    return ranked


async def stored_ranking(
    session: AsyncSession, secret: str, unit_id: str, today: date
) -> tuple[list[dict[str, Any]], datetime] | None:
    """The unit's ranking as stored today for the page's slot dates, with the opaque ids, and when
    it was computed; None when there is none of today (the page then ranks at once)."""
    first, last = page_range(today)
    stored = await session.get(HoardingRanking, unit_id)
    if stored is None or stored.first != first or stored.last != last:
        return None
    return with_refs(secret, list(stored.rows)), stored.computed_at


async def _rankings_job(session: AsyncSession, due: datetime) -> None:
    await store_rankings(session, due)


register(Job("hoarding_rankings", daily("03:45"), _rankings_job))


BOOKING_COLUMNS = (
    Booking.number,
    Booking.citizen_id,
    Booking.service_id,
    Booking.hall_id,
    Booking.slot_day,
    Booking.slot_start,
    Booking.slot_end,
    Booking.channel,
    Booking.status,
    Booking.session_ref,
    Booking.created_at,
    Booking.updated_at,
)


class Made(NamedTuple):
    """What the hoarding patterns read of a booking (`BOOKING_COLUMNS`, in that order)."""

    number: str
    citizen_id: int
    service_id: int
    hall_id: str
    slot_day: date
    slot_start: datetime
    slot_end: datetime
    channel: str
    status: str
    session_ref: str | None
    created_at: datetime
    updated_at: datetime


DOORS_WITHOUT_SESSION = ("staff", "kiosk", "waitlist")  # `Caller.session_ref`: nobody's session


def burst_via(booking: Made) -> str | None:
    """What a burst of bookings is made through (`Booking.session_ref`, migration 0028): the
    citizen's own login session (`s:<tag>`), or a partner (`p:<client id>`, whichever session it
    used); None for bookings made by hall staff, a kiosk or the waiting list. A booking made before
    the session was recorded, or with a citizen token that names none, counts by its channel."""
    ref = booking.session_ref
    if ref in DOORS_WITHOUT_SESSION:
        return None
    if ref is None:
        return f"channel:{booking.channel}"
    if ref.startswith("p:"):
        return ":".join(ref.split(":")[:2])
    return ref


def _brief(booking: Made) -> dict[str, Any]:
    return {
        "number": booking.number,
        "hall_id": booking.hall_id,
        "service_id": booking.service_id,
        "slot_start": booking.slot_start.isoformat(),
        "channel": booking.channel,
        "status": booking.status,
        "created_at": booking.created_at.isoformat(),
    }


async def _patterns(
    ctx: Context, knobs: Knobs, bookings: list[tuple[Made, str, str]]
) -> list[tuple[str, list[dict[str, Any]]]]:
    window = timedelta(minutes=knobs.hoarding_late_cancel_window_min)
    burst = timedelta(seconds=knobs.hoarding_burst_seconds)
    out: list[tuple[str, list[dict[str, Any]]]] = []
    # book, then cancel just before the deadline, again and again
    late = []
    cancelled = [booking for booking, _, _ in bookings if booking.status == "cancelled"]
    if len(cancelled) < knobs.hoarding_late_cancel_min:
        cancelled = []  # too few to fit, whatever their deadlines: none worked out
    for booking in cancelled:
        # the hall's deadline (its own knobs); the lines stay those of the unit examined
        hall_knobs, calendar = await ctx.knobs_of(booking.hall_id), await ctx.calendar_of(booking.hall_id)
        slot = (booking.slot_day, booking.slot_start, booking.slot_end)
        deadline = cancel_deadline(hall_knobs, calendar, *slot)
        if deadline - window <= booking.updated_at <= deadline:
            late.append(
                {
                    **_brief(booking),
                    "cancelled_at": booking.updated_at.isoformat(),
                    "deadline": deadline.isoformat(),
                }
            )
    if len(late) >= knobs.hoarding_late_cancel_min:
        out.append(("late_cancel", late))
    # one item booked at many halls
    halls: dict[str, dict[str, Made]] = defaultdict(dict)
    for booking, _, item in bookings:
        halls[item].setdefault(booking.hall_id, booking)
    for item, at_halls in sorted(halls.items()):
        if len(at_halls) >= knobs.hoarding_many_halls_min:
            out.append(("many_halls", [{**_brief(b), "item": item} for b in at_halls.values()]))
    # no-shows across districts
    missed = [(b, _area(path)) for b, path, _ in bookings if b.status == "no_show"]
    if len({area for _, area in missed}) >= knobs.hoarding_no_show_areas_min:
        out.append(("no_show_districts", [{**_brief(b), "district": area} for b, area in missed]))
    # many bookings within seconds through one session or one partner
    by_session: dict[str, list[Made]] = defaultdict(list)
    for booking, _, _ in bookings:
        via = burst_via(booking)
        if via is not None:
            by_session[via].append(booking)
    for via, made in sorted(by_session.items()):
        made.sort(key=lambda b: b.created_at)
        best: list[Made] = []
        start = 0
        for end in range(len(made)):
            while made[end].created_at - made[start].created_at > burst:
                start += 1
            if end - start + 1 > len(best):
                best = made[start : end + 1]
        if len(best) >= knobs.hoarding_burst_min:
            out.append(("burst", [{**_brief(b), "via": via} for b in best]))
    return out


# --- quality report (rule G18, Art. 22) --------------------------------------------------------------

REPORT_COLUMNS = (
    "unit_id",
    "name",
    "booked",
    "checked_in",
    "no_show",
    "cancelled",
    "waitlist",
    "utilisation",
    "approvals_on_time",
    "data_on_time",
    "alerts_raised",
    "alerts_resolved",
)


def parse_month(value: str) -> tuple[date, date]:
    try:
        year, month = (int(p) for p in value.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise ValidationFailed("month: expected YYYY-MM") from None
    if len(value) != 7:
        raise ValidationFailed("month: expected YYYY-MM")
    following = date(year + month // 12, month % 12 + 1, 1)
    return first, following - timedelta(days=1)


async def quality_report(
    session: AsyncSession, who: Acting, unit_id: str | None, month: str | None
) -> dict[str, Any]:
    """The month's figures per child unit of `unit_id` (default: the caller's unit)."""
    unit = await get_unit(session, unit_id or who.unit_id)
    authorise(who, "view", unit.path)
    month = month or clock.today().strftime("%Y-%m")
    first, last = parse_month(month)
    start, end = at(first, "00:00"), at(last + timedelta(days=1), "00:00")
    children = list(
        (await session.execute(select(Unit).where(Unit.parent_id == unit.id).order_by(Unit.id))).scalars()
    )
    rows = []
    for child in children:
        figures = (await figures_grouped(session, child.path, first, last, ("total",)))["total"][0]
        in_subtree = Unit.path.startswith(child.path, autoescape=True)
        decided = (
            await session.execute(
                select(
                    func.count(),
                    func.sum(case((CapacityRequest.decided_at <= CapacityRequest.overdue_at, 1), else_=0)),
                )
                .join(Unit, Unit.id == CapacityRequest.hall_id)
                .where(in_subtree, CapacityRequest.decided_at >= start, CapacityRequest.decided_at < end)
            )
        ).one()
        overdue_open = (
            await session.execute(
                select(func.count())
                .select_from(CapacityRequest)
                .join(Unit, Unit.id == CapacityRequest.hall_id)
                .where(
                    in_subtree,
                    CapacityRequest.status == "pending",
                    CapacityRequest.overdue_at >= start,
                    CapacityRequest.overdue_at < end,
                )
            )
        ).scalar_one()
        due = int(decided[0] or 0) + int(overdue_open or 0)
        raised = (
            await session.execute(
                select(func.count())
                .select_from(Alert)
                .join(Unit, Unit.id == Alert.unit_id)
                .where(in_subtree, Alert.raised_at >= start, Alert.raised_at < end)
            )
        ).scalar_one()
        resolved = (
            await session.execute(
                select(func.count())
                .select_from(Alert)
                .join(Unit, Unit.id == Alert.unit_id)
                .where(in_subtree, Alert.resolved_at >= start, Alert.resolved_at < end)
            )
        ).scalar_one()
        bureaus = (
            await session.execute(
                select(ApiClient.id)
                .join(Unit, Unit.id == ApiClient.unit_id)
                .where(in_subtree, ApiClient.channel == "bureau")
            )
        ).scalars()
        bureau_ids = set(bureaus)
        silent = (
            await session.execute(
                select(func.count(func.distinct(Alert.dedup_key)))
                .join(Unit, Unit.id == Alert.unit_id)
                .where(
                    in_subtree,
                    Alert.kind == "bureau_silent",
                    Alert.raised_at >= start,
                    Alert.raised_at < end,
                )
            )
        ).scalar_one()
        rows.append(
            {
                "unit_id": child.id,
                "name": child.name,
                "booked": figures["booked"],
                "checked_in": figures["checked_in"],
                "no_show": figures["no_show"],
                "cancelled": figures["cancelled"],
                "waitlist": figures["waitlist"],
                "utilisation": figures["utilisation"],
                "approvals_on_time": round(int(decided[1] or 0) / due, 4) if due else None,
                "data_on_time": round(max(0, len(bureau_ids) - int(silent)) / len(bureau_ids), 4)
                if bureau_ids
                else None,
                "alerts_raised": int(raised),
                "alerts_resolved": int(resolved),
            }
        )
    return {"unit_id": unit.id, "month": month, "rows": rows}


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADINGS = {
    "unit_id": "单位编号",
    "name": "单位",
    "booked": "预约量",
    "checked_in": "取号量",
    "no_show": "爽约量",
    "cancelled": "取消量",
    "waitlist": "排队登记",
    "utilisation": "号源使用率",
    "approvals_on_time": "审批及时率",
    "data_on_time": "数据报送及时率",
    "alerts_raised": "预警数",
    "alerts_resolved": "预警处置数",
}


def report_xlsx(report: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet(report["month"])
    bold = book.add_format({"bold": True})
    percent = book.add_format({"num_format": "0.0%"})
    sheet.write(0, 0, f"政务服务预约质量通报 {report['month']}（{report['unit_id']}）", bold)
    for col, name in enumerate(REPORT_COLUMNS):
        sheet.write(1, col, HEADINGS[name], bold)
    for r, row in enumerate(report["rows"], start=2):
        for col, name in enumerate(REPORT_COLUMNS):
            value = row[name]
            if value is None:
                sheet.write_blank(r, col, None)
            elif name in ("utilisation", "approvals_on_time", "data_on_time"):
                sheet.write_number(r, col, value, percent)
            else:
                sheet.write(r, col, value)
    book.close()
    return buffer.getvalue()
