"""Every web process keeps its caches service_loads (issue 21, decision 0106): `keep_warm` loads the
booking context (service, hall policy, calendar) of every active service, and again after a
configuration change has cleared it, so that the release's first bookings read none of it."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
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
    api: Api, service_loads: list[int]
) -> None:
    await api.hall()
    services = [await api.service(name=f"业务{i}") for i in range(3)]
    slots = {s["id"]: await _open_slot(api, s["id"]) for s in services}
    citizen = await api.login(resident_id(7))
    catalogue.clear_caches()  # a process that has served none of them
    service_loads.clear()
    warming = asyncio.create_task(tasks.keep_warm(api.app.state.sessionmaker, every_s=0.05))
    try:
        await _until(lambda: sorted(service_loads) == sorted(s["id"] for s in services))
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
        if engine.dialect.name == "postgresql":  # SQLite's entries expire after the TTL whoever
            # reads them (no version row, decision 0103): a booking may come as one expires.
            loads = sorted(service_loads)
            assert loads == sorted(s["id"] for s in services), "a booking loaded its service"
            assert [s for s in sent if any(table in s for table in LOADS)] == []

        # A change clears the caches: the next turn loads them again, with no request asking.
        edited = await api.client.patch(
            f"/api/v1/admin/services/{services[0]['id']}", json={"name": "换证（改）"}, headers=api.admin()
        )
        assert edited.status_code == 200, edited.text
        before = len(service_loads)
        await _until(lambda: len(service_loads) >= before + len(services))
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


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_serve_worker_keeps_every_service_service_loads_with_no_request_asking(
    api: Api, database_url: str
) -> None:
    """The wiring: a worker of `yuyue serve` on PostgreSQL runs `keep_warm` by itself, and a
    service another process adds is in its caches within a turn and the TTL."""
    await api.hall()
    for i in range(2):
        await api.service(name=f"业务{i}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **os.environ,
        "YUYUE_ENV": "test",
        "YUYUE_DATABASE_URL": database_url,
        "YUYUE_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "yuyue", "serve", "--port", str(port), "--workers", "1", "--no-jobs"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            async def figures() -> tuple[float, float]:
                """The worker's `yuyue_keep_warm_services` and its successful turns (0 before)."""
                try:
                    text = (await client.get("/metrics")).text
                except httpx.TransportError:
                    return -1.0, 0.0
                services = re.search(r"^yuyue_keep_warm_services (\S+)$", text, re.M)
                turns = re.search(r'^yuyue_keep_warm_turns_total\{outcome="ok"\} (\S+)$', text, re.M)
                return (float(services[1]) if services else -1.0), (float(turns[1]) if turns else 0.0)

            async def reaches(count: float) -> None:
                deadline = time.monotonic() + 90  # a worker importing on a service_loads 2-core machine
                while (await figures())[0] != count:
                    assert time.monotonic() < deadline, f"the worker never held {count} services"
                    await asyncio.sleep(0.2)

            await reaches(2)
            await api.service(name="业务2")  # written by this process: the worker's caches are not told
            await reaches(3)
            assert (await figures())[1] >= 2
    finally:
        server.terminate()
        server.wait(timeout=20)
