"""Clerk accounts over their life (issue 5 item 8; rule G7 in spirit: an account is closed, never
reused): list, retire (tokens stop at once), password reset by an admin (older tokens stop), all
audited and scoped to the admin's subtree. Through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import httpx

from tests.admin.support import new_admin, problem
from tests.conftest import Api, raw
from tests.console.conftest import console_login
from tests.onsite.conftest import STAFF_PASSWORD, counters, staff

NEW_PASSWORD = "new-counter-pass-2027"


async def _staff_list(
    api: Api, hall_id: str = "hall-a", headers: dict[str, str] | None = None
) -> httpx.Response:
    return await api.client.get(f"/api/v1/admin/halls/{hall_id}/staff", headers=headers or api.admin())


async def _retire(
    api: Api, staff_id: int, headers: dict[str, str] | None = None, reason: str | None = None
) -> httpx.Response:
    body = {"reason": reason} if reason else None
    return await api.client.post(
        f"/api/v1/admin/staff/{staff_id}/retire", json=body, headers=headers or api.admin()
    )


async def _reset(
    api: Api, staff_id: int, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await api.client.post(
        f"/api/v1/admin/staff/{staff_id}/password",
        json={"password": password},
        headers=headers or api.admin(),
    )


async def _login(api: Api, username: str, password: str) -> httpx.Response:
    return await api.client.post("/api/v1/staff/login", json={"username": username, "password": password})


async def _audit(api: Api) -> list[dict[str, object]]:
    answer = await api.client.get("/api/v1/admin/audit", headers=api.admin())
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def test_list_then_retire_closes_the_account_for_good(api: Api) -> None:
    await api.hall()
    clerk = await staff(api, username="clerk-wang")
    other = await staff(api, username="clerk-li")
    listed = await _staff_list(api)
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert [(r["username"], r["active"], r["retired_at"]) for r in rows] == [
        ("clerk-wang", True, None),
        ("clerk-li", True, None),
    ]
    assert set(rows[0]) == {
        "id",
        "username",
        "name",
        "hall_id",
        "counter_id",
        "active",
        "created_at",
        "retired_at",
    }
    assert await counters(api, clerk)  # the token works before
    wang = rows[0]["id"]

    retired = await _retire(api, wang, reason="调岗")
    assert retired.status_code == 200, retired.text
    assert retired.json()["active"] is False and retired.json()["retired_at"].startswith("2026-12-01T10:00")
    # its tokens stop at once; it cannot log in again; the other clerk is untouched
    gone = await api.client.get("/api/v1/halls/hall-a/counters", headers=clerk)
    problem(gone, 401, "unauthenticated")
    problem(await _login(api, "clerk-wang", STAFF_PASSWORD), 401, "unauthenticated")
    assert await counters(api, other)
    # closed for good: a second retire, a password reset, and the username are all refused
    problem(await _retire(api, wang), 422, "already_retired")
    problem(await _reset(api, wang, NEW_PASSWORD), 422, "already_retired")
    reused = await api.client.post(
        "/api/v1/admin/halls/hall-a/staff",
        json={"username": "clerk-wang", "password": STAFF_PASSWORD, "name": "新王"},
        headers=api.admin(),
    )
    problem(reused, 409, "conflict")
    assert [r["active"] for r in (await _staff_list(api)).json()] == [False, True]  # still listed

    entries = [e for e in await _audit(api) if e["action"] == "staff.retire"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["admin"] == "root" and entry["target"] == f"staff:{wang}" and entry["unit_id"] == "hall-a"
    assert entry["before"]["active"] is True  # type: ignore[index]
    assert entry["after"]["active"] is False and entry["after"]["reason"] == "调岗"  # type: ignore[index]


async def test_a_retired_clerk_leaves_the_console_at_once(api: Api) -> None:
    await api.hall()
    await staff(api, username="clerk-zhao")
    assert (await console_login(api, "clerk-zhao", STAFF_PASSWORD, role="staff")).status_code == 303
    assert (await api.client.get("/admin/halls/hall-a/desk")).status_code == 200
    staff_id = (await _staff_list(api)).json()[0]["id"]
    assert (await _retire(api, staff_id)).status_code == 200
    page = await api.client.get("/admin/halls/hall-a/desk")
    assert page.status_code == 303 and page.headers["location"].startswith("/admin/login")


async def test_password_reset_ends_older_tokens(api: Api) -> None:
    await api.hall()
    old = await staff(api, username="clerk-chen")
    staff_id = (await _staff_list(api)).json()[0]["id"]

    weak = await _reset(api, staff_id, "short1")
    problem(weak, 422, "validation_error")
    problem(await _reset(api, staff_id, "onlyletterslong"), 422, "validation_error")
    assert await counters(api, old)  # a refused reset changes nothing

    done = await _reset(api, staff_id, NEW_PASSWORD)
    assert done.status_code == 200, done.text
    assert done.json()["active"] is True and done.json()["username"] == "clerk-chen"
    problem(await api.client.get("/api/v1/halls/hall-a/counters", headers=old), 401, "unauthenticated")
    problem(await _login(api, "clerk-chen", STAFF_PASSWORD), 401, "unauthenticated")
    fresh = await _login(api, "clerk-chen", NEW_PASSWORD)
    assert fresh.status_code == 200, fresh.text
    assert await counters(api, {"Authorization": f"Bearer {fresh.json()['token']}"})

    # a second reset ends the token of the first one too
    assert (await _reset(api, staff_id, NEW_PASSWORD + "x")).status_code == 200
    again = await api.client.get(
        "/api/v1/halls/hall-a/counters", headers={"Authorization": f"Bearer {fresh.json()['token']}"}
    )
    problem(again, 401, "unauthenticated")

    entries = [e for e in await _audit(api) if e["action"] == "staff.password"]
    assert len(entries) == 2 and all(e["target"] == f"staff:{staff_id}" for e in entries)
    stored = json.dumps(await raw(api, "SELECT before, after FROM audit_log"), default=str)
    assert NEW_PASSWORD not in stored and "argon2" not in stored  # never the password or its hash


async def test_scope_unknown_and_who_may(api: Api) -> None:
    await api.hall()
    district = await api.client.post(
        "/api/v1/admin/units",
        json={"id": "tianhe", "name": "天河区", "kind": "district", "parent_id": "platform"},
        headers=api.admin(),
    )
    assert district.status_code == 201, district.text
    await api.hall("th-hall", parent="tianhe", kind="district_hall")
    clerk = await staff(api, username="clerk-a")
    await staff(api, "th-hall", username="clerk-th")
    platform_id = (await _staff_list(api)).json()[0]["id"]
    tianhe_id = (await _staff_list(api, "th-hall")).json()[0]["id"]
    tianhe = await new_admin(api, "tianhe-l1", "tianhe", 1)
    overseer = await new_admin(api, "platform-l2", "platform", 2)

    # outside the subtree: 403; unknown: 404
    problem(await _staff_list(api, "hall-a", tianhe), 403, "forbidden")
    problem(await _retire(api, platform_id, tianhe), 403, "forbidden")
    problem(await _reset(api, platform_id, NEW_PASSWORD, tianhe), 403, "forbidden")
    problem(await _staff_list(api, "nope"), 404, "not_found")
    problem(await _staff_list(api, "tianhe"), 404, "not_found")  # a district is not a hall
    problem(await _retire(api, 999_999), 404, "not_found")
    problem(await _reset(api, 999_999, NEW_PASSWORD), 404, "not_found")
    # platform L2 oversees (lists) but never acts (rule G4)
    assert (await _staff_list(api, "th-hall", overseer)).status_code == 200
    problem(await _retire(api, tianhe_id, overseer), 403, "forbidden")
    problem(await _reset(api, tianhe_id, NEW_PASSWORD, overseer), 403, "forbidden")
    # a clerk's token is not an admin's; nobody's is not enough
    problem(await _staff_list(api, "hall-a", clerk), 401, "unauthenticated")
    problem(await api.client.post(f"/api/v1/admin/staff/{platform_id}/retire"), 401, "unauthenticated")
    # bad bodies
    problem(
        await api.client.post(
            f"/api/v1/admin/staff/{tianhe_id}/password",
            json={"password": NEW_PASSWORD, "x": 1},
            headers=tianhe,
        ),
        422,
        "validation_error",
    )
    problem(
        await api.client.post(f"/api/v1/admin/staff/{tianhe_id}/password", json={}, headers=tianhe),
        422,
        "validation_error",
    )
    assert (
        await raw(
            api, "SELECT count(*) FROM audit_log WHERE action LIKE 'staff.%' AND action <> 'staff.create'"
        )
    )[0][0] == 0

    # inside the subtree the district admin may act
    assert (await _reset(api, tianhe_id, NEW_PASSWORD, tianhe)).status_code == 200
    assert (await _retire(api, tianhe_id, tianhe)).json()["active"] is False
    rows = await raw(api, "SELECT active FROM staff_accounts ORDER BY id")
    assert [bool(r[0]) for r in rows] == [True, False]
