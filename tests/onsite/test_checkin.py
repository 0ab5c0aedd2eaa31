"""Check-in (取号) at each window edge, tickets per booking, access of staff, kiosks and admins
(rules T3, M7; docs/api.md "On site")."""

from __future__ import annotations

import pytest

from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.onsite.conftest import book_at, checkin, kiosk, staff

DAY = "2026-12-03"  # Thursday


def t(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00+08:00"


@pytest.mark.parametrize(
    ("preset", "before", "opens", "last", "closes"),
    [
        # city and Tianhe (rules T3, T4): 60 min before the start to the slot's end
        (None, "07:59", "08:00", "09:59", "10:00"),
        # medical insurance (rule M7): 15 min before the start to 15 min after the end
        ("gz-medical-insurance", "08:44", "08:45", "10:14", "10:15"),
    ],
)
async def test_checkin_window_edges_t3_m7(
    api: Api, preset: str | None, before: str, opens: str, last: str, closes: str
) -> None:
    await api.hall()
    if preset:
        await api.policy("hall-a", preset)
    service = await api.service()
    early = await book_at(api, 1, service["id"], f"{DAY}T09:00")
    late = await book_at(api, 2, service["id"], f"{DAY}T09:00")
    missed = await book_at(api, 3, service["id"], f"{DAY}T09:00")
    clerk = await staff(api)

    await api.set_clock(t(before))
    refused = await checkin(api, clerk, early["id_number"])
    assert refused.status_code == 422 and refused.json()["code"] == "checkin_too_early"
    assert refused.json()["checkin_from"] == t(opens)

    await api.set_clock(t(opens))
    first = await checkin(api, clerk, early["id_number"])
    assert first.status_code == 201, first.text
    [ticket] = first.json()["tickets"]
    assert ticket["kind"] == "appointment" and ticket["status"] == "waiting"
    assert ticket["appointment_number"] == early["booking"]["number"]

    await api.set_clock(t(last))
    assert (await checkin(api, clerk, late["id_number"])).status_code == 201

    await api.set_clock(t(closes))
    too_late = await checkin(api, clerk, missed["id_number"])
    assert too_late.status_code == 422 and too_late.json()["code"] == "checkin_too_late"
    # the booking checked in at the last minute is checked in; the late one was marked no-show
    statuses = await raw(api, "SELECT number, status FROM bookings ORDER BY id")
    assert [s.status for s in statuses] == ["checked_in", "checked_in", "no_show"]


async def test_checkin_at_the_exact_close_is_too_late(api: Api) -> None:
    await api.hall()
    service = await api.service()
    one = await book_at(api, 1, service["id"], f"{DAY}T09:00")
    clerk = await staff(api)
    await api.set_clock(t("10:00"))
    answer = await checkin(api, clerk, one["id_number"])
    assert answer.status_code == 422 and answer.json()["code"] == "checkin_too_late"


async def test_one_ticket_per_booking_in_its_window_and_booking_shows_it(api: Api) -> None:
    await api.hall()
    one = await api.service()
    two = await api.service(name="社保卡补领", department="人社")
    three = await api.service(name="港澳通行证", department="出入境")
    citizen = await api.login(resident_id(7))
    numbers = []
    for service, start in ((one, "09"), (two, "10"), (three, "14")):
        answer = await api.book(citizen, f"{service['id']}-20261203{start}00")
        assert answer.status_code == 201, answer.text
        numbers.append(answer.json()["number"])
    desk = await kiosk(api)
    await api.set_clock(t("09:10"))  # windows of 09:00 and 10:00 are open, 14:00 not yet
    answer = await checkin(api, desk, resident_id(7))
    assert answer.status_code == 201, answer.text
    tickets = answer.json()["tickets"]
    assert [x["appointment_number"] for x in tickets] == numbers[:2]
    assert len({x["number"] for x in tickets}) == 2
    booking = (await api.client.get(f"/api/v1/appointments/{numbers[0]}", headers=citizen)).json()
    assert booking["status"] == "checked_in" and booking["ticket"]["number"] == tickets[0]["number"]
    untouched = (await api.client.get(f"/api/v1/appointments/{numbers[2]}", headers=citizen)).json()
    assert untouched["status"] == "booked" and untouched["ticket"] is None
    again = await checkin(api, desk, resident_id(7))  # pressing twice issues nothing new
    assert again.status_code == 200 and [x["number"] for x in again.json()["tickets"]] == [
        x["number"] for x in tickets
    ]
    assert (await raw(api, "SELECT count(*) FROM tickets"))[0][0] == 2


async def test_no_booking_and_bad_input(api: Api) -> None:
    await api.hall()
    await api.hall("hall-b")
    service = await api.service()
    one = await book_at(api, 1, service["id"], f"{DAY}T09:00")
    clerk = await staff(api)
    await api.set_clock(t("09:00"))
    nobody = await checkin(api, clerk, resident_id(99))
    assert nobody.status_code == 404 and nobody.json()["code"] == "no_booking"
    valid = resident_id(5)
    bad = await checkin(api, clerk, valid[:-1] + ("1" if valid[-1] == "0" else "0"))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_id_number"
    unknown = await checkin(api, clerk, one["id_number"], hall_id="nowhere")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    other_hall = await checkin(api, clerk, one["id_number"], hall_id="hall-b")
    assert other_hall.status_code == 403 and other_hall.json()["code"] == "forbidden"
    # a booking at hall-a is no booking at hall-b, for hall-b's own staff
    b_clerk = await staff(api, "hall-b")
    elsewhere = await checkin(api, b_clerk, one["id_number"], hall_id="hall-b")
    assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "no_booking"
    citizen_token = await checkin(api, one["headers"], one["id_number"])
    assert citizen_token.status_code == 401
    extra = await api.client.post(
        "/api/v1/halls/hall-a/checkin", json={"id_number": one["id_number"], "x": 1}, headers=clerk
    )
    assert extra.status_code == 422 and extra.json()["code"] == "validation_error"
    assert (await raw(api, "SELECT count(*) FROM tickets"))[0][0] == 0
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "booked"


async def test_admin_acts_as_staff_in_subtree_only(api: Api) -> None:
    await api.hall()
    district = await api.client.post(
        "/api/v1/admin/units",
        json={"id": "tianhe", "name": "天河区", "kind": "district", "parent_id": "platform"},
        headers=api.admin(),
    )
    assert district.status_code == 201, district.text
    await api.hall("th-hall", parent="tianhe", kind="district_hall")
    made = await api.client.post(
        "/api/v1/admin/admins",
        json={
            "username": "tianhe-l1",
            "password": "tianhe-admin-2026",
            "name": "李区管",
            "title": "区一级管理员",
            "phone": "13800000001",
            "unit_id": "tianhe",
            "level": 1,
        },
        headers=api.admin(),
    )
    assert made.status_code == 201, made.text
    token = (
        await api.client.post(
            "/api/v1/admin/login", json={"username": "tianhe-l1", "password": "tianhe-admin-2026"}
        )
    ).json()["token"]
    district_admin = api.admin(token)
    assert (await api.client.get("/api/v1/halls/th-hall/counters", headers=district_admin)).status_code == 200
    outside = await api.client.get("/api/v1/halls/hall-a/counters", headers=district_admin)
    assert outside.status_code == 403
    assert (await api.client.get("/api/v1/halls/hall-a/counters", headers=api.admin())).status_code == 200


async def test_revoked_kiosk_and_concurrent_checkins_issue_one_ticket(api: Api) -> None:
    import asyncio

    await api.hall()
    service = await api.service()
    one = await book_at(api, 1, service["id"], f"{DAY}T09:00")
    desks = [await kiosk(api) for _ in range(3)]
    await api.set_clock(t("08:30"))
    answers = await asyncio.gather(*(checkin(api, desks[i % 3], one["id_number"]) for i in range(12)))
    assert {a.status_code for a in answers} <= {200, 201, 404, 503}
    assert sum(1 for a in answers if a.status_code == 201) == 1
    assert (await raw(api, "SELECT count(*) FROM tickets"))[0][0] == 1
    kiosk_id = (await raw(api, "SELECT min(id) FROM kiosks"))[0][0]
    assert (
        await api.client.delete(f"/api/v1/admin/kiosks/{kiosk_id}", headers=api.admin())
    ).status_code == 204
    revoked = await checkin(api, desks[0], one["id_number"])
    assert revoked.status_code == 401
