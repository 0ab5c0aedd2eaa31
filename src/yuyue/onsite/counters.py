"""Counters and their work: the counters of a hall, calling the next ticket in call order (rule T4),
recall, skip, finish (a bundle item by item, rule G17), and the console's counter screen and the
clerk's view of the person behind a ticket.

Integrity lives in the database: a ticket is called by one conditional UPDATE, so two counters never
call the same ticket.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.booking.status import BookingStatus, move
from yuyue.booking.views import TicketView, ticket_view
from yuyue.catalogue.service import service_info
from yuyue.clock import clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import DomainError, Forbidden, NotFound, Unprocessable, ValidationFailed
from yuyue.identity.service import citizen_view
from yuyue.kit.http import rowcount
from yuyue.models import Booking, Citizen, Counter, Ticket, Unit
from yuyue.onsite import stream
from yuyue.onsite.order import call_order
from yuyue.onsite.queue import InLine, as_waiting, hall_tickets, waiting_line
from yuyue.onsite.staff import STAFF, Actor, hall_for, staff_only
from yuyue.onsite.tickets import NoBooking, hall_open, hall_ticket


async def ensure_counters(session: AsyncSession, hall: Unit) -> list[Counter]:
    """Counters 1..`hall.counters` exist (created on first use) and serve every service until
    configured otherwise (docs/api.md)."""
    existing = list(
        (
            await session.execute(
                select(Counter).where(Counter.hall_id == hall.id).order_by(Counter.position)
            )
        ).scalars()
    )
    have = {c.position for c in existing}
    missing = [p for p in range(1, hall.counters + 1) if p not in have]
    if missing:
        for position in missing:
            statement = _insert(session, Counter).values(
                hall_id=hall.id, position=position, name=f"{position}号窗口", service_ids=None, open=True
            )
            await session.execute(statement.on_conflict_do_nothing(index_elements=["hall_id", "position"]))
        existing = list(
            (
                await session.execute(
                    select(Counter).where(Counter.hall_id == hall.id).order_by(Counter.position)
                )
            ).scalars()
        )
    return [c for c in existing if c.position <= hall.counters]


@dataclass(slots=True, kw_only=True)
class CounterView:
    """A counter as docs/api.md shows it; checked by `CounterOut`."""

    id: int
    name: str
    service_ids: list[int] | None
    open: bool
    serving: str | None


def counter_view(counter: Counter, serving: str | None = None) -> CounterView:
    return CounterView(
        id=counter.id,
        name=counter.name,
        service_ids=list(counter.service_ids) if counter.service_ids is not None else None,
        open=counter.open,
        serving=serving,
    )


async def list_counters(session: AsyncSession, actor: Actor, hall_id: str) -> list[CounterView]:
    hall = await hall_for(session, actor, hall_id)
    counters = await ensure_counters(session, hall)
    serving = {
        t.counter_id: t.number for t in await hall_tickets(session, hall.id, clock.today(), ("called",))
    }
    return [counter_view(c, serving.get(c.id)) for c in counters]


async def _counter(session: AsyncSession, actor: Actor, counter_id: int) -> tuple[Counter, Unit]:
    counter = await session.get(Counter, counter_id)
    if counter is None:
        raise NotFound("counter not found")
    hall = await hall_for(session, actor, counter.hall_id)
    if counter.position > hall.counters:
        raise NotFound("counter not found")
    staff_only(actor)
    if actor.counter_id is not None and actor.counter_id != counter.id:
        raise Forbidden("this staff account works at another counter")
    return counter, hall


async def patch_counter(
    session: AsyncSession, actor: Actor, counter_id: int, changes: dict[str, Any]
) -> CounterView:
    counter, hall = await _counter(session, actor, counter_id)
    if "service_ids" in changes and changes["service_ids"] is not None:
        ids = sorted(set(changes["service_ids"]))
        for sid in ids:
            try:
                info = await service_info(session, sid)
            except NotFound:
                raise ValidationFailed(f"service_ids: {sid} is not a service of this hall") from None
            if info.hall_id != hall.id:
                raise ValidationFailed(f"service_ids: {sid} is not a service of this hall")
        changes["service_ids"] = ids
    for name, value in changes.items():
        if value is None and name != "service_ids":
            raise ValidationFailed(f"{name} cannot be null")
        setattr(counter, name, value)
    await session.flush()
    await stream.publish(session, hall.id, {"type": "change"})
    return counter_view(counter)


async def _finish(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    ticket.status, ticket.finished_at = "finished", now
    if ticket.items:
        ticket.items = [{**item, "finished": True} for item in ticket.items]
    if ticket.booking_id is not None:
        await session.execute(move(ticket.booking_id, BookingStatus.SERVED, now))
    await session.flush()


async def _finish_current(
    session: AsyncSession, counter: Counter, now: datetime, keep: int | None = None
) -> None:
    current = (
        await session.execute(
            select(Ticket).where(Ticket.counter_id == counter.id, Ticket.status == "called").with_for_update()
        )
    ).scalars()
    for ticket in current:
        if ticket.id != keep:
            await _finish(session, ticket, now)


async def call_next(session: AsyncSession, actor: Actor, counter_id: int) -> TicketView | None:
    """Finish the counter's current ticket, then call the first waiting ticket in call order
    (rule T4) that this counter serves; None when nobody waits."""
    counter, hall = await _counter(session, actor, counter_id)
    if not counter.open:
        raise Unprocessable("this counter is closed; open it first", code="counter_closed")
    now = clock.now()
    await _finish_current(session, counter, now)
    candidates = [
        t
        for t in await hall_tickets(session, hall.id, now.date(), ("waiting",))
        if counter.service_ids is None or t.service_id in counter.service_ids
    ]
    by_number = {t.number: t for t in candidates}
    for waiting in call_order((as_waiting(t) for t in candidates), now):
        ticket = by_number[waiting.number]
        changed = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.status == "waiting")
            .values(status="called", counter_id=counter.id, called_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(changed) == 1:  # another counter may have called it a moment ago
            ticket.status, ticket.counter_id, ticket.called_at = "called", counter.id, now
            await _announce(session, hall, ticket, counter)
            return ticket_view(ticket)
    await stream.publish(session, hall.id, {"type": "change"})
    return None


async def _announce(session: AsyncSession, hall: Unit, ticket: Ticket, counter: Counter) -> None:
    await stream.publish(
        session,
        hall.id,
        {
            "type": "call",
            "number": ticket.number,
            "call_number": ticket.call_number,
            "counter_id": counter.id,
            "counter": counter.name,
        },
    )


async def _ticket(session: AsyncSession, actor: Actor, number: str) -> tuple[Ticket, Unit]:
    ticket = (
        await session.execute(select(Ticket).where(Ticket.number == number).with_for_update())
    ).scalar_one_or_none()
    if ticket is None:
        raise NotFound("ticket not found")
    hall = await hall_for(session, actor, ticket.hall_id)
    staff_only(actor)
    return ticket, hall


def _state_error(ticket: Ticket, action: str) -> DomainError:
    return Unprocessable(f"a {ticket.status} ticket cannot be {action}", code="invalid_ticket_state")


async def recall(session: AsyncSession, actor: Actor, number: str, counter_id: int | None) -> TicketView:
    """Call a ticket again: a called one is announced again; a skipped one returns to a counter (its
    last one unless another is named) while the hall is open that day."""
    ticket, hall = await _ticket(session, actor, number)
    now = clock.now()
    if ticket.status not in ("called", "skipped"):
        raise _state_error(ticket, "recalled")
    if ticket.day != now.date() or not await hall_open(session, hall, now):
        raise Unprocessable(
            "a ticket may be recalled only while its hall is open that day", code="invalid_ticket_state"
        )
    target = counter_id if counter_id is not None else ticket.counter_id
    if target is None:
        raise ValidationFailed("counter_id is required")
    counter, counter_hall = await _counter(session, actor, target)
    if counter_hall.id != hall.id:
        raise Forbidden("that counter is in another hall")
    if ticket.status == "skipped" or ticket.counter_id != counter.id:
        await _finish_current(session, counter, now, keep=ticket.id)
        ticket.status, ticket.counter_id, ticket.called_at = "called", counter.id, now
        await session.flush()
    await _announce(session, hall, ticket, counter)
    return ticket_view(ticket)


async def skip(session: AsyncSession, actor: Actor, number: str) -> TicketView:
    ticket, hall = await _ticket(session, actor, number)
    _own_counter(actor, ticket)
    if ticket.status != "called":
        raise _state_error(ticket, "skipped")
    ticket.status = "skipped"
    await session.flush()
    await stream.publish(session, hall.id, {"type": "change"})
    return ticket_view(ticket)


async def finish(session: AsyncSession, actor: Actor, number: str, service_id: int | None) -> TicketView:
    """Finish a called ticket; for a bundle (rule G17) `service_id` finishes one member item, and
    the ticket is finished with its last item."""
    ticket, hall = await _ticket(session, actor, number)
    _own_counter(actor, ticket)
    if ticket.status != "called":
        raise _state_error(ticket, "finished")
    now = clock.now()
    if service_id is not None:
        items = [dict(item) for item in ticket.items or []]
        match = [item for item in items if item["service_id"] == service_id]
        if not match:
            raise ValidationFailed("service_id is not a member item of this ticket's bundle")
        if match[0]["finished"]:
            raise Unprocessable("this item is already finished", code="invalid_ticket_state")
        match[0]["finished"] = True
        ticket.items = items
        if not all(item["finished"] for item in items):
            await session.flush()
            await stream.publish(session, hall.id, {"type": "change"})
            return ticket_view(ticket)
    await _finish(session, ticket, now)
    await stream.publish(session, hall.id, {"type": "change"})
    return ticket_view(ticket)


def _own_counter(actor: Actor, ticket: Ticket) -> None:
    if actor.counter_id is not None and ticket.counter_id != actor.counter_id:
        raise Forbidden("this ticket is at another counter")


@dataclass(frozen=True)
class CounterScreen:
    """What a counter's clerk sees: the line this counter calls (rule T4), the ticket it serves,
    and the tickets it skipped today (they may be recalled)."""

    hall: Unit
    counter: Counter
    line: list[InLine]
    current: Ticket | None
    skipped: list[Ticket]


async def hall_counter(
    session: AsyncSession, actor: Actor, hall_id: str, counter_id: int
) -> tuple[Counter, Unit]:
    """A counter of this hall that the actor may work at (the same checks as the counter actions)."""
    hall = await hall_for(session, actor, hall_id)
    counter = await session.get(Counter, counter_id)
    if counter is None or counter.hall_id != hall.id:
        raise NotFound("counter not found")
    return await _counter(session, actor, counter_id)


async def counter_screen(session: AsyncSession, actor: Actor, hall_id: str, counter_id: int) -> CounterScreen:
    counter, hall = await hall_counter(session, actor, hall_id, counter_id)
    line, serving = await waiting_line(session, hall)
    mine = [e for e in line if counter.service_ids is None or e.ticket.service_id in counter.service_ids]
    current = next((t for t in serving if t.counter_id == counter.id), None)
    skipped = [
        t
        for t in await hall_tickets(session, hall.id, clock.today(), ("skipped",))
        if t.counter_id == counter.id
    ]
    return CounterScreen(hall, counter, mine, current, skipped)


async def ticket_person(
    session: AsyncSession, secret: str, actor: Actor, hall_id: str, number: str, *, reveal: bool = False
) -> dict[str, Any]:
    """The booking and citizen behind a ticket, for the clerk: masked as in every answer (docs/api.md).
    `reveal` shows the full name, ID and phone number of the ticket this counter is serving, and is
    audited with the clerk (or the admin acting as staff) as the actor. Walk-in and green tickets
    carry no booking: the citizen shows their document at the counter."""
    ticket, hall = await hall_ticket(session, actor, hall_id, number)
    booking = await session.get(Booking, ticket.booking_id) if ticket.booking_id is not None else None
    if reveal:
        _own_counter(actor, ticket)
        if ticket.status != "called":
            raise _state_error(ticket, "revealed")
        if booking is None:
            raise NoBooking("this ticket has no booking")
    if booking is None:
        return {"booking": None, "citizen": None, "revealed": False}
    citizen = await session.get(Citizen, booking.citizen_id)
    assert citizen is not None
    if reveal:
        person = asdict(citizen_view(secret, citizen))
        after = {"ticket": ticket.number, "booking": booking.number}
        await audit(
            session,
            actor.admin,
            hall.id,
            hall.path,
            "citizen.reveal",
            f"ticket:{ticket.number}",
            None,
            after,
            staff_id=actor.id if actor.kind == STAFF else None,
        )
    else:
        person = {
            "id_type": citizen.id_type,
            "id_number": citizen.id_masked,
            "name": citizen.name_masked,
            "phone": citizen.phone_masked,
        }
    return {
        "booking": {
            "number": booking.number,
            "status": booking.status,
            "slot_start": booking.slot_start,
            "slot_end": booking.slot_end,
            "channel": booking.channel,
            "quantity": booking.quantity,
            "business_types": list(booking.business_types or []),
            "company": {"name": booking.company_name, "uscc": booking.company_uscc}
            if booking.company_uscc
            else None,
            "created_at": booking.created_at,
        },
        "citizen": person,
        "revealed": reveal,
    }
