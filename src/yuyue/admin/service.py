"""Administrators (rules G3–G7): accounts, sessions, lockout, the one authorisation function, the
audit log; capacity requests and approvals (G20); alerts (G12, G20); penalties by hand (G15).

The 2-2-3 table (docs/rules.md "Administration" and "Who approves"), as `may` reads it:

| admin | view, propose | configure | approve | admins, penalties |
|---|---|---|---|---|
| platform L1 | everywhere | everywhere | anything | everywhere |
| platform L2 | everywhere | never (G4: proposes) | never | never |
| city bureau L1 | its subtree | never (G5: oversees, approves) | its subtree | its subtree |
| city bureau L2 | its subtree | its subtree (G5) | never | its subtree |
| district L1 | its district | its district (G6) | its district | its district |
| district/street hall L2 | its hall and villages | the same (G6) | never | the same |
| village L3 | its hall | its hall (G6) | never | its hall |

Approve: by a higher level of the requester's unit or an L1 admin of an ancestor unit; platform L1
anything; platform L2 never; the requester never. National calendar: platform L1 only. Admin
accounts: strictly below yourself (a unit under yours, or a higher level number of your unit).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.calendar.service import hall_calendar
from yuyue.catalogue.service import clear_caches, day_slots, get_unit, service_info
from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import (
    Conflict,
    DomainError,
    Forbidden,
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
    AuditEntry,
    CapacityRequest,
    Service,
    Slot,
    StaffAccount,
    Unit,
)

ADMIN = "admin"
hasher = PasswordHasher()
# A dummy hash so an unknown username costs the same time as a wrong password.
_DUMMY_HASH = hasher.hash("not-a-real-password-0")

# Lockout (decision 0040, reworked for issue 19): counted per username *and client address*, so a
# stranger guessing from elsewhere locks only themselves out, never the owner. From the 5th failure
# within an hour each failure delays the next try from that address: 1 minute, doubling, at most an
# hour. A superior lifts it (`unlock`, audited). Real time (docs/api.md "Test clock"). Admins and
# clerks (kind `admin` / `staff`) alike.
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(hours=1)
LOCKOUT_BASE = timedelta(minutes=1)
LOCKOUT_MAX = timedelta(hours=1)

Action = Literal[
    "view", "configure", "calendar", "propose", "approve", "manage_admins", "penalise", "resolve_alert"
]
ACTIONS: tuple[Action, ...] = (
    "view",
    "configure",
    "calendar",
    "propose",
    "approve",
    "manage_admins",
    "penalise",
    "resolve_alert",
)

# Rule G3 (2-2-3): the levels an admin of each kind of unit may hold.
LEVELS: dict[str, tuple[int, ...]] = {
    "platform": (1, 2),
    "city_department": (1, 2),
    "city_hall": (2,),
    "district": (1,),
    "district_hall": (2,),
    "street_hall": (2,),
    "village_hall": (3,),
}


@dataclass(frozen=True)
class Acting:
    """An authenticated admin with their unit's place in the tree."""

    id: int
    username: str
    unit_id: str
    unit_path: str
    unit_kind: str
    level: int
    session_id: str = ""

    @property
    def platform(self) -> bool:
        return self.unit_kind == "platform"


@dataclass(frozen=True)
class Party:
    """The admin who asked for something that another must approve."""

    id: int
    unit_path: str
    level: int


def _may_approve(admin: Acting, requester: Party | None) -> bool:
    if requester is None or requester.id == admin.id:
        return False  # rule G20: never the requester
    if admin.platform:
        return admin.level == 1  # rule G4: platform L1 approves anything, L2 proposes only
    if requester.unit_path == admin.unit_path:
        return admin.level < requester.level  # a higher level of the same unit (G5)
    return admin.level == 1 and requester.unit_path.startswith(admin.unit_path)  # L1 of an ancestor (G6)


def may(
    admin: Acting,
    action: Action,
    target_path: str,
    *,
    target_level: int | None = None,
    requester: Party | None = None,
) -> bool:
    """The authorisation table of rules G3–G7 (see the module docstring). `target_path` is the unit
    acted on; `target_level` the level of an admin account being made or closed; `requester` who
    asked for what is being approved."""
    if action == "approve":
        return target_path.startswith(admin.unit_path) and _may_approve(admin, requester)
    if admin.platform and admin.level == 1:
        return True  # rule G4: platform L1 oversees the whole city
    if action == "calendar":
        return False  # the national calendar: platform L1 only
    if not target_path.startswith(admin.unit_path):
        return False  # only inside their own subtree
    if action in ("view", "propose", "resolve_alert"):
        return True  # every level oversees its subtree and may propose changes (G4, G19)
    if admin.platform:
        return False  # rule G4: platform L2 oversees and proposes, never acts
    if action == "configure":
        return not (admin.unit_kind == "city_department" and admin.level == 1)  # G5: L2 configures
    if action == "penalise":
        return True
    if action == "manage_admins":
        if target_path != admin.unit_path:
            return True  # a unit strictly below
        return target_level is not None and target_level > admin.level
    return False


def authorise(
    admin: Acting,
    action: Action,
    target_path: str,
    *,
    target_level: int | None = None,
    requester: Party | None = None,
) -> None:
    if not may(admin, action, target_path, target_level=target_level, requester=requester):
        raise Forbidden(f"not allowed to {action.replace('_', ' ')} here")


# --- accounts --------------------------------------------------------------------------------------


# Passwords that pass the length and character rule yet are the first guesses of any attacker:
# compared after lower-casing and stripping digits/punctuation from the ends, so `Password1234!`
# and `1234qwerty5678` are caught too.
WEAK_WORDS = frozenset(
    {
        "password",
        "passw0rd",
        "admin",
        "administrator",
        "qwerty",
        "qwertyuiop",
        "asdfgh",
        "zxcvbn",
        "abc",
        "abcd",
        "abcdef",
        "abcdefg",
        "letmein",
        "welcome",
        "iloveyou",
        "test",
        "yuyue",
        "root",
        "changeme",
        "default",
        "woaini",
        "aaaaaa",
        "a",
        "aa",
        "aaa",
        "qwe",
        "asd",
        "zxc",
        "user",
        "staff",
        "guest",
        "login",
        "master",
        "hello",
        "china",
        "beijing",
        "guangzhou",
        "shenzhen",
    }
)


def weak_password(password: str) -> bool:
    core = password.lower().strip("0123456789!@#$%^&*()_-+=.,;:?~ ")
    if core in WEAK_WORDS:
        return True
    if len(set(password.lower())) <= 3:  # aaaa1111aaaa, 121212121212a
        return True
    return password.lower() in {"1234qwer1234", "qwer12345678", "1q2w3e4r5t6y", "a1b2c3d4e5f6"}


def check_password_strength(password: str) -> None:
    """Admins and staff alike: 12+ characters with letters and digits, not on the weak list."""
    if len(password) < 12 or not re.search(r"[A-Za-z]", password) or not re.search(r"[0-9]", password):
        raise ValidationFailed("password must have at least 12 characters with letters and digits")
    if weak_password(password):
        raise ValidationFailed(
            "password must have at least 12 characters with letters and digits, not a common one"
        )


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
        hasher.verify(admin.password_hash if admin else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        admin = None
    if admin is None or not admin.active:
        await count_failure(session, "admin", username, address)
        raise Unauthenticated("wrong username or password")
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


async def acting_admin(session: AsyncSession, secret: str, token: str | None) -> Acting:
    claims = tokens.verify(secret, ADMIN, token) if token else None
    if claims is None or not isinstance(claims.get("sid"), str):
        raise Unauthenticated("a valid admin token is required")
    try:
        admin_id = int(claims["sub"])
    except (TypeError, ValueError):
        raise Unauthenticated("a valid admin token is required") from None
    row = (
        await session.execute(
            select(Admin, Unit.path, Unit.kind, AdminSession)
            .join(Unit, Unit.id == Admin.unit_id)
            .join(AdminSession, AdminSession.admin_id == Admin.id)
            .where(Admin.id == admin_id, AdminSession.id == claims["sid"])
        )
    ).first()
    if row is None or not row[0].active:
        raise Unauthenticated("this admin account is closed")
    admin, path, kind, login_session = row
    if login_session.revoked_at is not None or login_session.expires_at <= clock.real_now():
        raise Unauthenticated("this session has ended; log in again")
    return Acting(
        id=admin.id,
        username=admin.username,
        unit_id=admin.unit_id,
        unit_path=path,
        unit_kind=kind,
        level=admin.level,
        session_id=login_session.id,
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


async def audit(
    session: AsyncSession,
    admin: Acting | None,
    unit_id: str,
    unit_path: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    staff_id: int | None = None,
) -> None:
    """Append one audit entry (the table is only ever inserted into). The actor is the admin, or a
    hall clerk (`staff_id`) for what clerks may do that must leave a trace."""
    session.add(
        AuditEntry(
            at=clock.now(),
            admin_id=admin.id if admin else None,
            staff_id=staff_id,
            unit_id=unit_id,
            unit_path=unit_path,
            action=action,
            target=target,
            before=before,
            after=after,
        )
    )


async def read_audit(
    session: AsyncSession, root_path: str, start: date | None, end: date | None, limit: int
) -> list[dict[str, Any]]:
    query = (
        select(AuditEntry, Admin.username, StaffAccount.username)
        .outerjoin(Admin, Admin.id == AuditEntry.admin_id)
        .outerjoin(StaffAccount, StaffAccount.id == AuditEntry.staff_id)
        .where(AuditEntry.unit_path.startswith(root_path, autoescape=True))
    )
    if start is not None:
        query = query.where(AuditEntry.at >= at(start, "00:00"))
    if end is not None:
        query = query.where(AuditEntry.at < at(end + timedelta(days=1), "00:00"))
    rows = (
        await session.execute(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
    ).all()
    return [
        {
            "id": entry.id,
            "at": entry.at.isoformat(),
            "admin": username,
            "staff": clerk,
            "unit_id": entry.unit_id,
            "action": entry.action,
            "target": entry.target,
            "before": entry.before,
            "after": entry.after,
        }
        for entry, username, clerk in rows
    ]


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
) -> bool:
    """Insert an alert once per `dedup_key` (the unique index decides); True when it is new."""
    statement = _insert(session, Alert).values(
        kind=kind,
        unit_id=unit_id,
        service_id=service_id,
        dedup_key=dedup_key,
        raised_at=raised_at or clock.now(),
        detail=detail,
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
RECURRING = ("waitlist_over_release",)


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
        "date_to": request.date_to.isoformat(),
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


MAX_CHANGE_DAYS = 92


async def request_capacity(
    session: AsyncSession,
    who: Acting,
    service_id: int,
    date_from: date,
    date_to: date,
    daily_capacity: int,
    reason: str,
) -> tuple[CapacityRequest, Unit]:
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFound(f"service {service_id} not found")
    hall = await session.get(Unit, service.hall_id)
    assert hall is not None
    authorise(who, "propose", hall.path)
    if date_to < date_from:
        raise ValidationFailed("date_to is before date_from")
    if (date_to - date_from).days >= MAX_CHANGE_DAYS:
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
    """Approve (apply the capacity at once) or reject; a conditional UPDATE decides exactly once."""
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
        await apply_capacity(
            session, request.service_id, request.date_from, request.date_to, request.daily_capacity
        )


async def propose_capacity(
    session: AsyncSession,
    who: Acting,
    service_id: int,
    date_from: date,
    date_to: date,
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


async def apply_capacity(
    session: AsyncSession, service_id: int, first: date, last: date, daily: int
) -> list[date]:
    """Write the new spread into each slot of each working day in the range, never below the seats
    already sold (rule G20: `max(new, booked)`); emits `capacity.increased` with the days where a
    slot gained seats. Returns those days."""
    info = await service_info(session, service_id)
    calendar = await hall_calendar(session, info.hall_id)
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
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    greatest = func.greatest if dialect == "postgresql" else func.max
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
    clear_caches()  # answers cached from the old capacity (availability) are stale at once
    if increased:
        await emit(session, Event("capacity.increased", {"service_id": service_id, "dates": increased}))
    return increased


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
            f"capacity request {request.id} ({request.date_from}–{request.date_to}, "
            f"{request.daily_capacity}/day) was not decided by {request.overdue_at.isoformat()}",
            raised_at=due,
        )
    return raised


# --- jobs ------------------------------------------------------------------------------------------


async def _approval_overdue_job(session: AsyncSession, due: datetime) -> None:
    await flag_overdue_approvals(session, due)


# Overdue moments are always 24:00 (rule G20), so one run a day at 00:00 finds them all.
register(Job("approval_overdue", daily("00:00"), _approval_overdue_job))
