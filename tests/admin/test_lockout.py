"""Lockouts on the password doors (issue 19): per username *and* address with a growing delay, so
a stranger guessing from elsewhere never locks the owner out; admins and clerks alike; lifted by a
superior (audited); clerks' passwords under the admins' rule, common passwords refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import httpx

from tests.admin.support import execute, new_admin, problem, unit
from tests.conftest import ADMIN_PASSWORD, Api, raw
from tests.onsite.conftest import STAFF_PASSWORD

LONG_AGO = datetime(2000, 1, 1)
WRONG = "wrong-password-2026"


@asynccontextmanager
async def from_address(api: Api, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """Another computer: the same app seen from `address`."""
    transport = httpx.ASGITransport(app=api.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def admin_login(username: str, password: str) -> Callable[[httpx.AsyncClient], object]:
    return lambda c: c.post("/api/v1/admin/login", json={"username": username, "password": password})


async def test_a_stranger_cannot_lock_the_owner_out(api: Api) -> None:
    async with from_address(api, "203.0.113.7") as stranger, from_address(api, "198.51.100.2") as owner:
        for _ in range(5):
            wrong = await stranger.post("/api/v1/admin/login", json={"username": "root", "password": WRONG})
            problem(wrong, 401, "unauthenticated")
        # the stranger's address now waits, even with the right password
        locked = await stranger.post(
            "/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD}
        )
        assert problem(locked, 429, "rate_limited")["retry_after_s"] > 0
        assert locked.headers["retry-after"]
        # the owner, at their own desk, is not locked out
        ok = await owner.post("/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD})
        assert ok.status_code == 200, ok.text


async def test_the_delay_grows_with_each_failure(api: Api) -> None:
    async with from_address(api, "203.0.113.8") as attacker:
        delays = []
        for _ in range(4):
            await attacker.post("/api/v1/admin/login", json={"username": "root", "password": WRONG})
        for _ in range(3):
            await attacker.post("/api/v1/admin/login", json={"username": "root", "password": WRONG})
            locked = await attacker.post("/api/v1/admin/login", json={"username": "root", "password": WRONG})
            delays.append(problem(locked, 429, "rate_limited")["retry_after_s"])
            # the wait is over (moved back here); the window of failures is not
            await execute(api, "UPDATE admin_lockouts SET locked_until = :t", t=LONG_AGO)
        assert 55 <= delays[0] <= 61 and 115 <= delays[1] <= 121 and 235 <= delays[2] <= 241, delays


async def test_a_superior_unlocks_an_admin_audited(api: Api) -> None:
    await unit(api, "district-x", "district", "platform")
    headers = await new_admin(api, "district-boss", "district-x", 2)
    async with from_address(api, "203.0.113.9") as desk:
        for _ in range(5):
            await desk.post("/api/v1/admin/login", json={"username": "district-boss", "password": WRONG})
        locked = await desk.post("/api/v1/admin/login", json={"username": "district-boss", "password": WRONG})
        problem(locked, 429, "rate_limited")
        me = (await api.client.get("/api/v1/admin/admins", headers=headers)).json()
        boss = next(a for a in me if a["username"] == "district-boss")
        # the admin cannot lift their own lock; their superior can
        problem(
            await api.client.post(f"/api/v1/admin/admins/{boss['id']}/unlock", headers=headers),
            403,
            "forbidden",
        )
        unlocked = await api.client.post(f"/api/v1/admin/admins/{boss['id']}/unlock", headers=api.admin())
        assert unlocked.status_code == 200 and unlocked.json()["unlocked"] == 1, unlocked.text
        problem(
            await api.client.post("/api/v1/admin/admins/999999/unlock", headers=api.admin()), 404, "not_found"
        )
        again = await desk.post("/api/v1/admin/login", json={"username": "district-boss", "password": WRONG})
        problem(again, 401, "unauthenticated")
    audit = await raw(api, "SELECT action, target FROM audit_log WHERE action = 'admin.unlock'")
    assert [tuple(r) for r in audit] == [("admin.unlock", f"admin:{boss['id']}")]


async def test_staff_lockout_and_unlock(api: Api) -> None:
    await api.hall()
    made = await api.client.post(
        "/api/v1/admin/halls/hall-a/staff",
        json={"username": "clerk-lock", "password": STAFF_PASSWORD, "name": "王窗口"},
        headers=api.admin(),
    )
    assert made.status_code == 201, made.text
    async with from_address(api, "203.0.113.10") as desk, from_address(api, "198.51.100.3") as other:
        for _ in range(5):
            wrong = await desk.post("/api/v1/staff/login", json={"username": "clerk-lock", "password": WRONG})
            problem(wrong, 401, "unauthenticated")
        right = {"username": "clerk-lock", "password": STAFF_PASSWORD}
        problem(await desk.post("/api/v1/staff/login", json=right), 429, "rate_limited")
        assert (await other.post("/api/v1/staff/login", json=right)).status_code == 200
        unlocked = await api.client.post(
            f"/api/v1/admin/staff/{made.json()['id']}/unlock", headers=api.admin()
        )
        assert unlocked.status_code == 200 and unlocked.json()["unlocked"] == 1
        assert (await desk.post("/api/v1/staff/login", json=right)).status_code == 200
    assert await raw(api, "SELECT count(*) FROM audit_log WHERE action = 'staff.unlock'") == [(1,)]


async def test_weak_passwords_refused_for_staff_and_admins(api: Api) -> None:
    await api.hall()
    for weak in ("password1234", "Password1234!", "qwerty123456", "1234qwerty5678", "aaaa1111aaaa"):
        staff = await api.client.post(
            "/api/v1/admin/halls/hall-a/staff",
            json={"username": "clerk-weak", "password": weak, "name": "王窗口"},
            headers=api.admin(),
        )
        problem(staff, 422, "validation_error")
        admin = await api.client.post(
            "/api/v1/admin/admins",
            json={
                "username": "weak-admin",
                "password": weak,
                "name": "张管理",
                "title": "科员",
                "phone": "13800000001",
                "unit_id": "platform",
                "level": 2,
            },
            headers=api.admin(),
        )
        problem(admin, 422, "validation_error")
    assert await raw(api, "SELECT count(*) FROM staff_accounts") == [(0,)]
