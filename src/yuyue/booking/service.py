"""Availability and bookings: book, cancel, reschedule, special-reason rebook, list, get.

Integrity lives in the database (STYLE.md):
- a seat is taken by one conditional `UPDATE slots SET booked = booked + n WHERE … booked + n <=
  limit RETURNING`: whatever the number of processes, a slot is never sold past its limit;
- one live booking per ID and service (rule T5) or per ID and day (rule M10) is the partial unique
  index `uq_bookings_live_key`;
- booking numbers (rule M12) come from a per-hall-and-date counter row, updated last so its lock is
  held for the shortest time.
Everything happens in the caller's one transaction; nothing here commits.

Events (kit/events.py) let other domains react in the same transaction:
- `booking.created` {"booking": Booking, "source": str}: a booking was made ("citizen", "rebook", …);
- `booking.cancelled` {"booking": Booking}: seats of `booking.slot_id` were freed;
- `booking.rescheduled` {"booking": Booking, "old_slot_id": str}: seats of the old slot were freed;
- `booking.excused` {"booking": Booking}: a missed booking was excused by a special-reason rebook.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import String, Table, case, delete, func, literal, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from yuyue.calendar.service import WorkCalendar, hall_calendar
from yuyue.catalogue.service import ServiceInfo, SlotSpec, day_slots, parse_slot_id, service_info
from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _dialect_insert
from yuyue.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable, ValidationFailed
from yuyue.identity.service import as_date, ban_until_query
from yuyue.kit.events import Event, emit
from yuyue.kit.http import rowcount
from yuyue.kit.idnumbers import valid_uscc
from yuyue.kit.masking import mask_name
from yuyue.models import Booking, BookingCounter, Citizen, IdempotencyKey, Slot
from yuyue.models.booking import LIVE_STATUSES
from yuyue.policy.service import (
    EffectivePolicy,
    cancel_deadline,
    checkin_window,
    day_opens_at,
    effective_policy,
    horizon_end,
    offsite_status,
    onsite_hold,
    onsite_status,
)

CHANNELS = ("web", "wechat", "app", "provincial_portal", "onsite", "api")
MAX_RANGE_DAYS = 92
IDEMPOTENCY_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class BookRequest:
    slot_id: str
    channel: str
    quantity: int = 1
    business_types: tuple[str, ...] = ()
    company_uscc: str | None = None
    company_name: str | None = None


@dataclass(frozen=True)
class Context:
    """What every booking rule needs about a service: its hall, policy and calendar."""

    info: ServiceInfo
    policy: EffectivePolicy
    calendar: WorkCalendar


async def context(session: AsyncSession, service_id: int) -> Context:
    info = await service_info(session, service_id)
    return Context(
        info, await effective_policy(session, info.hall_id), await hall_calendar(session, info.hall_id)
    )


# --- availability -------------------------------------------------------------------------------


# Availability answers are kept per process for at most AVAILABILITY_TTL seconds (decision 0010):
# an answer never shows a seat that went more than that long before it is served. The age counts
# from just before the query of `slots`, so a slow query cannot stretch it. A seat change made by
# this process (`_seat_generation`), a clock move or a catalogue/policy/calendar reload (new `ctx`)
# makes the entry stale at once.
AVAILABILITY_TTL = 0.5
_availability_cache: dict[tuple[int, date | None, date | None], tuple[float, int, Any, Any]] = {}
_seat_generation = [0]


def _seats_changed() -> None:
    _seat_generation[0] += 1


async def availability(
    session: AsyncSession, service_id: int, start: date | None, end: date | None
) -> dict[str, Any]:
    """All slots of a service over a date range in one query of `slots` (the rest is cached)."""
    ctx = await context(session, service_id)
    key = (service_id, start, end)
    hit = _availability_cache.get(key)
    stamp = time.monotonic()
    if hit is not None and stamp - hit[0] < AVAILABILITY_TTL and hit[1] == _seat_generation[0]:
        info, policy, calendar, offset = hit[2]
        if info is ctx.info and policy is ctx.policy and calendar is ctx.calendar and offset == clock.offset:
            return dict(hit[3])
    generation = _seat_generation[0]
    answer = await _availability(session, ctx, service_id, start, end)
    if len(_availability_cache) > 10_000:
        _availability_cache.clear()
    marker = (ctx.info, ctx.policy, ctx.calendar, clock.offset)
    _availability_cache[key] = (stamp, generation, marker, answer)
    return dict(answer)


async def _availability(
    session: AsyncSession, ctx: Context, service_id: int, start: date | None, end: date | None
) -> dict[str, Any]:
    if not ctx.info.active:
        raise NotFound(f"service {service_id} not found")
    now = clock.now()
    knobs = ctx.policy.knobs
    today = now.date()
    for given in (start, end):
        if given is not None and abs((given - today).days) > 366:
            raise ValidationFailed("from/to must lie within a year of today")
    first = start or today + timedelta(days=1)
    last = end or max(first, horizon_end(knobs, ctx.calendar, today))
    if last < first:
        raise ValidationFailed("'to' is before 'from'")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValidationFailed(f"a range covers at most {MAX_RANGE_DAYS} days")
    rows = (
        await session.execute(
            select(Slot.id, Slot.capacity, Slot.booked).where(
                Slot.service_id == service_id, Slot.day >= first, Slot.day <= last
            )
        )
    ).all()
    stored = {row.id: (row.capacity, row.booked) for row in rows}
    days: list[dict[str, Any]] = []
    current = first
    while current <= last:
        working = ctx.calendar.is_working(current)
        slots: list[dict[str, Any]] = []
        for spec in day_slots(ctx.info, current) if working else []:
            capacity, booked = stored.get(spec.id, (spec.capacity, 0))
            offsite = capacity - onsite_hold(knobs, capacity)
            remaining = max(0, offsite - booked)
            slots.append(
                {
                    "id": spec.id,
                    "start": spec.start.isoformat(),
                    "end": spec.end.isoformat(),
                    "capacity": offsite,
                    "remaining": remaining,
                    "status": offsite_status(
                        knobs, ctx.calendar, current, spec.start, spec.end, remaining, now
                    ),
                }
            )
        day: dict[str, Any] = {"date": current.isoformat(), "working_day": working, "slots": slots}
        if working:
            day["opens_at"] = day_opens_at(knobs, ctx.calendar, current).isoformat()
        days.append(day)
        current += timedelta(days=1)
    return {"service_id": service_id, "days": days}


# --- shaping ------------------------------------------------------------------------------------


def booking_view(
    booking: Booking, citizen: Citizen, ctx: Context, ticket: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A booking as API.md describes it; personal data always masked."""
    knobs = ctx.policy.knobs
    window_from, window_to = checkin_window(knobs, booking.slot_start, booking.slot_end)
    deadline = cancel_deadline(knobs, ctx.calendar, booking.slot_day, booking.slot_start, booking.slot_end)
    return {
        "number": booking.number,
        "status": booking.status,
        "service_id": booking.service_id,
        "service_name": ctx.info.name,
        "department": ctx.info.department,
        "hall_id": booking.hall_id,
        "hall_name": ctx.info.hall_name,
        "slot_id": booking.slot_id,
        "slot": {"start": booking.slot_start.isoformat(), "end": booking.slot_end.isoformat()},
        "quantity": booking.quantity,
        "channel": booking.channel,
        "business_types": list(booking.business_types or []),
        "bundle_of": list(ctx.info.bundle_of) if ctx.info.bundle_of else None,
        "applicant": {
            "name": mask_name(citizen.name),
            "id_number": citizen.id_masked,
            "phone": citizen.phone_masked,
        },
        "company": {"uscc": booking.company_uscc, "name": booking.company_name}
        if booking.company_uscc
        else None,
        "created_at": booking.created_at.isoformat(),
        "cancel_deadline": deadline.isoformat(),
        "checkin_window": {"from": window_from.isoformat(), "to": window_to.isoformat()},
        "rebook_of": booking.rebook_of,
        "ticket": ticket,
    }


async def view(session: AsyncSession, booking: Booking) -> dict[str, Any]:
    citizen = await session.get(Citizen, booking.citizen_id)
    assert citizen is not None
    ctx = await context(session, booking.service_id)
    return booking_view(booking, citizen, ctx, await _ticket(session, booking))


async def _ticket(session: AsyncSession, booking: Booking) -> dict[str, Any] | None:
    """The on-site ticket of a checked-in booking (API.md `ticket`); the on-site domain owns it."""
    if booking.status not in ("checked_in", "served"):
        return None
    from yuyue.onsite.service import ticket_of_booking  # the on-site domain owns tickets

    return await ticket_of_booking(session, booking.id)


# --- booking ------------------------------------------------------------------------------------


def _spec(ctx: Context, slot_id: str) -> SlotSpec:
    parsed = parse_slot_id(slot_id)
    if parsed is None or parsed[0] != ctx.info.id:
        raise NotFound(f"slot {slot_id!r} not found")
    start = parsed[1]
    if ctx.calendar.is_working(start.date()):
        for spec in day_slots(ctx.info, start.date()):
            if spec.start == start:
                return spec
    raise NotFound(f"slot {slot_id!r} not found")


async def resolve_slot(session: AsyncSession, slot_id: str) -> tuple[Context, SlotSpec]:
    parsed = parse_slot_id(slot_id)
    if parsed is None:
        raise NotFound(f"slot {slot_id!r} not found")
    try:
        ctx = await context(session, parsed[0])
    except NotFound:
        raise NotFound(f"slot {slot_id!r} not found") from None
    if not ctx.info.active:
        raise NotFound(f"slot {slot_id!r} not found")
    return ctx, _spec(ctx, slot_id)


def check_open(ctx: Context, spec: SlotSpec, channel: str, now: datetime) -> None:
    """Raise the API.md error for a slot that this channel may not book now."""
    knobs = ctx.policy.knobs
    if channel == "onsite":
        status = onsite_status(knobs, ctx.calendar, spec.day, spec.end, now)  # rule G10
    else:
        status = offsite_status(knobs, ctx.calendar, spec.day, spec.start, spec.end, 1, now)
    if status in ("past", "closed_for_booking"):
        raise Unprocessable("booking of this slot has closed", code="booking_closed")
    if status == "not_yet_open":
        if channel == "onsite":
            raise Unprocessable(
                f"on-site booking takes today's slots from {knobs.onsite_opens} on working days",
                code="not_open_yet",
            )
        opens = day_opens_at(knobs, ctx.calendar, spec.day)
        raise Unprocessable(
            f"this day opens for booking at {opens.isoformat()}",
            code="not_open_yet",
            opens_at=opens.isoformat(),
        )


def live_key(ctx: Context, citizen_id: int, service_id: int, day: date, company_uscc: str | None) -> str:
    """The one-live-booking key (rules T5, M10)."""
    if ctx.policy.knobs.one_live_per == "day":
        scope = ctx.policy.sources["one_live_per"]  # among the halls under the unit that set it
        who = f"co:{company_uscc}" if company_uscc else f"c:{citizen_id}"
        return f"{who}:d:{day.isoformat()}:u:{scope}"
    return f"c:{citizen_id}:s:{service_id}"


def _limit_error(ctx: Context) -> DomainError:
    if ctx.policy.knobs.one_live_per == "day":
        return Conflict(
            "one booking per person and day under this hall's policy (rule M10)", code="daily_limit"
        )
    return Conflict("you already hold a live booking of this service (rule T5)", code="already_booked")


async def _precheck(
    session: AsyncSession, citizen_id: int, key: str, ctx: Context
) -> tuple[Citizen, int, bool, date | None]:
    """One round trip: the citizen, their live-booking count, whether the live key is taken, and the
    last day of a ban in force over this hall (rules M9, G15)."""
    live = (
        select(func.count())
        .where(Booking.citizen_id == citizen_id, Booking.status.in_(LIVE_STATUSES))
        .scalar_subquery()
    )
    taken = (
        select(func.count())
        .where(Booking.live_key == key, Booking.status.in_(LIVE_STATUSES))
        .scalar_subquery()
    )
    banned = ban_until_query(citizen_id, ctx.info.hall_path).scalar_subquery()
    query = select(Citizen, live, taken, banned).where(Citizen.id == citizen_id)
    row = (await session.execute(query)).first()
    if row is None:
        raise Forbidden("unknown citizen")
    return row[0], int(row[1]), bool(row[2]), as_date(row[3])


async def _take_seats(
    session: AsyncSession, ctx: Context, spec: SlotSpec, quantity: int, onsite: bool
) -> None:
    """The conditional UPDATE: never more than the slot's limit, whatever runs beside it."""
    share = 0 if onsite else ctx.policy.knobs.onsite_share_pct  # rule G10: on-site share held back
    statement = text(
        "UPDATE slots SET booked = booked + :n "
        "WHERE id = :id AND booked + :n <= capacity - (capacity * :pct) / 100 RETURNING booked"
    )
    params = {"n": quantity, "id": spec.id, "pct": share}
    _seats_changed()
    if (await session.execute(statement, params)).first() is not None:
        return
    # Missed: the slot may have no row yet. Create it (or wait for a concurrent creator to commit),
    # then ask again with a fresh snapshot; that second answer decides.
    await _materialise(session, ctx, spec)
    if (await session.execute(statement, params)).first() is not None:
        return
    raise Conflict("not enough seats left in this slot", code="slot_full")


async def _materialise(session: AsyncSession, ctx: Context, spec: SlotSpec) -> bool:
    """Create the slot's row on first use; False when it already existed."""
    insert = _dialect_insert(session, Slot).values(
        id=spec.id,
        service_id=ctx.info.id,
        day=spec.day,
        start=spec.start,
        end=spec.end,
        capacity=spec.capacity,
        booked=0,
    )
    result = await session.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
    return rowcount(result) > 0


async def _release_seats(session: AsyncSession, slot_id: str, quantity: int) -> None:
    _seats_changed()
    await session.execute(
        update(Slot)
        .where(Slot.id == slot_id)
        .values(booked=Slot.booked - quantity)
        .execution_options(synchronize_session=False)
    )


async def _next_number(session: AsyncSession, ctx: Context, day: date) -> str:
    """Rule M12: I + hall code + slot date + 5-digit sequence within that hall and date."""
    insert = _dialect_insert(session, BookingCounter).values(hall_id=ctx.info.hall_id, day=day, n=1)
    statement = insert.on_conflict_do_update(
        index_elements=["hall_id", "day"], set_={"n": BookingCounter.n + 1}
    ).returning(BookingCounter.n)
    sequence = int((await session.execute(statement)).scalar_one())
    if sequence > 99_999:
        raise Conflict("this hall's booking numbers for the day are exhausted", code="slot_full")
    return f"I{ctx.info.hall_code}{day:%Y%m%d}{sequence:05d}"


async def _insert_booking(
    session: AsyncSession, ctx: Context, day: date, values: dict[str, Any]
) -> tuple[int, str]:
    """Number (rule M12) and insert the booking; returns its id and number (decisions 0011, 0012).

    A Core INSERT … RETURNING instead of the ORM unit of work. On PostgreSQL the counter upsert and
    the INSERT are one statement (a data-modifying CTE), so the hot counter row of the hall and day
    is locked for one round trip fewer; SQLite takes the two statements."""
    table = cast(Table, Booking.__table__)
    if session.bind is None or session.bind.dialect.name != "postgresql":
        number = await _next_number(session, ctx, day)
        inserted = await session.execute(table.insert().values(number=number, **values).returning(table.c.id))
        return int(inserted.scalar_one()), number
    counter = (
        postgresql.insert(BookingCounter)
        .values(hall_id=ctx.info.hall_id, day=day, n=1)
        .on_conflict_do_update(index_elements=["hall_id", "day"], set_={"n": BookingCounter.n + 1})
        .returning(BookingCounter.n)
        .cte("counter")
    )
    seq = counter.c.n
    digits = case((seq <= 99_999, func.lpad(sql_cast(seq, String), 5, "0")), else_=sql_cast(seq, String))
    prefix = f"I{ctx.info.hall_code}{day:%Y%m%d}"
    numbered = literal(prefix) + digits
    columns = [literal(value, table.c[name].type).label(name) for name, value in values.items()]
    statement = (
        table.insert()
        .from_select(["number", *values], select(numbered.label("number"), *columns).select_from(counter))
        .returning(table.c.id, table.c.number)
    )
    row = (await session.execute(statement)).one()
    if len(row.number) > len(prefix) + 5:
        raise Conflict("this hall's booking numbers for the day are exhausted", code="slot_full")
    return int(row.id), str(row.number)


async def book(
    session: AsyncSession,
    citizen_id: int,
    request: BookRequest,
    *,
    rebook_of: str | None = None,
    reason: str | None = None,
    source: str = "citizen",
) -> dict[str, Any]:
    """Book a slot (one transaction: checks, one conditional UPDATE, counter, INSERT). `source` tells
    event subscribers who asked: "citizen", "rebook", "waitlist", "staff"…"""
    now = clock.now()
    ctx, spec = await resolve_slot(session, request.slot_id)
    info = ctx.info
    if request.channel not in CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(CHANNELS)}")
    if request.quantity > info.max_batch:  # rule G16
        raise Unprocessable(
            f"quantity above this service's max batch of {info.max_batch}", code="quantity_exceeds_max"
        )
    unknown = sorted(set(request.business_types) - set(info.business_types))
    if unknown:  # rule M11
        raise ValidationFailed(f"business_types not offered by this service: {', '.join(unknown)}")
    if request.company_uscc is not None and not valid_uscc(request.company_uscc):
        raise Unprocessable("company.uscc fails the GB 32100 check", code="invalid_uscc")
    if info.hall_mode == "self_service":  # rule M2: self-service halls take no bookings
        raise Unprocessable(
            "this hall takes no bookings: use its self-service machines or online handling",
            code="booking_closed",
        )
    check_open(ctx, spec, request.channel, now)
    uscc = request.company_uscc.upper() if request.company_uscc else None
    key = live_key(ctx, citizen_id, info.id, spec.day, uscc)
    citizen, live_count, taken, banned_until = await _precheck(session, citizen_id, key, ctx)
    if banned_until is not None:  # rules M9, G15
        raise Forbidden(
            f"booking is banned until {banned_until.isoformat()}",
            code="banned",
            banned_until=banned_until.isoformat(),
        )
    if taken:
        raise _limit_error(ctx)
    if live_count >= ctx.policy.knobs.max_live_bookings:
        raise Conflict(
            f"at most {ctx.policy.knobs.max_live_bookings} live bookings at once", code="booking_cap"
        )
    await _take_seats(session, ctx, spec, request.quantity, request.channel == "onsite")
    values: dict[str, Any] = dict(
        citizen_id=citizen_id,
        service_id=info.id,
        hall_id=info.hall_id,
        slot_id=spec.id,
        slot_day=spec.day,
        slot_start=spec.start,
        slot_end=spec.end,
        quantity=request.quantity,
        channel=request.channel,
        business_types=list(request.business_types),
        company_uscc=uscc,
        company_name=request.company_name if uscc else None,
        status="booked",
        live_key=key,
        rebook_of=rebook_of,
        rebooked=False,
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    try:
        booking_id, values["number"] = await _insert_booking(session, ctx, spec.day, values)
    except IntegrityError:
        # A concurrent booking took the live key between the pre-check and here: the index decides.
        raise _limit_error(ctx) from None
    booking = Booking(id=booking_id, **values)
    make_transient_to_detached(booking)
    session.add(booking)
    await emit(session, Event("booking.created", {"booking": booking, "source": source}))
    return booking_view(booking, citizen, ctx)


async def own_booking(session: AsyncSession, citizen_id: int, number: str, *, lock: bool = False) -> Booking:
    query = select(Booking).where(Booking.number == number, Booking.citizen_id == citizen_id)
    if lock:
        query = query.with_for_update()
    booking = (await session.execute(query)).scalar_one_or_none()
    if booking is None:
        raise NotFound("booking not found")  # never a hint that another citizen's number exists
    return booking


async def list_bookings(session: AsyncSession, citizen_id: int) -> list[dict[str, Any]]:
    citizen = await session.get(Citizen, citizen_id)
    if citizen is None:
        return []
    rows = (
        await session.execute(
            select(Booking)
            .where(Booking.citizen_id == citizen_id)
            .order_by(Booking.created_at.desc(), Booking.id.desc())
        )
    ).scalars()
    return [
        booking_view(b, citizen, await context(session, b.service_id), await _ticket(session, b))
        for b in rows
    ]


async def get_booking(session: AsyncSession, citizen_id: int, number: str) -> dict[str, Any]:
    return await view(session, await own_booking(session, citizen_id, number))


async def cancel(session: AsyncSession, citizen_id: int, number: str) -> dict[str, Any]:
    now = clock.now()
    booking = await own_booking(session, citizen_id, number, lock=True)
    if booking.status != "booked":
        raise Unprocessable(f"a {booking.status} booking cannot be cancelled", code="not_cancellable")
    ctx = await context(session, booking.service_id)
    deadline = cancel_deadline(
        ctx.policy.knobs, ctx.calendar, booking.slot_day, booking.slot_start, booking.slot_end
    )
    if now > deadline:  # rules G13, T8, M8
        raise Unprocessable(
            f"cancel deadline was {deadline.isoformat()}",
            code="cancel_too_late",
            cancel_deadline=deadline.isoformat(),
        )
    changed = await session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == "booked")
        .values(status="cancelled", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Unprocessable("booking is no longer cancellable", code="not_cancellable")
    await _release_seats(session, booking.slot_id, booking.quantity)  # the seat is free at once
    booking.status, booking.updated_at = "cancelled", now
    await emit(session, Event("booking.cancelled", {"booking": booking}))
    return await view(session, booking)


async def reschedule(session: AsyncSession, citizen_id: int, number: str, new_slot_id: str) -> dict[str, Any]:
    """Atomic: the old seat is freed only if the new one is taken; the number stays."""
    now = clock.now()
    booking = await own_booking(session, citizen_id, number, lock=True)
    if booking.status != "booked":
        raise Unprocessable(f"a {booking.status} booking cannot be rescheduled", code="not_cancellable")
    ctx = await context(session, booking.service_id)
    deadline = cancel_deadline(
        ctx.policy.knobs, ctx.calendar, booking.slot_day, booking.slot_start, booking.slot_end
    )
    if now > deadline:
        raise Unprocessable(
            f"change deadline was {deadline.isoformat()}",
            code="cancel_too_late",
            cancel_deadline=deadline.isoformat(),
        )
    parsed = parse_slot_id(new_slot_id)
    if parsed is not None and parsed[0] != booking.service_id:
        raise ValidationFailed("slot_id must be a slot of the same service")
    spec = _spec(ctx, new_slot_id)
    if spec.id == booking.slot_id:
        raise ValidationFailed("slot_id is the booking's current slot")
    channel = booking.channel
    check_open(ctx, spec, channel, now)
    key = live_key(ctx, citizen_id, booking.service_id, spec.day, booking.company_uscc)
    # Lock slot rows in id order so two opposite reschedules cannot deadlock.
    if spec.id < booking.slot_id:
        await _take_seats(session, ctx, spec, booking.quantity, channel == "onsite")
        await _release_seats(session, booking.slot_id, booking.quantity)
    else:
        await _release_seats(session, booking.slot_id, booking.quantity)
        await _take_seats(session, ctx, spec, booking.quantity, channel == "onsite")
    old_slot_id = booking.slot_id
    booking.slot_id, booking.slot_day, booking.slot_start, booking.slot_end = (
        spec.id,
        spec.day,
        spec.start,
        spec.end,
    )
    booking.live_key, booking.updated_at = key, now
    try:
        await session.flush()
    except IntegrityError:
        raise _limit_error(ctx) from None
    await emit(session, Event("booking.rescheduled", {"booking": booking, "old_slot_id": old_slot_id}))
    return await view(session, booking)


async def rebook(
    session: AsyncSession, citizen_id: int, number: str, new_slot_id: str, reason: str
) -> dict[str, Any]:
    """Rules T9, G14: after a missed slot, on its day from its start until 24:00, one rebook of the
    same service at the same hall; the miss becomes `excused` (no penalty)."""
    now = clock.now()
    missed = await own_booking(session, citizen_id, number, lock=True)
    if missed.status not in ("booked", "no_show") or missed.rebooked or missed.rebook_of is not None:
        raise Unprocessable(
            "this booking cannot be rebooked (one special-reason rebook per missed booking, "
            "and a rebook cannot itself be rebooked)",
            code="not_rebookable",
        )
    if not (missed.slot_start <= now < at(missed.slot_day + timedelta(days=1), "00:00")):
        raise Unprocessable(
            "a missed slot may be rebooked on its day, from its start until 24:00", code="not_rebookable"
        )
    parsed = parse_slot_id(new_slot_id)
    if parsed is None or parsed[0] != missed.service_id:
        raise ValidationFailed("slot_id must be a slot of the same service at the same hall")
    # The miss is excused first, so its live key is free for the rebook (and, with penalties, any
    # ban it triggered is recomputed before the rebook is checked).
    await session.execute(
        update(Booking)
        .where(Booking.id == missed.id)
        .values(status="excused", rebooked=True, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if missed.status == "booked":
        await _release_seats(session, missed.slot_id, missed.quantity)
    missed.status, missed.rebooked = "excused", True
    await emit(session, Event("booking.excused", {"booking": missed}))
    day = parsed[1].date()
    channel = "onsite" if day == now.date() else ("web" if missed.channel == "onsite" else missed.channel)
    request = BookRequest(
        slot_id=new_slot_id,
        channel=channel,
        quantity=missed.quantity,
        business_types=tuple(missed.business_types or ()),
        company_uscc=missed.company_uscc,
        company_name=missed.company_name,
    )
    return await book(session, citizen_id, request, rebook_of=missed.number, reason=reason, source="rebook")


# --- idempotency --------------------------------------------------------------------------------


def request_hash(method_path: str, body: Any) -> str:
    canonical = json.dumps({"p": method_path, "b": body}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def idempotent(
    session: AsyncSession,
    citizen_id: int,
    key: str | None,
    fingerprint: str,
    work: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> tuple[int, dict[str, Any]]:
    """API.md: the same key and body from the same citizen answers the first answer again and
    changes nothing; another body is `idempotency_key_reused`. The key row is written first in the
    same transaction, so a concurrent duplicate waits on its primary key and then replays."""
    if key is None:
        return await work()
    if not key or len(key) > 200:
        raise ValidationFailed("Idempotency-Key must be 1 to 200 characters")
    now = clock.now()
    existing = await session.get(IdempotencyKey, (citizen_id, key))
    if existing is not None and existing.created_at < now - IDEMPOTENCY_TTL:
        await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.citizen_id == citizen_id, IdempotencyKey.key == key)
        )
        existing = None
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        async with session.begin_nested():
            session.add(
                IdempotencyKey(citizen_id=citizen_id, key=key, request_hash=fingerprint, created_at=now)
            )
            await session.flush()
    except IntegrityError:
        await session.rollback()
        again = await session.get(IdempotencyKey, (citizen_id, key), populate_existing=True)
        if again is None:
            raise Conflict(
                "a request with this Idempotency-Key is in progress; retry", code="conflict"
            ) from None
        return _replay(again, fingerprint)
    status, body = await work()
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.citizen_id == citizen_id, IdempotencyKey.key == key)
        .values(status_code=status, body=json.dumps(body, ensure_ascii=False))
        .execution_options(synchronize_session=False)
    )
    return status, body


def _replay(row: IdempotencyKey, fingerprint: str) -> tuple[int, dict[str, Any]]:
    if row.request_hash != fingerprint:
        raise Unprocessable(
            "this Idempotency-Key was used with another request", code="idempotency_key_reused"
        )
    if row.status_code is None or row.body is None:
        raise Conflict("a request with this Idempotency-Key is in progress; retry", code="conflict")
    return row.status_code, json.loads(row.body)
