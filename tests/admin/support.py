"""Helpers shared by the supply-and-oversight tests (admin, waitlist, stats)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import Api
from tests.ids import resident_id
from yuyue.admin.accounts import create_admin

HALL_FIELDS = {
    "address": "广州市天河区测试路1号",
    "hotline": "020-12345",
    "mode": "appointment_priority",
    "hours": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
}
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/problem+json"), where
    body = dict(response.json())
    assert PROBLEM_KEYS <= set(body) and body["code"] == code, (where, body)
    return body


async def unit(api: Api, unit_id: str, kind: str, parent: str) -> dict[str, Any]:
    body: dict[str, Any] = {"id": unit_id, "name": f"单位 {unit_id}", "kind": kind, "parent_id": parent}
    if kind.endswith("_hall"):
        body.update(HALL_FIELDS)
    response = await api.client.post("/api/v1/admin/units", json=body, headers=api.admin())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def new_admin(api: Api, username: str, unit_id: str, level: int) -> dict[str, str]:
    """An admin made the way the CLI makes one, logged in over HTTP; returns auth headers."""
    password = f"{username}-password-2026"
    async with api.app.state.sessionmaker() as session:
        await create_admin(
            session,
            username=username,
            password=password,
            name="测试管理员",
            title=f"{unit_id} L{level}",
            phone="13800000001",
            unit_id=unit_id,
            level=level,
        )
        await session.commit()
    response = await api.client.post("/api/v1/admin/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return api.admin(response.json()["token"])


async def execute(api: Api, sql: str, **params: Any) -> None:
    """Write to the database directly (set up states the HTTP contract reaches by other work)."""
    async with api.app.state.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def fill_day(api: Api, service_id: int, day: str, first: int = 500) -> list[tuple[dict[str, str], str]]:
    """Book every open seat of a day, one citizen per seat; returns (headers, number) pairs."""
    made = []
    n = first
    for slot in await api.slots(service_id, day):
        for _ in range(slot["remaining"]):
            citizen = await api.login(resident_id(n, birth="19750101"))
            n += 1
            response = await api.book(citizen, slot["id"])
            assert response.status_code == 201, response.text
            made.append((citizen, response.json()["number"]))
    return made
