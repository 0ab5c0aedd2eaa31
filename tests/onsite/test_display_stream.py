"""The hall display stream: each call reaches every screen, across app processes on PostgreSQL
(LISTEN/NOTIFY), in-process on SQLite; a rolled-back change announces nothing; a closure set or
removed for today reaches the hall's screens at once (issue 18)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from tests.conftest import Api
from tests.ids import resident_id
from tests.onsite.conftest import call_next, counters, staff, walk_in
from yuyue.onsite.stream import CHANNEL, Broker, broker


async def next_event(queue: asyncio.Queue[dict[str, Any]], kind: str) -> dict[str, Any]:
    while True:
        event = await asyncio.wait_for(queue.get(), timeout=10)
        if event["type"] == kind:
            return event


async def test_calls_reach_every_screen_of_the_hall(api: Api) -> None:
    await api.hall(counters=1)
    await api.hall("hall-b")
    service = await api.service()
    clerk = await staff(api)
    url = api.app.state.settings.database_url
    screens = [await broker.subscribe("hall-a", url) for _ in range(3)]
    other = await broker.subscribe("hall-b", url)
    try:
        ticket = (await walk_in(api, clerk, service["id"], resident_id(1))).json()["ticket"]
        for screen in screens:
            assert (await next_event(screen, "change"))["hall_id"] == "hall-a"
        [counter] = await counters(api, clerk)
        assert (await call_next(api, clerk, counter["id"])).status_code == 200
        for screen in screens:
            call = await next_event(screen, "call")
            assert call["call_number"] == ticket["call_number"] and call["counter_id"] == counter["id"]
            assert call["counter"] == "1号窗口"
        await asyncio.sleep(0.2)
        assert other.empty()  # another hall's screen hears nothing
        # a refused action (finishing a waiting ticket) announces nothing
        second = (await walk_in(api, clerk, service["id"], resident_id(2))).json()["ticket"]
        await next_event(screens[0], "change")
        refused = await api.client.post(f"/api/v1/tickets/{second['number']}/finish", headers=clerk)
        assert refused.status_code == 422
        await asyncio.sleep(0.3)
        assert screens[0].empty()
    finally:
        for screen in screens:
            await broker.unsubscribe("hall-a", screen)
        await broker.unsubscribe("hall-b", other)
    assert broker.screens("hall-a") == 0


TODAY = "2026-12-01"  # the tests' clock (tests.conftest.START), a working Tuesday


def closure(hall_id: str, closed: bool, note: str = "") -> dict[str, Any]:
    return {"type": "closure", "hall_id": hall_id, "date": TODAY, "closed": closed, "note": note}


async def test_a_closure_for_today_reaches_the_hall_screens_at_once(api: Api) -> None:
    """Issue 18: a same-day closure (a hall's, or a national override) and its removal reach the
    hall's screens within a second of the admin's answer; another day's closure, or another hall's,
    says nothing to them."""
    await api.hall()
    await api.hall("hall-b")
    url = api.app.state.settings.database_url
    screen = await broker.subscribe("hall-a", url)
    other = await broker.subscribe("hall-b", url)

    async def heard(queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
        return await asyncio.wait_for(queue.get(), timeout=1.0)  # within 1 s of the answer

    try:
        later = await api.client.put(
            "/api/v1/admin/units/hall-a/closures/2026-12-02", json={"note": "检修"}, headers=api.admin()
        )
        assert later.status_code == 200, later.text
        closed = await api.client.put(
            f"/api/v1/admin/units/hall-a/closures/{TODAY}", json={"note": "停电"}, headers=api.admin()
        )
        assert closed.status_code == 200, closed.text
        assert await heard(screen) == closure("hall-a", True, "停电")  # not the 12-02 one before it
        reopened = await api.client.delete(
            f"/api/v1/admin/units/hall-a/closures/{TODAY}", headers=api.admin()
        )
        assert reopened.status_code == 204
        assert await heard(screen) == closure("hall-a", False)
        assert other.empty()  # hall-b's screen heard none of hall-a's closures

        # a national override making today a holiday closes every hall, and undoing it reopens them
        national = await api.client.put(
            f"/api/v1/admin/calendar/{TODAY}",
            json={"working_day": False, "note": "台风停工"},
            headers=api.admin(),
        )
        assert national.status_code == 200, national.text
        assert await heard(screen) == closure("hall-a", True, "台风停工")
        assert await heard(other) == closure("hall-b", True, "台风停工")
        back = await api.client.put(
            f"/api/v1/admin/calendar/{TODAY}", json={"working_day": True}, headers=api.admin()
        )
        assert back.status_code == 200, back.text
        assert await heard(screen) == closure("hall-a", False)
        assert await heard(other) == closure("hall-b", False)

        # a refused closure (not a hall) announces nothing
        refused = await api.client.put(
            f"/api/v1/admin/units/platform/closures/{TODAY}", json={"note": "x"}, headers=api.admin()
        )
        assert refused.status_code == 422
        await asyncio.sleep(0.3)
        assert screen.empty() and other.empty()
    finally:
        await broker.unsubscribe("hall-a", screen)
        await broker.unsubscribe("hall-b", other)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "YUYUE_ENV": "test",
        "YUYUE_DATABASE_URL": database_url,
        "YUYUE_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "yuyue", "serve", "--port", str(port), "--no-jobs"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(f"/tmp/yuyue-sse-{port}.log", "wb"),  # noqa: SIM115
    )


async def _ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 120  # importing the app can take a while on a busy machine
    while True:
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not start"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_sse_across_two_processes(api: Api, database_url: str) -> None:
    """A screen on process A sees a call made through process B (PostgreSQL LISTEN/NOTIFY), and
    today's closure set through process B within a second of the admin's answer (issue 18)."""
    await api.hall(counters=1)
    service = await api.service()
    clerk = await staff(api)
    ticket = (await walk_in(api, clerk, service["id"], resident_id(1))).json()["ticket"]
    [counter] = await counters(api, clerk)
    ports = [_free_port(), _free_port()]
    servers = [_serve(database_url, port) for port in ports]
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30) as screen_side,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[1]}", timeout=30) as counter_side,
        ):
            await asyncio.gather(_ready(screen_side), _ready(counter_side))
            events: list[tuple[str, dict[str, Any]]] = []
            closed_at = 0.0

            async def watch() -> None:
                nonlocal closed_at
                async with screen_side.stream("GET", "/api/v1/halls/hall-a/queue/events") as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    kind = ""
                    async for line in response.aiter_lines():
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: "):
                            events.append((kind, json.loads(line[6:])))
                            if kind == "closure" and events[-1][1]["closed"]:
                                closed_at = time.monotonic()
                                return

            async def until(kind: str, count: int = 1) -> None:
                deadline = time.monotonic() + 10
                while sum(k == kind for k, _ in events) < count:
                    assert time.monotonic() < deadline, events
                    await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch())
            await until("closure")  # the snapshots arrive first: the screen is subscribed
            answer = await counter_side.post(f"/api/v1/counters/{counter['id']}/call-next", headers=clerk)
            assert answer.status_code == 200, answer.text
            await until("call")
            closed = await counter_side.put(
                f"/api/v1/admin/units/hall-a/closures/{TODAY}", json={"note": "停电"}, headers=api.admin()
            )
            answered_at = time.monotonic()
            assert closed.status_code == 200, closed.text
            await asyncio.wait_for(watcher, timeout=15)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=20)
    snapshot = events[0]
    assert snapshot[0] == "queue" and [w["number"] for w in snapshot[1]["waiting"]] == [ticket["number"]]
    assert events[1] == ("closure", {"hall_id": "hall-a", "date": TODAY, "closed": False, "note": ""})
    [call] = [data for kind, data in events if kind == "call"]
    assert call["number"] == ticket["number"] and call["counter_id"] == counter["id"]
    assert events[-1] == ("closure", {"hall_id": "hall-a", "date": TODAY, "closed": True, "note": "停电"})
    assert closed_at - answered_at < 1.0  # issue 18: within a second of the admin's answer


async def test_listen_connection_comes_back_after_postgresql_drops_it(pg_url: str) -> None:
    """Issue 5 item 5 (and bench/crash.py): when PostgreSQL ends the hall display's LISTEN
    connection (a restart, a proxy), the process reconnects by itself, tells every screen to re-read
    the queue, and later calls reach the screens again."""
    broker = Broker()
    queue = await broker.subscribe("hall-x", pg_url)
    admin = await asyncpg.connect(pg_url)
    try:
        first = broker._conn
        pid = first.get_server_pid()
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        got = await asyncio.wait_for(queue.get(), timeout=15)  # the resync after the reconnect
        assert got == {"type": "change", "hall_id": "hall-x"}
        assert broker._conn is not None and broker._conn is not first
        call = json.dumps({"type": "call", "hall_id": "hall-x", "n": 1})
        await admin.execute("SELECT pg_notify($1, $2)", CHANNEL, call)
        assert (await asyncio.wait_for(queue.get(), timeout=10))["type"] == "call"
    finally:
        await admin.close()
        await broker.unsubscribe("hall-x", queue)
    assert broker._conn is None
