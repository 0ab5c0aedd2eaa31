"""A closed day that has bookings (docs/rules.md "A closed day that has bookings", docs/api.md
"Administration: calendar").

When a day stops being a working day for halls that already sold it — a hall's closure (a typhoon
signal, a power cut) or a national override making it non-working — the calendar announces
`day.closed` (`yuyue.calendar.service.DayClosed`) and this module cancels the day's live bookings in
the same transaction, `cancelled_by: "hall"`. Such a cancel:

- frees nothing for resale: the day is closed, so it has no slots to sell; the seats leave
  `slots.booked` (its invariant), and the waiting list is not offered them (no `booking.cancelled`);
- texts the citizen the reason and where to book again (`booking.cancelled_by_hall`, subscribed by
  `yuyue.notify.closures`);
- is never a no-show: the booking is no longer `booked` when the sweep looks; a booking that slipped
  in while a closure was being committed is cancelled by the sweep itself (`cancel_if_closed`), never
  marked.

A closure is allowed up to and during the day (a same-day closure stops check-in and tickets at once:
the bookings are no longer live, and the hall no longer works that day). Days already past cancel
nothing. Bookings already `checked_in` are not cancelled (decision 0093): their citizens are in the
hall holding a ticket, which stays in the queue to be called, skipped or finished by the counters;
only what is still to come (`booked`) is cancelled and texted.

Events: `booking.cancelled_by_hall` {"booking": Booking, "reason": str}.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.inventory import return_seats
from yuyue.booking.status import BookingStatus, move
from yuyue.calendar.service import DayClosed, service_calendar
from yuyue.catalogue.service import service_info
from yuyue.clock import clock
from yuyue.kit.events import Event, emit, subscribe
from yuyue.kit.http import rowcount
from yuyue.models import Booking, CalendarDay, Closure


async def live_bookings_of_day(session: AsyncSession, day: date, hall_ids: list[str] | None) -> list[Booking]:
    """The bookings of `day` a closure cancels (in the given halls, or all), oldest first: those still
    `booked`; a checked-in citizen keeps the ticket (decision 0093)."""
    query = select(Booking).where(Booking.slot_day == day, Booking.status == BookingStatus.BOOKED)
    if hall_ids is not None:
        query = query.where(Booking.hall_id.in_(hall_ids))
    return list((await session.execute(query.order_by(Booking.id))).scalars())


async def citizens_to_text(session: AsyncSession, day: date, hall_ids: list[str] | None) -> int:
    """How many citizens closing `day` would text now (the console's confirmation)."""
    if day < clock.today():
        return 0
    return len({b.citizen_id for b in await live_bookings_of_day(session, day, hall_ids)})


async def cancel_by_hall(session: AsyncSession, booking: Booking, reason: str, now: datetime) -> bool:
    """Cancel one live booking because its day closed; False if it was no longer live."""
    changed = await session.execute(move(booking.id, BookingStatus.CANCELLED, now, cancelled_by="hall"))
    if rowcount(changed) != 1:
        return False
    await return_seats(session, booking.slot_id, booking.quantity)
    booking.status, booking.cancelled_by, booking.updated_at = "cancelled", "hall", now
    await emit(session, Event("booking.cancelled_by_hall", {"booking": booking, "reason": reason}))
    return True


async def cancel_closed_day(session: AsyncSession, day: date, hall_ids: list[str] | None, reason: str) -> int:
    """Cancel every live booking of a day that closed (today or later); returns how many."""
    now = clock.now()
    if day < now.date():
        return 0  # a correction of a past date changes no booking
    cancelled = 0
    for booking in await live_bookings_of_day(session, day, hall_ids):
        cancelled += await cancel_by_hall(session, booking, reason, now)
    return cancelled


@subscribe("day.closed")
async def _on_day_closed(session: AsyncSession, event: Event) -> None:
    closed: DayClosed = event.data["closed"]
    closed.cancelled += await cancel_closed_day(session, closed.day, closed.hall_ids, closed.note)


async def cancel_if_closed(session: AsyncSession, booking: Booking, now: datetime) -> bool:
    """The no-show sweep's guard: a booking whose day its hall does not work (a closure that raced
    with the booking) is cancelled by the hall, never marked a no-show. True if it was."""
    calendar = await service_calendar(session, await service_info(session, booking.service_id))
    if calendar.is_working(booking.slot_day):  # its hall's day, or an extra day of its service
        return False
    closure = await session.get(Closure, (booking.hall_id, booking.slot_day))
    national = await session.get(CalendarDay, booking.slot_day)
    reason = closure.note if closure is not None else national.note if national is not None else ""
    return await cancel_by_hall(session, booking, reason, now)
