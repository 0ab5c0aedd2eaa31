"""Administrators: accounts, login, the one authorisation function, and the audit log.

Who may do what follows rules G3–G7 (RULES.md, "Who approves"): a platform L1 admin may do
everything anywhere; any other admin acts only inside their unit's subtree, as their level allows.
Capacity approvals and the rest of the 2-2-3 table come with the supply-and-oversight work and
extend `ACTIONS` here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.clock import clock
from yuyue.errors import Forbidden, Unauthenticated, ValidationFailed
from yuyue.kit import tokens
from yuyue.models import Admin, AuditEntry, Unit

ADMIN = "admin"
hasher = PasswordHasher()
# A dummy hash so an unknown username costs the same time as a wrong password.
_DUMMY_HASH = hasher.hash("not-a-real-password-0")

Action = Literal["view", "configure", "calendar"]
ACTIONS: tuple[Action, ...] = ("view", "configure", "calendar")


@dataclass(frozen=True)
class Acting:
    """An authenticated admin with their unit's place in the tree."""

    id: int
    username: str
    unit_id: str
    unit_path: str
    unit_kind: str
    level: int

    @property
    def platform(self) -> bool:
        return self.unit_kind == "platform"


def may(admin: Acting, action: Action, target_path: str) -> bool:
    """The authorisation table of rules G3–G7 (for the booking core's actions)."""
    if admin.platform and admin.level == 1:
        return True  # rule G4: platform L1 oversees the whole city
    if action == "calendar":
        return admin.platform  # the national calendar override: platform admins only
    if not target_path.startswith(admin.unit_path):
        return False  # only inside their own subtree
    if action == "view":
        return True
    # configure: platform L2 proposes, never configures directly (rule G4); every other admin
    # configures inside their subtree (G5 bureau L2, G6 district L1, hall L2, village L3).
    return not admin.platform


def authorise(admin: Acting, action: Action, target_path: str) -> None:
    if not may(admin, action, target_path):
        raise Forbidden(f"not allowed to {action} here")


def check_password_strength(password: str) -> None:
    if len(password) < 12 or not re.search(r"[A-Za-z]", password) or not re.search(r"[0-9]", password):
        raise ValidationFailed("password must have at least 12 characters with letters and digits")


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
) -> Admin:
    check_password_strength(password)
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise ValidationFailed(f"unit {unit_id!r} does not exist")
    if level not in (1, 2, 3):
        raise ValidationFailed("level must be 1, 2 or 3")
    existing = (await session.execute(select(Admin.id).where(Admin.username == username))).first()
    if existing is not None:
        raise ValidationFailed(f"username {username!r} is taken", code="conflict", status=409)
    admin = Admin(
        username=username,
        password_hash=hasher.hash(password),
        name=name,
        title=title,
        phone=phone,
        unit_id=unit_id,
        level=level,
        active=True,
        created_at=clock.now(),
    )
    session.add(admin)
    await session.flush()
    return admin


async def login(
    session: AsyncSession, secret: str, ttl_s: int, username: str, password: str
) -> tuple[str, Admin]:
    admin = (await session.execute(select(Admin).where(Admin.username == username))).scalar_one_or_none()
    try:
        hasher.verify(admin.password_hash if admin else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        admin = None
    if admin is None or not admin.active:
        raise Unauthenticated("wrong username or password")
    return tokens.issue(secret, ADMIN, str(admin.id), ttl_s), admin


async def acting_admin(session: AsyncSession, secret: str, token: str | None) -> Acting:
    claims = tokens.verify(secret, ADMIN, token) if token else None
    if claims is None:
        raise Unauthenticated("a valid admin token is required")
    row = (
        await session.execute(
            select(Admin, Unit.path, Unit.kind)
            .join(Unit, Unit.id == Admin.unit_id)
            .where(Admin.id == int(claims["sub"]))
        )
    ).first()
    if row is None or not row[0].active:
        raise Unauthenticated("this admin account is closed")
    admin, path, kind = row
    return Acting(
        id=admin.id,
        username=admin.username,
        unit_id=admin.unit_id,
        unit_path=path,
        unit_kind=kind,
        level=admin.level,
    )


def admin_view(admin: Admin) -> dict[str, Any]:
    return {
        "id": admin.id,
        "username": admin.username,
        "name": admin.name,
        "title": admin.title,
        "unit_id": admin.unit_id,
        "level": admin.level,
        "active": admin.active,
    }


async def audit(
    session: AsyncSession,
    admin: Acting | None,
    unit_id: str,
    unit_path: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session.add(
        AuditEntry(
            at=clock.now(),
            admin_id=admin.id if admin else None,
            unit_id=unit_id,
            unit_path=unit_path,
            action=action,
            target=target,
            before=before,
            after=after,
        )
    )
