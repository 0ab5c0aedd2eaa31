"""Helpers of the on-site tests: a hall with services, staff, kiosk and booking steps."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Api
from tests.ids import resident_id

STAFF_PASSWORD = "counter-clerk-2026"


async def staff(
    api: Api, hall_id: str = "hall-a", username: str | None = None, counter_id: int | None = None
) -> dict[str, str]:
    """A staff account of the hall, logged in: its Authorization header."""
    name = username or f"clerk-{hall_id}-{counter_id or 0}"
    made = await api.client.post(
        f"/api/v1/admin/halls/{hall_id}/staff",
        json={"username": name, "password": STAFF_PASSWORD, "name": "王窗口", "counter_id": counter_id},
        headers=api.admin(),
    )
    assert made.status_code == 201, made.text
    login = await api.client.post("/api/v1/staff/login", json={"username": name, "password": STAFF_PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['token']}"}


async def kiosk(api: Api, hall_id: str = "hall-a") -> dict[str, str]:
    made = await api.client.post(
        f"/api/v1/admin/halls/{hall_id}/kiosks", json={"name": "1号自助机"}, headers=api.admin()
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


async def book_at(
    api: Api, n: int, service_id: int, start: str, birth: str = "19800101", **extra: Any
) -> dict[str, Any]:
    """Citizen n books the slot of `service_id` starting at `start` (YYYY-MM-DDTHH:MM); with
    `channel="onsite"` a clerk of the service's hall books it at the desk (rule G10: a citizen's own
    token may not book on site)."""
    citizen = await api.login(resident_id(n, birth=birth))
    slot_id = f"{service_id}-{start.replace('-', '').replace('T', '').replace(':', '')}"
    if extra.get("channel") == "onsite":
        extra.pop("channel")
        found = await api.client.get(f"/api/v1/admin/services/{service_id}", headers=api.admin())
        assert found.status_code == 200, found.text
        hall_id = found.json()["hall_id"]
        clerk = await staff(api, hall_id, username=f"desk-{hall_id}-{n}-{start[-5:].replace(':', '')}")
        body = {"slot_id": slot_id, "name": "张三", "id_number": resident_id(n, birth=birth), **extra}
        answer = await api.client.post(
            f"/api/v1/halls/{hall_id}/bookings", json={"phone": "13800138000", **body}, headers=clerk
        )
    else:
        answer = await api.book(citizen, slot_id, **extra)
    assert answer.status_code == 201, answer.text
    return {"headers": citizen, "booking": answer.json(), "id_number": resident_id(n, birth=birth)}


async def checkin(
    api: Api, headers: dict[str, str], id_number: str, hall_id: str = "hall-a"
) -> httpx.Response:
    return await api.client.post(
        f"/api/v1/halls/{hall_id}/checkin",
        json={"id_type": "resident_id", "id_number": id_number},
        headers=headers,
    )


async def walk_in(
    api: Api,
    headers: dict[str, str],
    service_id: int,
    id_number: str,
    green: str | None = None,
    hall_id: str = "hall-a",
) -> httpx.Response:
    return await api.client.post(
        f"/api/v1/halls/{hall_id}/tickets",
        json={"service_id": service_id, "id_type": "resident_id", "id_number": id_number, "green": green},
        headers=headers,
    )


async def counters(api: Api, headers: dict[str, str], hall_id: str = "hall-a") -> list[dict[str, Any]]:
    answer = await api.client.get(f"/api/v1/halls/{hall_id}/counters", headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def call_next(api: Api, headers: dict[str, str], counter_id: int) -> httpx.Response:
    return await api.client.post(f"/api/v1/counters/{counter_id}/call-next", headers=headers)
