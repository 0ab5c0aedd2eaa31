"""Tickets: check-in of bookings (rules T3, M7), walk-in (rule M2) and green-channel (rules G10,
M3) tickets, and the slip printed for the citizen.

Integrity lives in the database: a booking becomes `checked_in` by one conditional UPDATE (so two
kiosks checking one citizen in at once issue one ticket); call numbers come from a per-hall, day and
prefix counter row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.status import BookingStatus, move
from yuyue.booking.views import TicketView, ticket_view
from yuyue.calendar.service import hall_day
from yuyue.catalogue.service import hours_tuple, service_info
from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import DomainError, NotFound, Unprocessable
from yuyue.identity.service import id_lookup_hash
from yuyue.kit.http import rowcount
from yuyue.kit.idnumbers import normalise_id, parse_resident_id
from yuyue.models import Booking, Citizen, Ticket, TicketCounter, Unit
from yuyue.onsite import stream
from yuyue.onsite.queue import queue_state, waiting_line
from yuyue.onsite.staff import Actor, hall_for, staff_only
from yuyue.policy.service import checkin_window, effective_policy

ELDERLY_AGE = 60  # rules G10, M3
PREFIX = {"green": "G", "appointment": "A", "walk_in": "W"}


class NoBooking(DomainError):
    code, status = "no_booking", 404


def _id_hash(secret: str, id_type: str, id_number: str) -> tuple[str, str]:
    number = normalise_id(id_type, id_number)
    if number is None:
        raise Unprocessable(f"id_number is not a valid {id_type}", code="invalid_id_number")
    return number, id_lookup_hash(secret, id_type, number)


async def _views(session: AsyncSession, hall: Unit, tickets: list[Ticket]) -> list[TicketView]:
    waits = {t.id: s for t, s in (await queue_state(session, hall))[0]}
    return [ticket_view(t, waits.get(t.id)) for t in tickets]


async def _new_ticket(
    session: AsyncSession,
    hall: Unit,
    kind: str,
    service_id: int,
    id_hash: str,
    now: datetime,
    *,
    green: str | None = None,
    booking: Booking | None = None,
) -> Ticket:
    prefix = PREFIX[kind]
    day = now.date()
    statement = (
        _insert(session, TicketCounter)
        .values(hall_id=hall.id, day=day, prefix=prefix, n=1)
        .on_conflict_do_update(index_elements=["hall_id", "day", "prefix"], set_={"n": TicketCounter.n + 1})
        .returning(TicketCounter.n)
    )
    sequence = int((await session.execute(statement)).scalar_one())
    call_number = f"{prefix}{sequence:03d}"
    info = await service_info(session, service_id)
    items = [{"service_id": sid, "finished": False} for sid in info.bundle_of] if info.bundle_of else None
    ticket = Ticket(
        number=f"{hall.code}{day:%Y%m%d}{call_number}",
        call_number=call_number,
        hall_id=hall.id,
        day=day,
        kind=kind,
        green=green,
        service_id=service_id,
        booking_id=booking.id if booking else None,
        booking_number=booking.number if booking else None,
        booked_at=booking.created_at if booking else None,
        slot_start=booking.slot_start if booking else None,
        slot_end=booking.slot_end if booking else None,
        id_hash=id_hash,
        status="waiting",
        counter_id=None,
        items=items,
        issued_at=now,
        called_at=None,
        finished_at=None,
    )
    session.add(ticket)
    await session.flush()
    await stream.publish(session, hall.id, {"type": "change"})
    return ticket


async def check_in(
    session: AsyncSession, secret: str, actor: Actor, hall_id: str, id_type: str, id_number: str
) -> tuple[int, list[TicketView]]:
    """Rules T3, M7: one appointment ticket per booking at this hall whose check-in window is open
    now (`[from, to)`); each booking becomes `checked_in`. A repeated check-in answers the tickets
    already issued (200)."""
    hall = await hall_for(session, actor, hall_id)
    _, id_hash = _id_hash(secret, id_type, id_number)
    now = clock.now()
    citizen_id = (
        await session.execute(
            select(Citizen.id).where(Citizen.id_type == id_type, Citizen.id_hash == id_hash)
        )
    ).scalar_one_or_none()
    if citizen_id is None:
        raise NoBooking("no booking at this hall for this ID")
    bookings = list(
        (
            await session.execute(
                select(Booking)
                .where(
                    Booking.citizen_id == citizen_id,
                    Booking.hall_id == hall.id,
                    Booking.status.in_(("booked", "checked_in", "no_show")),
                    Booking.slot_day >= now.date() - timedelta(days=1),
                )
                .order_by(Booking.slot_start, Booking.id)
            )
        ).scalars()
    )
    knobs = (await effective_policy(session, hall.id)).knobs
    windows = {b.id: checkin_window(knobs, b.slot_start, b.slot_end) for b in bookings}
    booked = [b for b in bookings if b.status == "booked"]
    open_now = [b for b in booked if windows[b.id][0] <= now < windows[b.id][1]]
    if not open_now:
        done = [b for b in bookings if b.status == "checked_in" and b.slot_day == now.date()]
        if done:
            tickets = list(
                (
                    await session.execute(select(Ticket).where(Ticket.booking_id.in_([b.id for b in done])))
                ).scalars()
            )
            return 200, await _views(session, hall, tickets)
        future = [windows[b.id][0] for b in booked if now < windows[b.id][0]]
        if future:
            raise Unprocessable(
                f"check-in opens at {min(future).isoformat()}",
                code="checkin_too_early",
                checkin_from=min(future).isoformat(),
            )
        if booked or any(b.status == "no_show" and b.slot_day == now.date() for b in bookings):
            # rules T3, M7: late, no appointment ticket (the sweep may already have marked the miss)
            raise Unprocessable("the check-in window has closed (rules T3, M7)", code="checkin_too_late")
        raise NoBooking("no booking at this hall for this ID")
    issued: list[Ticket] = []
    for booking in open_now:
        changed = await session.execute(move(booking.id, BookingStatus.CHECKED_IN, now))
        if rowcount(changed) != 1:
            continue  # checked in at the same moment elsewhere: that one issued the ticket
        booking.status, booking.updated_at = "checked_in", now
        issued.append(
            await _new_ticket(session, hall, "appointment", booking.service_id, id_hash, now, booking=booking)
        )
    if not issued:
        raise NoBooking("these bookings were just checked in elsewhere")
    return 201, await _views(session, hall, issued)


async def hall_open(session: AsyncSession, hall: Unit, now: datetime, before_open_min: int = 0) -> bool:
    """The hall works today, is open (from its opening time, less `YUYUE_TICKETS_BEFORE_OPEN_MIN`)
    and has not closed yet: no ticket at 04:00 for a hall that opens at 09:00."""
    hours = await hall_day(session, hall.id, hours_tuple(hall.hours), now.date())  # extra days too
    if not hours:
        return False
    opens = at(now.date(), min(start for start, _ in hours)) - timedelta(minutes=before_open_min)
    return opens <= now < at(now.date(), max(end for _, end in hours))


async def issue_ticket(
    session: AsyncSession,
    secret: str,
    actor: Actor,
    hall_id: str,
    service_id: int,
    id_type: str,
    id_number: str,
    green: str | None,
    before_open_min: int = 0,
) -> TicketView:
    """Walk-in (rule M2, as docs/rules.md reads the hall modes) or green-channel (rules G10, M3) ticket."""
    hall = await hall_for(session, actor, hall_id)
    try:
        info = await service_info(session, service_id)
    except NotFound:
        raise NotFound(f"service {service_id} not found at this hall") from None
    if info.hall_id != hall.id or not info.active:
        raise NotFound(f"service {service_id} not found at this hall")
    if hall.mode == "self_service":
        raise Unprocessable("a self-service hall issues no tickets (rule M2)", code="walk_in_not_allowed")
    number, id_hash = _id_hash(secret, id_type, id_number)
    now = clock.now()
    if not await hall_open(session, hall, now, before_open_min):
        raise Unprocessable("the hall is closed now", code="hall_closed")
    if green is not None:
        if green in ("disabled", "military"):
            staff_only(actor)  # staff confirms the document (rules G10, M3)
        if green == "elderly":
            resident = parse_resident_id(number) if id_type == "resident_id" else None
            if resident is None or _age(resident.birth_date, now.date()) < ELDERLY_AGE:
                raise Unprocessable(
                    f"the elderly green channel needs a resident ID of someone {ELDERLY_AGE} or older",
                    code="not_eligible",
                )
        ticket = await _new_ticket(session, hall, "green", service_id, id_hash, now, green=green)
    else:
        if hall.mode == "appointment_first" and not info.walk_in_allowed:
            raise Unprocessable(
                "this appointment-first hall takes walk-ins only for services that allow them (rule M2)",
                code="walk_in_not_allowed",
            )
        ticket = await _new_ticket(session, hall, "walk_in", service_id, id_hash, now)
    return (await _views(session, hall, [ticket]))[0]


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


async def hall_ticket(session: AsyncSession, actor: Actor, hall_id: str, number: str) -> tuple[Ticket, Unit]:
    hall = await hall_for(session, actor, hall_id)
    staff_only(actor)
    ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one_or_none()
    if ticket is None or ticket.hall_id != hall.id:
        raise NotFound("ticket not found")
    return ticket, hall


@dataclass(slots=True, kw_only=True)
class TicketSlip:
    """A ticket as printed for the citizen (the hall console's slip)."""

    ticket: TicketView
    ahead: int | None
    service: str
    department: str
    hall: str
    hall_address: str


async def ticket_slip(session: AsyncSession, actor: Actor, hall_id: str, number: str) -> TicketSlip:
    """A ticket as printed for the citizen: number, service, hall, time, people ahead, wait."""
    ticket, hall = await hall_ticket(session, actor, hall_id, number)
    line, _ = await waiting_line(session, hall)
    place = next((e for e in line if e.ticket.id == ticket.id), None)
    info = await service_info(session, ticket.service_id)
    return TicketSlip(
        ticket=ticket_view(ticket, place.wait_s if place else None),
        ahead=place.ahead if place else None,
        service=info.name,
        department=info.department,
        hall=hall.name,
        hall_address=hall.address or "",
    )
