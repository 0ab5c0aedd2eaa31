"""AnswerCache (decision 0013): a published availability answer is sent again from memory, without
routing, while it is fresh. It must be byte for byte the routed answer, go stale at once after a
seat, catalogue or clock change in the process, and still count against the rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.middleware import Middleware

from tests.conftest import ADMIN_PASSWORD, START, Api, harness_for
from tests.ids import resident_id
from yuyue.admin.accounts import create_admin
from yuyue.app import create_app
from yuyue.booking import api as booking_api
from yuyue.catalogue.service import clear_caches
from yuyue.config import Settings
from yuyue.ops.middleware import AnswerCache


def with_answer_cache(app: Any) -> Any:
    """The app with AnswerCache innermost (after the rate limits), whether app.py adds it yet or not."""
    if not any(m.cls is AnswerCache for m in app.user_middleware):
        app.user_middleware.append(Middleware(AnswerCache))
    return app


async def start(settings: Settings) -> AsyncIterator[Api]:
    clear_caches()
    app = with_answer_cache(create_app(settings, run_jobs=False))
    async with harness_for(app) as harness:
        yield harness
    clear_caches()


@pytest.fixture
async def cached(settings: Settings) -> AsyncIterator[Api]:
    async for harness in start(settings):
        yield harness


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the availability answers that went through the route."""
    calls: list[int] = []
    original = booking_api.availability_json

    async def counting(*args: Any) -> Any:
        calls.append(1)
        return await original(*args)

    monkeypatch.setattr(booking_api, "availability_json", counting)
    return calls


async def read(api: Api, service_id: int, query: str = "") -> httpx.Response:
    response = await api.client.get(f"/api/v1/services/{service_id}/availability{query}")
    assert response.status_code == 200, response.text
    return response


def remaining(response: httpx.Response, slot_id: str) -> int:
    return next(s["remaining"] for d in response.json()["days"] for s in d["slots"] if s["id"] == slot_id)


async def test_repeated_answer_is_the_routed_answer(cached: Api, routed: list[int]) -> None:
    await cached.hall()
    service = await cached.service()
    first = await read(cached, service["id"])
    again = await read(cached, service["id"])
    assert len(routed) == 1  # the second came from memory
    assert again.content == first.content
    assert {k: v for k, v in again.headers.items() if k != "date"} == {
        k: v for k, v in first.headers.items() if k != "date"
    }
    assert again.headers["content-type"] == "application/json" and "content-security-policy" in again.headers
    await read(cached, service["id"], "?from=2026-12-03&to=2026-12-03")  # another query: routed
    assert len(routed) == 2


async def test_a_seat_taken_here_is_gone_at_once(cached: Api, routed: list[int]) -> None:
    await cached.hall()
    service = await cached.service()
    before = await read(cached, service["id"])
    slot = next(s for d in before.json()["days"] for s in d["slots"] if s["status"] == "open")
    citizen = await cached.login(resident_id(1))
    assert (await cached.book(citizen, slot["id"])).status_code == 201
    after = await read(cached, service["id"])
    assert remaining(after, slot["id"]) == slot["remaining"] - 1
    assert len(routed) == 2


async def test_a_catalogue_write_here_shows_at_once(cached: Api, routed: list[int]) -> None:
    await cached.hall()
    service = await cached.service(daily_capacity=70)
    before = await read(cached, service["id"])
    async with cached.app.state.sessionmaker() as session:  # rule G20: another L1 approves
        await create_admin(
            session,
            username="approver",
            password=ADMIN_PASSWORD,
            name="平台管理员",
            title="平台一级管理员",
            phone="13800000002",
            unit_id="platform",
            level=1,
        )
        await session.commit()
    login = await cached.client.post(
        "/api/v1/admin/login", json={"username": "approver", "password": ADMIN_PASSWORD}
    )
    body = {"service_id": service["id"], "date_from": "2026-12-03", "date_to": None, "daily_capacity": 140}
    asked = await cached.client.post(
        "/api/v1/admin/capacity-requests", json={**body, "reason": "5+X"}, headers=cached.admin()
    )
    changed = await cached.client.post(
        f"/api/v1/admin/capacity-requests/{asked.json()['id']}/approve",
        headers=cached.admin(login.json()["token"]),
    )
    assert changed.status_code == 200, changed.text
    after = await read(cached, service["id"])
    assert len(routed) == 2 and after.content != before.content


async def test_a_clock_move_shows_at_once(cached: Api, routed: list[int]) -> None:
    await cached.hall()
    service = await cached.service()
    before = await read(cached, service["id"])
    await cached.set_clock(START + timedelta(hours=8))  # 18:00: one more day opens (rule G10)
    after = await read(cached, service["id"])
    assert len(routed) == 2 and after.content != before.content


async def test_answers_from_memory_count_against_the_rate_limit(database_url: str) -> None:
    settings = Settings(
        env="test", database_url=database_url, log_level="WARNING", rate_limit_address="6/minute"
    )
    async for api in start(settings):
        await api.hall()  # admin calls count too: 1 login, 1 hall, 1 service
        service = await api.service()
        codes = [
            (await api.client.get(f"/api/v1/services/{service['id']}/availability")).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
