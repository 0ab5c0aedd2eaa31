"""The waiting list (rules G11, G12) through HTTP: join, position, leave; freed seats go to the
earliest eligible entry before open booking; a race of two cancels and one entry allocates once."""

from __future__ import annotations

import asyncio

from tests.admin.support import fill_day, problem
from tests.conftest import Api, raw
from tests.ids import resident_id

DAY = "2026-12-03"


async def join(api: Api, headers: dict[str, str], service_id: int, dates: list[str] | None = None):
    return await api.client.post(
        "/api/v1/waitlist", json={"service_id": service_id, "dates": dates, "channel": "app"}, headers=headers
    )


async def test_join_position_leave_and_cancel_allocates_to_the_earliest(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat a slot
    first, second, third = [await api.login(resident_id(n, birth="19880101")) for n in (1, 2, 3)]
    problem(await join(api, first, service["id"], [DAY]), 409, "seats_available")  # rule G11: full slots only
    booked = await fill_day(api, service["id"], DAY)
    one = await join(api, first, service["id"], [DAY])
    assert one.status_code == 201, one.text
    assert one.json() == {**one.json(), "status": "waiting", "position": 1, "number": None, "dates": [DAY]}
    problem(await join(api, first, service["id"], [DAY]), 409, "already_waiting")
    two = (await join(api, second, service["id"], [DAY])).json()
    three = (await join(api, third, service["id"], [DAY])).json()
    assert (two["position"], three["position"]) == (2, 3)
    assert (await api.client.delete(f"/api/v1/waitlist/{two['id']}", headers=first)).status_code == 404
    assert (await api.client.delete(f"/api/v1/waitlist/{two['id']}", headers=second)).status_code == 204
    mine = (await api.client.get("/api/v1/waitlist", headers=third)).json()
    assert mine[0]["position"] == 2  # the second left

    holder, number = booked[3]
    cancelled = await api.client.post(f"/api/v1/appointments/{number}/cancel", headers=holder)
    assert cancelled.status_code == 200
    # allocated before the cancel answered: the seat never showed as open
    entry = (await api.client.get("/api/v1/waitlist", headers=first)).json()[0]
    assert entry["status"] == "allocated" and entry["number"] and entry["position"] is None
    booking = (await api.client.get(f"/api/v1/appointments/{entry['number']}", headers=first)).json()
    assert (
        booking["status"] == "booked"
        and booking["channel"] == "app"
        and booking["slot_id"] == cancelled.json()["slot_id"]
    )
    assert all(s["remaining"] == 0 for s in await api.slots(service["id"], DAY))
    assert (await api.client.get("/api/v1/waitlist", headers=third)).json()[0]["position"] == 1
    problem(await api.client.delete(f"/api/v1/waitlist/{entry['id']}", headers=first), 422, "not_waiting")


async def test_an_ineligible_entry_is_skipped(api: Api) -> None:
    """Seats go to the earliest entry whose citizen may book: one holding a live booking of the
    service (rule T5) is passed over and keeps waiting."""
    await api.hall()
    service = await api.service(daily_capacity=7)
    booked = await fill_day(api, service["id"], DAY)
    holder, number = booked[0]  # already holds a booking of this service on DAY
    assert (await join(api, holder, service["id"], [DAY])).status_code == 201
    other = await api.login(resident_id(9, birth="19880101"))
    assert (await join(api, other, service["id"], [DAY])).status_code == 201
    leaver, gone = booked[1]
    assert (await api.client.post(f"/api/v1/appointments/{gone}/cancel", headers=leaver)).status_code == 200
    assert (await api.client.get("/api/v1/waitlist", headers=holder)).json()[0]["status"] == "waiting"
    assert (await api.client.get("/api/v1/waitlist", headers=other)).json()[0]["status"] == "allocated"


async def test_race_two_cancels_one_entry_allocates_once(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    booked = await fill_day(api, service["id"], DAY)
    waiting = await api.login(resident_id(7, birth="19880101"))
    assert (await join(api, waiting, service["id"], [DAY])).status_code == 201
    answers = await asyncio.gather(
        *(api.client.post(f"/api/v1/appointments/{number}/cancel", headers=h) for h, number in booked[:2])
    )
    assert [a.status_code for a in answers] == [200, 200]
    mine = await raw(
        api,
        "SELECT count(*) FROM bookings b JOIN waitlist_entries w ON w.citizen_id = b.citizen_id "
        "WHERE b.status = 'booked' AND w.id IS NOT NULL",
    )
    assert mine[0][0] == 1  # exactly one allocation
    entries = await raw(api, "SELECT status, booking_number FROM waitlist_entries")
    assert len(entries) == 1 and entries[0].status == "allocated" and entries[0].booking_number
    # one of the two freed seats went to the entry, the other is open again
    assert sum(s["remaining"] for s in await api.slots(service["id"], DAY)) == 1
    seats = await raw(api, "SELECT coalesce(sum(booked), 0) FROM slots")
    assert seats[0][0] == 6


async def test_capacity_increase_and_release_go_to_the_waiting_list_first(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    await fill_day(api, service["id"], DAY)
    early = await api.login(resident_id(11, birth="19880101"))
    assert (await join(api, early, service["id"], [DAY])).status_code == 201
    made = await api.client.post(
        "/api/v1/admin/capacity-requests",
        json={
            "service_id": service["id"],
            "date_from": DAY,
            "date_to": DAY,
            "daily_capacity": 14,
            "reason": "5+X",
        },
        headers=api.admin(),
    )
    from tests.admin.support import new_admin

    approver = await new_admin(api, "p1b", "platform", 1)
    approved = await api.client.post(
        f"/api/v1/admin/capacity-requests/{made.json()['id']}/approve", headers=approver
    )
    assert approved.status_code == 200
    assert (await api.client.get("/api/v1/waitlist", headers=early)).json()[0]["status"] == "allocated"

    # 2026-12-15 opens at 18:00 today (city rule G10): its seats go to the waiting list first
    days = (await api.client.get(f"/api/v1/services/{service['id']}/availability")).json()["days"]
    late_day = next(d for d in days if d["date"] == "2026-12-15")
    assert late_day["opens_at"] == "2026-12-01T18:00:00+08:00"
    late = await api.login(resident_id(12, birth="19880101"))
    assert (await join(api, late, service["id"], ["2026-12-15"])).status_code == 201
    await api.set_clock("2026-12-01T17:59:00+08:00")
    assert (await api.client.get("/api/v1/waitlist", headers=late)).json()[0]["status"] == "waiting"
    await api.set_clock("2026-12-01T18:00:00+08:00")
    entry = (await api.client.get("/api/v1/waitlist", headers=late)).json()[0]
    assert entry["status"] == "allocated"
    booking = (await api.client.get(f"/api/v1/appointments/{entry['number']}", headers=late)).json()
    assert booking["slot"]["start"] == "2026-12-15T09:00:00+08:00"  # the earliest slot of the day


async def test_over_release_alert_fires_once(api: Api) -> None:
    """Rule G12: more waiting entries than off-site seats released for the next 10 working days."""
    await api.hall()
    service = await api.service(daily_capacity=1)  # one seat a day, released through 12-14: 9 seats
    for n in range(10):
        citizen = await api.login(resident_id(100 + n, birth="19880101"))
        assert (await join(api, citizen, service["id"], ["2026-12-15"])).status_code == 201
    await api.set_clock("2026-12-01T10:59:00+08:00")
    assert (await api.client.get("/api/v1/admin/alerts", headers=api.admin())).json() == []
    for hour in ("11:00", "12:00", "13:30"):
        await api.set_clock(f"2026-12-01T{hour}:00+08:00")
    alerts = (await api.client.get("/api/v1/admin/alerts", headers=api.admin())).json()
    over = [a for a in alerts if a["kind"] == "waitlist_over_release"]
    assert len(over) == 1 and over[0]["service_id"] == service["id"] and over[0]["unit_id"] == "hall-a"
    assert over[0]["raised_at"] == "2026-12-01T11:00:00+08:00"
    assert "10 waiting entries, 9 off-site seats" in over[0]["detail"]
    # its figure stored, as the abnormal-figure alerts store theirs (the console's sentence reads it)
    assert over[0]["figure"] == {"name": "waiting_entries", "value": 10, "threshold": 9}
