"""On site: who may act in a hall, check-in, walk-in and green tickets, counters and the queue
(rules T3, T4, M2, M3, M7, G10, G17; docs/api.md "On site").

Integrity lives in the database: a booking becomes `checked_in` by one conditional UPDATE (so two
kiosks checking one citizen in at once issue one ticket), a ticket is called by one conditional
UPDATE (so two counters never call the same ticket), call numbers come from a per-hall, day and
prefix counter row. The call order itself is the pure `order.call_order`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.service import check_lockout, clear_lockout, count_failure
from yuyue.audit.service import audit
from yuyue.auth.service import (
    ADMIN,
    Acting,
    acting_admin,
    authorise,
    check_password_strength,
    hasher,
    may,
)
from yuyue.booking import service as booking_service
from yuyue.booking.service import ticket_view
from yuyue.calendar.service import hall_calendar
from yuyue.catalogue.service import HALL_KINDS, SlotSpec, day_slots, hall_services, service_info
from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import DomainError, Forbidden, NotFound, Unauthenticated, Unprocessable, ValidationFailed
from yuyue.identity.service import citizen_view, id_lookup_hash, upsert_citizen, verify_identity
from yuyue.kit import tokens
from yuyue.kit.http import rowcount
from yuyue.kit.idnumbers import normalise_id, parse_resident_id
from yuyue.kit.masking import mask_id, mask_name
from yuyue.models import Booking, Citizen, Counter, Kiosk, Slot, StaffAccount, Ticket, TicketCounter, Unit
from yuyue.onsite import stream
from yuyue.onsite.order import Desk, Waiting, call_order, estimates, people_ahead
from yuyue.policy.service import checkin_window, effective_policy

STAFF, KIOSK = "staff", "kiosk"
KIOSK_TTL_S = 366 * 24 * 3600  # a kiosk token lives a year; revoking the kiosk ends it at once
ELDERLY_AGE = 60  # rules G10, M3
PREFIX = {"green": "G", "appointment": "A", "walk_in": "W"}
MEAN_WINDOW_DAYS = 30


class NoBooking(DomainError):
    code, status = "no_booking", 404


# --- who may act ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """A staff account, a kiosk or an admin acting as staff."""

    kind: Literal["staff", "kiosk", "admin"]
    id: int
    hall_id: str | None = None
    counter_id: int | None = None
    admin: Acting | None = None


async def actor_from_token(session: AsyncSession, secret: str, token: str | None) -> Actor:
    if token:
        claims = tokens.verify(secret, STAFF, token)
        if claims is not None:
            staff = await session.get(StaffAccount, int(claims["sub"]))
            if staff is None or not staff.active:
                raise Unauthenticated("this staff account is closed")
            if claims.get("ver", 0) != staff.token_version:
                raise Unauthenticated("this token was issued before a password reset; log in again")
            return Actor("staff", staff.id, staff.hall_id, staff.counter_id)
        claims = tokens.verify(secret, KIOSK, token)
        if claims is not None:
            kiosk = await session.get(Kiosk, int(claims["sub"]))
            if kiosk is None or kiosk.revoked_at is not None:
                raise Unauthenticated("this kiosk was revoked")
            return Actor("kiosk", kiosk.id, kiosk.hall_id)
        if tokens.verify(secret, ADMIN, token) is not None:
            admin = await acting_admin(session, secret, token)
            return Actor("admin", admin.id, admin=admin)
    raise Unauthenticated("a valid staff, kiosk or admin token is required")


async def get_hall(session: AsyncSession, hall_id: str) -> Unit:
    hall = await session.get(Unit, hall_id)
    if hall is None or hall.kind not in HALL_KINDS:
        raise NotFound(f"hall {hall_id!r} not found")
    return hall


def allowed(actor: Actor, hall: Unit) -> bool:
    if actor.admin is not None:
        return may(actor.admin, "view", hall.path)  # an admin acts as staff in their subtree
    return actor.hall_id == hall.id


async def hall_for(session: AsyncSession, actor: Actor, hall_id: str) -> Unit:
    hall = await get_hall(session, hall_id)
    if not allowed(actor, hall):
        raise Forbidden("not allowed at this hall")
    return hall


def _staff_only(actor: Actor) -> None:
    if actor.kind == KIOSK:
        raise Forbidden("a kiosk cannot do this; staff can")


def _id_hash(secret: str, id_type: str, id_number: str) -> tuple[str, str]:
    number = normalise_id(id_type, id_number)
    if number is None:
        raise Unprocessable(f"id_number is not a valid {id_type}", code="invalid_id_number")
    return number, id_lookup_hash(secret, id_type, number)


# --- staff and kiosks -------------------------------------------------------------------------------


async def create_staff(
    session: AsyncSession,
    admin: Acting,
    hall_id: str,
    username: str,
    password: str,
    name: str,
    counter_id: int | None,
) -> dict[str, Any]:
    hall = await get_hall(session, hall_id)
    authorise(admin, "configure", hall.path)
    check_password_strength(password)
    if counter_id is not None:
        counter = await session.get(Counter, counter_id)
        if counter is None or counter.hall_id != hall.id:
            raise ValidationFailed("counter_id is not a counter of this hall")
    taken = (await session.execute(select(StaffAccount.id).where(StaffAccount.username == username))).first()
    if taken is not None:
        raise ValidationFailed(f"username {username!r} is taken", code="conflict", status=409)
    staff = StaffAccount(
        username=username,
        password_hash=hasher.hash(password),
        name=name,
        hall_id=hall.id,
        counter_id=counter_id,
        active=True,
        created_at=clock.now(),
    )
    session.add(staff)
    await session.flush()
    view = staff_view(staff)
    await audit(session, admin, hall.id, hall.path, "staff.create", f"staff:{staff.id}", None, view)
    return view


def staff_view(staff: StaffAccount) -> dict[str, Any]:
    return {
        "id": staff.id,
        "username": staff.username,
        "name": staff.name,
        "hall_id": staff.hall_id,
        "counter_id": staff.counter_id,
        "active": staff.active,
        "created_at": staff.created_at.isoformat(),
        "retired_at": staff.retired_at.isoformat() if staff.retired_at else None,
    }


async def staff_login(
    session: AsyncSession, secret: str, ttl_s: int, username: str, password: str, address: str = "unknown"
) -> tuple[str, dict[str, Any]]:
    """The admins' lockout (per username and address, growing delay, unlock by a superior); the
    caller commits even on failure, so the count sticks."""
    from argon2.exceptions import InvalidHashError, VerificationError

    await check_lockout(session, "staff", username, address)
    staff = (
        await session.execute(select(StaffAccount).where(StaffAccount.username == username))
    ).scalar_one_or_none()
    try:
        hasher.verify(staff.password_hash if staff else hasher.dummy, password)
    except (VerificationError, InvalidHashError):
        staff = None
    if staff is None or not staff.active:
        await count_failure(session, "staff", username, address)
        raise Unauthenticated("wrong username or password", keep_writes=True)  # the count sticks
    await clear_lockout(session, "staff", username, address)
    token = tokens.issue(secret, STAFF, str(staff.id), ttl_s, ver=staff.token_version)
    return token, staff_view(staff)


async def list_staff(session: AsyncSession, admin: Acting, hall_id: str) -> list[dict[str, Any]]:
    """The clerk accounts of a hall, retired ones included, for an admin who may view the hall."""
    hall = await get_hall(session, hall_id)
    authorise(admin, "view", hall.path)
    rows = await session.execute(
        select(StaffAccount).where(StaffAccount.hall_id == hall.id).order_by(StaffAccount.id)
    )
    return [staff_view(staff) for staff in rows.scalars()]


async def _staff_to_change(session: AsyncSession, admin: Acting, staff_id: int) -> tuple[StaffAccount, Unit]:
    """A clerk account an admin may configure (404 unknown, 403 outside the admin's subtree), locked
    so that two changes of one account run one after the other; a retired account is closed for good."""
    staff = (
        await session.execute(select(StaffAccount).where(StaffAccount.id == staff_id).with_for_update())
    ).scalar_one_or_none()
    if staff is None:
        raise NotFound("staff account not found")
    hall = await get_hall(session, staff.hall_id)
    authorise(admin, "configure", hall.path)
    if not staff.active:
        raise Unprocessable("this staff account is already retired", code="already_retired")
    return staff, hall


async def retire_staff(
    session: AsyncSession, admin: Acting, staff_id: int, reason: str | None
) -> dict[str, Any]:
    """Close a clerk account for good (rule G7 in spirit: a replacement gets a new account): its
    tokens stop working at once (`actor_from_token` refuses an inactive account) and its username is
    never reused. Audited with the reason."""
    staff, hall = await _staff_to_change(session, admin, staff_id)
    before = staff_view(staff)
    staff.active, staff.retired_at = False, clock.now()
    staff.token_version += 1  # belt and braces: no token of this account matches any more
    await session.flush()
    after = staff_view(staff)
    await audit(
        session,
        admin,
        hall.id,
        hall.path,
        "staff.retire",
        f"staff:{staff.id}",
        before,
        {**after, "reason": reason} if reason else after,
    )
    return after


async def reset_staff_password(
    session: AsyncSession, admin: Acting, staff_id: int, password: str
) -> dict[str, Any]:
    """An admin who may configure the hall sets a new password (the admins' strength rule); every
    token issued before stops working at once (the account's `token_version` goes up). Audited,
    without the password."""
    staff, hall = await _staff_to_change(session, admin, staff_id)
    check_password_strength(password)
    staff.password_hash = hasher.hash(password)
    staff.token_version += 1
    await session.flush()
    view = staff_view(staff)
    await audit(
        session,
        admin,
        hall.id,
        hall.path,
        "staff.password",
        f"staff:{staff.id}",
        None,
        {**view, "password": "reset"},
    )
    return view


async def create_kiosk(
    session: AsyncSession, secret: str, admin: Acting, hall_id: str, name: str
) -> dict[str, Any]:
    hall = await get_hall(session, hall_id)
    authorise(admin, "configure", hall.path)
    kiosk = Kiosk(hall_id=hall.id, name=name, created_at=clock.now(), revoked_at=None)
    session.add(kiosk)
    await session.flush()
    view = {"id": kiosk.id, "hall_id": hall.id, "name": name}
    await audit(session, admin, hall.id, hall.path, "kiosk.create", f"kiosk:{kiosk.id}", None, view)
    return {**view, "token": tokens.issue(secret, KIOSK, str(kiosk.id), KIOSK_TTL_S)}


async def revoke_kiosk(session: AsyncSession, admin: Acting, kiosk_id: int) -> None:
    kiosk = await session.get(Kiosk, kiosk_id)
    if kiosk is None:
        raise NotFound("kiosk not found")
    hall = await get_hall(session, kiosk.hall_id)
    authorise(admin, "configure", hall.path)
    if kiosk.revoked_at is None:
        kiosk.revoked_at = clock.now()
        await session.flush()
        await audit(session, admin, hall.id, hall.path, "kiosk.revoke", f"kiosk:{kiosk.id}", None, None)


# --- counters -----------------------------------------------------------------------------------


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


def counter_view(counter: Counter, serving: str | None = None) -> dict[str, Any]:
    return {
        "id": counter.id,
        "name": counter.name,
        "service_ids": list(counter.service_ids) if counter.service_ids is not None else None,
        "open": counter.open,
        "serving": serving,
    }


async def list_counters(session: AsyncSession, actor: Actor, hall_id: str) -> list[dict[str, Any]]:
    hall = await hall_for(session, actor, hall_id)
    counters = await ensure_counters(session, hall)
    serving = {t.counter_id: t.number for t in await _tickets(session, hall.id, clock.today(), ("called",))}
    return [counter_view(c, serving.get(c.id)) for c in counters]


async def _counter(session: AsyncSession, actor: Actor, counter_id: int) -> tuple[Counter, Unit]:
    counter = await session.get(Counter, counter_id)
    if counter is None:
        raise NotFound("counter not found")
    hall = await hall_for(session, actor, counter.hall_id)
    if counter.position > hall.counters:
        raise NotFound("counter not found")
    _staff_only(actor)
    if actor.counter_id is not None and actor.counter_id != counter.id:
        raise Forbidden("this staff account works at another counter")
    return counter, hall


async def patch_counter(
    session: AsyncSession, actor: Actor, counter_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
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


# --- tickets ------------------------------------------------------------------------------------


async def _tickets(session: AsyncSession, hall_id: str, day: date, statuses: tuple[str, ...]) -> list[Ticket]:
    query = select(Ticket).where(Ticket.hall_id == hall_id, Ticket.day == day, Ticket.status.in_(statuses))
    return list((await session.execute(query.order_by(Ticket.id))).scalars())


def _waiting(ticket: Ticket) -> Waiting:
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
    tickets = await _tickets(session, hall.id, now.date(), ("waiting", "called"))
    waiting = {t.number: t for t in tickets if t.status == "waiting"}
    ordered = call_order((_waiting(t) for t in waiting.values()), now)
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


async def _views(session: AsyncSession, hall: Unit, tickets: list[Ticket]) -> list[dict[str, Any]]:
    waits = {t.id: s for t, s in (await queue_state(session, hall))[0]}
    return [ticket_view(t, waits.get(t.id)) for t in tickets]


async def _new_ticket(
    session: AsyncSession,
    hall: Unit,
    kind: str,
    service_id: int,
    id_hash: str,
    now: datetime,
    *,
    green: str | None = None,
    booking: Booking | None = None,
) -> Ticket:
    prefix = PREFIX[kind]
    day = now.date()
    statement = (
        _insert(session, TicketCounter)
        .values(hall_id=hall.id, day=day, prefix=prefix, n=1)
        .on_conflict_do_update(index_elements=["hall_id", "day", "prefix"], set_={"n": TicketCounter.n + 1})
        .returning(TicketCounter.n)
    )
    sequence = int((await session.execute(statement)).scalar_one())
    call_number = f"{prefix}{sequence:03d}"
    info = await service_info(session, service_id)
    items = [{"service_id": sid, "finished": False} for sid in info.bundle_of] if info.bundle_of else None
    ticket = Ticket(
        number=f"{hall.code}{day:%Y%m%d}{call_number}",
        call_number=call_number,
        hall_id=hall.id,
        day=day,
        kind=kind,
        green=green,
        service_id=service_id,
        booking_id=booking.id if booking else None,
        booking_number=booking.number if booking else None,
        booked_at=booking.created_at if booking else None,
        slot_start=booking.slot_start if booking else None,
        slot_end=booking.slot_end if booking else None,
        id_hash=id_hash,
        status="waiting",
        counter_id=None,
        items=items,
        issued_at=now,
        called_at=None,
        finished_at=None,
    )
    session.add(ticket)
    await session.flush()
    await stream.publish(session, hall.id, {"type": "change"})
    return ticket


async def check_in(
    session: AsyncSession, secret: str, actor: Actor, hall_id: str, id_type: str, id_number: str
) -> tuple[int, list[dict[str, Any]]]:
    """Rules T3, M7: one appointment ticket per booking at this hall whose check-in window is open
    now (`[from, to)`); each booking becomes `checked_in`. A repeated check-in answers the tickets
    already issued (200)."""
    hall = await hall_for(session, actor, hall_id)
    _, id_hash = _id_hash(secret, id_type, id_number)
    now = clock.now()
    citizen_id = (
        await session.execute(
            select(Citizen.id).where(Citizen.id_type == id_type, Citizen.id_hash == id_hash)
        )
    ).scalar_one_or_none()
    if citizen_id is None:
        raise NoBooking("no booking at this hall for this ID")
    bookings = list(
        (
            await session.execute(
                select(Booking)
                .where(
                    Booking.citizen_id == citizen_id,
                    Booking.hall_id == hall.id,
                    Booking.status.in_(("booked", "checked_in", "no_show")),
                    Booking.slot_day >= now.date() - timedelta(days=1),
                )
                .order_by(Booking.slot_start, Booking.id)
            )
        ).scalars()
    )
    knobs = (await effective_policy(session, hall.id)).knobs
    windows = {b.id: checkin_window(knobs, b.slot_start, b.slot_end) for b in bookings}
    booked = [b for b in bookings if b.status == "booked"]
    open_now = [b for b in booked if windows[b.id][0] <= now < windows[b.id][1]]
    if not open_now:
        done = [b for b in bookings if b.status == "checked_in" and b.slot_day == now.date()]
        if done:
            tickets = list(
                (
                    await session.execute(select(Ticket).where(Ticket.booking_id.in_([b.id for b in done])))
                ).scalars()
            )
            return 200, await _views(session, hall, tickets)
        future = [windows[b.id][0] for b in booked if now < windows[b.id][0]]
        if future:
            raise Unprocessable(
                f"check-in opens at {min(future).isoformat()}",
                code="checkin_too_early",
                checkin_from=min(future).isoformat(),
            )
        if booked or any(b.status == "no_show" and b.slot_day == now.date() for b in bookings):
            # rules T3, M7: late, no appointment ticket (the sweep may already have marked the miss)
            raise Unprocessable("the check-in window has closed (rules T3, M7)", code="checkin_too_late")
        raise NoBooking("no booking at this hall for this ID")
    issued: list[Ticket] = []
    for booking in open_now:
        changed = await session.execute(
            update(Booking)
            .where(Booking.id == booking.id, Booking.status == "booked")
            .values(status="checked_in", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(changed) != 1:
            continue  # checked in at the same moment elsewhere: that one issued the ticket
        booking.status, booking.updated_at = "checked_in", now
        issued.append(
            await _new_ticket(session, hall, "appointment", booking.service_id, id_hash, now, booking=booking)
        )
    if not issued:
        raise NoBooking("these bookings were just checked in elsewhere")
    return 201, await _views(session, hall, issued)


async def _hall_open(session: AsyncSession, hall: Unit, now: datetime, before_open_min: int = 0) -> bool:
    """The hall works today, is open (from its opening time, less `YUYUE_TICKETS_BEFORE_OPEN_MIN`)
    and has not closed yet: no ticket at 04:00 for a hall that opens at 09:00."""
    calendar = await hall_calendar(session, hall.id)
    hours = hall.hours or []
    if not calendar.is_working(now.date()) or not hours:
        return False
    opens = at(now.date(), min(str(h["start"]) for h in hours))
    opens -= timedelta(minutes=before_open_min)
    return opens <= now < at(now.date(), max(str(h["end"]) for h in hours))


async def issue_ticket(
    session: AsyncSession,
    secret: str,
    actor: Actor,
    hall_id: str,
    service_id: int,
    id_type: str,
    id_number: str,
    green: str | None,
    before_open_min: int = 0,
) -> dict[str, Any]:
    """Walk-in (rule M2, as docs/rules.md reads the hall modes) or green-channel (rules G10, M3) ticket."""
    hall = await hall_for(session, actor, hall_id)
    try:
        info = await service_info(session, service_id)
    except NotFound:
        raise NotFound(f"service {service_id} not found at this hall") from None
    if info.hall_id != hall.id or not info.active:
        raise NotFound(f"service {service_id} not found at this hall")
    if hall.mode == "self_service":
        raise Unprocessable("a self-service hall issues no tickets (rule M2)", code="walk_in_not_allowed")
    number, id_hash = _id_hash(secret, id_type, id_number)
    now = clock.now()
    if not await _hall_open(session, hall, now, before_open_min):
        raise Unprocessable("the hall is closed now", code="hall_closed")
    if green is not None:
        if green in ("disabled", "military"):
            _staff_only(actor)  # staff confirms the document (rules G10, M3)
        if green == "elderly":
            resident = parse_resident_id(number) if id_type == "resident_id" else None
            if resident is None or _age(resident.birth_date, now.date()) < ELDERLY_AGE:
                raise Unprocessable(
                    f"the elderly green channel needs a resident ID of someone {ELDERLY_AGE} or older",
                    code="not_eligible",
                )
        ticket = await _new_ticket(session, hall, "green", service_id, id_hash, now, green=green)
    else:
        if hall.mode == "appointment_first" and not info.walk_in_allowed:
            raise Unprocessable(
                "this appointment-first hall takes walk-ins only for services that allow them (rule M2)",
                code="walk_in_not_allowed",
            )
        ticket = await _new_ticket(session, hall, "walk_in", service_id, id_hash, now)
    return (await _views(session, hall, [ticket]))[0]


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


# --- on-site booking at the desk (rule G10) ------------------------------------------------------


@dataclass(frozen=True)
class DeskSlot:
    """One of today's slots that on-site booking may take now, with the seats left to it (the
    on-site share plus any off-site seats left unsold)."""

    slot_id: str
    service_id: int
    service: str
    department: str
    start: datetime
    end: datetime
    left: int


async def desk_slots(session: AsyncSession, actor: Actor, hall_id: str) -> list[DeskSlot]:
    """Today's slots of the hall's services that channel `onsite` may book now, by start then
    service: the same checks `booking.service.book` makes (`check_open` on channel `onsite`: a
    working day, from the on-site opening time, until the slot ends), with seats left."""
    hall = await hall_for(session, actor, hall_id)
    if hall.mode == "self_service":
        return []  # rule M2: a self-service hall takes no bookings
    now = clock.now()
    candidates: list[tuple[booking_service.Context, str, SlotSpec]] = []
    for row, department in await hall_services(session, hall.id):
        ctx = await booking_service.context(session, row.id)
        for spec in day_slots(ctx.info, now.date()):
            try:
                booking_service.check_open(ctx, spec, "onsite", now)
            except DomainError:
                continue
            candidates.append((ctx, department, spec))
    if not candidates:
        return []
    ids = [spec.id for _, _, spec in candidates]
    stored = {
        row.id: (row.capacity, row.booked)
        for row in (
            await session.execute(select(Slot.id, Slot.capacity, Slot.booked).where(Slot.id.in_(ids)))
        )
    }
    found = []
    for ctx, department, spec in candidates:
        capacity, booked = stored.get(spec.id, (spec.capacity, 0))
        if capacity - booked > 0:
            found.append(
                DeskSlot(
                    spec.id, ctx.info.id, ctx.info.name, department, spec.start, spec.end, capacity - booked
                )
            )
    return sorted(found, key=lambda slot: (slot.start, slot.department, slot.service_id))


async def book_at_desk(
    session: AsyncSession,
    secret: str,
    actor: Actor,
    hall_id: str,
    slot_id: str,
    *,
    name: str,
    id_type: str,
    id_number: str,
    phone: str,
    business_types: tuple[str, ...] = (),
    quantity: int = 1,
) -> dict[str, Any]:
    """Rule G10: a clerk (or an admin acting as staff, never a kiosk) books one of today's slots of
    this hall on site for a citizen who shows their document, through the one `book` every channel
    uses (on-site window and share, one live booking, bans, batch size). The identity the clerk saw
    is verified and the citizen upserted as a login would. Audited: who booked for whom, masked."""
    hall = await hall_for(session, actor, hall_id)
    _staff_only(actor)
    try:
        ctx, _ = await booking_service.resolve_slot(session, slot_id)
    except NotFound:
        raise NotFound(f"slot {slot_id!r} not found at this hall") from None
    if ctx.info.hall_id != hall.id:
        raise NotFound(f"slot {slot_id!r} not found at this hall")
    who = verify_identity(name, id_type, id_number, phone)
    citizen_id = await upsert_citizen(session, secret, who)
    request = booking_service.BookRequest(
        slot_id=slot_id, channel="onsite", quantity=quantity, business_types=business_types
    )
    answer = await booking_service.book(session, citizen_id, request, booking_service.Caller("staff"))
    after = {
        "number": answer["number"],
        "service_id": answer["service_id"],
        "slot_id": answer["slot_id"],
        "channel": "onsite",
        "quantity": answer["quantity"],
        "citizen": {"id_type": who.id_type, "id_number": mask_id(who.id_number), "name": mask_name(who.name)},
    }
    await audit(
        session,
        actor.admin,
        hall.id,
        hall.path,
        "booking.onsite",
        f"booking:{answer['number']}",
        None,
        after,
        staff_id=actor.id if actor.kind == STAFF else None,
    )
    return answer


async def desk_booking(session: AsyncSession, actor: Actor, hall_id: str, number: str) -> dict[str, Any]:
    """A booking of this hall as the desk shows it after booking on site (masked, as every answer)."""
    hall = await hall_for(session, actor, hall_id)
    _staff_only(actor)
    found = (
        await session.execute(select(Booking).where(Booking.number == number, Booking.hall_id == hall.id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("booking not found at this hall")
    return await booking_service.view(session, found)


# --- counters at work ---------------------------------------------------------------------------


async def _finish(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    ticket.status, ticket.finished_at = "finished", now
    if ticket.items:
        ticket.items = [{**item, "finished": True} for item in ticket.items]
    if ticket.booking_id is not None:
        await session.execute(
            update(Booking)
            .where(Booking.id == ticket.booking_id, Booking.status == "checked_in")
            .values(status="served", updated_at=now)
            .execution_options(synchronize_session=False)
        )
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


async def call_next(session: AsyncSession, actor: Actor, counter_id: int) -> dict[str, Any] | None:
    """Finish the counter's current ticket, then call the first waiting ticket in call order
    (rule T4) that this counter serves; None when nobody waits."""
    counter, hall = await _counter(session, actor, counter_id)
    if not counter.open:
        raise Unprocessable("this counter is closed; open it first", code="counter_closed")
    now = clock.now()
    await _finish_current(session, counter, now)
    candidates = [
        t
        for t in await _tickets(session, hall.id, now.date(), ("waiting",))
        if counter.service_ids is None or t.service_id in counter.service_ids
    ]
    by_number = {t.number: t for t in candidates}
    for waiting in call_order((_waiting(t) for t in candidates), now):
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
    _staff_only(actor)
    return ticket, hall


def _state_error(ticket: Ticket, action: str) -> DomainError:
    return Unprocessable(f"a {ticket.status} ticket cannot be {action}", code="invalid_ticket_state")


async def recall(session: AsyncSession, actor: Actor, number: str, counter_id: int | None) -> dict[str, Any]:
    """Call a ticket again: a called one is announced again; a skipped one returns to a counter (its
    last one unless another is named) while the hall is open that day."""
    ticket, hall = await _ticket(session, actor, number)
    now = clock.now()
    if ticket.status not in ("called", "skipped"):
        raise _state_error(ticket, "recalled")
    if ticket.day != now.date() or not await _hall_open(session, hall, now):
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


async def skip(session: AsyncSession, actor: Actor, number: str) -> dict[str, Any]:
    ticket, hall = await _ticket(session, actor, number)
    _own_counter(actor, ticket)
    if ticket.status != "called":
        raise _state_error(ticket, "skipped")
    ticket.status = "skipped"
    await session.flush()
    await stream.publish(session, hall.id, {"type": "change"})
    return ticket_view(ticket)


async def finish(session: AsyncSession, actor: Actor, number: str, service_id: int | None) -> dict[str, Any]:
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


# --- public queue -------------------------------------------------------------------------------


async def public_queue(session: AsyncSession, hall_id: str) -> dict[str, Any]:
    """docs/api.md: ticket numbers and counters only (no personal data)."""
    hall = await get_hall(session, hall_id)
    waiting, serving = await queue_state(session, hall)
    names = {
        c.id: c.name
        for c in (await session.execute(select(Counter).where(Counter.hall_id == hall.id))).scalars()
    }
    return {
        "hall_id": hall.id,
        "waiting": [
            {
                "number": t.number,
                "call_number": t.call_number,
                "kind": t.kind,
                "service_id": t.service_id,
                "estimated_wait_s": wait,
            }
            for t, wait in waiting
        ],
        "serving": [
            {
                "number": t.number,
                "call_number": t.call_number,
                "counter_id": t.counter_id,
                "counter": names.get(t.counter_id or 0),
            }
            for t in sorted(serving, key=lambda t: (t.called_at or t.issued_at, t.id))
        ],
    }


# --- the console's hall pages (issue 10) --------------------------------------------------------------


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
        t for t in await _tickets(session, hall.id, clock.today(), ("skipped",)) if t.counter_id == counter.id
    ]
    return CounterScreen(hall, counter, mine, current, skipped)


async def _hall_ticket(session: AsyncSession, actor: Actor, hall_id: str, number: str) -> tuple[Ticket, Unit]:
    hall = await hall_for(session, actor, hall_id)
    _staff_only(actor)
    ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one_or_none()
    if ticket is None or ticket.hall_id != hall.id:
        raise NotFound("ticket not found")
    return ticket, hall


async def ticket_slip(session: AsyncSession, actor: Actor, hall_id: str, number: str) -> dict[str, Any]:
    """A ticket as printed for the citizen: number, service, hall, time, people ahead, wait."""
    ticket, hall = await _hall_ticket(session, actor, hall_id, number)
    line, _ = await waiting_line(session, hall)
    place = next((e for e in line if e.ticket.id == ticket.id), None)
    info = await service_info(session, ticket.service_id)
    return {
        "ticket": ticket_view(ticket, place.wait_s if place else None),
        "ahead": place.ahead if place else None,
        "service": info.name,
        "department": info.department,
        "hall": hall.name,
        "hall_address": hall.address or "",
    }


async def ticket_person(
    session: AsyncSession, secret: str, actor: Actor, hall_id: str, number: str, *, reveal: bool = False
) -> dict[str, Any]:
    """The booking and citizen behind a ticket, for the clerk: masked as in every answer (docs/api.md).
    `reveal` shows the full name, ID and phone number of the ticket this counter is serving, and is
    audited with the clerk (or the admin acting as staff) as the actor. Walk-in and green tickets
    carry no booking: the citizen shows their document at the counter."""
    ticket, hall = await _hall_ticket(session, actor, hall_id, number)
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
        person = citizen_view(secret, citizen)
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
            "name": mask_name(citizen.name),
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
