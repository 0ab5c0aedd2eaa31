"""The waiting list (预约排队, rules G11, G12).

First come, first served per service. Seats that appear — a cancel, a reschedule away, held seats
returned to open booking (decision 0081), an approved capacity increase, a day's release — go to the
earliest waiting entry that accepts that date and whose citizen may book, before open booking sees
them. An allocation is an ordinary booking (`booking.commands.book(..., Caller("waitlist"))`, channel
of the entry) made in the transaction that freed the seat, so nobody else can take the seat in
between.

Exactly once, whatever the number of processes: an entry is claimed by a conditional
`UPDATE … SET status = 'allocated' WHERE id = … AND status = 'waiting'` inside a savepoint with its
booking. On PostgreSQL a second transaction claiming the same entry waits for the row lock and then
finds it taken; on SQLite writers are serialised (BEGIN IMMEDIATE). A booking that fails (the
citizen is banned, already holds a booking…) rolls back the savepoint, claim included, and the next
entry is tried.

Jobs: `waitlist_release` (every 15 minutes: days whose booking opened since the last run go to the
waiting list first; open booking of those days answers `not_open_yet` until this run has committed,
`booking.rules.check_released`, decision 0092), `waitlist_over_release` (hourly: rule G12's alert)
and `waitlist_expire` (daily 00:05: entries whose every date has passed end `expired`, with an SMS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.alerts import raise_alert
from yuyue.auth.service import Acting, authorise
from yuyue.booking import availability, commands, rules
from yuyue.calendar.service import DayClosed
from yuyue.catalogue.service import day_slots, get_service, parse_slot_id
from yuyue.clock import clock
from yuyue.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable, ValidationFailed
from yuyue.identity.service import SessionLogin, ban_covering
from yuyue.jobs.service import Job, daily, every, register
from yuyue.kit.events import Event, emit, subscribe
from yuyue.kit.http import rowcount
from yuyue.models import Booking, Citizen, Department, Service, Slot, Unit, WaitlistEntry
from yuyue.policy.service import day_opens_at, onsite_hold

OFFSITE_CHANNELS = ("web", "wechat", "app", "provincial_portal", "api")
MAX_DATES = 31
MAX_AHEAD_DAYS = 60
WAITING_COLUMNS = (WaitlistEntry.id, WaitlistEntry.citizen_id, WaitlistEntry.dates, WaitlistEntry.channel)
SCAN_PAGE = 200  # entries read per query while allocating (the earliest first; no fixed window)
OVER_RELEASE_WORKING_DAYS = 10  # rule G12: "the next 10 days", read as working days (docs/rules.md)
STOP_CODES = ("slot_full", "booking_closed", "not_open_yet", "not_found")


# --- joining and leaving ---------------------------------------------------------------------------


async def position(session: AsyncSession, entry: WaitlistEntry) -> int | None:
    if entry.status != "waiting":
        return None
    ahead = await session.execute(
        select(func.count()).where(
            WaitlistEntry.service_id == entry.service_id,
            WaitlistEntry.status == "waiting",
            WaitlistEntry.id < entry.id,
        )
    )
    return int(ahead.scalar_one()) + 1


@dataclass(slots=True, kw_only=True)
class EntryView:
    """A waiting-list entry as its citizen sees it (docs/api.md); checked by `EntryOut`."""

    id: int
    service_id: int
    dates: list[str] | None
    channel: str
    position: int | None
    status: str
    number: str | None
    created_at: str


@dataclass(slots=True, kw_only=True)
class MaskedCitizen:
    name: str
    id_number: str
    phone: str


@dataclass(slots=True, kw_only=True)
class AdminEntryView:
    """A waiting-list entry as an admin sees it, the citizen masked; checked by `AdminEntryOut`."""

    id: int
    service_id: int
    position: int | None
    citizen: MaskedCitizen
    dates: list[str] | None
    channel: str
    status: str
    number: str | None
    created_at: str


@dataclass(slots=True, kw_only=True)
class WaitingCount:
    service_id: int
    service: str
    department: str
    hall_id: str
    hall: str
    waiting: int


async def entry_view(session: AsyncSession, entry: WaitlistEntry) -> EntryView:
    return EntryView(
        id=entry.id,
        service_id=entry.service_id,
        dates=list(entry.dates) if entry.dates is not None else None,
        channel=entry.channel,
        position=await position(session, entry),
        status=entry.status,
        number=entry.booking_number,
        created_at=entry.created_at.isoformat(),
    )


async def join(
    session: AsyncSession,
    citizen_id: int,
    service_id: int,
    dates: list[date] | None,
    channel: str,
    *,
    login: SessionLogin | None,
) -> WaitlistEntry:
    """Queue for a service (rule G11), on any date (`dates` null) or on the dates listed. `login`:
    how the citizen of this request logged in (`identity.api.CitizenLogin`; None without one)."""
    try:
        ctx = await rules.context(session, service_id)
    except NotFound:
        raise NotFound(f"service {service_id} not found") from None
    if not ctx.info.active:
        raise NotFound(f"service {service_id} not found")
    rules.check_login_may_book(login, ctx.info)  # rules T2, G8: whoever may not book may not queue
    if channel not in OFFSITE_CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(OFFSITE_CHANNELS)}")
    today = clock.today()
    if dates is not None:
        if not dates or len(dates) > MAX_DATES or len(set(dates)) != len(dates):
            raise ValidationFailed(f"dates lists 1 to {MAX_DATES} different dates, or is null for any date")
        for day in dates:
            if day <= today or day > today + timedelta(days=MAX_AHEAD_DAYS):
                raise ValidationFailed(
                    f"dates: {day.isoformat()} is not a day after today within {MAX_AHEAD_DAYS}"
                )
            if not ctx.calendar.is_working(day):
                raise ValidationFailed(f"dates: the hall does not work on {day.isoformat()}")
    banned_until = await ban_covering(session, citizen_id, ctx.info.hall_path)
    if banned_until is not None:  # rules M9, G15: a banned citizen may not book, so may not queue
        raise Forbidden(
            f"booking is banned until {banned_until.isoformat()}",
            code="banned",
            banned_until=banned_until.isoformat(),
        )
    accepted = {d.isoformat() for d in dates} if dates is not None else None
    offered = await availability.availability(session, service_id, None, None)
    for day in offered["days"]:
        if accepted is not None and day["date"] not in accepted:
            continue
        if any(slot["status"] == "open" for slot in day["slots"]):
            raise Conflict(
                f"seats are open on {day['date']}: book them directly (rule G11 queues for full slots)",
                code="seats_available",
            )
    now = clock.now()
    entry = WaitlistEntry(
        citizen_id=citizen_id,
        service_id=service_id,
        hall_id=ctx.info.hall_id,
        dates=sorted(accepted) if accepted is not None else None,
        channel=channel,
        status="waiting",
        booking_number=None,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(entry)
            await session.flush()
    except IntegrityError:
        raise Conflict("you are already waiting for this service", code="already_waiting") from None
    return entry


async def mine(session: AsyncSession, citizen_id: int) -> list[WaitlistEntry]:
    query = (
        select(WaitlistEntry)
        .where(WaitlistEntry.citizen_id == citizen_id)
        .order_by(WaitlistEntry.created_at.desc(), WaitlistEntry.id.desc())
        .limit(100)
    )
    return list((await session.execute(query)).scalars())


async def leave(session: AsyncSession, citizen_id: int, entry_id: int) -> None:
    entry = (
        await session.execute(
            select(WaitlistEntry).where(WaitlistEntry.id == entry_id, WaitlistEntry.citizen_id == citizen_id)
        )
    ).scalar_one_or_none()
    if entry is None:
        raise NotFound("waiting entry not found")
    changed = await session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.id == entry.id, WaitlistEntry.status == "waiting")
        .values(status="left", updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Unprocessable(f"this entry is {entry.status}, no longer waiting", code="not_waiting")


# --- what an administrator sees (issue 10 item 4) ----------------------------------------------

ADMIN_LIST_LIMIT = 500
ENTRY_STATUSES = ("waiting", "allocated", "left")


async def admin_entries(
    session: AsyncSession, who: Acting, service_id: int, status: str = "waiting"
) -> list[AdminEntryView]:
    """The waiting list of one service for an admin of its hall's subtree (rules G11, G12): entries
    of `status` in queue order (first come, first served), the citizen masked (docs/api.md)."""
    _, _, hall = await get_service(session, service_id)
    authorise(who, "view", hall.path)
    if status not in ENTRY_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(ENTRY_STATUSES)}")
    rows = (
        await session.execute(
            select(WaitlistEntry, Citizen.name_masked, Citizen.id_masked, Citizen.phone_masked)
            .join(Citizen, Citizen.id == WaitlistEntry.citizen_id)
            .where(WaitlistEntry.service_id == service_id, WaitlistEntry.status == status)
            .order_by(WaitlistEntry.id)
            .limit(ADMIN_LIST_LIMIT)
        )
    ).all()
    return [
        AdminEntryView(
            id=entry.id,
            service_id=entry.service_id,
            position=n if status == "waiting" else None,  # entries are listed from the first
            citizen=MaskedCitizen(name=name, id_number=id_masked, phone=phone_masked),
            dates=list(entry.dates) if entry.dates is not None else None,
            channel=entry.channel,
            status=entry.status,
            number=entry.booking_number,
            created_at=entry.created_at.isoformat(),
        )
        for n, (entry, name, id_masked, phone_masked) in enumerate(rows, start=1)
    ]


async def waiting_counts(session: AsyncSession, who: Acting) -> list[WaitingCount]:
    """Services of the admin's subtree with people waiting, the longest queue first."""
    waiting = func.count(WaitlistEntry.id)
    rows = (
        await session.execute(
            select(Service.id, Service.name, Department.name, Unit.id, Unit.name, waiting)
            .join(Department, Department.id == Service.department_id)
            .join(Unit, Unit.id == Service.hall_id)
            .join(WaitlistEntry, WaitlistEntry.service_id == Service.id)
            .where(WaitlistEntry.status == "waiting", Unit.path.startswith(who.unit_path, autoescape=True))
            .group_by(Service.id, Service.name, Department.name, Unit.id, Unit.name)
            .order_by(waiting.desc(), Service.id)
        )
    ).all()
    return [
        WaitingCount(
            service_id=row[0],
            service=row[1],
            department=row[2],
            hall_id=row[3],
            hall=row[4],
            waiting=int(row[5]),
        )
        for row in rows
    ]


# --- allocation ------------------------------------------------------------------------------------


async def allocate(session: AsyncSession, service_id: int, slot_ids: list[str]) -> int:
    """Give the seats free in `slot_ids` to the earliest eligible waiting entries; returns how many
    entries got a booking. Runs inside the caller's transaction. docs/rules.md "Waiting list": an entry
    that cannot take a seat now (its citizen banned, already booked…) is skipped and stays waiting;
    the scan goes on, page after page, until the slot has no seat left or no entry is left."""
    taken: set[int] = set()
    allocated = 0
    for slot_id in slot_ids:
        parsed = parse_slot_id(slot_id)
        if parsed is None:
            continue
        day = parsed[1].date().isoformat()
        after, full = 0, False
        while not full:
            page = (
                await session.execute(
                    select(*WAITING_COLUMNS)
                    .where(
                        WaitlistEntry.service_id == service_id,
                        WaitlistEntry.status == "waiting",
                        WaitlistEntry.id > after,
                    )
                    .order_by(WaitlistEntry.id)
                    .limit(SCAN_PAGE)
                )
            ).all()
            if not page:
                break
            after = page[-1].id
            for row in page:
                if row.id in taken or (row.dates is not None and day not in row.dates):
                    continue
                try:
                    async with session.begin_nested():
                        number = await _claim_and_book(session, row.id, row.citizen_id, row.channel, slot_id)
                except DomainError as exc:
                    if exc.code in STOP_CODES:
                        full = True  # this slot has nothing (more) for the waiting list
                        break
                    continue  # this citizen may not book now (banned, already booked…): skipped
                taken.add(row.id)
                if number is None:
                    continue  # another transaction allocated this entry first
                allocated += 1
                entry = await session.get(WaitlistEntry, row.id, populate_existing=True)
                made = (await session.execute(select(Booking).where(Booking.number == number))).scalar_one()
                await emit(session, Event("waitlist.allocated", {"entry": entry, "booking": made}))
    return allocated


async def _claim_and_book(
    session: AsyncSession, entry_id: int, citizen_id: int, channel: str, slot_id: str
) -> str | None:
    now = clock.now()
    claimed = await session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.id == entry_id, WaitlistEntry.status == "waiting")
        .values(status="allocated", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) != 1:
        return None
    view = await commands.book(
        session, citizen_id, rules.BookRequest(slot_id=slot_id, channel=channel), rules.Caller("waitlist")
    )
    number = str(view["number"])
    await session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.id == entry_id)
        .values(booking_number=number)
        .execution_options(synchronize_session=False)
    )
    return number


async def _has_waiting(session: AsyncSession, service_id: int) -> bool:
    found = await session.execute(
        select(WaitlistEntry.id)
        .where(WaitlistEntry.service_id == service_id, WaitlistEntry.status == "waiting")
        .limit(1)
    )
    return found.first() is not None


@subscribe("booking.cancelled")
async def _on_cancelled(session: AsyncSession, event: Event) -> None:
    freed = event.data["booking"]
    if await _has_waiting(session, freed.service_id):
        await allocate(session, freed.service_id, [freed.slot_id])


@subscribe("booking.rescheduled")
async def _on_rescheduled(session: AsyncSession, event: Event) -> None:
    moved = event.data["booking"]
    if await _has_waiting(session, moved.service_id):
        await allocate(session, moved.service_id, [event.data["old_slot_id"]])


@subscribe("seats.returned")
async def _on_seats_returned(session: AsyncSession, event: Event) -> None:
    """Held seats back to open booking (decision 0081): the waiting list first at that moment too."""
    service_id = int(event.data["service_id"])
    if await _has_waiting(session, service_id):
        await allocate(session, service_id, list(event.data["slot_ids"]))


async def _day_slot_ids(session: AsyncSession, service_id: int, days: list[date]) -> list[str]:
    ctx = await rules.context(session, service_id)
    return [
        spec.id for day in sorted(days) if ctx.calendar.is_working(day) for spec in day_slots(ctx.info, day)
    ]


@subscribe("capacity.increased")
async def _on_capacity_increased(session: AsyncSession, event: Event) -> None:
    service_id = int(event.data["service_id"])
    if await _has_waiting(session, service_id):
        await allocate(
            session, service_id, await _day_slot_ids(session, service_id, list(event.data["dates"]))
        )


# --- entries that end on their own ----------------------------------------------------------------


async def expire_entries(
    session: AsyncSession, today: date, service_ids: list[int] | None = None, closed: date | None = None
) -> int:
    """docs/rules.md "Waiting list": an entry ends (`expired`, with an SMS) once every date it accepts
    has passed, or (docs/rules.md "A closed day that has bookings") is no longer a working day of its
    hall. Entries for any date (`dates` null) never expire. Returns how many ended."""
    query = select(WaitlistEntry).where(WaitlistEntry.status == "waiting", WaitlistEntry.dates.isnot(None))
    if service_ids is not None:
        query = query.where(WaitlistEntry.service_id.in_(service_ids))
    now, ended = clock.now(), 0
    for entry in (await session.execute(query.order_by(WaitlistEntry.id))).scalars().all():
        calendar = (await rules.context(session, entry.service_id)).calendar  # extra days count
        days = [date.fromisoformat(str(d)) for d in entry.dates or []]
        if any(d >= today and d != closed and calendar.is_working(d) for d in days):
            continue
        changed = await session.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.id == entry.id, WaitlistEntry.status == "waiting")
            .values(status="expired", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(changed) == 1:
            entry.status, entry.updated_at = "expired", now
            ended += 1
            await emit(session, Event("waitlist.expired", {"entry": entry}))
    return ended


@subscribe("day.closed")
async def _on_day_closed(session: AsyncSession, event: Event) -> None:
    """Entries that accepted only closed (or past) days end with an SMS."""
    closed: DayClosed = event.data["closed"]
    services = None
    if closed.hall_ids is not None:
        services = list(
            (await session.execute(select(Service.id).where(Service.hall_id.in_(closed.hall_ids)))).scalars()
        )
    await expire_entries(session, clock.today(), services, closed.day)


# --- jobs ------------------------------------------------------------------------------------------

RELEASE_EVERY_MIN = rules.RELEASE_EVERY_MIN  # booking gates open booking of a released day on this run


async def _waiting_services(session: AsyncSession) -> list[int]:
    rows = await session.execute(
        select(WaitlistEntry.service_id).where(WaitlistEntry.status == "waiting").distinct()
    )
    return sorted(int(sid) for sid in rows.scalars())


async def release_to_waitlist(session: AsyncSession, due: datetime) -> int:
    """At a day's release moment its seats go to the waiting list first (rules G10, G11)."""
    allocated = 0
    window_start = due - timedelta(minutes=RELEASE_EVERY_MIN)
    for service_id in await _waiting_services(session):
        ctx = await rules.context(session, service_id)
        if not ctx.info.active:
            continue
        knobs = ctx.policy.knobs
        day, last = due.date() + timedelta(days=1), due.date() + timedelta(days=MAX_AHEAD_DAYS)
        opened: list[date] = []
        while day <= last:
            if ctx.calendar.is_working(day) and window_start < day_opens_at(knobs, ctx.calendar, day) <= due:
                opened.append(day)
            day += timedelta(days=1)
        if opened:
            allocated += await allocate(session, service_id, await _day_slot_ids(session, service_id, opened))
    return allocated


async def released_offsite_seats(session: AsyncSession, service_id: int, now: datetime) -> int:
    """Off-site seats of the service's next 10 working days whose booking has opened (rule G12)."""
    ctx = await rules.context(session, service_id)
    knobs, calendar = ctx.policy.knobs, ctx.calendar
    last = calendar.nth_working_after(now.date(), OVER_RELEASE_WORKING_DAYS)
    stored = {
        row.id: row.capacity
        for row in (
            await session.execute(
                select(Slot.id, Slot.capacity).where(
                    Slot.service_id == service_id, Slot.day > now.date(), Slot.day <= last
                )
            )
        ).all()
    }
    total, day = 0, now.date() + timedelta(days=1)
    while day <= last:
        if calendar.is_working(day) and day_opens_at(knobs, calendar, day) <= now:
            for spec in day_slots(ctx.info, day):
                capacity = stored.get(spec.id, spec.capacity)
                total += capacity - onsite_hold(knobs, capacity)
        day += timedelta(days=1)
    return total


async def check_over_release(session: AsyncSession, due: datetime) -> int:
    """Rule G12: a service whose waiting entries outnumber its released off-site seats of the next
    10 working days raises `waitlist_over_release` once (at its hall, so every level above sees it)."""
    counts = (
        await session.execute(
            select(WaitlistEntry.service_id, WaitlistEntry.hall_id, func.count())
            .where(WaitlistEntry.status == "waiting")
            .group_by(WaitlistEntry.service_id, WaitlistEntry.hall_id)
        )
    ).all()
    raised = 0
    for service_id, hall_id, waiting in counts:
        released = await released_offsite_seats(session, int(service_id), due)
        if int(waiting) > released:
            raised += await raise_alert(
                session,
                "waitlist_over_release",
                hall_id,
                int(service_id),
                f"waitlist_over_release:{service_id}",
                f"{waiting} waiting entries, {released} off-site seats released for the next "
                f"{OVER_RELEASE_WORKING_DAYS} working days: add supply (5+X, longer hours) or steer "
                "citizens to online and self-service handling (rule G12)",
                raised_at=due,
                # the figure that crossed its line, as the abnormal-figure alerts store theirs
                figure={"name": "waiting_entries", "value": int(waiting), "threshold": released},
            )
    return raised


async def _release_job(session: AsyncSession, due: datetime) -> None:
    await release_to_waitlist(session, due)


async def _expiry_job(session: AsyncSession, due: datetime) -> None:
    await expire_entries(session, due.date())


async def _over_release_job(session: AsyncSession, due: datetime) -> None:
    await check_over_release(session, due)


register(Job(rules.RELEASE_JOB, every(RELEASE_EVERY_MIN), _release_job, first=True))  # it opens the day
register(Job("waitlist_over_release", every(60), _over_release_job))
register(Job("waitlist_expire", daily("00:05"), _expiry_job))
