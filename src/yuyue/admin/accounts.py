"""Administrator accounts (rules G3–G7): registration, retirement, login, sessions and the
per username+address lockout; the audit log as an admin reads it. Who may do what is `yuyue.auth`
(the 2-2-3 table); the audit log itself is `yuyue.audit`."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any, Literal, TypeVar

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import AuditView, audit, read_audit
from yuyue.auth.service import ADMIN, LEVELS, Acting, authorise, check_password_strength, hasher
from yuyue.catalogue.service import get_unit
from yuyue.clock import clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import DomainError, NotFound, Unauthenticated, Unprocessable, ValidationFailed
from yuyue.identity.service import process_secret
from yuyue.kit import crypto, tokens
from yuyue.kit.http import rowcount
from yuyue.kit.masking import mask_email, mask_phone
from yuyue.models import Admin, AdminLockout, AdminSession, StaffAccount, Unit

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
        phone_enc=crypto.encrypt(process_secret(), phone.strip()),  # decision 0095: never in clear
        phone_masked=mask_phone(phone.strip()),
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


async def register_admin(session: AsyncSession, who: Acting, data: dict[str, Any]) -> AdminView:
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
    await audit(session, who, unit.id, unit.path, "admin.create", str(admin.id), None, asdict(view))
    return view


async def admin_for(session: AsyncSession, who: Acting, admin_id: int) -> Admin:
    """An admin account `who` may see (their subtree)."""
    admin, unit = await get_admin(session, admin_id)
    authorise(who, "view", unit.path)
    return admin


async def retire_admin(session: AsyncSession, who: Acting, admin_id: int, reason: str | None) -> AdminView:
    """Rule G7: close an account for good (its sessions end, its username is never reused); audited
    with the reason. Returns the closed account's view."""
    admin, unit = await get_admin(session, admin_id)
    authorise(who, "manage_admins", unit.path, target_level=admin.level)
    before = asdict(admin_view(admin))
    await retire(session, admin)
    view = admin_view(admin)
    after = asdict(view) | {"reason": reason} if reason else asdict(view)
    await audit(session, who, unit.id, unit.path, "admin.retire", str(admin.id), before, after)
    return view


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


Account = TypeVar("Account", Admin, StaffAccount)


async def password_checked(
    session: AsyncSession, kind: str, username: str, password: str, address: str, account: Account | None
) -> Account:
    """The password check of an admin's or clerk's login (after `check_lockout`): an unknown
    username costs the time of a wrong password; a refusal counts toward the lockout and keeps that
    count (`keep_writes`); a success clears this address's failures."""
    try:
        hasher.verify(account.password_hash if account else hasher.dummy, password)
    except (VerificationError, InvalidHashError):
        account = None
    if account is None or not account.active:
        await count_failure(session, kind, username, address)
        raise Unauthenticated("wrong username or password", keep_writes=True)  # the count sticks
    await clear_lockout(session, kind, username, address)
    return account


async def clear_lockout(session: AsyncSession, kind: str, username: str, address: str) -> None:
    await session.execute(
        delete(AdminLockout).where(AdminLockout.username == lockout_key(kind, username, address))
    )


async def unlock(
    session: AsyncSession, who: Acting, kind: Literal["admin", "staff"], account_id: int
) -> Unlocked:
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
    answer = Unlocked(kind=kind, id=account_id, username=username, unlocked=rowcount(result))
    await audit(
        session, who, unit_id, unit_path, f"{kind}.unlock", f"{kind}:{account_id}", None, asdict(answer)
    )
    return answer


async def login(
    session: AsyncSession, secret: str, ttl_s: int, username: str, password: str, address: str = "unknown"
) -> tuple[str, Admin]:
    """Check the password (argon2); count failures per username and address and lock that pair with
    a growing delay (a stranger elsewhere cannot lock the owner out). The caller commits even on
    failure, so the count sticks."""
    now = clock.real_now()
    await check_lockout(session, "admin", username, address)
    found = (await session.execute(select(Admin).where(Admin.username == username))).scalar_one_or_none()
    admin = await password_checked(session, "admin", username, password, address, found)
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


@dataclass(slots=True, kw_only=True)
class AdminView:
    """An admin account as docs/api.md shows it (phone and email masked); checked by `AdminOut`."""

    id: int
    username: str
    name: str
    title: str
    phone: str
    email: str | None
    unit_id: str
    level: int
    active: bool
    created_at: str
    retired_at: str | None


@dataclass(slots=True, kw_only=True)
class Unlocked:
    """What an unlock lifted; checked by `UnlockOut`."""

    kind: str
    id: int
    username: str
    unlocked: int


def admin_view(admin: Admin) -> AdminView:
    return AdminView(
        id=admin.id,
        username=admin.username,
        name=admin.name,
        title=admin.title,
        phone=admin.phone_masked,
        email=mask_email(admin.email) if admin.email else None,
        unit_id=admin.unit_id,
        level=admin.level,
        active=admin.active,
        created_at=admin.created_at.isoformat(),
        retired_at=admin.retired_at.isoformat() if admin.retired_at else None,
    )


# --- audit -----------------------------------------------------------------------------------------


async def audit_log(
    session: AsyncSession,
    who: Acting,
    unit_id: str | None,
    start: date | None,
    end: date | None,
    limit: int = 200,
) -> list[AuditView]:
    """Audit entries of a unit's subtree (default: `who`'s own unit), newest first; the unit must
    be inside `who`'s subtree."""
    unit = await get_unit(session, unit_id or who.unit_id)
    authorise(who, "view", unit.path)
    return await read_audit(session, unit.path, start, end, limit)


# --- names -----------------------------------------------------------------------------------------


async def admin_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    """`name（username）` of admin accounts, for lists that name who asked or decided."""
    if not ids:
        return {}
    rows = (
        await session.execute(select(Admin.id, Admin.name, Admin.username).where(Admin.id.in_(ids)))
    ).all()
    return {row.id: f"{row.name}（{row.username}）" for row in rows}
