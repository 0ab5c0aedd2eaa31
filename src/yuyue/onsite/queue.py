"""The hall's line: waiting tickets in call order (rule T4, the pure `order.call_order`), people
ahead and wait estimates, and the public queue (ticket numbers and counters only, no personal data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.calendar.service import DayChanged, closed_note
from yuyue.catalogue.service import HALL_KINDS
from yuyue.clock import clock
from yuyue.kit.events import Event, subscribe
from yuyue.models import Counter, Ticket, Unit
from yuyue.onsite import stream
from yuyue.onsite.order import Desk, Waiting, call_order, estimates, people_ahead
from yuyue.onsite.staff import get_hall

MEAN_WINDOW_DAYS = 30


async def hall_tickets(
    session: AsyncSession, hall_id: str, day: date, statuses: tuple[str, ...]
) -> list[Ticket]:
    query = select(Ticket).where(Ticket.hall_id == hall_id, Ticket.day == day, Ticket.status.in_(statuses))
    return list((await session.execute(query.order_by(Ticket.id))).scalars())


def as_waiting(ticket: Ticket) -> Waiting:
    return Waiting(
        number=ticket.number,
        kind=ticket.kind,
        service_id=ticket.service_id,
        issued_at=ticket.issued_at,
        booked_at=ticket.booked_at,
        slot_start=ticket.slot_start,
        slot_end=ticket.slot_end,
    )


async def _mean_service_s(session: AsyncSession, hall_id: str, today: date) -> dict[int, float]:
    """Mean time from call to finish per service over the hall's last 30 days."""
    rows = (
        await session.execute(
            select(Ticket.service_id, Ticket.called_at, Ticket.finished_at)
            .where(
                Ticket.hall_id == hall_id,
                Ticket.status == "finished",
                Ticket.day > today - timedelta(days=MEAN_WINDOW_DAYS),
                Ticket.called_at.is_not(None),
                Ticket.finished_at.is_not(None),
            )
            .order_by(Ticket.id.desc())
            .limit(5000)
        )
    ).all()
    totals: dict[int, list[float]] = {}
    for service_id, called, finished in rows:
        if called is not None and finished is not None:
            totals.setdefault(service_id, []).append(max(0.0, (finished - called).total_seconds()))
    return {sid: sum(values) / len(values) for sid, values in totals.items()}


@dataclass(frozen=True)
class InLine:
    """A waiting ticket with its place in the call order (rule T4): the people ahead of it and the
    estimated wait, both None when no open counter serves its service."""

    ticket: Ticket
    ahead: int | None
    wait_s: int | None


async def waiting_line(session: AsyncSession, hall: Unit) -> tuple[list[InLine], list[Ticket]]:
    """The hall's waiting tickets in call order (rule T4) with people ahead and wait estimates, and
    those being served."""
    now = clock.now()
    tickets = await hall_tickets(session, hall.id, now.date(), ("waiting", "called"))
    waiting = {t.number: t for t in tickets if t.status == "waiting"}
    ordered = call_order((as_waiting(t) for t in waiting.values()), now)
    desks = await _desks(session, hall)
    waits = estimates(ordered, desks, await _mean_service_s(session, hall.id, now.date()))
    aheads = people_ahead(ordered, desks)
    serving = [t for t in tickets if t.status == "called"]
    line = [
        InLine(waiting[w.number], ahead, wait) for w, ahead, wait in zip(ordered, aheads, waits, strict=True)
    ]
    return line, serving


async def queue_state(
    session: AsyncSession, hall: Unit
) -> tuple[list[tuple[Ticket, int | None]], list[Ticket]]:
    """The hall's waiting tickets in call order with their wait estimates, and those being served."""
    line, serving = await waiting_line(session, hall)
    return [(entry.ticket, entry.wait_s) for entry in line], serving


async def _desks(session: AsyncSession, hall: Unit) -> list[Desk]:
    """The hall's counters as the estimate sees them, without creating rows (a public read)."""
    rows = {
        c.position: c
        for c in (await session.execute(select(Counter).where(Counter.hall_id == hall.id))).scalars()
    }
    desks = []
    for position in range(1, hall.counters + 1):
        row = rows.get(position)
        if row is None:
            desks.append(Desk(True, None))
        else:
            desks.append(Desk(row.open, frozenset(row.service_ids) if row.service_ids is not None else None))
    return desks


@dataclass(slots=True, kw_only=True)
class QueueWaiting:
    number: str
    call_number: str
    kind: str
    service_id: int
    estimated_wait_s: int | None


@dataclass(slots=True, kw_only=True)
class QueueServing:
    number: str
    call_number: str
    counter_id: int | None
    counter: str | None


@dataclass(slots=True, kw_only=True)
class PublicQueue:
    """The hall's public queue (docs/api.md); checked by `QueueOut`."""

    hall_id: str
    waiting: list[QueueWaiting]
    serving: list[QueueServing]


async def public_queue(session: AsyncSession, hall_id: str) -> PublicQueue:
    """docs/api.md: ticket numbers and counters only (no personal data)."""
    hall = await get_hall(session, hall_id)
    waiting, serving = await queue_state(session, hall)
    names = {
        c.id: c.name
        for c in (await session.execute(select(Counter).where(Counter.hall_id == hall.id))).scalars()
    }
    return PublicQueue(
        hall_id=hall.id,
        waiting=[
            QueueWaiting(
                number=t.number,
                call_number=t.call_number,
                kind=t.kind,
                service_id=t.service_id,
                estimated_wait_s=wait,
            )
            for t, wait in waiting
        ],
        serving=[
            QueueServing(
                number=t.number,
                call_number=t.call_number,
                counter_id=t.counter_id,
                counter=names.get(t.counter_id or 0),
            )
            for t in sorted(serving, key=lambda t: (t.called_at or t.issued_at, t.id))
        ],
    )


# --- today's closure on the hall display (issue 18) ------------------------------------------------


async def closure_event(session: AsyncSession, hall_id: str, day: date) -> dict[str, Any]:
    """The display stream's `closure` event: does the hall work `day` (today), and if not, why
    (`closed_note`: the closure's note, the national override's, or "" for a weekend or holiday)."""
    note = await closed_note(session, hall_id, day)
    return {"type": "closure", "date": day.isoformat(), "closed": note is not None, "note": note or ""}


@subscribe("day.changed")
async def _on_day_changed(session: AsyncSession, event: Event) -> None:
    """A closure set or removed for today (a hall's, or a national override) reaches the hall's
    screens as soon as it commits (`stream.publish`: pg_notify in this transaction, or after commit
    on SQLite), so the display says 今日闭厅 at once, or stops saying it."""
    changed: DayChanged = event.data["changed"]
    today = clock.today()
    if changed.day != today:
        return
    hall_ids = changed.hall_ids
    if hall_ids is None:  # a national override: every hall
        hall_ids = list((await session.execute(select(Unit.id).where(Unit.kind.in_(HALL_KINDS)))).scalars())
    for hall_id in hall_ids:
        await stream.publish(session, hall_id, await closure_event(session, hall_id, today))
