"""Who may do what (rules G3–G7): the acting admin, the one authorisation function `may` and its
table, and admin and staff password hashing. A leaf: it knows the unit tree only as paths, so every
domain asks it without importing `yuyue.admin`.

The 2-2-3 table (docs/rules.md "Administration" and "Who approves": G3–G6, G20), as `may` reads it:

| admin | view, propose | configure | approve | admins, penalties |
|---|---|---|---|---|
| platform L1 | everywhere | everywhere | anything (G4) | everywhere |
| platform L2 | everywhere | never (G4: proposes) | never (G4) | never |
| bureau L1, city hall L1 | its subtree | never (G5: oversees, approves) | its subtree (G5) | its subtree |
| bureau L2, city hall L2 | its subtree | its subtree (G5) | never | its subtree |
| district L1 | its district | its district (G6) | its district (G6) | its district |
| district/street hall L2 | its hall and villages | the same (G6) | the village halls below (G6) | the same |
| village L3 | its hall | its hall (G6) | never | its hall |

Approve (G20: "approved by the level above"): the request's hall lies in the approver's subtree as
the table says, and the requester sits at or below the approver: in a unit under the approver's,
or in the same unit at a lower rank (a higher level number). Platform L1 approves anything,
platform L2 never, the requester never (`403 forbidden`). National calendar: platform L1 only.
Admin accounts: strictly below yourself (a unit under yours, or a higher level number of your unit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.clock import clock
from yuyue.config import Settings, get_settings
from yuyue.errors import Forbidden, Unauthenticated, ValidationFailed
from yuyue.kit import tokens
from yuyue.models import Admin, AdminSession, Unit

ADMIN = "admin"


class Passwords:
    """The one argon2 hasher of admin and staff passwords. Its cost comes from the settings
    (`Settings.argon2_parameters`): the app's settings once `use` is called (`create_app` does),
    else the process settings (`get_settings()`, e.g. the command line) at the first hash."""

    def __init__(self) -> None:
        self._hasher: PasswordHasher | None = None
        self._parameters = (0, 0, 0)
        self._dummy = ""

    def use(self, settings: Settings) -> None:
        parameters = settings.argon2_parameters
        if self._hasher is not None and parameters == self._parameters:
            return
        time_cost, memory_cost, parallelism = parameters
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        self._parameters = parameters
        # A dummy hash of the same cost, so an unknown username costs the same time as a wrong password.
        self._dummy = self._hasher.hash("not-a-real-password-0")

    @property
    def current(self) -> PasswordHasher:
        if self._hasher is None:
            self.use(get_settings())
        assert self._hasher is not None
        return self._hasher

    @property
    def dummy(self) -> str:
        self.current  # noqa: B018 - builds the hasher (and its dummy hash) on first use
        return self._dummy

    def hash(self, password: str) -> str:
        return self.current.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        return self.current.verify(password_hash, password)


hasher = Passwords()

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
    "city_hall": (1, 2),  # rule G5: a city-level hall has L1 (oversees, approves) and L2
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


def _may_approve(admin: Acting, hall_path: str, requester: Party | None) -> bool:
    if requester is None or requester.id == admin.id:
        return False  # rule G20: never the requester
    if admin.platform:
        return admin.level == 1  # rule G4: platform L1 approves anything, L2 proposes only
    if not requester.unit_path.startswith(admin.unit_path):
        return False  # rule G20: the level above the requester, never beside or below
    if requester.unit_path == admin.unit_path and admin.level >= requester.level:
        return False  # the same unit: only a higher rank (G5: L1 approves what L2 asks)
    if admin.level == 1:
        return True  # G5: bureau and city hall L1; G6: district L1, all of its district
    if admin.unit_kind in ("district_hall", "street_hall"):
        return hall_path != admin.unit_path  # G6: hall L2 approves for the village halls below
    return False  # G5: bureau and city hall L2 configure and run; village L3 approves nothing


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
        return target_path.startswith(admin.unit_path) and _may_approve(admin, target_path, requester)
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
    if action == "configure":  # G5: at a bureau or city hall, L2 configures and L1 oversees
        return not (admin.unit_kind in ("city_department", "city_hall") and admin.level == 1)
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
