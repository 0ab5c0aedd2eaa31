"""The console session: who is looking at a console page, and the cookie that says so.

The cookie `yuyue_console` holds the same signed token the API hands out at `POST /api/v1/admin/login`
or `POST /api/v1/staff/login` (HttpOnly, SameSite=Strict, Secure in production), so a page is
authorised exactly as the API is: an admin's session can be revoked (logout, retire), a staff
account can be closed. CSRF is the citizen portal's signed double submit (yuyue.web.service).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.auth.service import Acting, acting_admin
from yuyue.errors import Forbidden, Unauthenticated
from yuyue.kit import tokens
from yuyue.models import Unit
from yuyue.onsite.staff import STAFF, Actor, actor_from_token

COOKIE = "yuyue_console"
ROLES = {"admin": "管理员", "staff": "窗口工作人员"}
LEVEL_TEXT = {1: "一级管理员", 2: "二级管理员", 3: "三级管理员"}


@dataclass(frozen=True)
class Viewer:
    """A logged-in console user: an admin (who may also act as staff in their subtree) or a clerk."""

    kind: Literal["admin", "staff"]
    actor: Actor
    admin: Acting | None = None

    @property
    def hall_id(self) -> str | None:
        return self.actor.hall_id


async def viewer_of(session: AsyncSession, secret: str, token: str | None) -> Viewer:
    """The console user of a cookie token; `Unauthenticated` when missing, expired, revoked or closed.
    Kiosk tokens are refused here: a kiosk has its own page, not the console."""
    if not token:
        raise Unauthenticated("please log in")
    actor = await actor_from_token(session, secret, token)
    if actor.kind == "kiosk":
        raise Unauthenticated("a kiosk cannot open the console")
    if actor.kind == "admin":
        return Viewer("admin", actor, actor.admin)
    return Viewer("staff", actor)


async def admin_of(session: AsyncSession, secret: str, token: str | None) -> Acting:
    """The admin of a cookie token; a clerk gets `forbidden` (the admin console is for admins)."""
    if token and tokens.verify(secret, STAFF, token) is not None:
        raise Forbidden("this page is for administrators")
    return await acting_admin(session, secret, token)


async def unit_name(session: AsyncSession, unit_id: str) -> str:
    """The name a page shows for a unit (never its id: issue 20)."""
    unit = await session.get(Unit, unit_id)
    return unit.name if unit is not None else ""
