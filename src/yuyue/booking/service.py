"""Availability and bookings: book, cancel, reschedule, special-reason rebook, list, get.

Integrity lives in the database (docs/architecture.md):
- a seat is taken by one conditional `UPDATE slots SET booked = booked + n WHERE … booked + n <=
  limit RETURNING`: whatever the number of processes, a slot is never sold past its limit;
- one live booking per ID and item (rule T5, personal business) or per ID (or USCC) and day (rule
  M10), among the halls under the unit that set the knob, is the partial unique index
  `uq_bookings_live_key` (`live_key`);
- booking numbers (rule M12) come from a per-hall-and-date counter row, updated last so its lock is
  held for the shortest time.
Everything happens in the caller's one transaction; nothing here commits. (A citizen's booking without
an Idempotency-Key runs in autocommit on PostgreSQL: its write is then one statement, decision 0014.
Inside a transaction, the booking's statement is its last write: what needs the number, the key's
answer included, goes in it, and only COMMIT follows while the counter row is locked, decision 0015.)

Events (kit/events.py) let other domains react in the same transaction:
- `booking.created` {"booking": Booking, "source": str[, "client_id": str]}: a booking was made
  ("citizen", "rebook", …; `client_id`: the partner client of a "channel" booking); on PostgreSQL its
  handlers are run by `collect` before the booking's statement, with the number still
  `PENDING_NUMBER`, and what they write (`kit.events.write`, `notify.enqueue`) is written by that
  statement (decisions 0014, 0015);
- `booking.cancelled` {"booking": Booking}: seats of `booking.slot_id` were freed;
- `booking.rescheduled` {"booking": Booking, "old_slot_id": str}: seats of the old slot were freed;
- `booking.excused` {"booking": Booking}: a missed booking was excused by a special-reason rebook;
- `seats.returned` {"service_id": int, "slot_ids": [str]}: held seats went back to open booking.

Freed seats (issue 9 item 5, decision 0081): the seats of a cancel or a reschedule go to the waiting
list first (the subscribers of `booking.cancelled` / `booking.rescheduled` allocate in the same
transaction, rule G11); what it leaves stays counted in `slots.booked` and is recorded in
`seat_returns` with a random due moment of the policy's `freed_seat_delay_*` window. The job
`return_freed_seats` frees due rows: it deletes them (`DELETE … RETURNING`, rows locked `SKIP
LOCKED` on PostgreSQL) and lowers `slots.booked` with a conditional UPDATE in one transaction, so a
held seat is returned exactly once and a count never goes below zero, however many workers run.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    case,
    column,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from yuyue.calendar.service import WorkCalendar, hall_calendar
from yuyue.catalogue.service import ServiceInfo, SlotSpec, day_slots, parse_slot_id, service_info
from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _dialect_insert
from yuyue.db import in_autocommit, on_postgres
from yuyue.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable, ValidationFailed
from yuyue.identity.service import (
    SESSION_STATE_COLUMNS,
    SessionLogin,
    accept_session,
    as_date,
    ban_covering,
    ban_until_query,
    pending_session,
    session_login,
    settle_session,
)
from yuyue.jobs.service import Job, every, register
from yuyue.kit.cache import TTLCache
from yuyue.kit.events import Event, collect, emit
from yuyue.kit.http import rowcount
from yuyue.kit.idnumbers import valid_uscc
from yuyue.kit.masking import mask_name
from yuyue.models import (
    Booking,
    BookingCounter,
    Citizen,
    CitizenSession,
    IdempotencyKey,
    SeatReturn,
    Slot,
    Ticket,
)
from yuyue.models.booking import LIVE_STATUSES
from yuyue.ops.logging import log
from yuyue.policy.service import (
    EffectivePolicy,
    booking_closes_at,
    cancel_deadline,
    checkin_window,
    day_opens_at,
    effective_policy,
    freed_seat_window,
    horizon_end,
    offsite_status,
    onsite_hold,
    onsite_status,
)

CHANNELS = ("web", "wechat", "app", "provincial_portal", "onsite", "api")
MAX_RANGE_DAYS = 92
IDEMPOTENCY_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class BookRequest:
    slot_id: str
    channel: str
    quantity: int = 1
    business_types: tuple[str, ...] = ()
    company_uscc: str | None = None
    company_name: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who places or changes a booking, through which door (docs/architecture.md "Owners"):
    every door (API, partner API, portal form, desk, waiting list, rebook) passes one to `book` and
    `reschedule`, which check the same rules for all of them; the doors differ only in how they
    parse and answer.

    `source`: "citizen" (the citizen's own token: API, portal), "channel" (a partner for its
    citizen; `client_id` names it), "rebook" (rules T9, G14), "waitlist" (an allocation), "staff"
    (hall staff at the desk) or "kiosk" (the hall's kiosk). It is also what subscribers of
    `booking.created` read."""

    source: str = "citizen"
    client_id: str | None = None

    @property
    def as_citizen(self) -> bool:
        """The logged-in citizen acts (their session's login applies: rules T2, G8, decision 0065)."""
        return self.source in ("citizen", "channel", "rebook")

    @property
    def may_book_onsite(self) -> bool:
        """Rule G10, docs/rules.md "On-site booking": only people at the hall book channel `onsite`, through
        hall staff or the hall's kiosk; a special-reason rebook may take today's slots on site (rules
        T9, G14: the platform picks that channel, not the citizen)."""
        return self.source in ("staff", "kiosk", "rebook")


CITIZEN = Caller("citizen")


@dataclass(frozen=True)
class Context:
    """What every booking rule needs about a service: its hall, policy and calendar."""

    info: ServiceInfo
    policy: EffectivePolicy
    calendar: WorkCalendar


async def context(session: AsyncSession, service_id: int) -> Context:
    info = await service_info(session, service_id)
    return Context(
        info, await effective_policy(session, info.hall_id), await hall_calendar(session, info.hall_id)
    )


# --- availability -------------------------------------------------------------------------------


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
_CACHE_MAX = 10_000


def _seats_changed(service_id: int | None) -> None:
    if len(_seat_generation) > _CACHE_MAX:  # a bound: forgetting the services stales every answer
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
    if len(_availability_cache) > _CACHE_MAX:
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
        days.append(
            _DayPlan(current.isoformat(), working, opens.isoformat() if opens else None, tuple(slots))
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
        if len(_plans) > _CACHE_MAX:
            _plans.clear()
        _plans[key] = plan
    plan.marker = _marker(ctx)  # the objects it was last found to hold for: `is` is enough next time
    params = {"service_id": service_id, "first": plan.first, "last": plan.last}
    stored = {row[0]: (row[1], row[2]) for row in (await session.execute(_SLOT_ROWS, params)).all()}
    knobs = ctx.policy.knobs
    days: list[dict[str, Any]] = []
    for day_plan in plan.days:
        slots: list[dict[str, Any]] = []
        for slot in day_plan.slots:
            capacity, booked = stored.get(slot.id, (slot.capacity, 0))
            offsite = capacity - onsite_hold(knobs, capacity)
            remaining = max(0, offsite - booked)
            slots.append(
                {
                    "id": slot.id,
                    "start": slot.start,
                    "end": slot.end,
                    "capacity": offsite,
                    "remaining": remaining,
                    "status": slot.if_left if remaining > 0 else slot.if_none,
                }
            )
        day: dict[str, Any] = {"date": day_plan.date, "working_day": day_plan.working_day, "slots": slots}
        if day_plan.opens_at is not None:
            day["opens_at"] = day_plan.opens_at
        days.append(day)
    return {"service_id": service_id, "days": days}


# --- shaping ------------------------------------------------------------------------------------


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
            "name": mask_name(citizen.name),
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


# --- booking ------------------------------------------------------------------------------------


_specs: dict[str, tuple[ServiceInfo, WorkCalendar, SlotSpec]] = {}


def _spec(ctx: Context, slot_id: str) -> SlotSpec:
    """The slot `slot_id` of the context's service (remembered while the service and calendar are
    the same objects: the booking rush asks for the same few slots again and again)."""
    hit = _specs.get(slot_id)
    if hit is not None and hit[0] is ctx.info and hit[1] is ctx.calendar:
        return hit[2]
    spec = _find_spec(ctx, slot_id)
    if len(_specs) > _CACHE_MAX:
        _specs.clear()
    _specs[slot_id] = (ctx.info, ctx.calendar, spec)
    return spec


def _find_spec(ctx: Context, slot_id: str) -> SlotSpec:
    parsed = parse_slot_id(slot_id)
    if parsed is None or parsed[0] != ctx.info.id:
        raise NotFound(f"slot {slot_id!r} not found")
    start = parsed[1]
    if ctx.calendar.is_working(start.date()):
        for spec in day_slots(ctx.info, start.date()):
            if spec.start == start:
                return spec
    raise NotFound(f"slot {slot_id!r} not found")


async def resolve_slot(session: AsyncSession, slot_id: str) -> tuple[Context, SlotSpec]:
    parsed = parse_slot_id(slot_id)
    if parsed is None:
        raise NotFound(f"slot {slot_id!r} not found")
    try:
        ctx = await context(session, parsed[0])
    except NotFound:
        raise NotFound(f"slot {slot_id!r} not found") from None
    if not ctx.info.active:
        raise NotFound(f"slot {slot_id!r} not found")
    return ctx, _spec(ctx, slot_id)


def check_open(ctx: Context, spec: SlotSpec, channel: str, now: datetime) -> None:
    """Raise the docs/api.md error for a slot that this channel may not book now."""
    knobs = ctx.policy.knobs
    if channel == "onsite":
        status = onsite_status(knobs, ctx.calendar, spec.day, spec.end, now)  # rule G10
    else:
        status = offsite_status(knobs, ctx.calendar, spec.day, spec.start, spec.end, 1, now)
    if status in ("past", "closed_for_booking"):
        raise Unprocessable("booking of this slot has closed", code="booking_closed")
    if status == "not_yet_open":
        if channel == "onsite":
            raise Unprocessable(
                f"on-site booking takes today's slots from {knobs.onsite_opens} on working days",
                code="not_open_yet",
            )
        opens = day_opens_at(knobs, ctx.calendar, spec.day)
        raise Unprocessable(
            f"this day opens for booking at {opens.isoformat()}",
            code="not_open_yet",
            opens_at=opens.isoformat(),
        )


def check_channel(caller: Caller, channel: str) -> None:
    """The channel this caller may book on (rules T1, G10): a citizen's own token, or a partner's,
    asking for `onsite` is refused, so the on-site share cannot be taken from home."""
    if channel not in CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(CHANNELS)}")
    if channel == "onsite" and not caller.may_book_onsite:
        raise Forbidden(
            "channel onsite is booked only at the hall, by hall staff or the hall's kiosk (rule G10)"
        )


def check_not_banned(banned_until: date | None) -> None:
    """Rules M9, G15: a ban in force forbids booking anew (book, reschedule, rebook other than T9)."""
    if banned_until is not None:
        raise Forbidden(
            f"booking is banned until {banned_until.isoformat()}",
            code="banned",
            banned_until=banned_until.isoformat(),
        )


def live_key(ctx: Context, citizen_id: int, day: date, company_uscc: str | None) -> str | None:
    """The one-live-booking key (rules T5, M10; docs/rules.md "One live booking"), unique among live
    bookings by the partial index `uq_bookings_live_key`, or None when nothing limits this booking.

    Both count among the halls under the unit that set the knob. T5 (`one_live_per: service`): per
    ID and item (docs/rules.md "Items": one item code at several halls is one item), personal business
    only, so a company agent's booking is not limited by it. M10 (`day`): per ID, or per USCC for a
    company agent, and the slot's date, whatever the item."""
    scope = ctx.policy.sources["one_live_per"]  # among the halls under the unit that set it
    if ctx.policy.knobs.one_live_per == "day":
        who = f"co:{company_uscc}" if company_uscc else f"c:{citizen_id}"
        return f"{who}:d:{day.isoformat()}:u:{scope}"
    if company_uscc:
        return None
    return f"c:{citizen_id}:i:{ctx.info.item}:u:{scope}"


def unlimited_key() -> str:
    """The `live_key` of a booking no one-live-booking rule limits: unique, so it never collides."""
    return f"free:{secrets.token_hex(12)}"


def check_login_may_book(login: SessionLogin | None, info: ServiceInfo) -> None:
    """Rules T2/G8: the foreigner login (passport or permit, no provincial login) is for
    foreigner-related business only; every other login may book any service (decision 0065)."""
    if login is not None and login.foreigner and not info.foreigner_related:
        raise Forbidden(
            "this service is not foreigner-related business: log in through the provincial unified "
            "identity service (广东政务服务网) to book it (rules T2, G8)",
            code="provincial_login_required",
        )


def check_may_book(session: AsyncSession, citizen_id: int, info: ServiceInfo) -> None:
    """`check_login_may_book` for the citizen of this request (the waiting list's join uses it)."""
    check_login_may_book(session_login(session, citizen_id), info)


def booking_company(
    login: SessionLogin | None, uscc: str | None, name: str | None
) -> tuple[str | None, str | None]:
    """The company (USCC, name) a booking records (rule M10 counts per USCC). A legal person's agent
    (decision 0061) books for the account's own company only: none given means that company, another
    USCC is refused. Personal accounts name a company or not, as they choose (decision 0065)."""
    if login is None or login.company_uscc is None:
        return (uscc, name) if uscc else (None, None)
    if uscc is not None and uscc != login.company_uscc:
        raise Unprocessable(
            "a legal person's agent books for the account's own company only: company.uscc is not "
            "the USCC of the account logged in",
            code="company_mismatch",
        )
    return login.company_uscc, login.company_name or name


def _limit_error(ctx: Context) -> DomainError:
    if ctx.policy.knobs.one_live_per == "day":
        return Conflict(
            "one booking per person and day under this hall's policy (rule M10)", code="daily_limit"
        )
    return Conflict(
        "you already hold a live booking of this item, at this hall or another (rule T5)",
        code="already_booked",
    )


# Statements of the booking path are built once and run with parameters (decision 0013): building
# and keying a statement of this size costs more CPU than the database spends running it.
_precheck_statements: dict[tuple[date, bool], Select[Any]] = {}


def _precheck_statement(today: date, with_session: bool) -> Select[Any]:
    """The pre-check for bans in force on `today` (`ban_until_query` reads the date itself); with
    the session row of `sid` joined (`identity.service.defer_session_check`, decision 0014)."""
    statement = _precheck_statements.get((today, with_session))
    if statement is not None:
        return statement
    citizen_id = bindparam("citizen_id", type_=Integer)
    live = (
        select(func.count())
        .where(Booking.citizen_id == citizen_id, Booking.status.in_(LIVE_STATUSES))
        .scalar_subquery()
    )
    statement = select(Citizen, live, _taken_query(), _banned_query(citizen_id))
    if with_session:
        sessions = CitizenSession.__table__
        joined = Citizen.__table__.outerjoin(sessions, sessions.c.id == bindparam("sid", type_=String))
        statement = statement.add_columns(*SESSION_STATE_COLUMNS).select_from(joined)
    statement = statement.where(Citizen.id == citizen_id)
    if clock.today() == today:  # not across midnight: then `ban_until_query` saw another day
        if len(_precheck_statements) > 8:
            _precheck_statements.clear()
        _precheck_statements[(today, with_session)] = statement
    return statement


def _taken_query() -> Any:
    """Whether the live key `live_key` is held by a live booking (rules T5, M10)."""
    return (
        select(func.count())
        .where(Booking.live_key == bindparam("live_key", type_=String), Booking.status.in_(LIVE_STATUSES))
        .scalar_subquery()
    )


def _banned_query(citizen_id: Any) -> Any:
    # The same rule query as everywhere (rules M9, G15), with parameters in place of the values.
    hall_path = bindparam("hall_path", type_=String)
    return ban_until_query(cast(int, citizen_id), cast(str, hall_path)).scalar_subquery()


_TAKEN = select(_taken_query())


@dataclass(frozen=True)
class _Pre:
    citizen: Citizen | None  # None: no such citizen (refused where the check used to stand)
    live_count: int
    taken: bool
    banned_until: date | None


async def _precheck(session: AsyncSession, citizen_id: int, key: str, ctx: Context) -> _Pre:
    """One round trip: the citizen, their live-booking count, whether the live key is taken, and the
    last day of a ban in force over this hall (rules M9, G15). When the request's session is still
    to be judged (decision 0014), its row comes in the same read and is judged first (401)."""
    pending, sid = pending_session(session, citizen_id)
    with_session = pending and sid is not None
    params = {"citizen_id": citizen_id, "live_key": key, "hall_path": ctx.info.hall_path}
    if with_session:
        params["sid"] = sid
    row = (await session.execute(_precheck_statement(clock.today(), with_session), params)).first()
    if pending:
        if row is None:
            await settle_session(session)  # no citizen row to read it with: read it alone
        else:
            found = with_session and row.expires_at is not None  # NULL: the outer join found no row
            accept_session(session, citizen_id, sid, row if found else None)
    if row is None:
        return _Pre(None, 0, False, None)
    return _Pre(row[0], int(row[1]), bool(row[2]), as_date(row[3]))


_TAKE_SEATS = text(
    "UPDATE slots SET booked = booked + :n "
    "WHERE id = :id AND booked + :n <= capacity - (capacity * :pct) / 100 RETURNING booked"
)


async def _take_seats(
    session: AsyncSession, ctx: Context, spec: SlotSpec, quantity: int, onsite: bool
) -> None:
    """The conditional UPDATE: never more than the slot's limit, whatever runs beside it."""
    share = 0 if onsite else ctx.policy.knobs.onsite_share_pct  # rule G10: on-site share held back
    statement = _TAKE_SEATS
    params = {"n": quantity, "id": spec.id, "pct": share}
    _seats_changed(ctx.info.id)
    if (await session.execute(statement, params)).first() is not None:
        return
    # Missed: the slot may have no row yet. Create it (or wait for a concurrent creator to commit),
    # then ask again with a fresh snapshot; that second answer decides.
    await _materialise(session, ctx, spec)
    if (await session.execute(statement, params)).first() is not None:
        return
    raise Conflict("not enough seats left in this slot", code="slot_full")


async def _materialise(session: AsyncSession, ctx: Context, spec: SlotSpec) -> bool:
    """Create the slot's row on first use; False when it already existed."""
    insert = _dialect_insert(session, Slot).values(
        id=spec.id,
        service_id=ctx.info.id,
        day=spec.day,
        start=spec.start,
        end=spec.end,
        capacity=spec.capacity,
        booked=0,
    )
    result = await session.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
    return rowcount(result) > 0


_RELEASE_SEATS = (
    update(Slot)
    .where(Slot.id == bindparam("slot_id"))
    .values(booked=Slot.booked - bindparam("quantity", type_=Integer))
    .returning(Slot.booked)
    .execution_options(synchronize_session=False)
)


async def _release_seats(session: AsyncSession, slot_id: str, quantity: int) -> int | None:
    """Free seats of a slot; returns its `booked` after (None: no row). The slot's row stays locked
    by this transaction until it ends."""
    parsed = parse_slot_id(slot_id)
    _seats_changed(parsed[0] if parsed else None)
    left = (await session.execute(_RELEASE_SEATS, {"slot_id": slot_id, "quantity": quantity})).scalar()
    return None if left is None else int(left)


async def _hold_what_the_waitlist_left(
    session: AsyncSession, ctx: Context, slot_id: str, freed: int, left: int | None, now: datetime
) -> int:
    """Issue 9 item 5 (decision 0081): after the waiting list had the `freed` seats first (`left` is
    the slot's `booked` just after they were freed), hold the seats it did not take until a random
    moment of the policy's window, so they never go straight to the fastest clicker. Returns the
    seats held. The slot's row is locked by this transaction since the release, so nothing else
    took seats in between."""
    window = freed_seat_window(ctx.policy.knobs)
    if window is None or left is None or freed <= 0:
        return 0
    booked = (await session.execute(select(Slot.booked).where(Slot.id == slot_id))).scalar_one()
    held = freed - max(0, int(booked) - left)  # seats the waiting list took came out of the freed ones
    if held <= 0:
        return 0
    low, high = window
    delay = low + secrets.randbelow(high - low + 1)  # not guessable by a bot watching the slot
    due = now.replace(microsecond=0) + timedelta(seconds=delay + (1 if now.microsecond else 0))
    _seats_changed(ctx.info.id)
    await session.execute(
        update(Slot)
        .where(Slot.id == slot_id)
        .values(booked=Slot.booked + held)
        .execution_options(synchronize_session=False)
    )
    session.add(SeatReturn(slot_id=slot_id, service_id=ctx.info.id, seats=held, due_at=due, created_at=now))
    await session.flush()
    return held


async def _next_number(session: AsyncSession, ctx: Context, day: date) -> str:
    """Rule M12: I + hall code + slot date + 5-digit sequence within that hall and date."""
    insert = _dialect_insert(session, BookingCounter).values(hall_id=ctx.info.hall_id, day=day, n=1)
    statement = insert.on_conflict_do_update(
        index_elements=["hall_id", "day"], set_={"n": BookingCounter.n + 1}
    ).returning(BookingCounter.n)
    sequence = int((await session.execute(statement)).scalar_one())
    if sequence > 99_999:
        raise Conflict("this hall's booking numbers for the day are exhausted", code="slot_full")
    return f"I{ctx.info.hall_code}{day:%Y%m%d}{sequence:05d}"


# Rows that other domains write with a booking made in autocommit (kit/events.py `collect`): a
# table and its column names, and per column whether the value carries the booking's number.
_Extra = tuple[Table, tuple[tuple[str, bool], ...]]
_numbered_inserts: dict[tuple[tuple[str, ...], tuple[_Extra, ...], bool], Any] = {}

# What stands for the booking's number in the rows of `collect` until the statement draws it.
PENDING_NUMBER = "#booking-number#"

# The Idempotency-Key's row and answer in the booking's statement (decision 0015). Text, not
# `insert()`: a Core INSERT run with the booking's parameters would also take every column named
# like one of them (`citizen_id`, `created_at`). No ON CONFLICT: a key already taken fails the
# statement, so the booking is not made twice.
_ANSWER_TEXT = text(
    "INSERT INTO idempotency_keys (citizen_id, key, request_hash, status_code, body, created_at) "
    "SELECT CAST(:answer_citizen AS integer), CAST(:answer_key AS varchar), "
    "CAST(:answer_hash AS varchar), 201, "
    f"replace(CAST(:answer_body AS text), '{PENDING_NUMBER}', booked.number), "
    "CAST(:answer_at AS timestamp) FROM booked RETURNING 1"
).bindparams(bindparam("answer_at", type_=cast(Table, IdempotencyKey.__table__).c.created_at.type))
_ANSWER = _ANSWER_TEXT.columns(column("answered", Integer))


def _numbered_insert(names: tuple[str, ...], extras: tuple[_Extra, ...] = (), answered: bool = False) -> Any:
    """PostgreSQL, one statement (decisions 0012, 0013, 0014, 0015):

        WITH seat AS (UPDATE slots … WHERE booked + n <= limit RETURNING booked),
             counter AS (INSERT INTO booking_counters SELECT … FROM seat ON CONFLICT DO UPDATE … RETURNING n),
             booked AS (INSERT INTO bookings SELECT … FROM counter RETURNING id, number)
             [, x0 AS (INSERT INTO messages SELECT … FROM booked ON CONFLICT DO NOTHING) …]
             [, answer AS (INSERT INTO idempotency_keys SELECT … FROM booked)]
        SELECT id, number FROM booked

    No row back: the seat UPDATE matched nothing, so nothing was numbered or written. Parameters:
    `n`, `id`, `pct` (the seat UPDATE, `_TAKE_SEATS`), `counter_hall`, `counter_day`, `prefix`, one
    per column in `names`, `x<i>_<column>` per column of each extra row, and with `answered`
    `answer_citizen`, `answer_key`, `answer_hash`, `answer_body`, `answer_at` (the Idempotency-Key's
    row); in the texts `PENDING_NUMBER` is replaced by the number drawn."""
    statement = _numbered_inserts.get((names, extras, answered))
    if statement is not None:
        return statement
    table = cast(Table, Booking.__table__)
    seat = _TAKE_SEATS.columns(column("booked", Integer)).cte("seat")
    counter = (
        postgresql.insert(BookingCounter)
        .from_select(
            ["hall_id", "day", "n"],
            select(
                bindparam("counter_hall", type_=String),
                bindparam("counter_day", type_=Date),
                literal(1, Integer),
            ).select_from(seat),
        )
        .on_conflict_do_update(index_elements=["hall_id", "day"], set_={"n": BookingCounter.n + 1})
        .returning(BookingCounter.n)
        .cte("counter")
    )
    seq = counter.c.n
    digits = case((seq <= 99_999, func.lpad(sql_cast(seq, String), 5, "0")), else_=sql_cast(seq, String))
    numbered = bindparam("prefix", type_=String) + digits
    columns = [bindparam(name, type_=table.c[name].type).label(name) for name in names]
    booked = (
        table.insert()
        .from_select(["number", *names], select(numbered.label("number"), *columns).select_from(counter))
        .returning(table.c.id, table.c.number)
        .cte("booked")
    )
    statement = select(booked.c.id, booked.c.number)
    for i, (other, shape) in enumerate(extras):
        values = []
        for name, carries_number in shape:
            kind = other.c[name].type
            if carries_number:  # sent as text, the number put in, then read as the column's type
                sent = bindparam(f"x{i}_{name}", type_=Text)
                values.append(sql_cast(func.replace(sent, PENDING_NUMBER, booked.c.number), kind).label(name))
            else:
                values.append(bindparam(f"x{i}_{name}", type_=kind).label(name))
        insert = (
            postgresql.insert(other)
            .from_select([name for name, _ in shape], select(*values).select_from(booked))
            .on_conflict_do_nothing()  # as `enqueue`: a row whose dedup key exists is skipped
        )
        statement = statement.add_cte(insert.cte(f"x{i}"))
    if answered:  # the Idempotency-Key's row with its answer (decision 0015)
        statement = statement.add_cte(_ANSWER.cte("answer"))
    _numbered_inserts[(names, extras, answered)] = statement
    return statement


def _extra_params(rows: list[tuple[Any, dict[str, Any]]]) -> tuple[tuple[_Extra, ...], dict[str, Any]]:
    """The shape and the parameters of the rows `collect` returned, for `_numbered_insert`."""
    shapes: list[_Extra] = []
    params: dict[str, Any] = {}
    for i, (other, row) in enumerate(rows):
        shape = []
        for name, value in row.items():
            if isinstance(value, dict | list):  # JSON: the number goes into its text
                encoded = json.dumps(value, ensure_ascii=False)
                carries = PENDING_NUMBER in encoded
                value = encoded if carries else value
            else:
                carries = value == PENDING_NUMBER
            shape.append((name, carries))
            params[f"x{i}_{name}"] = value
        shapes.append((cast(Table, other), tuple(shape)))
    return tuple(shapes), params


async def _take_seats_and_insert(
    session: AsyncSession,
    ctx: Context,
    spec: SlotSpec,
    quantity: int,
    onsite: bool,
    values: dict[str, Any],
    extras: list[tuple[Any, dict[str, Any]]] | None = None,
    answer: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """Take the seats (the conditional UPDATE), number the booking (rule M12) and insert it; returns
    its id and number. A Core INSERT … RETURNING, not the ORM unit of work (decision 0011).

    PostgreSQL: one statement (`_numbered_insert`), so the hot slot and counter rows are locked for
    two round trips fewer (decisions 0012, 0013). With `extras` (rows of other domains, from
    `collect`), they go in the same statement, one round trip fewer again; in autocommit that
    statement is the whole transaction (decision 0014). With `answer` (the `answer_*` parameters),
    the Idempotency-Key's row and answer too (decision 0015).
    SQLite (it serialises writers anyway): the UPDATE, the counter upsert and the INSERT one after
    the other. A live key already taken raises IntegrityError either way (the partial unique index
    decides)."""
    if not on_postgres(session):
        assert not extras and not answer, "on SQLite other rows are written by their own statements"
        await _take_seats(session, ctx, spec, quantity, onsite)
        number = await _next_number(session, ctx, spec.day)
        table = cast(Table, Booking.__table__)
        inserted = await session.execute(table.insert().returning(table.c.id), {"number": number, **values})
        return int(inserted.scalar_one()), number
    share = 0 if onsite else ctx.policy.knobs.onsite_share_pct  # rule G10: on-site share held back
    prefix = f"I{ctx.info.hall_code}{spec.day:%Y%m%d}"
    params = {"n": quantity, "id": spec.id, "pct": share}
    params |= {"counter_hall": ctx.info.hall_id, "counter_day": spec.day, "prefix": prefix, **values}
    shape, extra_params = _extra_params(extras or [])
    params |= extra_params | (answer or {})
    statement = _numbered_insert(tuple(values), shape, answer is not None)
    _seats_changed(ctx.info.id)
    row = (await session.execute(statement, params)).first()
    if row is None:
        # No seat: the slot may have no row yet. Create it (or wait for a concurrent creator to
        # commit), then try again with a fresh snapshot; that second answer decides.
        await _materialise(session, ctx, spec)
        row = (await session.execute(statement, params)).first()
        if row is None:
            raise Conflict("not enough seats left in this slot", code="slot_full")
    if len(row.number) > len(prefix) + 5:
        raise Conflict("this hall's booking numbers for the day are exhausted", code="slot_full")
    return int(row.id), str(row.number)


async def book(
    session: AsyncSession,
    citizen_id: int,
    request: BookRequest,
    caller: Caller = CITIZEN,
    *,
    rebook_of: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Book a slot (one transaction: checks, one conditional UPDATE, counter, INSERT), the one use
    case every door calls with its `caller`; event subscribers read who asked from it."""
    source, client_id = caller.source, caller.client_id
    now = clock.now()
    check_channel(caller, request.channel)  # rules T1, G10
    ctx, spec = await resolve_slot(session, request.slot_id)
    info = ctx.info
    if request.quantity > info.max_batch:  # rule G16
        raise Unprocessable(
            f"quantity above this service's max batch of {info.max_batch}", code="quantity_exceeds_max"
        )
    unknown = sorted(set(request.business_types) - set(info.business_types))
    if unknown:  # rule M11
        raise ValidationFailed(f"business_types not offered by this service: {', '.join(unknown)}")
    if request.company_uscc is not None and not valid_uscc(request.company_uscc):
        raise Unprocessable("company.uscc fails the GB 32100 check", code="invalid_uscc")
    if info.hall_mode == "self_service":  # rule M2: self-service halls take no bookings
        raise Unprocessable(
            "this hall takes no bookings: use its self-service machines or online handling",
            code="booking_closed",
        )
    uscc = request.company_uscc.upper() if request.company_uscc else None
    # The pre-check reads with the key of a personal login, the usual case; it also judges a session
    # left to it (decision 0014), so the login is known only after it.
    guess = live_key(ctx, citizen_id, spec.day, uscc)
    pre = await _precheck(session, citizen_id, guess or "", ctx)  # "": no live key is empty
    login = session_login(session, citizen_id) if caller.as_citizen else None
    check_login_may_book(login, info)  # rules T2, G8
    company_name = request.company_name
    if source != "rebook":  # a rebook keeps the missed booking's company
        uscc, company_name = booking_company(login, uscc, company_name)
    check_open(ctx, spec, request.channel, now)
    key = live_key(ctx, citizen_id, spec.day, uscc)
    if pre.citizen is None:
        raise Forbidden("unknown citizen")
    citizen, live_count, taken, banned_until = pre.citizen, pre.live_count, pre.taken, pre.banned_until
    if key is None:  # not limited (rule T5 limits personal business only)
        taken = False
    elif key != guess:  # a legal person's agent booking for the account's company (rule M10)
        taken = bool((await session.execute(_TAKEN, {"live_key": key})).scalar())
    check_not_banned(banned_until)  # rules M9, G15
    if taken:
        raise _limit_error(ctx)
    if live_count >= ctx.policy.knobs.max_live_bookings:
        raise Conflict(
            f"at most {ctx.policy.knobs.max_live_bookings} live bookings at once", code="booking_cap"
        )
    values: dict[str, Any] = dict(
        citizen_id=citizen_id,
        service_id=info.id,
        hall_id=info.hall_id,
        slot_id=spec.id,
        slot_day=spec.day,
        slot_start=spec.start,
        slot_end=spec.end,
        quantity=request.quantity,
        channel=request.channel,
        business_types=list(request.business_types),
        company_uscc=uscc,
        company_name=company_name if uscc else None,
        status="booked",
        cancelled_by=None,
        live_key=key or unlimited_key(),
        rebook_of=rebook_of,
        rebooked=False,
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    onsite, quantity = request.channel == "onsite", request.quantity
    # On PostgreSQL what the subscribers of `booking.created` write (its SMS) goes into the booking's
    # own statement (decision 0014): in autocommit that statement is the whole transaction; inside a
    # caller's transaction (a key, a partner, the waiting list) it is one round trip less while the
    # hall's counter row is locked.
    fold = on_postgres(session)
    extras, answer, keyed = None, None, None
    created = {"source": source} | ({"client_id": client_id} if client_id else {})
    if fold:
        pending = Booking(id=0, number=PENDING_NUMBER, **values)
        extras = await collect(session, Event("booking.created", {"booking": pending, **created}))
        # An Idempotency-Key's answer is this booking's view: it goes in the statement too, so
        # nothing is left between the hall's counter row and COMMIT (decision 0015). Only the
        # booking the citizen asked for: not one a cancel's waiting list makes in the same request.
        keyed = session.info.pop(_KEYED, None) if caller.as_citizen else None
        if keyed is not None and keyed.citizen_id == citizen_id:
            body = json.dumps(booking_view(pending, citizen, ctx), ensure_ascii=False)
            answer = {
                "answer_citizen": citizen_id,
                "answer_key": keyed.key,
                "answer_hash": keyed.request_hash,
                "answer_body": body,
                "answer_at": keyed.at,
            }
    try:
        booking_id, number = await _take_seats_and_insert(
            session, ctx, spec, quantity, onsite, values, extras, answer
        )
    except IntegrityError:
        # A concurrent booking took the live key between the pre-check and here: the index decides.
        raise _limit_error(ctx) from None
    booking = Booking(id=booking_id, number=number, **values)
    make_transient_to_detached(booking)
    session.add(booking)
    if not fold:
        await emit(session, Event("booking.created", {"booking": booking, **created}))
    if answer is not None and keyed is not None:
        keyed.answered = answer["answer_body"].replace(PENDING_NUMBER, number)
    return booking_view(booking, citizen, ctx)


async def own_booking(session: AsyncSession, citizen_id: int, number: str, *, lock: bool = False) -> Booking:
    query = select(Booking).where(Booking.number == number, Booking.citizen_id == citizen_id)
    if lock:
        query = query.with_for_update()
    booking = (await session.execute(query)).scalar_one_or_none()
    if booking is None:
        raise NotFound("booking not found")  # never a hint that another citizen's number exists
    return booking


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


async def cancel(session: AsyncSession, citizen_id: int, number: str) -> dict[str, Any]:
    now = clock.now()
    booking = await own_booking(session, citizen_id, number, lock=True)
    if booking.status != "booked":
        raise Unprocessable(f"a {booking.status} booking cannot be cancelled", code="not_cancellable")
    ctx = await context(session, booking.service_id)
    deadline = cancel_deadline(
        ctx.policy.knobs, ctx.calendar, booking.slot_day, booking.slot_start, booking.slot_end
    )
    if now > deadline:  # rules G13, T8, M8
        raise Unprocessable(
            f"cancel deadline was {deadline.isoformat()}",
            code="cancel_too_late",
            cancel_deadline=deadline.isoformat(),
        )
    changed = await session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == "booked")
        .values(status="cancelled", cancelled_by="citizen", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Unprocessable("booking is no longer cancellable", code="not_cancellable")
    left = await _release_seats(session, booking.slot_id, booking.quantity)
    booking.status, booking.cancelled_by, booking.updated_at = "cancelled", "citizen", now
    await emit(session, Event("booking.cancelled", {"booking": booking}))  # the waiting list first
    await _hold_what_the_waitlist_left(session, ctx, booking.slot_id, booking.quantity, left, now)
    return await view(session, booking)


async def reschedule(
    session: AsyncSession, citizen_id: int, number: str, new_slot_id: str, caller: Caller = CITIZEN
) -> dict[str, Any]:
    """Atomic: the old seat is freed only if the new one is taken; the number stays. A new slot is
    booked, so the same rules as `book` apply to who asks: the channel (rule G10), the login (rules
    T2, G8) and a ban in force (rules M9, G15)."""
    now = clock.now()
    booking = await own_booking(session, citizen_id, number, lock=True)
    if booking.status != "booked":
        raise Unprocessable(f"a {booking.status} booking cannot be rescheduled", code="not_cancellable")
    check_channel(caller, booking.channel)  # rule G10: an on-site booking moves at the hall only
    ctx = await context(session, booking.service_id)
    if caller.as_citizen:
        check_login_may_book(session_login(session, citizen_id), ctx.info)  # rules T2, G8
    check_not_banned(await ban_covering(session, citizen_id, ctx.info.hall_path))  # rules M9, G15
    deadline = cancel_deadline(
        ctx.policy.knobs, ctx.calendar, booking.slot_day, booking.slot_start, booking.slot_end
    )
    if now > deadline:
        raise Unprocessable(
            f"change deadline was {deadline.isoformat()}",
            code="cancel_too_late",
            cancel_deadline=deadline.isoformat(),
        )
    parsed = parse_slot_id(new_slot_id)
    if parsed is not None and parsed[0] != booking.service_id:
        raise ValidationFailed("slot_id must be a slot of the same service")
    spec = _spec(ctx, new_slot_id)
    if spec.id == booking.slot_id:
        raise ValidationFailed("slot_id is the booking's current slot")
    channel = booking.channel
    check_open(ctx, spec, channel, now)
    key = live_key(ctx, citizen_id, spec.day, booking.company_uscc) or booking.live_key
    # Lock slot rows in id order so two opposite reschedules cannot deadlock.
    if spec.id < booking.slot_id:
        await _take_seats(session, ctx, spec, booking.quantity, channel == "onsite")
        left = await _release_seats(session, booking.slot_id, booking.quantity)
    else:
        left = await _release_seats(session, booking.slot_id, booking.quantity)
        await _take_seats(session, ctx, spec, booking.quantity, channel == "onsite")
    old_slot_id = booking.slot_id
    booking.slot_id, booking.slot_day, booking.slot_start, booking.slot_end = (
        spec.id,
        spec.day,
        spec.start,
        spec.end,
    )
    booking.live_key, booking.updated_at = key, now
    try:
        await session.flush()
    except IntegrityError:
        raise _limit_error(ctx) from None
    await emit(session, Event("booking.rescheduled", {"booking": booking, "old_slot_id": old_slot_id}))
    await _hold_what_the_waitlist_left(session, ctx, old_slot_id, booking.quantity, left, now)
    return await view(session, booking)


async def rebook(
    session: AsyncSession, citizen_id: int, number: str, new_slot_id: str, reason: str
) -> dict[str, Any]:
    """Rules T9, G14: after a missed slot, on its day from its start until 24:00, one rebook of the
    same service at the same hall; the miss becomes `excused` (no penalty)."""
    now = clock.now()
    missed = await own_booking(session, citizen_id, number, lock=True)
    if missed.status not in ("booked", "no_show") or missed.rebooked or missed.rebook_of is not None:
        raise Unprocessable(
            "this booking cannot be rebooked (one special-reason rebook per missed booking, "
            "and a rebook cannot itself be rebooked)",
            code="not_rebookable",
        )
    if not (missed.slot_start <= now < at(missed.slot_day + timedelta(days=1), "00:00")):
        raise Unprocessable(
            "a missed slot may be rebooked on its day, from its start until 24:00", code="not_rebookable"
        )
    parsed = parse_slot_id(new_slot_id)
    if parsed is None or parsed[0] != missed.service_id:
        raise ValidationFailed("slot_id must be a slot of the same service at the same hall")
    # The miss is excused first, so its live key is free for the rebook (and, with penalties, any
    # ban it triggered is recomputed before the rebook is checked).
    await session.execute(
        update(Booking)
        .where(Booking.id == missed.id)
        .values(status="excused", rebooked=True, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if missed.status == "booked":
        await _release_seats(session, missed.slot_id, missed.quantity)
    missed.status, missed.rebooked = "excused", True
    await emit(session, Event("booking.excused", {"booking": missed}))
    day = parsed[1].date()
    channel = "onsite" if day == now.date() else ("web" if missed.channel == "onsite" else missed.channel)
    request = BookRequest(
        slot_id=new_slot_id,
        channel=channel,
        quantity=missed.quantity,
        business_types=tuple(missed.business_types or ()),
        company_uscc=missed.company_uscc,
        company_name=missed.company_name,
    )
    return await book(session, citizen_id, request, Caller("rebook"), rebook_of=missed.number, reason=reason)


# --- idempotency --------------------------------------------------------------------------------


def request_hash(method_path: str, body: Any) -> str:
    canonical = json.dumps({"p": method_path, "b": body}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_KEYED = "yuyue.booking.keyed"  # session.info: the key whose answer `book` may write


@dataclass
class _Keyed:
    """The Idempotency-Key of the request `idempotent` is running. A booking made under it on
    PostgreSQL inserts the key's row, its view as the answer, in its own statement, and leaves that
    answer here."""

    citizen_id: int
    key: str
    request_hash: str
    at: datetime
    answered: str | None = None  # the answer's JSON as the statement wrote it


async def idempotent(
    session: AsyncSession,
    citizen_id: int,
    key: str | None,
    fingerprint: str,
    work: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> tuple[int, dict[str, Any]]:
    """docs/api.md: the same key and body from the same citizen answers the first answer again and
    changes nothing; another body is `idempotency_key_reused`.

    Optimistic (decision 0015): `work` runs, then the key's row is inserted with its answer in the
    same transaction, by the booking's own statement when `work` made one (so a booking with a key
    can be one autocommit statement too). Two requests with one key at once: the primary key (or the
    booking's live key, rule T5) lets one commit; the other is refused by the database, finds the
    row, and answers the first answer again (or `idempotency_key_reused`). A refusal stores nothing."""
    if key is None:
        return await work()
    if not key or len(key) > 200:
        raise ValidationFailed("Idempotency-Key must be 1 to 200 characters")
    now = clock.now()
    existing = await session.get(IdempotencyKey, (citizen_id, key))
    if existing is not None and existing.created_at < now - IDEMPOTENCY_TTL:
        await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.citizen_id == citizen_id, IdempotencyKey.key == key)
        )
        existing = None
    if existing is not None:
        return _replay(existing, fingerprint)
    keyed = session.info[_KEYED] = _Keyed(citizen_id, key, fingerprint, now)
    try:
        status, body = await work()
    except DomainError:
        # Refused, perhaps because the same request with this key got in first: its answer, if so.
        winner = await _committed_key(session, citizen_id, key)
        if winner is None:
            raise
        return _replay(winner, fingerprint)
    finally:
        session.info.pop(_KEYED, None)
    encoded = json.dumps(body, ensure_ascii=False)
    if keyed.answered is not None:  # `book` wrote the row with the booking (decision 0015)
        if status != 201 or keyed.answered != encoded:  # `work` answered more than the booking
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.citizen_id == citizen_id, IdempotencyKey.key == key)
                .values(status_code=status, body=encoded)
                .execution_options(synchronize_session=False)
            )
        return status, body
    try:
        async with session.begin_nested():
            session.add(
                IdempotencyKey(
                    citizen_id=citizen_id,
                    key=key,
                    request_hash=fingerprint,
                    status_code=status,
                    body=encoded,
                    created_at=now,
                )
            )
    except IntegrityError:
        await session.rollback()  # the same key got in first: this request's work is undone
        winner = await _committed_key(session, citizen_id, key)
        if winner is None:
            raise Conflict(
                "a request with this Idempotency-Key is in progress; retry", code="conflict"
            ) from None
        return _replay(winner, fingerprint)
    return status, body


async def _committed_key(session: AsyncSession, citizen_id: int, key: str) -> IdempotencyKey | None:
    """The key's row as committed now, read in the caller's session: a refused request's
    transaction on PostgreSQL (perhaps aborted by the failed statement) is rolled back first; in
    autocommit or on SQLite (a failed statement leaves the transaction usable) it is read as is.
    Never on a second connection: a request holding one while waiting for another could empty the
    pool under load."""
    if on_postgres(session) and not in_autocommit(session):
        await session.rollback()
    return await session.get(IdempotencyKey, (citizen_id, key), populate_existing=True)


def _replay(row: IdempotencyKey, fingerprint: str) -> tuple[int, dict[str, Any]]:
    if row.request_hash != fingerprint:
        raise Unprocessable(
            "this Idempotency-Key was used with another request", code="idempotency_key_reused"
        )
    if row.status_code is None or row.body is None:
        raise Conflict("a request with this Idempotency-Key is in progress; retry", code="conflict")
    return row.status_code, json.loads(row.body)


# --- held seats back to open booking (issue 9 item 5, decision 0081) ----------------------------

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
            _seats_changed(service_id)
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
