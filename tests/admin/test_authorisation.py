"""The 2-2-3 authorisation table (rules G3–G7, G20, docs/rules.md "Administration" and "Who
approves"): every role × action × unit relation against `may`, the one function every admin route
calls (approval included: the request of an admin of the target unit); then the same answers
through HTTP on both databases."""

from __future__ import annotations

from itertools import product

import pytest

from tests.admin.support import new_admin, problem, unit
from tests.conftest import Api
from yuyue.auth.service import ACTIONS, LEVELS, Acting, Party, may

# The tree: platform / bureau / bureau-hall (a city-level hall); platform / d1 / {d1-hall, s1 / v1};
# platform / d2.
PATHS = {
    "platform": "platform/",
    "bureau": "platform/bureau/",
    "bureau-hall": "platform/bureau/bureau-hall/",
    "d1": "platform/d1/",
    "d1-hall": "platform/d1/d1-hall/",
    "s1": "platform/d1/s1/",
    "v1": "platform/d1/s1/v1/",
    "d2": "platform/d2/",
}
KINDS = {
    "platform": "platform",
    "bureau": "city_department",
    "bureau-hall": "city_hall",
    "d1": "district",
    "d1-hall": "district_hall",
    "s1": "street_hall",
    "v1": "village_hall",
    "d2": "district",
}
# role: (unit, level, a unit below or None, the unit above or None, an unrelated unit)
ROLES = {
    "platform L1": ("platform", 1, "d1-hall", None, "d2"),
    "platform L2": ("platform", 2, "d1-hall", None, "d2"),
    "bureau L1": ("bureau", 1, "bureau-hall", "platform", "d1"),
    "bureau L2": ("bureau", 2, "bureau-hall", "platform", "d1"),
    "city hall L1": ("bureau-hall", 1, None, "bureau", "d1"),  # rule G5: a city hall has L1 and L2
    "city hall L2": ("bureau-hall", 2, None, "bureau", "d1"),
    "district L1": ("d1", 1, "s1", "platform", "d2"),
    "district hall L2": ("d1-hall", 2, None, "d1", "s1"),
    "street hall L2": ("s1", 2, "v1", "d1", "d1-hall"),
    "village L3": ("v1", 3, None, "s1", "d1-hall"),
}
T, F, NA = True, False, None
ALL = (T, T, T, T)
INSIDE = (T, T, F, F)  # own unit and below: yes; above and elsewhere: no
NONE = (F, F, F, F)
BELOW = (F, T, F, F)  # only units strictly below
# action -> (own unit, a unit below, the unit above, an unrelated unit); "manage_admins" on the own
# unit asks for an account one level number higher (a lower rank) than the admin's own; "approve"
# decides a request made by another admin of that unit, of the lowest rank its kind has (LEVELS).
EXPECTED: dict[str, dict[str, tuple[bool, bool, bool, bool]]] = {
    "platform L1": dict.fromkeys(
        ("view", "configure", "calendar", "propose", "approve", "manage_admins", "penalise", "resolve_alert"),
        ALL,
    ),
    "platform L2": {  # rule G4: oversees and proposes, never acts, never approves
        "view": ALL,
        "configure": NONE,
        "calendar": NONE,
        "propose": ALL,
        "approve": NONE,
        "manage_admins": NONE,
        "penalise": NONE,
        "resolve_alert": ALL,
    },
    **{
        role: {  # rule G5: a bureau's or city hall's L1 oversees and approves
            "view": INSIDE,
            "configure": NONE,
            "calendar": NONE,
            "propose": INSIDE,
            "approve": INSIDE,
            "manage_admins": INSIDE,
            "penalise": INSIDE,
            "resolve_alert": INSIDE,
        }
        for role in ("bureau L1", "city hall L1")
    },
    **{
        role: {  # rule G5: a bureau's or city hall's L2 configures and runs; approves nothing
            "view": INSIDE,
            "configure": INSIDE,
            "calendar": NONE,
            "propose": INSIDE,
            "approve": NONE,
            "manage_admins": INSIDE,
            "penalise": INSIDE,
            "resolve_alert": INSIDE,
        }
        for role in ("bureau L2", "city hall L2")
    },
    **{
        role: {  # rule G6: district L1 approves for its district, hall L2 for the villages below
            "view": INSIDE,
            "configure": INSIDE,
            "calendar": NONE,
            "propose": INSIDE,
            "approve": BELOW,  # never a peer of the own unit (the level above approves, G20)
            "manage_admins": INSIDE,
            "penalise": INSIDE,
            "resolve_alert": INSIDE,
        }
        for role in ("district L1", "district hall L2", "street hall L2")
    },
    "village L3": {  # rule G6: configures its own hall under the street L2
        "view": INSIDE,
        "configure": INSIDE,
        "calendar": NONE,
        "propose": INSIDE,
        "approve": NONE,
        "manage_admins": INSIDE,
        "penalise": INSIDE,
        "resolve_alert": INSIDE,
    },
}


def acting(role: str, admin_id: int = 1) -> Acting:
    unit_id, level, *_ = ROLES[role]
    return Acting(admin_id, role, unit_id, PATHS[unit_id], KINDS[unit_id], level)


CASES = list(product(ROLES, ACTIONS, range(4)))


def test_the_table_covers_every_action_and_every_kind() -> None:
    assert all(set(EXPECTED[role]) == set(ACTIONS) for role in ROLES)
    assert {KINDS[unit_id] for unit_id, *_ in ROLES.values()} == set(LEVELS)


@pytest.mark.parametrize(("role", "action", "relation"), CASES)
def test_table_of_role_action_and_unit_relation(role: str, action: str, relation: int) -> None:
    """rules G3–G7, G20: one row per role, action and relation (own unit, below, above, elsewhere)."""
    unit_id, level, below, above, other = ROLES[role]
    target = (unit_id, below, above, other)[relation]
    if target is None:
        pytest.skip("this role has no unit in that relation")
    expected = EXPECTED[role][action][relation]
    target_level = level + 1 if relation == 0 else 3
    requester = Party(id=99, unit_path=PATHS[target], level=max(LEVELS[KINDS[target]]))
    answer = may(acting(role), action, PATHS[target], target_level=target_level, requester=requester)  # type: ignore[arg-type]
    assert answer is expected


def test_no_admin_creates_an_account_of_their_own_rank() -> None:
    """rule G7 with G3: accounts are opened from above, never sideways."""
    for role, (unit_id, level, *_rest) in ROLES.items():
        if role == "platform L1":
            continue
        assert not may(acting(role), "manage_admins", PATHS[unit_id], target_level=level), role
        assert not may(acting(role), "manage_admins", PATHS[unit_id], target_level=level - 1), role


# requester (unit, level), the request's hall -> approvers who may decide; rules G4–G6, G20
APPROVALS = [
    ("s1", 2, "s1", {"platform L1", "district L1"}),
    ("v1", 3, "v1", {"platform L1", "district L1", "street hall L2"}),  # G6: the street hall L2 above
    ("s1", 2, "v1", {"platform L1", "district L1"}),  # a street L2 asking: not its peer
    ("d1", 1, "v1", {"platform L1"}),  # asked from above the street hall: not the street L2
    ("d1-hall", 2, "d1-hall", {"platform L1", "district L1"}),
    ("bureau", 2, "bureau-hall", {"platform L1", "bureau L1"}),  # a higher level of the same unit
    ("bureau-hall", 2, "bureau-hall", {"platform L1", "bureau L1", "city hall L1"}),  # G5
    ("bureau-hall", 1, "bureau-hall", {"platform L1", "bureau L1"}),
    ("platform", 2, "d1-hall", {"platform L1"}),  # rule G4: platform L2 proposals go to platform L1
    ("d1", 1, "s1", {"platform L1"}),
]


@pytest.mark.parametrize(("requester_unit", "requester_level", "hall", "approvers"), APPROVALS)
def test_who_approves(requester_unit: str, requester_level: int, hall: str, approvers: set[str]) -> None:
    requester = Party(id=99, unit_path=PATHS[requester_unit], level=requester_level)
    allowed = {role for role in ROLES if may(acting(role), "approve", PATHS[hall], requester=requester)}
    assert allowed == approvers


def test_the_requester_never_approves() -> None:
    for role, (unit_id, level, *_rest) in ROLES.items():
        me = acting(role, admin_id=7)
        requester = Party(id=7, unit_path=PATHS[unit_id], level=level)
        assert not may(me, "approve", PATHS[unit_id], requester=requester), role


# --- the same table through HTTP ---------------------------------------------------------------


async def tree(api: Api) -> dict[str, dict[str, str]]:
    for unit_id, kind, parent in (
        ("bureau", "city_department", "platform"),
        ("bureau-hall", "city_hall", "bureau"),
        ("d1", "district", "platform"),
        ("d1-hall", "district_hall", "d1"),
        ("s1", "street_hall", "d1"),
        ("v1", "village_hall", "s1"),
        ("d2", "district", "platform"),
        ("d2-hall", "district_hall", "d2"),
    ):
        await unit(api, unit_id, kind, parent)
    return {
        "platform L2": await new_admin(api, "p2", "platform", 2),
        "bureau L1": await new_admin(api, "b1", "bureau", 1),
        "bureau L2": await new_admin(api, "b2", "bureau", 2),
        "district L1": await new_admin(api, "d1-1", "d1", 1),
        "street hall L2": await new_admin(api, "s1-2", "s1", 2),
        "village L3": await new_admin(api, "v1-3", "v1", 3),
    }


async def test_http_admin_accounts_follow_the_table(api: Api) -> None:
    heads = await tree(api)
    body = {"password": "a-strong-password-1", "name": "李四", "title": "科员", "phone": "13900000000"}

    async def make(who: str, unit_id: str, level: int, username: str) -> int:
        headers = api.admin() if who == "platform L1" else heads[who]
        response = await api.client.post(
            "/api/v1/admin/admins",
            json={**body, "username": username, "unit_id": unit_id, "level": level},
            headers=headers,
        )
        return response.status_code

    assert await make("district L1", "s1", 2, "new-s1") == 201  # below
    assert await make("street hall L2", "v1", 3, "new-v1") == 201  # below
    assert await make("bureau L1", "bureau", 2, "new-b2") == 201  # own unit, lower rank
    assert await make("bureau L2", "bureau-hall", 2, "new-bh") == 201
    assert await make("platform L1", "platform", 2, "new-p2") == 201
    for who, unit_id, level in (
        ("platform L2", "d1", 1),  # rule G4: proposes only
        ("district L1", "d2", 1),  # another district
        ("district L1", "d1", 1),  # own rank
        ("street hall L2", "d1-hall", 2),  # a sibling
        ("village L3", "v1", 3),  # own rank
        ("bureau L2", "bureau", 1),  # above
    ):
        assert await make(who, unit_id, level, f"x-{who.replace(' ', '-')}") == 403, (who, unit_id)
    # rule G3 (2-2-3): the level must fit the unit's kind
    problem(
        await api.client.post(
            "/api/v1/admin/admins",
            json={**body, "username": "bad-level", "unit_id": "v1", "level": 2},
            headers=api.admin(),
        ),
        422,
        "validation_error",
    )


async def test_http_calendar_is_platform_l1_only(api: Api) -> None:
    heads = await tree(api)
    for who in heads:
        problem(
            await api.client.put(
                "/api/v1/admin/calendar/2026-12-03",
                json={"working_day": False, "note": "x"},
                headers=heads[who],
            ),
            403,
            "forbidden",
        )
    ok = await api.client.put(
        "/api/v1/admin/calendar/2026-12-03", json={"working_day": False, "note": "x"}, headers=api.admin()
    )
    assert ok.status_code == 200
