"""Admin accounts (rules G3, G7): registration, retire, logout, session expiry, lockout, audit."""

from __future__ import annotations

from datetime import datetime

import pytest
from argon2 import PasswordHasher

from tests.admin.support import execute, new_admin, problem, unit
from tests.conftest import ADMIN_PASSWORD, Api, raw
from yuyue.config import Settings

LONG_AGO = datetime(2000, 1, 1)
BODY = {"name": "王五", "title": "窗口主管", "phone": "13912345678", "password": "a-strong-password-1"}


async def test_register_retire_and_never_reuse(api: Api) -> None:
    await unit(api, "d1", "district", "platform")
    created = await api.client.post(
        "/api/v1/admin/admins",
        json={**BODY, "username": "wang", "unit_id": "d1", "level": 1},
        headers=api.admin(),
    )
    assert created.status_code == 201, created.text
    admin = created.json()
    assert admin["phone"] == "139****5678" and admin["active"] is True and "password" not in created.text
    login = await api.client.post(
        "/api/v1/admin/login", json={"username": "wang", "password": BODY["password"]}
    )
    assert login.status_code == 200
    token = {"Authorization": f"Bearer {login.json()['token']}"}
    assert (await api.client.get("/api/v1/admin/units/d1", headers=token)).status_code == 200

    for bad, code in (
        ({"password": "short1"}, "validation_error"),
        ({"password": "onlyletterslong"}, "validation_error"),
        ({"phone": "12345"}, "validation_error"),
        ({"name": ""}, "validation_error"),
    ):
        body = {**BODY, "username": "bad", "unit_id": "d1", "level": 1, **bad}
        problem(await api.client.post("/api/v1/admin/admins", json=body, headers=api.admin()), 422, code)

    # rule G7: a replacement gets a new account; the old one is closed and its name never reused
    retired = await api.client.post(f"/api/v1/admin/admins/{admin['id']}/retire", headers=api.admin())
    assert retired.status_code == 200 and retired.json()["active"] is False and retired.json()["retired_at"]
    problem(await api.client.get("/api/v1/admin/units/d1", headers=token), 401, "unauthenticated")
    problem(
        await api.client.post("/api/v1/admin/login", json={"username": "wang", "password": BODY["password"]}),
        401,
        "unauthenticated",
    )
    again = {**BODY, "username": "wang", "unit_id": "d1", "level": 1}
    problem(await api.client.post("/api/v1/admin/admins", json=again, headers=api.admin()), 409, "conflict")
    replacement = await api.client.post(
        "/api/v1/admin/admins", json={**again, "username": "wang-2"}, headers=api.admin()
    )
    assert replacement.status_code == 201 and replacement.json()["id"] != admin["id"]
    problem(
        await api.client.post(f"/api/v1/admin/admins/{admin['id']}/retire", headers=api.admin()),
        422,
        "already_retired",
    )
    listed = (await api.client.get("/api/v1/admin/admins", headers=api.admin())).json()
    assert [a["username"] for a in listed] == ["root", "wang", "wang-2"]

    audit = (await api.client.get("/api/v1/admin/audit", headers=api.admin())).json()
    actions = [(e["action"], e["target"], e["admin"]) for e in audit]
    assert actions[:3] == [
        ("admin.create", str(replacement.json()["id"]), "root"),
        ("admin.retire", str(admin["id"]), "root"),
        ("admin.create", str(admin["id"]), "root"),
    ]
    retire_entry = next(e for e in audit if e["action"] == "admin.retire")
    assert retire_entry["before"]["active"] is True and retire_entry["after"]["active"] is False


async def test_logout_and_session_expiry(api: Api) -> None:
    headers = await new_admin(api, "p2", "platform", 2)
    assert (await api.client.get("/api/v1/admin/alerts", headers=headers)).status_code == 200
    assert (await api.client.post("/api/v1/admin/logout", headers=headers)).status_code == 204
    problem(await api.client.get("/api/v1/admin/alerts", headers=headers), 401, "unauthenticated")

    other = await new_admin(api, "p2b", "platform", 2)
    assert (await api.client.get("/api/v1/admin/alerts", headers=other)).status_code == 200
    # a session ends at its expiry (real time, docs/api.md "Test clock"), whatever the token says
    await execute(
        api,
        "UPDATE admin_sessions SET expires_at = :t "
        "WHERE admin_id = (SELECT id FROM admins WHERE username = 'p2b')",
        t=LONG_AGO,
    )
    problem(await api.client.get("/api/v1/admin/alerts", headers=other), 401, "unauthenticated")
    # the root session is untouched
    assert (await api.client.get("/api/v1/admin/alerts", headers=api.admin())).status_code == 200


async def test_lockout_after_repeated_failures(api: Api) -> None:
    wrong = {"username": "root", "password": "wrong-password-2026"}
    for _ in range(5):
        problem(await api.client.post("/api/v1/admin/login", json=wrong), 401, "unauthenticated")
    # the username is locked: even the right password is refused for now
    locked = problem(
        await api.client.post("/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD}),
        429,
        "rate_limited",
    )
    assert locked["retry_after_s"] > 0
    rows = await raw(api, "SELECT failures, locked_until FROM admin_lockouts")
    assert rows[0].failures == 5 and rows[0].locked_until is not None
    # the lock ends after its time (moved back here); a good login then clears the count
    await execute(api, "UPDATE admin_lockouts SET locked_until = :t, window_start = :t", t=LONG_AGO)
    ok = await api.client.post("/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD})
    assert ok.status_code == 200
    assert await raw(api, "SELECT * FROM admin_lockouts") == []
    # four failures then a success do not lock
    for _ in range(4):
        await api.client.post("/api/v1/admin/login", json=wrong)
    assert (
        await api.client.post("/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD})
    ).status_code == 200


async def test_audit_is_scoped_to_the_subtree(api: Api) -> None:
    await unit(api, "d1", "district", "platform")
    await unit(api, "d2", "district", "platform")
    district = await new_admin(api, "d1-admin", "d1", 1)
    await unit(api, "d2-hall", "district_hall", "d2")
    created = await api.client.post(
        "/api/v1/admin/units",
        json={
            "id": "s1",
            "name": "街道",
            "kind": "street_hall",
            "parent_id": "d1",
            "address": "a",
            "hotline": "020-1",
            "mode": "appointment_priority",
            "hours": [{"start": "09:00", "end": "12:00"}],
        },
        headers=district,
    )
    assert created.status_code == 201
    mine = (await api.client.get("/api/v1/admin/audit", headers=district)).json()
    assert [(e["action"], e["target"], e["unit_id"]) for e in mine] == [
        ("unit.create", "s1", "s1"),
        ("unit.create", "d1", "d1"),  # root made the district itself: inside it, so visible
    ]
    assert mine[0]["after"]["id"] == "s1" and mine[0]["before"] is None
    problem(await api.client.get("/api/v1/admin/audit?unit_id=d2", headers=district), 403, "forbidden")
    everything = (await api.client.get("/api/v1/admin/audit", headers=api.admin())).json()
    assert {e["target"] for e in everything} >= {"d1", "d2", "d2-hall", "s1"}
    dated = await api.client.get("/api/v1/admin/audit?from=2026-12-02", headers=api.admin())
    assert dated.json() == []


def test_argon2_profiles_production_keeps_the_standard_cost() -> None:
    """Production hashes at argon2-cffi's own default cost (RFC 9106 low memory); only a test
    environment uses the minimal profile, and production refuses it."""
    secret = "s" * 40
    default = PasswordHasher()
    standard = (default.time_cost, default.memory_cost, default.parallelism)
    assert (
        Settings(
            env="production", secret_key=secret, metrics_public=True, allow_console_sms_in_production=True
        ).argon2_parameters
        == standard
    )
    assert Settings(env="development").argon2_parameters == standard
    assert Settings(env="test").argon2_parameters == (1, 8, 1)
    assert Settings(env="test", argon2_profile="standard").argon2_parameters == standard
    with pytest.raises(ValueError, match="ARGON2_PROFILE"):
        Settings(
            env="production",
            secret_key=secret,
            metrics_public=True,
            allow_console_sms_in_production=True,
            argon2_profile="minimal",
        )


async def test_a_hash_of_either_profile_logs_in(api: Api) -> None:
    """The test app hashes at the minimal cost; a hash made at production cost (one database moved
    from a production install) still logs in, since a hash carries its own parameters."""
    (made,) = await raw(api, "SELECT password_hash FROM admins WHERE username = 'root'")
    assert made.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    await execute(
        api,
        "UPDATE admins SET password_hash = :h WHERE username = 'root'",
        h=PasswordHasher().hash("prod-2026!"),
    )
    wrong = await api.client.post(
        "/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD}
    )
    problem(wrong, 401, "unauthenticated")
    right = await api.client.post("/api/v1/admin/login", json={"username": "root", "password": "prod-2026!"})
    assert right.status_code == 200, right.text
