"""Booking's jobs. Held seats back to open booking (issue 9 item 5, decision 0081): the job
`return_freed_seats` frees due `seat_returns` rows: it deletes them (`DELETE … RETURNING`, rows locked
`SKIP LOCKED` on PostgreSQL) and lowers `slots.booked` with a conditional UPDATE in one transaction,
so a held seat is returned exactly once and a count never goes below zero, however many workers run.
Imported by yuyue.domains, so the job is registered in every process.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.availability import seats_changed
from yuyue.jobs.service import Job, every, register
from yuyue.kit.events import Event, emit
from yuyue.models import SeatReturn
from yuyue.ops.logging import log

RETURN_BATCH = 500
RETURN_SWEEP_MINUTES = 60  # besides each row's own moment: a row whose moment was missed (a worker down)

_RETURN_SEATS = text("UPDATE slots SET booked = booked - :n WHERE id = :id AND booked >= :n RETURNING booked")


async def return_freed_seats(session: AsyncSession, due: datetime) -> int:
    """Give every held seat whose moment has come (`due_at <= due`) back to open booking, the
    waiting list first (`seats.returned`); returns how many seats. In the caller's one transaction
    each `seat_returns` row is deleted (`DELETE … RETURNING`) and its seats leave `slots.booked`
    (conditional UPDATE): rows another worker is returning are skipped (PostgreSQL `FOR UPDATE SKIP
    LOCKED`; SQLite serialises writers), a deleted row is never returned again, and `booked` never
    goes below zero."""
    returned = 0
    while True:
        batch = (
            select(SeatReturn.id)
            .where(SeatReturn.due_at <= due)
            .order_by(SeatReturn.due_at, SeatReturn.id)
            .limit(RETURN_BATCH)
            .with_for_update(skip_locked=True)
        )
        claimed = (
            await session.execute(
                delete(SeatReturn)
                .where(SeatReturn.id.in_(batch.scalar_subquery()))
                .returning(SeatReturn.slot_id, SeatReturn.service_id, SeatReturn.seats)
                .execution_options(synchronize_session=False)
            )
        ).all()
        per_slot: dict[str, tuple[int, int]] = {}
        for slot_id, service_id, seats in claimed:
            per_slot[slot_id] = (int(service_id), per_slot.get(slot_id, (0, 0))[1] + int(seats))
        by_service: dict[int, list[str]] = {}
        for service_id, _ in per_slot.values():
            seats_changed(service_id)
        for slot_id in sorted(per_slot):  # slot rows locked in id order, like a reschedule
            service_id, seats = per_slot[slot_id]
            if (await session.execute(_RETURN_SEATS, {"n": seats, "id": slot_id})).first() is None:
                log.error("seat_return_mismatch", slot_id=slot_id, seats=seats)  # never negative
                continue
            returned += seats
            by_service.setdefault(service_id, []).append(slot_id)
        for service_id, slot_ids in sorted(by_service.items()):
            await emit(session, Event("seats.returned", {"service_id": service_id, "slot_ids": slot_ids}))
        if len(claimed) < RETURN_BATCH:
            return returned


async def _return_moments(session: AsyncSession, after: datetime, until: datetime) -> list[datetime]:
    """The job's due times kept in the database: each held seat's own moment in (after, until]."""
    moments = await session.execute(
        select(SeatReturn.due_at)
        .where(SeatReturn.due_at > after, SeatReturn.due_at <= until)
        .distinct()
        .order_by(SeatReturn.due_at)
    )
    return list(moments.scalars())


async def _return_job(session: AsyncSession, due: datetime) -> None:
    await return_freed_seats(session, due)


register(Job("return_freed_seats", every(RETURN_SWEEP_MINUTES), _return_job, pending=_return_moments))
