"""Bookings and tickets as docs/api.md shows them (personal data always masked), and the citizen's
reads of their own bookings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.repository import own_booking
from yuyue.booking.rules import Context, context
from yuyue.models import Booking, Citizen, Ticket
from yuyue.policy.service import cancel_deadline, checkin_window


def booking_view(
    booking: Booking, citizen: Citizen, ctx: Context, ticket: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A booking as docs/api.md describes it; personal data always masked."""
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
            "name": citizen.name_masked,
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
        "cancelled_by": booking.cancelled_by,
    }


async def view(session: AsyncSession, booking: Booking) -> dict[str, Any]:
    citizen = await session.get(Citizen, booking.citizen_id)
    assert citizen is not None
    ctx = await context(session, booking.service_id)
    return booking_view(booking, citizen, ctx, await _ticket(session, booking))


async def _ticket(session: AsyncSession, booking: Booking) -> dict[str, Any] | None:
    """The on-site ticket of a checked-in booking (docs/api.md `ticket`). The on-site domain issues
    and calls tickets; a booking only shows the one its check-in got."""
    if booking.status not in ("checked_in", "served"):
        return None
    ticket = (
        await session.execute(select(Ticket).where(Ticket.booking_id == booking.id))
    ).scalar_one_or_none()
    return ticket_view(ticket) if ticket is not None else None


def ticket_view(ticket: Ticket, wait: int | None = None) -> dict[str, Any]:
    """A ticket as the contract shows it (docs/api.md "On site"), in a booking and on site alike."""
    return {
        "number": ticket.number,
        "call_number": ticket.call_number,
        "kind": ticket.kind,
        "green": ticket.green,
        "service_id": ticket.service_id,
        "appointment_number": ticket.booking_number,
        "status": ticket.status,
        "counter_id": ticket.counter_id,
        "issued_at": ticket.issued_at.isoformat(),
        "called_at": ticket.called_at.isoformat() if ticket.called_at else None,
        "finished_at": ticket.finished_at.isoformat() if ticket.finished_at else None,
        "estimated_wait_s": wait,
        "items": [dict(item) for item in ticket.items] if ticket.items else None,
    }


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
