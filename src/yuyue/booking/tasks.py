"""Booking's jobs. Held seats back to open booking (issue 9 item 5, decision 0081): the job
`return_freed_seats` frees due `seat_returns` rows: it deletes them (`DELETE … RETURNING`, rows locked
`SKIP LOCKED` on PostgreSQL) and lowers `slots.booked` with a conditional UPDATE in one transaction,
so a held seat is returned exactly once and a count never goes below zero, however many workers run.
Slot rows before the release (issue 21, decision 0104): the job `open_slots_ahead` creates, a quarter
hour ahead, the `slots` rows of every day whose off-site booking opens in the next quarter hour, so
the first booking of each slot at the release moment takes the one-statement path instead of
creating the row on the way (three round trips each, for every slot of the day at once).
Imported by yuyue.domains, so the jobs are registered in every process.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yuyue.booking import rules
from yuyue.booking.availability import seats_changed
from yuyue.catalogue.service import day_slots, service_infos
from yuyue.db import dialect_insert
from yuyue.jobs.service import Job, every, register
from yuyue.kit.events import Event, emit
from yuyue.models import SeatReturn, Service, Slot
from yuyue.ops.logging import log
from yuyue.ops.metrics import WARM_SERVICES, WARM_TURNS
from yuyue.policy.service import day_opens_at, horizon_end

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


# --- slot rows before the release (issue 21, decision 0104) ---------------------------------------

AHEAD_MINUTES = 15  # the job's grid; each run covers the days opening in the quarter hour after it
SLOT_BATCH = 1000


async def open_slots_ahead(session: AsyncSession, after: datetime, until: datetime) -> int:
    """Create the `slots` rows (none booked, the capacity the booking would give them) of every
    active service's working days whose off-site booking opens in (after, until]. A row that exists
    is left as it is (`ON CONFLICT DO NOTHING`): a concurrent first booking, a capacity edit, an
    earlier run. Returns how many rows were created. Nothing changes for the rules: a slot without
    a row is read exactly as one with `booked = 0`, and a capacity edit updates stored rows."""
    rows: list[dict[str, Any]] = []
    # The days a (policy, calendar) pair opens in the window: a city's services share a few.
    opening: dict[tuple[int, int], tuple[Any, Any, list[date]]] = {}
    for ctx in await active_contexts(session):
        knobs, calendar = ctx.policy.knobs, ctx.calendar
        key = (id(knobs), id(calendar))
        if key not in opening:  # the objects are kept in the value, so their ids stay theirs
            days, day = [], after.date() + timedelta(days=1)
            last = horizon_end(knobs, calendar, until.date()) + timedelta(days=1)
            while day <= last:
                if calendar.is_working(day) and after < day_opens_at(knobs, calendar, day) <= until:
                    days.append(day)
                day += timedelta(days=1)
            opening[key] = (knobs, calendar, days)
        for day in opening[key][2]:
            rows += [
                {
                    "id": spec.id,
                    "service_id": ctx.info.id,
                    "day": spec.day,
                    "start": spec.start,
                    "end": spec.end,
                    "capacity": spec.capacity,
                    "booked": 0,
                }
                for spec in day_slots(ctx.info, day)
            ]
    created = 0
    for i in range(0, len(rows), SLOT_BATCH):
        insert = dialect_insert(session, Slot).values(rows[i : i + SLOT_BATCH])
        result = await session.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
        created += max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
    return created


async def active_contexts(session: AsyncSession) -> list[rules.Context]:
    """The booking context (service, policy, calendar) of every active service, through this
    process's caches: three queries per 500 services not cached, not three per service."""
    ids = [
        int(service_id)
        for service_id in (
            await session.execute(select(Service.id).where(Service.active.is_(True)).order_by(Service.id))
        ).scalars()
    ]
    infos = await service_infos(session, ids)
    return [
        await rules.context_of(session, info)
        for service_id in ids
        if (info := infos.get(service_id)) is not None and info.active
    ]


async def _slots_ahead_job(session: AsyncSession, due: datetime) -> None:
    await open_slots_ahead(session, due, due + timedelta(minutes=AHEAD_MINUTES))


register(Job("open_slots_ahead", every(AHEAD_MINUTES), _slots_ahead_job))
register(Job("return_freed_seats", every(RETURN_SWEEP_MINUTES), _return_job, pending=_return_moments))


# --- every web process's caches kept loaded (issue 21, decision 0106) ------------------------------
# A booking reads its service, the hall's policy and the calendar through this process's caches
# (decision 0103). A process that has not yet served a service loads it on that service's first
# booking: at the release moment, every service of the city at once, in every process, in the
# first second. Loading them beforehand, and again after a configuration change has cleared them,
# leaves the release's first second to the bookings.

WARM_EVERY_S = 5.0  # a turn with nothing to load: one query and cache hits


async def keep_warm(maker: async_sessionmaker[AsyncSession], every_s: float = WARM_EVERY_S) -> None:
    """Load the booking context of every active service into this process's caches now, then
    every `every_s` seconds: nothing is read again while the configuration is unchanged (the
    cached entries are taken as they are), and what a change cleared is loaded again. A failure
    is logged and tried again at the next turn; the requests load what they need as before."""
    while True:
        try:
            async with maker() as session:
                WARM_SERVICES.set(len(await active_contexts(session)))
            WARM_TURNS.labels("ok").inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database away, a migration running: the next turn
            WARM_TURNS.labels("error").inc()
            log.warning("keep_warm_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(every_s)
