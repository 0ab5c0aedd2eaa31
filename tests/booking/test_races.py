"""Concurrency: a seat is sold once and a citizen holds one live booking per service, whatever
runs at the same time.

In-process races run many requests at once through the ASGI app, each on its own pooled database
connection; on PostgreSQL they interleave for real. The multi-process race starts `yuyue serve`
with several workers against the test PostgreSQL database. Each test would fail if the guard it
covers were removed: without the conditional UPDATE every racer would get a seat; without the
partial unique index the same citizen would get several live bookings.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import Api, raw
from tests.ids import resident_id

DAY = "2026-12-03"


async def test_many_citizens_race_for_one_seat(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat per slot
    slot = (await api.slots(service["id"], DAY))[0]
    logins = [await api.login(resident_id(i, birth="19900101")) for i in range(40)]
    answers = await asyncio.gather(*(api.book(headers, slot["id"]) for headers in logins))
    codes = Counter(a.status_code if a.status_code == 201 else a.json()["code"] for a in answers)
    assert codes == {201: 1, "slot_full": 39}
    rows = await raw(api, "SELECT booked, capacity FROM slots WHERE id = :id", id=slot["id"])
    assert rows[0].booked == 1 <= rows[0].capacity
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 1


async def test_batch_racers_never_oversell(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=70, max_batch=3)  # 10 per slot, 1 held on site → 9
    slot = (await api.slots(service["id"], DAY))[0]
    logins = [await api.login(resident_id(i, birth="19910101")) for i in range(12)]
    answers = await asyncio.gather(*(api.book(h, slot["id"], quantity=2) for h in logins))
    sold = sum(2 for a in answers if a.status_code == 201)
    assert sold == 8  # four batches of 2 fit in 9 seats; a fifth would need 10
    rows = await raw(api, "SELECT booked FROM slots WHERE id = :id", id=slot["id"])
    assert rows[0].booked == sold
    total = await raw(api, "SELECT coalesce(sum(quantity), 0) FROM bookings WHERE status = 'booked'")
    assert total[0][0] == sold


async def test_one_citizen_races_for_many_slots_of_one_service(api: Api) -> None:
    """Rule T5 under a race: the partial unique index lets exactly one live booking through."""
    await api.hall()
    service = await api.service(daily_capacity=140)
    slots = await api.slots(service["id"], DAY) + await api.slots(service["id"], "2026-12-04")
    citizen = await api.login(resident_id(1, birth="19920101"))
    answers = await asyncio.gather(*(api.book(citizen, s["id"]) for s in slots))
    codes = Counter(a.status_code if a.status_code == 201 else a.json()["code"] for a in answers)
    assert codes == {201: 1, "already_booked": len(slots) - 1}
    live = await raw(api, "SELECT count(*) FROM bookings WHERE status IN ('booked', 'checked_in')")
    assert live[0][0] == 1
    seats = await raw(api, "SELECT coalesce(sum(booked), 0) FROM slots")
    assert seats[0][0] == 1  # the losers' seats were rolled back with them


async def test_concurrent_cancels_free_the_seat_once(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    slot = (await api.slots(service["id"], DAY))[0]
    citizen = await api.login(resident_id(2, birth="19930101"))
    number = (await api.book(citizen, slot["id"])).json()["number"]
    answers = await asyncio.gather(
        *(api.client.post(f"/api/v1/appointments/{number}/cancel", headers=citizen) for _ in range(10))
    )
    codes = Counter(a.status_code if a.status_code == 200 else a.json()["code"] for a in answers)
    assert codes == {200: 1, "not_cancellable": 9}
    rows = await raw(api, "SELECT booked FROM slots WHERE id = :id", id=slot["id"])
    assert rows[0].booked == 0


async def test_idempotent_retries_racing_book_once(api: Api) -> None:
    await api.hall()
    service = await api.service()
    slot = (await api.slots(service["id"], DAY))[0]
    citizen = {**await api.login(resident_id(3, birth="19940101")), "Idempotency-Key": "retry-1"}
    body = {"slot_id": slot["id"], "channel": "wechat"}
    answers = await asyncio.gather(
        *(api.client.post("/api/v1/appointments", json=body, headers=citizen) for _ in range(8))
    )
    # Decision 0015: one of them books; every other one is refused by the database (the live key,
    # rule T5), finds the key's committed answer and answers it again: no "in progress, retry".
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    assert len({a.text for a in answers}) == 1
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 1
    assert (await raw(api, "SELECT count(*) FROM messages"))[0][0] == 1  # one SMS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_several_processes_never_oversell(api: Api, database_url: str) -> None:
    """Three `yuyue serve` worker processes, 60 citizens, a slot of 5 seats: exactly 5 sold."""
    await api.hall()
    service = await api.service(daily_capacity=35)  # 5 per slot, floor(0.5) = 0 held back
    slot = (await api.slots(service["id"], DAY))[0]
    assert slot["capacity"] == 5
    port = _free_port()
    env = {
        **os.environ,
        "YUYUE_ENV": "test",
        "YUYUE_DATABASE_URL": database_url,
        "YUYUE_LOG_LEVEL": "WARNING",
        "YUYUE_DB_POOL_SIZE": "10",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "yuyue", "serve", "--port", str(port), "--workers", "3", "--no-jobs"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open("/tmp/mp-server.log", "w"),  # noqa: SIM115
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120  # three workers importing on a loaded 2-core machine
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                await asyncio.sleep(0.2)

            async def login(i: int) -> dict[str, str]:
                answer = await client.post(
                    "/api/v1/auth/dev/login",
                    json={
                        "name": "测试",
                        "id_number": resident_id(i, birth="19950101"),
                        "phone": "13800138000",
                    },
                )
                return {"Authorization": f"Bearer {answer.json()['token']}"}

            logins = await asyncio.gather(*(login(i) for i in range(60)))
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/appointments", json={"slot_id": slot["id"], "channel": "app"}, headers=h
                    )
                    for h in logins
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=20)
    codes = Counter(a.status_code if a.status_code == 201 else a.json()["code"] for a in answers)
    assert codes == {201: 5, "slot_full": 55}
    rows = await raw(api, "SELECT booked FROM slots WHERE id = :id", id=slot["id"])
    assert rows[0].booked == 5
    numbers = {a.json()["number"] for a in answers if a.status_code == 201}
    stored = {r[0] for r in await raw(api, "SELECT number FROM bookings")}
    assert numbers == stored  # every 201 answered is in the database
