"""A closed day that has bookings (docs/rules.md, docs/api.md "Administration: calendar"): the hall
cancels them in the closure's transaction (`cancelled_by: "hall"`), texts the reason, and the no-show
sweep at the end of the day marks nothing and bans no one. Through HTTP with the test clock."""

from __future__ import annotations

from typing import Any

from tests.admin.support import fill_day
from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.onsite.conftest import book_at


async def _messages(api: Api) -> list[dict[str, Any]]:
    answer = await api.client.get("/api/v1/test/messages")
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def _me(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    answer = await api.client.get("/api/v1/me", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_closure_after_bookings_cancels_them_without_no_shows_or_bans(api: Api) -> None:
    await api.hall()
    one = await api.service()
    two = await api.service(name="社保卡补领", department="人社")
    # two items booked the same day: missed, they would ban the citizen 10 days (rule G15)
    first = await book_at(api, 1, one["id"], "2026-12-03T09:00")
    second = await book_at(api, 1, two["id"], "2026-12-03T14:00")
    other = await book_at(api, 2, one["id"], "2026-12-04T09:00")  # another day: untouched
    await api.set_clock("2026-12-02T20:00:00+08:00")
    before = len(await _messages(api))

    closed = await api.client.put(
        "/api/v1/admin/units/hall-a/closures/2026-12-03", json={"note": "台风红色预警"}, headers=api.admin()
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["cancelled"] == 2
    assert closed.json()["date"] == "2026-12-03" and closed.json()["note"] == "台风红色预警"

    for booked in (first, second):
        number = booked["booking"]["number"]
        seen = await api.client.get(f"/api/v1/appointments/{number}", headers=first["headers"])
        assert seen.json()["status"] == "cancelled" and seen.json()["cancelled_by"] == "hall"
    kept = await api.client.get(
        f"/api/v1/appointments/{other['booking']['number']}", headers=other["headers"]
    )
    assert kept.json()["status"] == "booked" and kept.json()["cancelled_by"] is None
    # nothing for resale: the closed day offers no slot, and no seat stays counted for a cancel
    slots = await api.slots(one["id"], "2026-12-03")
    assert slots == []
    counted = await raw(api, "SELECT sum(booked) FROM slots WHERE day = '2026-12-03'")
    assert counted[0][0] == 0

    await api.set_clock("2026-12-04T00:30:00+08:00")  # the day's sweep has run
    mine = await _me(api, first["headers"])
    assert mine["no_shows"] == 0 and mine["bans"] == []
    assert (await raw(api, "SELECT count(*) FROM no_show_marks"))[0][0] == 0
    texts = (await _messages(api))[: len(await _messages(api)) - before]
    kinds = sorted(m["kind"] for m in texts)
    assert kinds == ["cancelled", "cancelled"], texts
    for message in texts:
        assert "台风红色预警" in message["text"] and "重新预约" in message["text"]
        assert len(message["text"]) <= 70
    assert {first["booking"]["number"], second["booking"]["number"]} == {
        number for m in texts for number in (first["booking"]["number"], second["booking"]["number"])
        if number in m["text"]
    }  # fmt: skip
    audit = await raw(api, "SELECT action FROM audit_log WHERE action = 'closure.set'")
    assert len(audit) == 1


async def test_citizen_cancel_says_citizen(api: Api) -> None:
    await api.hall()
    service = await api.service()
    booked = await book_at(api, 1, service["id"], "2026-12-03T09:00")
    number = booked["booking"]["number"]
    answer = await api.client.post(f"/api/v1/appointments/{number}/cancel", headers=booked["headers"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["cancelled_by"] == "citizen"


async def test_same_day_closure_stops_check_in_and_tickets(api: Api) -> None:
    await api.hall()
    service = await api.service()
    booked = await book_at(api, 1, service["id"], "2026-12-03T15:00")
    await api.set_clock("2026-12-03T11:00:00+08:00")
    closed = await api.client.put(
        "/api/v1/admin/units/hall-a/closures/2026-12-03", json={"note": "停电"}, headers=api.admin()
    )
    assert closed.status_code == 200 and closed.json()["cancelled"] == 1
    await api.set_clock("2026-12-03T14:30:00+08:00")
    body = {"id_type": "resident_id", "id_number": booked["id_number"]}
    checkin = await api.client.post("/api/v1/halls/hall-a/checkin", json=body, headers=api.admin())
    assert checkin.status_code == 404 and checkin.json()["code"] == "no_booking"
    ticket = await api.client.post(
        "/api/v1/halls/hall-a/tickets",
        json={"service_id": service["id"], **body, "green": None},
        headers=api.admin(),
    )
    assert ticket.status_code == 422 and ticket.json()["code"] == "hall_closed"
    await api.set_clock("2026-12-04T00:30:00+08:00")
    assert (await _me(api, booked["headers"]))["no_shows"] == 0


async def test_national_override_cancels_in_every_hall(api: Api) -> None:
    await api.hall()
    await api.hall("hall-b")
    in_a = await api.service()
    in_b = await api.service("hall-b")
    await book_at(api, 1, in_a["id"], "2026-12-03T09:00")
    await book_at(api, 2, in_b["id"], "2026-12-03T10:00")
    answer = await api.client.put(
        "/api/v1/admin/calendar/2026-12-03", json={"working_day": False, "note": "调休"}, headers=api.admin()
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["cancelled"] == 2
    rows = await raw(api, "SELECT status, cancelled_by FROM bookings ORDER BY id")
    assert [(r.status, r.cancelled_by) for r in rows] == [("cancelled", "hall"), ("cancelled", "hall")]


async def test_closure_ends_waiting_entries_of_that_date_only(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat a slot
    await fill_day(api, service["id"], "2026-12-03")
    await fill_day(api, service["id"], "2026-12-04", first=40)
    only, also = [await api.login(resident_id(n, birth="19880101")) for n in (21, 22)]
    for headers, dates in ((only, ["2026-12-03"]), (also, ["2026-12-03", "2026-12-04"])):
        body = {"service_id": service["id"], "dates": dates, "channel": "app"}
        joined = await api.client.post("/api/v1/waitlist", json=body, headers=headers)
        assert joined.status_code == 201, joined.text
    closed = await api.client.put(
        "/api/v1/admin/units/hall-a/closures/2026-12-03", json={"note": "台风"}, headers=api.admin()
    )
    assert closed.status_code == 200 and closed.json()["cancelled"] == 7
    statuses = [
        (await api.client.get("/api/v1/waitlist", headers=h)).json()[0]["status"] for h in (only, also)
    ]
    assert statuses == ["expired", "waiting"]
    texts = [m for m in await _messages(api) if m["kind"] == "expired"]
    assert len(texts) == 1 and len(texts[0]["text"]) <= 70
