"""Release first to the waiting list (rules G10, G11; docs/api.md "Waiting list", decision 0092):
open booking of a newly released day answers `not_open_yet` until the release allocation has
committed; the daily expiry of waiting entries; allocation that scans past 200 entries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.admin.support import fill_day, problem
from tests.conftest import Api, raw
from tests.ids import resident_id
from yuyue.clock import clock

NEW_DAY = "2026-12-15"  # the 10th working day after 12-01: opens at 18:00 on 12-01 (rule G10)


async def join(api: Api, headers: dict[str, str], service_id: int, dates: list[str] | None) -> dict[str, Any]:
    response = await api.client.post(
        "/api/v1/waitlist", json={"service_id": service_id, "dates": dates, "channel": "app"}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def entries_of(api: Api, people: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [(await api.client.get("/api/v1/waitlist", headers=h)).json()[0] for h in people]


async def test_a_booker_hammering_at_the_release_never_beats_the_waiting_list(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bookers fire at every slot of the new day while the clock moves to 18:00:00 and the release
    job runs: every seat goes to a waiting entry, no booker gets one (rule G11)."""
    monkeypatch.setattr(api.app.state.rate_limits, "enabled", False)  # a hammer, not a throttled client
    await api.hall()
    service = await api.service(daily_capacity=7)  # one off-site seat in each of the 7 hourly slots
    waiting = [await api.login(resident_id(n, birth="19900101")) for n in range(9)]
    for headers in waiting:
        await join(api, headers, service["id"], [NEW_DAY])
    bookers = [await api.login(resident_id(n, birth="19700101")) for n in range(4)]
    slot_ids = [s["id"] for s in await api.slots(service["id"], NEW_DAY)]
    assert len(slot_ids) == 7
    await api.set_clock("2026-12-01T17:59:50+08:00")  # real time runs on: room for the bookers to start

    released = asyncio.Event()
    answers: list[tuple[int, str]] = []

    async def hammer(headers: dict[str, str]) -> None:
        rounds_after = 0
        while rounds_after < 2:
            if released.is_set():
                rounds_after += 1
            for slot_id in slot_ids:
                response = await api.book(headers, slot_id)
                answers.append((response.status_code, response.json().get("code", "")))

    async def release() -> None:
        await asyncio.sleep(0.05)  # the bookers are already firing
        await api.set_clock("2026-12-01T18:00:00+08:00")
        released.set()

    await asyncio.gather(release(), *(hammer(h) for h in bookers))

    assert answers and all(status != 201 for status, _ in answers), answers
    assert {code for _, code in answers} <= {"not_open_yet", "slot_full"}
    assert answers[-1] == (409, "slot_full")  # after the release: the day is open, and full
    entries = await entries_of(api, waiting)
    assert [e["status"] for e in entries] == ["allocated"] * 7 + ["waiting"] * 2  # first come, first served
    sold = await raw(api, "SELECT channel, count(*) FROM bookings GROUP BY channel")
    assert [tuple(row) for row in sold] == [("app", 7)]  # the entries' channel; no booker's "web"


async def test_open_booking_waits_for_the_release_run_then_a_grace(api: Api) -> None:
    """Without the release run committed, the new day answers `not_open_yet` (and shows
    `not_yet_open`); the run lets it open; with no run at all it opens 15 minutes after the run's
    due time (decision 0092), the older days are never held."""
    await api.hall()
    service = await api.service(daily_capacity=7)
    citizen = await api.login(resident_id(1, birth="19900101"))
    first_slot = (await api.slots(service["id"], NEW_DAY))[0]["id"]
    # 18:00:30 without the jobs (as if no job process ran): the day's release has not committed
    await clock.store(api.app.state.engine, clock.now().replace(hour=18, minute=0, second=30))
    body = problem(await api.book(citizen, first_slot), 422, "not_open_yet")
    assert body["opens_at"] == "2026-12-01T18:00:00+08:00" and "waiting list" in body["detail"]
    assert {s["status"] for s in await api.slots(service["id"], NEW_DAY)} == {"not_yet_open"}
    older = (await api.slots(service["id"], "2026-12-14"))[0]["id"]
    assert (await api.book(citizen, older)).status_code == 201  # opened long ago
    await api.set_clock("2026-12-01T18:14:59+08:00")  # the 18:00 run is passed over, so still held
    problem(await api.book(citizen, first_slot), 422, "not_open_yet")
    await api.set_clock("2026-12-01T18:15:00+08:00")  # the grace is over: open anyway
    assert {s["status"] for s in await api.slots(service["id"], NEW_DAY)} == {"open"}


async def test_the_release_run_opens_the_day(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    citizen = await api.login(resident_id(2, birth="19900101"))
    first_slot = (await api.slots(service["id"], NEW_DAY))[0]["id"]
    problem(await api.book(citizen, first_slot), 422, "not_open_yet")  # 10:00, before 18:00
    await api.set_clock("2026-12-01T18:00:00+08:00")  # the run at 18:00 commits before this answers
    assert (await api.book(citizen, first_slot)).status_code == 201


async def test_expiry_job_ends_entries_whose_dates_passed_with_an_sms(api: Api) -> None:
    """docs/rules.md "Waiting list": once every date an entry accepts has passed it ends `expired`
    (daily at 00:05), with an SMS; an entry with a date still ahead, or for any date, stays."""
    await api.hall()
    service = await api.service(daily_capacity=7)
    await fill_day(api, service["id"], "2026-12-02")
    await fill_day(api, service["id"], "2026-12-03", first=600)
    past = await api.login(resident_id(3, birth="19900101"), phone="13900000003")
    ahead = await api.login(resident_id(4, birth="19900101"), phone="13900000004")
    await join(api, past, service["id"], ["2026-12-02"])
    await join(api, ahead, service["id"], ["2026-12-02", "2026-12-03"])
    await api.set_clock("2026-12-03T00:04:00+08:00")
    assert [e["status"] for e in await entries_of(api, [past, ahead])] == ["waiting", "waiting"]
    await api.set_clock("2026-12-03T00:05:00+08:00")
    assert [e["status"] for e in await entries_of(api, [past, ahead])] == ["expired", "waiting"]
    await api.set_clock("2026-12-03T08:00:00+08:00")  # texts wait for the morning (quiet hours)
    texts = [m for m in (await api.client.get("/api/v1/test/messages")).json() if m["kind"] == "expired"]
    assert [m["phone"] for m in texts] == ["13900000003"] and len(texts[0]["text"]) <= 70
    await api.set_clock("2026-12-04T08:00:00+08:00")
    assert [e["status"] for e in await entries_of(api, [past, ahead])] == ["expired", "expired"]
    texts = [m for m in (await api.client.get("/api/v1/test/messages")).json() if m["kind"] == "expired"]
    assert len(texts) == 2  # each entry texted once


async def test_allocation_scans_past_the_first_200_entries(api: Api) -> None:
    """More than 200 entries at the head that cannot take the freed seat (they accept another date)
    do not starve the entry behind them (docs/rules.md "Waiting list": no fixed scan window)."""
    await api.hall()
    service = await api.service(daily_capacity=7)
    booked = await fill_day(api, service["id"], "2026-12-03")
    await fill_day(api, service["id"], "2026-12-04", first=600)
    for n in range(205):
        await join(api, await api.login(resident_id(n, birth="19910101")), service["id"], ["2026-12-04"])
    behind = await api.login(resident_id(1, birth="19920101"))
    assert (await join(api, behind, service["id"], ["2026-12-03"]))["position"] == 206
    holder, number = booked[0]
    assert (await api.client.post(f"/api/v1/appointments/{number}/cancel", headers=holder)).status_code == 200
    entry = (await entries_of(api, [behind]))[0]
    assert entry["status"] == "allocated" and entry["number"]
    waiting = await raw(api, "SELECT count(*) FROM waitlist_entries WHERE status = 'waiting'")
    assert waiting[0][0] == 205  # the head was skipped, not removed
