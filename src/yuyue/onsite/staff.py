"""Who may act in a hall: hall staff, the hall's kiosks, and admins acting as staff (`Actor`,
`hall_for`); the staff accounts and kiosks an admin manages (rule G7 in spirit: a retired account is
closed for good).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.accounts import check_lockout, password_checked
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
from yuyue.catalogue.service import HALL_KINDS
from yuyue.clock import clock
from yuyue.errors import Forbidden, NotFound, Unauthenticated, Unprocessable, ValidationFailed
from yuyue.kit import tokens
from yuyue.models import Counter, Kiosk, StaffAccount, Unit

STAFF, KIOSK = "staff", "kiosk"
KIOSK_TTL_S = 366 * 24 * 3600  # a kiosk token lives a year; revoking the kiosk ends it at once


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


def staff_only(actor: Actor) -> None:
    if actor.kind == KIOSK:
        raise Forbidden("a kiosk cannot do this; staff can")


async def create_staff(
    session: AsyncSession,
    admin: Acting,
    hall_id: str,
    username: str,
    password: str,
    name: str,
    counter_id: int | None,
) -> StaffView:
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
    await audit(session, admin, hall.id, hall.path, "staff.create", f"staff:{staff.id}", None, asdict(view))
    return view


@dataclass(slots=True, kw_only=True)
class StaffView:
    """A clerk account as docs/api.md shows it; checked by `StaffOut`."""

    id: int
    username: str
    name: str
    hall_id: str
    counter_id: int | None
    active: bool
    created_at: str
    retired_at: str | None


def staff_view(staff: StaffAccount) -> StaffView:
    return StaffView(
        id=staff.id,
        username=staff.username,
        name=staff.name,
        hall_id=staff.hall_id,
        counter_id=staff.counter_id,
        active=staff.active,
        created_at=staff.created_at.isoformat(),
        retired_at=staff.retired_at.isoformat() if staff.retired_at else None,
    )


async def staff_login(
    session: AsyncSession, secret: str, ttl_s: int, username: str, password: str, address: str = "unknown"
) -> tuple[str, StaffView]:
    """The admins' lockout (per username and address, growing delay, unlock by a superior); a
    refusal keeps its count (`keep_writes`)."""
    await check_lockout(session, "staff", username, address)
    found = (
        await session.execute(select(StaffAccount).where(StaffAccount.username == username))
    ).scalar_one_or_none()
    staff = await password_checked(session, "staff", username, password, address, found)
    token = tokens.issue(secret, STAFF, str(staff.id), ttl_s, ver=staff.token_version)
    return token, staff_view(staff)


async def list_staff(session: AsyncSession, admin: Acting, hall_id: str) -> list[StaffView]:
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


async def retire_staff(session: AsyncSession, admin: Acting, staff_id: int, reason: str | None) -> StaffView:
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
        asdict(before),
        asdict(after) | {"reason": reason} if reason else asdict(after),
    )
    return after


async def reset_staff_password(
    session: AsyncSession, admin: Acting, staff_id: int, password: str
) -> StaffView:
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
        asdict(view) | {"password": "reset"},
    )
    return view


@dataclass(slots=True, kw_only=True)
class NewKiosk:
    """A new kiosk with its token (shown once); checked by `KioskOut`."""

    id: int
    hall_id: str
    name: str
    token: str


async def create_kiosk(
    session: AsyncSession, secret: str, admin: Acting, hall_id: str, name: str
) -> NewKiosk:
    hall = await get_hall(session, hall_id)
    authorise(admin, "configure", hall.path)
    kiosk = Kiosk(hall_id=hall.id, name=name, created_at=clock.now(), revoked_at=None)
    session.add(kiosk)
    await session.flush()
    view = {"id": kiosk.id, "hall_id": hall.id, "name": name}
    await audit(session, admin, hall.id, hall.path, "kiosk.create", f"kiosk:{kiosk.id}", None, view)
    token = tokens.issue(secret, KIOSK, str(kiosk.id), KIOSK_TTL_S)
    return NewKiosk(id=kiosk.id, hall_id=hall.id, name=name, token=token)


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
