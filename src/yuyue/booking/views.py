"""Bookings and tickets as docs/api.md shows them (personal data always masked), and the citizen's
reads of their own bookings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.repository import own_booking
from yuyue.booking.rules import Context, context
from yuyue.models import Booking, Citizen, Ticket
from yuyue.policy.service import cancel_deadline, checkin_window


@dataclass(slots=True, kw_only=True)
class Times:
    start: str
    end: str


@dataclass(slots=True, kw_only=True)
class Window:
    from_: str  # "from" in JSON
    to: str


@dataclass(slots=True, kw_only=True)
class MaskedPerson:
    name: str
    id_number: str
    phone: str


@dataclass(slots=True, kw_only=True)
class Company:
    uscc: str
    name: str | None


@dataclass(slots=True, kw_only=True)
class TicketItem:
    service_id: int
    finished: bool


@dataclass(slots=True, kw_only=True)
class TicketView:
    """A ticket as the contract shows it (docs/api.md "On site"); checked by `TicketOut`."""

    number: str
    call_number: str
    kind: str
    green: str | None
    service_id: int
    appointment_number: str | None
    status: str
    counter_id: int | None
    issued_at: str
    called_at: str | None
    finished_at: str | None
    estimated_wait_s: int | None
    items: list[TicketItem] | None


@dataclass(slots=True, kw_only=True)
class BookingView:
    """A booking as docs/api.md describes it, personal data masked; checked by `BookingOut`."""

    number: str
    status: str
    service_id: int
    service_name: str
    department: str
    hall_id: str
    hall_name: str
    slot_id: str
    slot: Times
    quantity: int
    channel: str
    business_types: list[str]
    bundle_of: list[int] | None
    applicant: MaskedPerson
    company: Company | None
    created_at: str
    cancel_deadline: str
    checkin_window: Window
    rebook_of: str | None
    ticket: TicketView | None
    cancelled_by: str | None


class Masked(Protocol):
    """What a booking's answer shows of its applicant: a `Citizen`, or the masks the one-trip
    booking statement read (`booking.repository.CitizenMasks`)."""

    @property
    def name_masked(self) -> str: ...
    @property
    def id_masked(self) -> str: ...
    @property
    def phone_masked(self) -> str: ...


def booking_of(
    booking: Booking, citizen: Masked, ctx: Context, ticket: TicketView | None = None
) -> BookingView:
    """A booking as docs/api.md describes it; personal data always masked."""
    knobs = ctx.policy.knobs
    window_from, window_to = checkin_window(knobs, booking.slot_start, booking.slot_end)
    deadline = cancel_deadline(knobs, ctx.calendar, booking.slot_day, booking.slot_start, booking.slot_end)
    return BookingView(
        number=booking.number,
        status=booking.status,
        service_id=booking.service_id,
        service_name=ctx.info.name,
        department=ctx.info.department,
        hall_id=booking.hall_id,
        hall_name=ctx.info.hall_name,
        slot_id=booking.slot_id,
        slot=Times(start=booking.slot_start.isoformat(), end=booking.slot_end.isoformat()),
        quantity=booking.quantity,
        channel=booking.channel,
        business_types=list(booking.business_types or []),
        bundle_of=list(ctx.info.bundle_of) if ctx.info.bundle_of else None,
        applicant=MaskedPerson(
            name=citizen.name_masked, id_number=citizen.id_masked, phone=citizen.phone_masked
        ),
        company=Company(uscc=booking.company_uscc, name=booking.company_name)
        if booking.company_uscc
        else None,
        created_at=booking.created_at.isoformat(),
        cancel_deadline=deadline.isoformat(),
        checkin_window=Window(from_=window_from.isoformat(), to=window_to.isoformat()),
        rebook_of=booking.rebook_of,
        ticket=ticket,
        cancelled_by=booking.cancelled_by,
    )


def as_json(view: BookingView) -> dict[str, Any]:
    """A booking view as the JSON object the contract shows: the answer the change commands
    (book, cancel, reschedule, rebook) return and an Idempotency-Key stores. Written out, not
    `dataclasses.asdict` (forty times slower: it deep-copies), as it is on the booking path;
    tests/test_typed_answers.py checks it against `BookingOut` byte for byte."""
    company, window, ticket = view.company, view.checkin_window, view.ticket
    return {
        "number": view.number,
        "status": view.status,
        "service_id": view.service_id,
        "service_name": view.service_name,
        "department": view.department,
        "hall_id": view.hall_id,
        "hall_name": view.hall_name,
        "slot_id": view.slot_id,
        "slot": {"start": view.slot.start, "end": view.slot.end},
        "quantity": view.quantity,
        "channel": view.channel,
        "business_types": view.business_types,
        "bundle_of": view.bundle_of,
        "applicant": {
            "name": view.applicant.name,
            "id_number": view.applicant.id_number,
            "phone": view.applicant.phone,
        },
        "company": {"uscc": company.uscc, "name": company.name} if company else None,
        "created_at": view.created_at,
        "cancel_deadline": view.cancel_deadline,
        "checkin_window": {"from": window.from_, "to": window.to},
        "rebook_of": view.rebook_of,
        "ticket": asdict(ticket) if ticket else None,
        "cancelled_by": view.cancelled_by,
    }


def booking_view(booking: Booking, citizen: Masked, ctx: Context) -> dict[str, Any]:
    """`booking_of` as JSON (see `as_json`)."""
    return as_json(booking_of(booking, citizen, ctx))


async def read(session: AsyncSession, booking: Booking) -> BookingView:
    """A stored booking's view, with its ticket once checked in."""
    citizen = await session.get(Citizen, booking.citizen_id)
    assert citizen is not None
    ctx = await context(session, booking.service_id)
    return booking_of(booking, citizen, ctx, await _ticket(session, booking))


async def view(session: AsyncSession, booking: Booking) -> dict[str, Any]:
    """`read` as JSON (see `as_json`)."""
    return as_json(await read(session, booking))


async def _ticket(session: AsyncSession, booking: Booking) -> TicketView | None:
    """The on-site ticket of a checked-in booking (docs/api.md `ticket`). The on-site domain issues
    and calls tickets; a booking only shows the one its check-in got."""
    if booking.status not in ("checked_in", "served"):
        return None
    ticket = (
        await session.execute(select(Ticket).where(Ticket.booking_id == booking.id))
    ).scalar_one_or_none()
    return ticket_view(ticket) if ticket is not None else None


def ticket_view(ticket: Ticket, wait: int | None = None) -> TicketView:
    """A ticket as the contract shows it (docs/api.md "On site"), in a booking and on site alike."""
    return TicketView(
        number=ticket.number,
        call_number=ticket.call_number,
        kind=ticket.kind,
        green=ticket.green,
        service_id=ticket.service_id,
        appointment_number=ticket.booking_number,
        status=ticket.status,
        counter_id=ticket.counter_id,
        issued_at=ticket.issued_at.isoformat(),
        called_at=ticket.called_at.isoformat() if ticket.called_at else None,
        finished_at=ticket.finished_at.isoformat() if ticket.finished_at else None,
        estimated_wait_s=wait,
        items=[TicketItem(service_id=item["service_id"], finished=item["finished"]) for item in ticket.items]
        if ticket.items
        else None,
    )


async def list_bookings(session: AsyncSession, citizen_id: int) -> list[BookingView]:
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
        booking_of(b, citizen, await context(session, b.service_id), await _ticket(session, b)) for b in rows
    ]


async def get_booking(session: AsyncSession, citizen_id: int, number: str) -> BookingView:
    return await read(session, await own_booking(session, citizen_id, number))
