"""The one writer of seats for capacity changes (rule G20; docs/architecture.md "Owners").

An approved capacity request is applied here, and nowhere else:

- a request with `date_to` writes the new spread into every slot of each working day of its range;
- a request with `date_to: null` changes the service's standing daily capacity from `date_from`
  on: `services.daily_capacity` becomes the new figure, `capacity_periods` keeps the figure the
  days before `date_from` had (so they keep it, stored or not), and the slots already stored from
  `date_from` on are re-spread.

Either way a slot never drops below the seats it has sold: the new capacity is written as
`greatest(new, booked)` in the statement itself, so a booking racing with the change cannot slip
under it. Days where a slot gained seats are announced (`capacity.increased`): the waiting list
takes them first (rule G11).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.calendar.service import hall_calendar, service_calendar
from yuyue.catalogue.service import clear_caches, day_slots, service_info
from yuyue.clock import clock
from yuyue.db import after_commit, on_postgres
from yuyue.db import dialect_insert as _insert
from yuyue.kit.events import Event, emit
from yuyue.models import CapacityPeriod, ExtraSupply, Service, Slot

# How far ahead a standing increase is announced to the waiting list: its entries name days at most
# this far ahead (`yuyue.waitlist.service.MAX_AHEAD_DAYS`).
ANNOUNCE_AHEAD_DAYS = 60


def _greatest(session: AsyncSession) -> Any:
    return func.greatest if on_postgres(session) else func.max  # SQLite's 2-argument max is scalar


async def apply_capacity_change(
    session: AsyncSession,
    service_id: int,
    date_from: date,
    date_to: date | None,
    daily: int,
    *,
    hours: list[dict[str, str]] | None = None,
    open_days: bool = False,
    request_id: int | None = None,
) -> list[date]:
    """Apply an approved capacity request (rule G20); returns the days where a slot gained seats.
    A range may also set the service's opening hours on its dates (extended hours) and open its
    non-working dates ("5+X"), rule G12's remedies (decision 0093)."""
    if date_to is not None and (hours or open_days) and request_id is not None:
        await _extra_supply(session, service_id, date_from, date_to, hours, open_days, request_id)
    if date_to is None:
        increased = await _apply_standing(session, service_id, date_from, daily)
    else:
        increased = await _apply_range(session, service_id, date_from, date_to, daily)
    clear_caches()  # answers cached from the old capacity (availability) are stale at once
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    if increased:
        await emit(session, Event("capacity.increased", {"service_id": service_id, "dates": increased}))
    return increased


async def _extra_supply(
    session: AsyncSession,
    service_id: int,
    first: date,
    last: date,
    hours: list[dict[str, str]] | None,
    open_days: bool,
    request_id: int,
) -> None:
    """The dates' own opening hours and extra open days, before the seats are spread over them."""
    info = await service_info(session, service_id)
    calendar = await hall_calendar(session, info.hall_id)
    day = first
    while day <= last:
        extra_day = open_days and not calendar.national_working(day)
        if hours or extra_day:
            insert = _insert(session, ExtraSupply).values(
                service_id=service_id, day=day, hours=hours, open_day=extra_day, request_id=request_id
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=["service_id", "day"],
                    set_={
                        "hours": insert.excluded.hours,
                        "open_day": insert.excluded.open_day,
                        "request_id": insert.excluded.request_id,
                    },
                )
            )
        day += timedelta(days=1)
    await session.flush()
    clear_caches()  # the service's hours and days are read again below


async def _apply_range(
    session: AsyncSession, service_id: int, first: date, last: date, daily: int
) -> list[date]:
    """Write the new spread into each slot of each working day in the range, never below the seats
    already sold (`max(new, booked)`)."""
    info = await service_info(session, service_id)
    calendar = await service_calendar(session, info)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    days = [d for d in days if calendar.is_working(d)]
    stored = {
        row.id: (row.capacity, row.booked)
        for row in (
            await session.execute(
                select(Slot.id, Slot.capacity, Slot.booked).where(
                    Slot.service_id == service_id, Slot.day >= first, Slot.day <= last
                )
            )
        ).all()
    }
    greatest = _greatest(session)
    increased: list[date] = []
    for day in days:
        before = {spec.id: spec.capacity for spec in day_slots(info, day)}
        grew = False
        for spec in day_slots(info, day, daily_capacity=daily):
            old_capacity, booked = stored.get(spec.id, (before.get(spec.id, 0), 0))
            if max(spec.capacity, booked) > old_capacity:
                grew = True
            insert = _insert(session, Slot).values(
                id=spec.id,
                service_id=service_id,
                day=day,
                start=spec.start,
                end=spec.end,
                capacity=spec.capacity,
                booked=0,
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=["id"],
                    set_={"capacity": greatest(insert.excluded.capacity, Slot.__table__.c.booked)},
                )
            )
        if grew:
            increased.append(day)
    return increased


async def _apply_standing(session: AsyncSession, service_id: int, first: date, daily: int) -> list[date]:
    """The standing daily capacity becomes `daily` from `first` on; the days before keep theirs.
    A later approval wins over an earlier one for the days it covers."""
    before = await service_info(session, service_id)
    kept = before.capacity_on(first - timedelta(days=1))  # the figure of the days just before
    await session.execute(
        delete(CapacityPeriod)
        .where(CapacityPeriod.service_id == service_id, CapacityPeriod.until >= first)
        .execution_options(synchronize_session=False)
    )
    session.add(CapacityPeriod(service_id=service_id, until=first, daily_capacity=kept))
    await session.execute(
        update(Service)
        .where(Service.id == service_id)
        .values(daily_capacity=daily)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    after = await service_info(session, service_id)
    calendar = await service_calendar(session, after)

    increased: set[date] = set()
    stored_days: set[date] = set()
    greatest = _greatest(session)
    slots = (
        await session.execute(
            select(Slot.id, Slot.day, Slot.capacity).where(Slot.service_id == service_id, Slot.day >= first)
        )
    ).all()
    spreads: dict[date, dict[str, int]] = {}
    for slot_id, day, old_capacity in slots:
        stored_days.add(day)
        spread = spreads.get(day)
        if spread is None:
            spread = spreads[day] = {spec.id: spec.capacity for spec in day_slots(after, day)}
        if slot_id not in spread:
            continue  # an hour the hall no longer opens: left as it is
        new_capacity = (
            await session.execute(
                update(Slot)
                .where(Slot.id == slot_id)
                .values(capacity=greatest(spread[slot_id], Slot.booked))
                .returning(Slot.capacity)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one()
        if new_capacity > old_capacity:
            increased.add(day)
    # Days not stored take the new figure from the derivation; announce those that gained seats.
    day, last = (
        max(first, clock.today() + timedelta(days=1)),
        clock.today() + timedelta(days=ANNOUNCE_AHEAD_DAYS),
    )
    while day <= last:
        if day not in stored_days and calendar.is_working(day) and daily > before.capacity_on(day):
            increased.add(day)
        day += timedelta(days=1)
    return sorted(increased)


async def return_seats(session: AsyncSession, slot_id: str, quantity: int) -> None:
    """Seats of a booking the hall cancelled because its day closed (booking/closures.py): counted out
    of `slots.booked` so the slot's invariant holds (seats of live bookings + pending returns). Nobody
    can buy them while the day is closed (a closed day has no slots); a reopened day sells them again.
    Never below zero."""
    await session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.booked >= quantity)
        .values(booked=Slot.booked - quantity)
        .execution_options(synchronize_session=False)
    )
