"""Administrators (rules G3–G7): accounts, sessions and lockout; capacity requests and approvals
(G20); alerts (G12, G20). Who may do what is `yuyue.auth` (the 2-2-3 table); the audit log is
`yuyue.audit`."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, timedelta
from typing import Any, Literal

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit, read_audit
from yuyue.auth.service import (
    ADMIN,
    LEVELS,
    Acting,
    Party,
    authorise,
    check_password_strength,
    hasher,
)
from yuyue.booking.inventory import apply_capacity_change
from yuyue.calendar.service import hall_calendar
from yuyue.catalogue.service import get_unit
from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import (
    Conflict,
    DomainError,
    NotFound,
    Unauthenticated,
    Unprocessable,
    ValidationFailed,
)
from yuyue.jobs.service import Job, daily, register
from yuyue.kit import tokens
from yuyue.kit.events import Event, emit
from yuyue.kit.http import rowcount
from yuyue.kit.masking import mask_email, mask_phone
from yuyue.models import (
    Admin,
    AdminLockout,
    AdminSession,
    Alert,
    CapacityRequest,
    Service,
    StaffAccount,
    Unit,
)

# Lockout (decision 0040, reworked for issue 19): counted per username *and client address*, so a
# stranger guessing from elsewhere locks only themselves out, never the owner. From the 5th failure
# within an hour each failure delays the next try from that address: 1 minute, doubling, at most an
# hour. A superior lifts it (`unlock`, audited). Real time (docs/api.md "Test clock"). Admins and
# clerks (kind `admin` / `staff`) alike.
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(hours=1)
LOCKOUT_BASE = timedelta(minutes=1)
LOCKOUT_MAX = timedelta(hours=1)

# --- accounts --------------------------------------------------------------------------------------


async def create_admin(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    name: str,
    title: str,
    phone: str,
    unit_id: str,
    level: int,
    email: str | None = None,
) -> Admin:
    """Rule G7: an account opens only with the registration (name, title, mobile)."""
    check_password_strength(password)
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise ValidationFailed(f"unit {unit_id!r} does not exist")
    if level not in (1, 2, 3):
        raise ValidationFailed("level must be 1, 2 or 3")
    if not name.strip() or not title.strip() or not phone.strip():
        raise ValidationFailed("name, title and phone are required (rule G7)")
    existing = (await session.execute(select(Admin.id).where(Admin.username == username))).first()
    if existing is not None:  # a retired account's username is never reused (rule G7)
        raise ValidationFailed(f"username {username!r} is taken", code="conflict", status=409)
    admin = Admin(
        username=username,
        password_hash=hasher.hash(password),
        name=name,
        title=title,
        phone=phone,
        email=email or None,
        unit_id=unit_id,
        level=level,
        active=True,
        created_at=clock.now(),
    )
    session.add(admin)
    await session.flush()
    return admin


def check_level_fits(unit: Unit, level: int) -> None:
    """Rule G3: platform and bureaus have two levels, districts three (district L1, hall L2,
    village L3)."""
    allowed = LEVELS.get(unit.kind, ())
    if level not in allowed:
        raise ValidationFailed(
            f"a {unit.kind} admin has level {' or '.join(str(n) for n in allowed)} (rule G3, 2-2-3)"
        )


async def get_admin(session: AsyncSession, admin_id: int) -> tuple[Admin, Unit]:
    row = (
        await session.execute(
            select(Admin, Unit).join(Unit, Unit.id == Admin.unit_id).where(Admin.id == admin_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"admin {admin_id} not found")
    return row[0], row[1]


async def list_admins(session: AsyncSession, who: Acting) -> list[Admin]:
    query = (
        select(Admin)
        .join(Unit, Unit.id == Admin.unit_id)
        .where(Unit.path.startswith(who.unit_path, autoescape=True))
        .order_by(Admin.id)
    )
    return list((await session.execute(query)).scalars())


async def retire(session: AsyncSession, admin: Admin) -> None:
    """Rule G7: a replaced admin's account is closed for good (a replacement gets a new account)."""
    if not admin.active:
        raise Unprocessable("this account is already retired", code="already_retired")
    now = clock.now()
    admin.active, admin.retired_at = False, now
    await session.execute(
        update(AdminSession)
        .where(AdminSession.admin_id == admin.id, AdminSession.revoked_at.is_(None))
        .values(revoked_at=clock.real_now())
        .execution_options(synchronize_session=False)
    )
    await session.flush()


# Orchestrations shared by the API routes and the console pages (issue 10 item 6): each one
# authorises, changes, audits; the caller commits.


async def register_admin(session: AsyncSession, who: Acting, data: dict[str, Any]) -> dict[str, Any]:
    """Rule G7: register an administrator (name, title, mobile) and open their account, strictly
    below `who` (rules G3–G6); audited. `data` holds the fields of `POST /api/v1/admin/admins`."""
    unit = await get_unit(session, data["unit_id"])
    authorise(who, "manage_admins", unit.path, target_level=data["level"])
    check_level_fits(unit, data["level"])
    admin = await create_admin(
        session,
        username=data["username"],
        password=data["password"],
        name=data["name"],
        title=data["title"],
        phone=data["phone"],
        unit_id=data["unit_id"],
        level=data["level"],
        email=data.get("email"),
    )
    view = admin_view(admin)
    await audit(session, who, unit.id, unit.path, "admin.create", str(admin.id), None, view)
    return view


async def admin_for(session: AsyncSession, who: Acting, admin_id: int) -> Admin:
    """An admin account `who` may see (their subtree)."""
    admin, unit = await get_admin(session, admin_id)
    authorise(who, "view", unit.path)
    return admin


async def retire_admin(
    session: AsyncSession, who: Acting, admin_id: int, reason: str | None
) -> dict[str, Any]:
    """Rule G7: close an account for good (its sessions end, its username is never reused); audited
    with the reason. Returns the closed account's view."""
    admin, unit = await get_admin(session, admin_id)
    authorise(who, "manage_admins", unit.path, target_level=admin.level)
    before = admin_view(admin)
    await retire(session, admin)
    after = admin_view(admin)
    if reason:
        after = {**after, "reason": reason}
    await audit(session, who, unit.id, unit.path, "admin.retire", str(admin.id), before, after)
    return admin_view(admin)


# --- login, sessions, lockout ----------------------------------------------------------------------


def lockout_key(kind: str, username: str, address: str) -> str:
    """The lockout row of one username tried from one address: `a|s:<username hash>:<address hash>`
    (fits the 64-character key column; the prefix finds every address of a username for an unlock)."""
    user = hashlib.sha256(f"{kind}:{username}".encode()).hexdigest()[:24]
    return f"{kind[0]}:{user}:{hashlib.sha256(address.encode()).hexdigest()[:24]}"


def _lockout_prefix(kind: str, username: str) -> str:
    return lockout_key(kind, username, "")[:27]


def lockout_delay(failures: int) -> timedelta:
    """The delay after the `failures`-th failure in the window: none before LOCKOUT_FAILURES, then
    LOCKOUT_BASE doubling with each further failure, at most LOCKOUT_MAX."""
    if failures < LOCKOUT_FAILURES:
        return timedelta(0)
    delay: timedelta = LOCKOUT_BASE * 2 ** min(failures - LOCKOUT_FAILURES, 16)
    return min(delay, LOCKOUT_MAX)


async def check_lockout(session: AsyncSession, kind: str, username: str, address: str) -> None:
    """`429 rate_limited` + Retry-After while this username is locked for this address."""
    now = clock.real_now()
    row = await session.get(AdminLockout, lockout_key(kind, username, address))
    if row is not None and row.locked_until is not None and row.locked_until > now:
        retry = int((row.locked_until - now).total_seconds()) + 1
        raise DomainError(
            "too many failed logins; try again later", code="rate_limited", status=429, retry_after_s=retry
        )


async def count_failure(session: AsyncSession, kind: str, username: str, address: str) -> None:
    """One conditional upsert (a new window, or one more failure in the current one), then the
    growing delay from the count it left."""
    now = clock.real_now()
    key = lockout_key(kind, username, address)
    table = AdminLockout.__table__
    insert = _insert(session, AdminLockout).values(
        username=key, failures=1, window_start=now, locked_until=None
    )
    fresh = table.c.window_start < now - LOCKOUT_WINDOW
    statement = insert.on_conflict_do_update(
        index_elements=["username"],
        set_={
            "failures": case((fresh, 1), else_=table.c.failures + 1),
            "window_start": case((fresh, now.replace(tzinfo=None)), else_=table.c.window_start),
        },
    )
    await session.execute(statement)
    failures = (await session.execute(select(table.c.failures).where(table.c.username == key))).scalar_one()
    delay = lockout_delay(int(failures))
    if delay:
        await session.execute(
            update(AdminLockout)
            .where(AdminLockout.username == key)
            .values(locked_until=(now + delay).replace(tzinfo=None))
            .execution_options(synchronize_session=False)
        )


async def clear_lockout(session: AsyncSession, kind: str, username: str, address: str) -> None:
    await session.execute(
        delete(AdminLockout).where(AdminLockout.username == lockout_key(kind, username, address))
    )


async def unlock(
    session: AsyncSession, who: Acting, kind: Literal["admin", "staff"], account_id: int
) -> dict[str, Any]:
    """A superior lifts every lockout of an account (all addresses): for an admin, whoever may
    manage that admin; for a clerk, whoever may configure the clerk's hall. Audited."""
    if kind == "admin":
        admin, unit = await get_admin(session, account_id)
        authorise(who, "manage_admins", unit.path, target_level=admin.level)
        username, unit_id, unit_path = admin.username, unit.id, unit.path
    else:
        staff = await session.get(StaffAccount, account_id)
        if staff is None:
            raise NotFound("staff account not found")
        hall = await get_unit(session, staff.hall_id)
        authorise(who, "configure", hall.path)
        username, unit_id, unit_path = staff.username, hall.id, hall.path
    result = await session.execute(
        delete(AdminLockout)
        .where(AdminLockout.username.startswith(_lockout_prefix(kind, username), autoescape=True))
        .execution_options(synchronize_session=False)
    )
    answer = {"kind": kind, "id": account_id, "username": username, "unlocked": rowcount(result)}
    await audit(session, who, unit_id, unit_path, f"{kind}.unlock", f"{kind}:{account_id}", None, answer)
    return answer


async def login(
    session: AsyncSession, secret: str, ttl_s: int, username: str, password: str, address: str = "unknown"
) -> tuple[str, Admin]:
    """Check the password (argon2); count failures per username and address and lock that pair with
    a growing delay (a stranger elsewhere cannot lock the owner out). The caller commits even on
    failure, so the count sticks."""
    now = clock.real_now()
    await check_lockout(session, "admin", username, address)
    admin = (await session.execute(select(Admin).where(Admin.username == username))).scalar_one_or_none()
    try:
        hasher.verify(admin.password_hash if admin else hasher.dummy, password)
    except (VerificationError, InvalidHashError):
        admin = None
    if admin is None or not admin.active:
        await count_failure(session, "admin", username, address)
        raise Unauthenticated("wrong username or password", keep_writes=True)  # the count sticks
    await clear_lockout(session, "admin", username, address)
    sid = secrets.token_urlsafe(24)
    session.add(
        AdminSession(
            id=sid,
            admin_id=admin.id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
            revoked_at=None,
        )
    )
    await session.flush()
    return tokens.issue(secret, ADMIN, str(admin.id), ttl_s, sid=sid), admin


async def logout(session: AsyncSession, who: Acting) -> None:
    await session.execute(
        update(AdminSession)
        .where(AdminSession.id == who.session_id, AdminSession.revoked_at.is_(None))
        .values(revoked_at=clock.real_now())
        .execution_options(synchronize_session=False)
    )


def admin_view(admin: Admin) -> dict[str, Any]:
    return {
        "id": admin.id,
        "username": admin.username,
        "name": admin.name,
        "title": admin.title,
        "phone": mask_phone(admin.phone),
        "email": mask_email(admin.email) if admin.email else None,
        "unit_id": admin.unit_id,
        "level": admin.level,
        "active": admin.active,
        "created_at": admin.created_at.isoformat(),
        "retired_at": admin.retired_at.isoformat() if admin.retired_at else None,
    }


# --- audit -----------------------------------------------------------------------------------------


async def audit_log(
    session: AsyncSession,
    who: Acting,
    unit_id: str | None,
    start: date | None,
    end: date | None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Audit entries of a unit's subtree (default: `who`'s own unit), newest first; the unit must
    be inside `who`'s subtree."""
    unit = await get_unit(session, unit_id or who.unit_id)
    authorise(who, "view", unit.path)
    return await read_audit(session, unit.path, start, end, limit)


# --- alerts ----------------------------------------------------------------------------------------


async def raise_alert(
    session: AsyncSession,
    kind: str,
    unit_id: str,
    service_id: int | None,
    dedup_key: str,
    detail: str,
    raised_at: datetime | None = None,
    figure: dict[str, Any] | None = None,
    suggestion: dict[str, Any] | None = None,
) -> bool:
    """Insert an alert once per `dedup_key` (the unique index decides); True when it is new.
    Abnormal-figure alerts (rule G19) carry the `figure` that crossed its line and a `suggestion`."""
    statement = _insert(session, Alert).values(
        kind=kind,
        unit_id=unit_id,
        service_id=service_id,
        dedup_key=dedup_key,
        raised_at=raised_at or clock.now(),
        detail=detail,
        figure=figure,
        suggestion=suggestion,
    )
    result = await session.execute(statement.on_conflict_do_nothing(index_elements=["dedup_key"]))
    created = rowcount(result) > 0
    if created:
        alert = (await session.execute(select(Alert).where(Alert.dedup_key == dedup_key))).scalar_one()
        await emit(session, Event("alert.raised", {"alert": alert}))
    return created


def alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind,
        "unit_id": alert.unit_id,
        "service_id": alert.service_id,
        "raised_at": alert.raised_at.isoformat(),
        "detail": alert.detail,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "note": alert.note,
        "figure": alert.figure,
        "suggestion": alert.suggestion,
    }


async def list_alerts(session: AsyncSession, who: Acting, resolved: bool | None) -> list[Alert]:
    """Alerts of units in the admin's subtree: an alert at a hall reaches every level above it."""
    query = (
        select(Alert)
        .join(Unit, Unit.id == Alert.unit_id)
        .where(Unit.path.startswith(who.unit_path, autoescape=True))
    )
    if resolved is not None:
        query = query.where(Alert.resolved_at.is_not(None) if resolved else Alert.resolved_at.is_(None))
    return list((await session.execute(query.order_by(Alert.raised_at.desc(), Alert.id.desc()))).scalars())


async def get_alert(session: AsyncSession, alert_id: int) -> tuple[Alert, Unit]:
    row = (
        await session.execute(
            select(Alert, Unit).join(Unit, Unit.id == Alert.unit_id).where(Alert.id == alert_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    return row[0], row[1]


# Kinds whose condition is re-checked by a job: resolving frees the dedup key so a recurrence
# raises a new alert (the others are about one event and stay once for good).
RECURRING = (
    "waitlist_over_release",
    # rule G19: the abnormal-figure kinds of yuyue.watch, re-checked nightly
    "sold_out_fast",
    "low_utilisation",
    "no_show_high",
    "waitlist_growing",
    "channel_surge",
    "bureau_silent",
)


async def resolve_alert(session: AsyncSession, alert: Alert, note: str) -> None:
    changed = await session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.resolved_at.is_(None))
        .values(
            resolved_at=clock.now(),
            note=note,
            dedup_key=f"{alert.dedup_key}#resolved:{alert.id}"
            if alert.kind in RECURRING
            else alert.dedup_key,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Unprocessable("this alert is already resolved", code="already_resolved")
    await session.refresh(alert)


async def resolve_alert_as(session: AsyncSession, who: Acting, alert_id: int, note: str) -> dict[str, Any]:
    """Resolve an alert of `who`'s subtree with a note; audited."""
    alert, unit = await get_alert(session, alert_id)
    authorise(who, "resolve_alert", unit.path)
    before = alert_view(alert)
    await resolve_alert(session, alert, note)
    after = alert_view(alert)
    await audit(session, who, unit.id, unit.path, "alert.resolve", str(alert.id), before, after)
    return after


# --- capacity requests (rule G20) ------------------------------------------------------------------


def request_view(request: CapacityRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "service_id": request.service_id,
        "hall_id": request.hall_id,
        "date_from": request.date_from.isoformat(),
        "date_to": request.date_to.isoformat() if request.date_to else None,
        "daily_capacity": request.daily_capacity,
        "reason": request.reason,
        "status": request.status,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at.isoformat(),
        "approval_due": request.overdue_at.isoformat(),
        "decided_by": request.decided_by,
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
        "note": request.note,
    }


def request_days(request: CapacityRequest) -> str:
    """`2026-12-03–2026-12-05`, or `from 2026-12-03 on` for a standing change."""
    if request.date_to is None:
        return f"from {request.date_from.isoformat()} on"
    return f"{request.date_from.isoformat()}–{request.date_to.isoformat()}"


MAX_CHANGE_DAYS = 92


async def request_capacity(
    session: AsyncSession,
    who: Acting,
    service_id: int,
    date_from: date,
    date_to: date | None,
    daily_capacity: int,
    reason: str,
) -> tuple[CapacityRequest, Unit]:
    """Rule G20: a change of released capacity, for the days `date_from`–`date_to`, or with
    `date_to` None a change of the standing daily capacity from `date_from` on."""
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFound(f"service {service_id} not found")
    hall = await session.get(Unit, service.hall_id)
    assert hall is not None
    authorise(who, "propose", hall.path)
    if date_to is not None and date_to < date_from:
        raise ValidationFailed("date_to is before date_from")
    if date_to is not None and (date_to - date_from).days >= MAX_CHANGE_DAYS:
        raise ValidationFailed(f"a change covers at most {MAX_CHANGE_DAYS} days")
    calendar = await hall_calendar(session, hall.id)
    today = clock.today()
    earliest = calendar.nth_working_after(today, 2)
    if date_from < earliest:  # rule G20: at least the 2nd working day after the request
        raise Unprocessable(
            f"date_from must be on or after {earliest.isoformat()} (the 2nd working day after today)",
            code="too_late_for_change",
            earliest=earliest.isoformat(),
        )
    now = clock.now()
    # Rule G20: approved within 1 working day: overdue at 24:00 of the next working day.
    overdue_at = at(calendar.nth_working_after(today, 1) + timedelta(days=1), "00:00")
    request = CapacityRequest(
        service_id=service.id,
        hall_id=hall.id,
        date_from=date_from,
        date_to=date_to,
        daily_capacity=daily_capacity,
        reason=reason,
        status="pending",
        requested_by=who.id,
        requested_at=now,
        overdue_at=overdue_at,
    )
    session.add(request)
    await session.flush()
    return request, hall


async def get_request(session: AsyncSession, request_id: int) -> tuple[CapacityRequest, Unit, Party]:
    row = (
        await session.execute(
            select(CapacityRequest, Unit, Admin.level)
            .join(Unit, Unit.id == CapacityRequest.hall_id)
            .join(Admin, Admin.id == CapacityRequest.requested_by)
            .where(CapacityRequest.id == request_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"capacity request {request_id} not found")
    request, hall, level = row
    requester_admin = await session.get(Admin, request.requested_by)
    assert requester_admin is not None
    requester_unit = await session.get(Unit, requester_admin.unit_id)
    assert requester_unit is not None
    return request, hall, Party(id=request.requested_by, unit_path=requester_unit.path, level=int(level))


async def list_requests(session: AsyncSession, who: Acting, status: str | None) -> list[CapacityRequest]:
    query = (
        select(CapacityRequest)
        .join(Unit, Unit.id == CapacityRequest.hall_id)
        .where(Unit.path.startswith(who.unit_path, autoescape=True))
    )
    if status is not None:
        query = query.where(CapacityRequest.status == status)
    return list((await session.execute(query.order_by(CapacityRequest.id.desc()))).scalars())


async def decide(
    session: AsyncSession, who: Acting, request: CapacityRequest, approve: bool, note: str | None
) -> None:
    """Approve (apply the capacity at once, through the seats' one writer, `booking.inventory`) or
    reject; a conditional UPDATE decides exactly once. An approval is announced to the admins of
    the hall it concerns (`capacity.approved`, rule G4: approved changes go to the halls' admins)."""
    now = clock.now()
    changed = await session.execute(
        update(CapacityRequest)
        .where(CapacityRequest.id == request.id, CapacityRequest.status == "pending")
        .values(status="approved" if approve else "rejected", decided_by=who.id, decided_at=now, note=note)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Conflict(f"this request is already {request.status}", code="already_decided")
    await session.refresh(request)
    if approve:
        await apply_capacity_change(
            session, request.service_id, request.date_from, request.date_to, request.daily_capacity
        )
        await emit(session, Event("capacity.approved", {"request": request}))


async def propose_capacity(
    session: AsyncSession,
    who: Acting,
    service_id: int,
    date_from: date,
    date_to: date | None,
    daily_capacity: int,
    reason: str,
) -> dict[str, Any]:
    """Rule G20: ask for a change of released capacity (any level may propose in its subtree, G4);
    audited. Returns the pending request's view."""
    request, hall = await request_capacity(
        session, who, service_id, date_from, date_to, daily_capacity, reason
    )
    view = request_view(request)
    await audit(session, who, hall.id, hall.path, "capacity.request", str(request.id), None, view)
    return view


async def request_for(session: AsyncSession, who: Acting, request_id: int) -> CapacityRequest:
    """A capacity request of `who`'s subtree."""
    request, hall, _ = await get_request(session, request_id)
    authorise(who, "view", hall.path)
    return request


async def decide_request(
    session: AsyncSession, who: Acting, request_id: int, approve: bool, note: str | None
) -> dict[str, Any]:
    """Rules G4–G6, G20: approve (applied at once) or reject, by an admin allowed to approve it,
    never the requester; audited. Returns the decided request's view."""
    request, hall, requester = await get_request(session, request_id)
    authorise(who, "approve", hall.path, requester=requester)
    before = request_view(request)
    await decide(session, who, request, approve, note)
    after = request_view(request)
    action = "capacity.approve" if approve else "capacity.reject"
    await audit(session, who, hall.id, hall.path, action, str(request.id), before, after)
    return after


async def requesters(session: AsyncSession, requests: list[CapacityRequest]) -> dict[int, Party]:
    """Who asked for each request (for `may(..., "approve", requester=...)`), in one query."""
    ids = {r.requested_by for r in requests}
    if not ids:
        return {}
    rows = (
        await session.execute(
            select(Admin.id, Admin.level, Unit.path)
            .join(Unit, Unit.id == Admin.unit_id)
            .where(Admin.id.in_(ids))
        )
    ).all()
    parties = {row.id: Party(id=row.id, unit_path=row.path, level=int(row.level)) for row in rows}
    return {r.id: parties[r.requested_by] for r in requests if r.requested_by in parties}


async def admin_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    """`name（username）` of admin accounts, for lists that name who asked or decided."""
    if not ids:
        return {}
    rows = (
        await session.execute(select(Admin.id, Admin.name, Admin.username).where(Admin.id.in_(ids)))
    ).all()
    return {row.id: f"{row.name}（{row.username}）" for row in rows}


async def flag_overdue_approvals(session: AsyncSession, due: datetime) -> int:
    """Rule G20: a request still pending at 24:00 of the next working day raises
    `approval_overdue`, once per request, at the request's hall (seen by every level above)."""
    rows = (
        await session.execute(
            select(CapacityRequest).where(
                CapacityRequest.status == "pending", CapacityRequest.overdue_at <= due
            )
        )
    ).scalars()
    raised = 0
    for request in rows:
        raised += await raise_alert(
            session,
            "approval_overdue",
            request.hall_id,
            request.service_id,
            f"approval_overdue:{request.id}",
            f"capacity request {request.id} ({request_days(request)}, "
            f"{request.daily_capacity}/day) was not decided by {request.overdue_at.isoformat()}",
            raised_at=due,
        )
    return raised


# --- jobs ------------------------------------------------------------------------------------------


async def _approval_overdue_job(session: AsyncSession, due: datetime) -> None:
    await flag_overdue_approvals(session, due)


# Overdue moments are always 24:00 (rule G20), so one run a day at 00:00 finds them all.
register(Job("approval_overdue", daily("00:00"), _approval_overdue_job))
