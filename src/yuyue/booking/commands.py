"""The booking use cases: book, cancel, reschedule, special-reason rebook. Every door (API, partner
API, portal form, desk, kiosk, waiting list) calls these with its `Caller`; the rules are checked here
for all of them (rules.py), the statements are repository.py's. Everything happens in the caller's one
transaction; nothing here commits. (A citizen's booking without an Idempotency-Key runs in autocommit
on PostgreSQL: its write is then one statement, decision 0014. Inside a transaction, the booking's
statement is its last write: what needs the number, the key's answer included, goes in it, and only
COMMIT follows while the counter row is locked, decision 0015.)

Events (kit/events.py) let other domains react in the same transaction:
- `booking.created` {"booking": Booking, "source": str[, "client_id": str]}: a booking was made
  ("citizen", "rebook", …; `client_id`: the partner client of a "channel" booking); on PostgreSQL its
  handlers are run by `collect` before the booking's statement, with the number still
  `PENDING_NUMBER`, and what they write (`kit.events.write`, `notify.enqueue`) is written by that
  statement (decisions 0014, 0015);
- `booking.cancelled` {"booking": Booking}: seats of `booking.slot_id` were freed;
- `booking.rescheduled` {"booking": Booking, "old_slot_id": str}: seats of the old slot were freed;
- `booking.excused` {"booking": Booking}: a missed booking was excused by a special-reason rebook;
- `seats.returned` {"service_id": int, "slot_ids": [str]} (tasks.py): held seats went back to open
  booking.

Freed seats (issue 9 item 5, decision 0081): the seats of a cancel or a reschedule go to the waiting
list first (the subscribers of `booking.cancelled` / `booking.rescheduled` allocate in the same
transaction, rule G11); what it leaves stays counted in `slots.booked` and is recorded in
`seat_returns` with a random due moment of the policy's `freed_seat_delay_*` window, until the job
in tasks.py returns it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from yuyue.booking.repository import (
    PENDING_NUMBER,
    TAKEN,
    book_in_one_trip,
    hold_what_the_waitlist_left,
    own_booking,
    placeholder_citizen,
    precheck,
    release_seats,
    take_seats,
    take_seats_and_insert,
)
from yuyue.booking.rules import (
    CITIZEN,
    BookRequest,
    Caller,
    Context,
    booking_company,
    check_channel,
    check_login_may_book,
    check_not_banned,
    check_open,
    check_released,
    context,
    limit_error,
    live_key,
    resolve_slot,
    slot_spec,
    unlimited_key,
)
from yuyue.booking.status import BookingStatus, move
from yuyue.booking.views import booking_view, view
from yuyue.catalogue.service import SlotSpec, parse_slot_id
from yuyue.clock import at, clock
from yuyue.db import in_autocommit, on_postgres
from yuyue.errors import Conflict, DomainError, Forbidden, Unprocessable, ValidationFailed
from yuyue.identity.service import ban_covering
from yuyue.kit.events import Event, collect, emit
from yuyue.kit.http import rowcount
from yuyue.kit.idnumbers import valid_uscc
from yuyue.models import Booking, Citizen
from yuyue.policy.service import cancel_deadline


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
    made = await _in_one_trip(session, citizen_id, request, caller, ctx, spec, uscc, guess, now)
    if made is not None:
        return made
    pre = await precheck(session, citizen_id, guess or "", ctx, caller.session)  # "": no key is empty
    login = caller.login(citizen_id)
    check_login_may_book(login, info)  # rules T2, G8
    company_name = request.company_name
    if source != "rebook":  # a rebook keeps the missed booking's company
        uscc, company_name = booking_company(login, uscc, company_name)
    check_open(ctx, spec, request.channel, now)
    if request.channel != "onsite" and source != "waitlist":  # the allocation is the release itself
        await check_released(session, ctx, spec, now)  # rules G10, G11: the waiting list first
    key = live_key(ctx, citizen_id, spec.day, uscc)
    if pre.citizen is None:
        raise Forbidden("unknown citizen")
    citizen, live_count, taken, banned_until = pre.citizen, pre.live_count, pre.taken, pre.banned_until
    if key is None:  # not limited (rule T5 limits personal business only)
        taken = False
    elif key != guess:  # a legal person's agent booking for the account's company (rule M10)
        taken = bool((await session.execute(TAKEN, {"live_key": key})).scalar())
    check_not_banned(banned_until)  # rules M9, G15
    if taken:
        raise limit_error(ctx)
    if live_count >= ctx.policy.knobs.max_live_bookings:
        raise Conflict(
            f"at most {ctx.policy.knobs.max_live_bookings} live bookings at once", code="booking_cap"
        )
    values = _values(citizen_id, request, caller, ctx, spec, uscc, company_name, key, now, rebook_of, reason)
    onsite, quantity = request.channel == "onsite", request.quantity
    # On PostgreSQL what the subscribers of `booking.created` write (its SMS) goes into the booking's
    # own statement (decision 0014): in autocommit that statement is the whole transaction; inside a
    # caller's transaction (a key, a partner, the waiting list) it is one round trip less while the
    # hall's counter row is locked.
    fold = on_postgres(session)
    extras, keyed = None, None
    answer: dict[str, Any] | None = None
    created = {"source": source} | ({"client_id": client_id} if client_id else {})
    if fold:
        pending = Booking(id=0, number=PENDING_NUMBER, **values)
        extras = await collect(session, Event("booking.created", {"booking": pending, **created}))
        # An Idempotency-Key's answer is this booking's view: it goes in the statement too, so
        # nothing is left between the hall's counter row and COMMIT (decision 0015). Only the
        # booking the citizen asked for: not one a cancel's waiting list makes in the same request.
        keyed = caller.keyed if caller.as_citizen else None
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
        booking_id, number = await take_seats_and_insert(
            session, ctx, spec, quantity, onsite, values, extras, answer
        )
    except IntegrityError:
        # A concurrent booking took the live key between the pre-check and here: the index decides.
        raise limit_error(ctx) from None
    booking = Booking(id=booking_id, number=number, **values)
    make_transient_to_detached(booking)
    session.add(booking)
    if not fold:
        await emit(session, Event("booking.created", {"booking": booking, **created}))
    if answer is not None and keyed is not None:
        keyed.answered = answer["answer_body"].replace(PENDING_NUMBER, number)
    return booking_view(booking, citizen, ctx)


def _values(
    citizen_id: int,
    request: BookRequest,
    caller: Caller,
    ctx: Context,
    spec: SlotSpec,
    uscc: str | None,
    company_name: str | None,
    key: str | None,
    now: datetime,
    rebook_of: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The booking row's columns (all but `id` and `number`)."""
    info = ctx.info
    return dict(
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
        session_ref=caller.session_ref(citizen_id),  # rule G15's evidence (migration 0028)
        rebooked=False,
        reason=reason,
        created_at=now,
        updated_at=now,
    )


async def _in_one_trip(
    session: AsyncSession,
    citizen_id: int,
    request: BookRequest,
    caller: Caller,
    ctx: Context,
    spec: SlotSpec,
    uscc: str | None,
    key: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """A citizen's own off-site booking in autocommit on PostgreSQL, in one round trip (decision
    0099): the pre-check's reads go into the booking's statement, which writes only when every rule
    holds for a personal login (the session's login is not known before it is read: a legal person's
    agent books for the account's company, decision 0061). None when this is not such a booking,
    when a check here refuses, or when the statement wrote nothing: `book` then takes the pre-check's
    path, which tells the refusals apart in their usual order (a second query only then)."""
    check = caller.session
    if (
        caller.source != "citizen"
        or caller.keyed is not None
        or request.channel == "onsite"
        or not on_postgres(session)
        or not in_autocommit(session)
        or (check is not None and (not check.pending or check.citizen_id != citizen_id))
        or identity_key(Citizen, citizen_id) in session.identity_map
    ):
        return None
    try:
        check_open(ctx, spec, request.channel, now)
        await check_released(session, ctx, spec, now)  # rules G10, G11: the waiting list first
    except DomainError:
        return None  # told by the pre-check's path, in its order (a 401 first)
    values = _values(citizen_id, request, caller, ctx, spec, uscc, request.company_name, key, now)
    pending = Booking(id=0, number=PENDING_NUMBER, **values)
    stand_in = placeholder_citizen(citizen_id)  # its text columns: stand-ins the statement fills in
    session.add(stand_in)
    try:
        extras = await collect(session, Event("booking.created", {"booking": pending, "source": "citizen"}))
    finally:
        session.expunge(stand_in)
    try:
        made = await book_in_one_trip(session, ctx, spec, request.quantity, values, extras, check)
    except IntegrityError:
        # A concurrent booking took the live key after the statement's snapshot: the index decides.
        raise limit_error(ctx) from None
    if made is None:
        return None
    pending.id, pending.number = made.booking_id, made.number  # the answer's booking: nothing reads it later
    return booking_view(pending, made.citizen, ctx)


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
        move(
            booking.id,
            BookingStatus.CANCELLED,
            now,
            only_from=(BookingStatus.BOOKED,),
            cancelled_by="citizen",
        )
    )
    if rowcount(changed) != 1:
        raise Unprocessable("booking is no longer cancellable", code="not_cancellable")
    left = await release_seats(session, booking.slot_id, booking.quantity)
    booking.status, booking.cancelled_by, booking.updated_at = "cancelled", "citizen", now
    await emit(session, Event("booking.cancelled", {"booking": booking}))  # the waiting list first
    await hold_what_the_waitlist_left(session, ctx, booking.slot_id, booking.quantity, left, now)
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
    check_login_may_book(caller.login(citizen_id), ctx.info)  # rules T2, G8
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
    spec = slot_spec(ctx, new_slot_id)
    if spec.id == booking.slot_id:
        raise ValidationFailed("slot_id is the booking's current slot")
    channel = booking.channel
    check_open(ctx, spec, channel, now)
    if channel != "onsite":
        await check_released(session, ctx, spec, now)  # rules G10, G11: the waiting list first
    key = live_key(ctx, citizen_id, spec.day, booking.company_uscc) or booking.live_key
    # Lock slot rows in id order so two opposite reschedules cannot deadlock.
    if spec.id < booking.slot_id:
        await take_seats(session, ctx, spec, booking.quantity, channel == "onsite")
        left = await release_seats(session, booking.slot_id, booking.quantity)
    else:
        left = await release_seats(session, booking.slot_id, booking.quantity)
        await take_seats(session, ctx, spec, booking.quantity, channel == "onsite")
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
        raise limit_error(ctx) from None
    await emit(session, Event("booking.rescheduled", {"booking": booking, "old_slot_id": old_slot_id}))
    await hold_what_the_waitlist_left(session, ctx, old_slot_id, booking.quantity, left, now)
    return await view(session, booking)


async def rebook(
    session: AsyncSession,
    citizen_id: int,
    number: str,
    new_slot_id: str,
    reason: str,
    caller: Caller = CITIZEN,
) -> dict[str, Any]:
    """Rules T9, G14: after a missed slot, on its day from its start until 24:00, one rebook of the
    same service at the same hall; the miss becomes `excused` (no penalty). The rebook is booked as
    `Caller("rebook")` with the citizen's session and Idempotency-Key from `caller`."""
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
    await session.execute(move(missed.id, BookingStatus.EXCUSED, now, rebooked=True))
    if missed.status == "booked":
        await release_seats(session, missed.slot_id, missed.quantity)
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
    rebooker = Caller("rebook", session=caller.session, keyed=caller.keyed)
    return await book(session, citizen_id, request, rebooker, rebook_of=missed.number, reason=reason)
