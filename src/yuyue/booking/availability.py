"""Availability: all slots of a service over a date range, read with one query of `slots` and
kept per process for a moment (decisions 0010, 0013). Reads never write; `seats_changed` is how this
process's seat writes (repository, tasks) make the answers of that service stale at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.rules import CACHE_MAX, RELEASE_GRACE, Context, context, release_due, released
from yuyue.catalogue.service import day_slots
from yuyue.clock import at, clock
from yuyue.errors import NotFound, ValidationFailed
from yuyue.kit.cache import TTLCache
from yuyue.models import Slot
from yuyue.policy.service import booking_closes_at, day_opens_at, horizon_end, offsite_status, onsite_hold

MAX_RANGE_DAYS = 92


# Availability answers are kept per process for at most AVAILABILITY_TTL seconds (decision 0010):
# an answer never shows a seat that went more than that long before it is served. The age counts
# from just before the query of `slots`, so a slow query cannot stretch it. A seat change made by
# this process (`_seat_generation`), a clock move or a catalogue/policy/calendar that is no longer
# equal (`_same`) makes the entry stale at once. The entry keeps the answer encoded (no JSON work on
# a hit), and the slots' layout and statuses live on in a `_Plan` while they hold (decision 0013).
AVAILABILITY_TTL = 0.5
_availability_cache: dict[tuple[int, date | None, date | None], _Answer] = {}
_plans: dict[tuple[int, date | None, date | None], _Plan] = {}
# Seat changes made by this process, per service (an answer of one service is not made stale by a
# booking of another); `None` counts a change whose service is not known, which stales them all.
_seat_generation: dict[int | None, int] = {None: 0}


def seats_changed(service_id: int | None) -> None:
    if len(_seat_generation) > CACHE_MAX:  # a bound: forgetting the services stales every answer
        everything = _seat_generation[None] + 1
        _seat_generation.clear()
        _seat_generation[None] = everything
    _seat_generation[service_id] = _seat_generation.get(service_id, 0) + 1


def _generation(service_id: int) -> tuple[int, int]:
    """What an answer of `service_id` compares to know that no seat of it changed here since."""
    return _seat_generation.get(None, 0), _seat_generation.get(service_id, 0)


def encode(answer: Any) -> bytes:
    """JSON exactly as Starlette's JSONResponse writes it."""
    return json.dumps(
        answer, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


@dataclass
class _Answer:
    stamp: float
    generation: tuple[int, int]  # `_generation` of the service when computed
    service_id: int
    marker: tuple[Any, ...]
    answer: dict[str, Any]
    clears: int  # TTLCache.clears when computed
    encoded: bytes | None = None

    def body(self) -> bytes:
        if self.encoded is None:
            self.encoded = encode(self.answer)
        return self.encoded

    def fresh(self) -> bool:
        """Still a valid answer as far as this process can tell without the caches (decision 0013):
        young enough, no seat taken or freed here, no catalogue/policy/calendar write here, the test
        clock where it was."""
        return (
            time.monotonic() - self.stamp < AVAILABILITY_TTL
            and self.generation == _generation(self.service_id)
            and self.clears == TTLCache.clears
            and self.marker[3] == clock.offset
        )


@dataclass(frozen=True)
class _SlotPlan:
    id: str
    start: str
    end: str
    capacity: int  # the spec's, for a slot that has no row yet
    if_left: str  # offsite_status while seats remain …
    if_none: str  # … and when none remain


@dataclass(frozen=True)
class _DayPlan:
    date: str
    working_day: bool
    opens_at: str | None
    slots: tuple[_SlotPlan, ...]
    # (opens, until): while `now` is in it, the day waits for its release to the waiting list
    # (rules G10, G11, `rules.released`); None for a day the hall does not work
    gate: tuple[datetime, datetime] | None = None


@dataclass
class _Plan:
    """Everything in an answer except the seats (decision 0013): the range, the slots and each slot's
    two possible statuses. It holds while the catalogue, policy and calendar (`marker`) are the same
    (`_same`) and `now` stays in [since, until): `until` is the first moment after `since` at which
    any status `offsite_status` gives could change (a day opening, booking closing, a slot ending,
    midnight)."""

    marker: tuple[Any, ...]
    first: date
    last: date
    since: datetime
    until: datetime
    days: tuple[_DayPlan, ...]


_slots = cast(Table, Slot.__table__).c  # Core columns: no ORM work for a plain read of three columns
_SLOT_ROWS = select(_slots.id, _slots.capacity, _slots.booked).where(
    _slots.service_id == bindparam("service_id"),
    _slots.day >= bindparam("first"),
    _slots.day <= bindparam("last"),
)


def _marker(ctx: Context) -> tuple[Any, ...]:
    return (ctx.info, ctx.policy, ctx.calendar, clock.offset)


def _same(marker: tuple[Any, ...], ctx: Context) -> bool:
    """Whether what was computed for `marker` holds for `ctx`: the same objects, or (after the caches
    re-read them, every YUYUE_CACHE_TTL) equal ones, and the test clock where it was."""
    info, policy, calendar, offset = marker
    if offset != clock.offset:
        return False
    if info is ctx.info and policy is ctx.policy and calendar is ctx.calendar:
        return True
    return bool(info == ctx.info and policy == ctx.policy and calendar == ctx.calendar)


async def availability(
    session: AsyncSession, service_id: int, start: date | None, end: date | None
) -> dict[str, Any]:
    """All slots of a service over a date range in one query of `slots` (the rest is cached)."""
    return dict((await _cached_answer(session, service_id, start, end)).answer)


async def availability_json(
    session: AsyncSession, service_id: int, start: date | None, end: date | None
) -> tuple[bytes, Callable[[], bool]]:
    """The same answer as `availability`, encoded as JSON once per cache entry, and a test of whether
    it may still be served (for `ops.middleware.publish`)."""
    entry = await _cached_answer(session, service_id, start, end)
    return entry.body(), entry.fresh


async def _cached_answer(
    session: AsyncSession, service_id: int, start: date | None, end: date | None
) -> _Answer:
    ctx = await context(session, service_id)
    key = (service_id, start, end)
    hit = _availability_cache.get(key)
    stamp = time.monotonic()
    if hit is not None and hit.fresh() and _same(hit.marker, ctx):
        hit.marker = _marker(ctx)
        return hit
    generation, clears = _generation(service_id), TTLCache.clears
    answer = await _availability(session, ctx, service_id, start, end)
    if len(_availability_cache) > CACHE_MAX:
        _availability_cache.clear()
    entry = _Answer(stamp, generation, service_id, _marker(ctx), answer, clears)
    _availability_cache[key] = entry
    return entry


def _plan(ctx: Context, service_id: int, start: date | None, end: date | None, now: datetime) -> _Plan:
    """Validate the range and lay the answer out for `now` (rules G10, T6, M4, M5 via the policy)."""
    if not ctx.info.active:
        raise NotFound(f"service {service_id} not found")
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
    until = at(today + timedelta(days=1), "00:00")  # the default range moves at midnight
    days: list[_DayPlan] = []
    current = first
    while current <= last:
        working = ctx.calendar.is_working(current)
        slots: list[_SlotPlan] = []
        opens = day_opens_at(knobs, ctx.calendar, current) if working else None
        for spec in day_slots(ctx.info, current) if working else []:
            assert opens is not None
            for moment in (opens, booking_closes_at(knobs, current, spec.start), spec.end):
                if now < moment < until:
                    until = moment

            left, none = (
                offsite_status(knobs, ctx.calendar, current, spec.start, spec.end, remaining, now)
                for remaining in (1, 0)
            )
            slots.append(
                _SlotPlan(spec.id, spec.start.isoformat(), spec.end.isoformat(), spec.capacity, left, none)
            )
        gate = (opens, release_due(opens) + RELEASE_GRACE) if opens is not None else None
        days.append(
            _DayPlan(current.isoformat(), working, opens.isoformat() if opens else None, tuple(slots), gate)
        )
        current += timedelta(days=1)
    return _Plan(_marker(ctx), first, last, now, until, tuple(days))


async def _availability(
    session: AsyncSession, ctx: Context, service_id: int, start: date | None, end: date | None
) -> dict[str, Any]:
    now = clock.now()
    key = (service_id, start, end)
    plan = _plans.get(key)
    if plan is None or not (plan.since <= now < plan.until and _same(plan.marker, ctx)):
        plan = _plan(ctx, service_id, start, end, now)
        if len(_plans) > CACHE_MAX:
            _plans.clear()
        _plans[key] = plan
    plan.marker = _marker(ctx)  # the objects it was last found to hold for: `is` is enough next time
    params = {"service_id": service_id, "first": plan.first, "last": plan.last}
    stored = {row[0]: (row[1], row[2]) for row in (await session.execute(_SLOT_ROWS, params)).all()}
    knobs = ctx.policy.knobs
    days: list[dict[str, Any]] = []
    for day_plan in plan.days:
        slots: list[dict[str, Any]] = []
        waiting = day_plan.gate is not None and (
            day_plan.gate[0] <= now < day_plan.gate[1] and not await released(session, day_plan.gate[0], now)
        )
        for slot in day_plan.slots:
            capacity, booked = stored.get(slot.id, (slot.capacity, 0))
            offsite = capacity - onsite_hold(knobs, capacity)
            remaining = max(0, offsite - booked)
            status = slot.if_left if remaining > 0 else slot.if_none
            if waiting and status in ("open", "full"):
                status = "not_yet_open"  # the waiting list first (rule G11)
            slots.append(
                {
                    "id": slot.id,
                    "start": slot.start,
                    "end": slot.end,
                    "capacity": offsite,
                    "remaining": remaining,
                    "status": status,
                }
            )
        day: dict[str, Any] = {"date": day_plan.date, "working_day": day_plan.working_day, "slots": slots}
        if day_plan.opens_at is not None:
            day["opens_at"] = day_plan.opens_at
        days.append(day)
    return {"service_id": service_id, "days": days}
