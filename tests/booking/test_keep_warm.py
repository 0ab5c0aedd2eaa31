"""Every web process keeps its caches loaded (issue 21, decision 0106): `keep_warm` loads the
booking context (service, hall policy, calendar) of every active service, and again after a
configuration change has cleared it, so that the release's first bookings read none of it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import event

from tests.conftest import Api
from tests.ids import resident_id
from yuyue.booking import tasks
from yuyue.catalogue import service as catalogue

DAY = "2026-12-03"
LOADS = ("capacity_periods", "extra_supply", "FROM policies", "calendar_days", "calendar_years")


async def _open_slot(api: Api, service_id: int) -> dict[str, Any]:
    return next(s for s in await api.slots(service_id, DAY) if s["status"] == "open")


async def _until(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.02)


async def test_a_process_loads_every_active_service_before_its_first_booking(
    api: Api, monkeypatch: Any
) -> None:
    await api.hall()
    services = [await api.service(name=f"业务{i}") for i in range(3)]
    slots = {
        s["id"]: next(x for x in await api.slots(s["id"], DAY) if x["status"] == "open") for s in services
    }
    citizen = await api.login(resident_id(7))
    loaded: list[int] = []
    original = catalogue._info

    def counting(*args: Any) -> Any:
        loaded.append(args[0].id)
        return original(*args)

    monkeypatch.setattr(catalogue, "_info", counting)
    catalogue.clear_caches()  # a process that has served none of them
    warming = asyncio.create_task(tasks.keep_warm(api.app.state.sessionmaker, every_s=0.05))
    try:
        await _until(lambda: sorted(loaded) == sorted(s["id"] for s in services))
        engine = api.app.state.engine.sync_engine
        sent: list[str] = []

        def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            sent.append(statement)

        event.listen(engine, "before_cursor_execute", executed)
        try:
            for service in services:
                booked = await api.book(citizen, slots[service["id"]]["id"])
                assert booked.status_code == 201, booked.text
        finally:
            event.remove(engine, "before_cursor_execute", executed)
        assert sorted(loaded) == sorted(s["id"] for s in services), "a booking loaded its service"
        assert [s for s in sent if any(table in s for table in LOADS)] == []

        # A change clears the caches: the next turn loads them again, with no request asking.
        edited = await api.client.patch(
            f"/api/v1/admin/services/{services[0]['id']}", json={"name": "换证（改）"}, headers=api.admin()
        )
        assert edited.status_code == 200, edited.text
        before = len(loaded)
        await _until(lambda: len(loaded) >= before + len(services))
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


async def test_a_failed_turn_is_logged_and_the_next_one_loads(api: Api, monkeypatch: Any) -> None:
    await api.hall()
    await api.service()
    real = tasks.active_contexts
    turns: list[int] = []

    async def flaky(session: Any) -> Any:
        turns.append(1)
        if len(turns) == 1:
            raise ConnectionError("the database is away")
        return await real(session)

    monkeypatch.setattr(tasks, "active_contexts", flaky)
    warnings: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.log, "warning", lambda event, **kw: warnings.append({"event": event, **kw}))
    warming = asyncio.create_task(tasks.keep_warm(api.app.state.sessionmaker, every_s=0.05))
    try:
        await _until(lambda: len(turns) >= 3)
        assert not warming.done()
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)
    assert warnings[0]["event"] == "keep_warm_failed" and "away" in warnings[0]["error"]
    assert len(warnings) == 1
