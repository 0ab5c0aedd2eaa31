"""Bookings through the HTTP contract, on SQLite and PostgreSQL (docs/api.md "Bookings")."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import httpx
from sqlalchemy import text

from tests.conftest import START, Api, raw
from tests.ids import resident_id, uscc
from tests.onsite.conftest import book_at, staff
from yuyue.clock import TZ

DAY = "2026-12-03"  # Thursday, inside the city horizon seen from START (Tue 2026-12-01 10:00)


async def first_open(api: Api, service_id: int, day: str = DAY) -> dict:
    return next(s for s in await api.slots(service_id, day) if s["status"] == "open")


async def test_book_returns_masked_booking_with_m12_number(api: Api) -> None:
    hall = await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(1), name="张三丰", phone="13812345678")
    slot = await first_open(api, service["id"])
    response = await api.book(citizen, slot["id"], business_types=["换领"])
    assert response.status_code == 201, response.text
    booking = response.json()
    # rule M12: I + hall code + slot date + 5-digit sequence
    assert booking["number"] == f"I{hall['code']}2026120300001"
    assert booking["status"] == "booked"
    assert booking["applicant"] == {
        "name": "张**",
        "id_number": "4401**********" + resident_id(1)[-4:],
        "phone": "138****5678",
    }
    assert booking["slot"] == {"start": "2026-12-03T09:00:00+08:00", "end": "2026-12-03T10:00:00+08:00"}
    assert booking["cancel_deadline"] == "2026-12-03T08:00:00+08:00"  # rule G13: slot end − 2 h
    assert booking["checkin_window"] == {
        "from": "2026-12-03T08:00:00+08:00",
        "to": "2026-12-03T10:00:00+08:00",
    }
    assert booking["channel"] == "web" and booking["rebook_of"] is None and booking["ticket"] is None
    assert resident_id(1) not in response.text and "13812345678" not in response.text
    after = next(s for s in await api.slots(service["id"], DAY) if s["id"] == slot["id"])
    assert after["remaining"] == slot["remaining"] - 1


async def test_numbers_count_per_hall_and_date(api: Api) -> None:
    hall = await api.hall()
    one = await api.service()
    two = await api.service(name="社会保障卡申领", department="人社")
    numbers = []
    for i, service in enumerate((one, two, one)):
        citizen = await api.login(resident_id(10 + i))
        numbers.append(
            (await api.book(citizen, (await first_open(api, service["id"]))["id"])).json()["number"]
        )
    assert numbers == [f"I{hall['code']}20261203{n:05d}" for n in (1, 2, 3)]


async def test_capacity_spread_and_onsite_share_held_back(api: Api) -> None:
    """Rule G11: 70 a day over 7 hourly slots = 10 each; rule G10: floor(10 × 10 %) = 1 held for on site."""
    await api.hall()
    service = await api.service(daily_capacity=73)
    slots = await api.slots(service["id"], DAY)
    assert [s["start"][11:16] for s in slots] == [
        "09:00",
        "10:00",
        "11:00",
        "13:00",
        "14:00",
        "15:00",
        "16:00",
    ]
    # 73 = 11,11,11,10,10,10,10; on-site share floor(11 × 10%) = 1, floor(10 × 10%) = 1
    assert [s["capacity"] for s in slots] == [10, 10, 10, 9, 9, 9, 9]


async def test_one_live_booking_per_service_t5(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(2))
    slots = await api.slots(service["id"], DAY)
    assert (await api.book(citizen, slots[0]["id"])).status_code == 201
    second = await api.book(citizen, slots[1]["id"])
    assert second.status_code == 409 and second.json()["code"] == "already_booked"
    assert second.headers["content-type"].startswith("application/problem+json")


async def test_slot_full(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat per slot, none held back (floor(0.1) = 0)
    slot = (await api.slots(service["id"], DAY))[0]
    assert slot["capacity"] == 1
    assert (await api.book(await api.login(resident_id(3)), slot["id"])).status_code == 201
    full = await api.book(await api.login(resident_id(4)), slot["id"])
    assert full.status_code == 409 and full.json()["code"] == "slot_full"
    status = next(s for s in await api.slots(service["id"], DAY) if s["id"] == slot["id"])["status"]
    assert status == "full"


async def test_horizon_errors(api: Api) -> None:
    """Rule G10: today is never booked off-site; the 10th working day opens at 18:00."""
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(5))
    today = await api.slots(service["id"], "2026-12-01")
    assert {s["status"] for s in today} <= {"past", "closed_for_booking"}
    closed = await api.book(citizen, today[-1]["id"])
    assert closed.status_code == 422 and closed.json()["code"] == "booking_closed"
    # 10th working day after 2026-12-01 is 2026-12-15: not open before 18:00 today
    late = await api.slots(service["id"], "2026-12-15")
    assert {s["status"] for s in late} == {"not_yet_open"}
    refused = await api.book(citizen, late[0]["id"])
    assert refused.status_code == 422 and refused.json()["code"] == "not_open_yet"
    await api.set_clock("2026-12-01T18:00:00+08:00")
    assert (await api.book(citizen, late[0]["id"])).status_code == 201


async def test_weekend_has_no_slots_and_unknown_slots_are_404(api: Api) -> None:
    await api.hall()
    service = await api.service()
    response = await api.client.get(
        f"/api/v1/services/{service['id']}/availability", params={"from": "2026-12-05", "to": "2026-12-06"}
    )
    assert [d["working_day"] for d in response.json()["days"]] == [False, False]
    assert all(d["slots"] == [] for d in response.json()["days"])
    citizen = await api.login(resident_id(6))
    for bad in (
        f"{service['id']}-202612050900",
        f"{service['id']}-202612030930",
        "999-202612030900",
        "nonsense",
        f"{service['id']}-202613030900",
    ):
        answer = await api.book(citizen, bad)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", bad


async def test_cancel_until_deadline_then_too_late(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(7))
    slots = await api.slots(service["id"], DAY)
    first = (await api.book(citizen, slots[0]["id"])).json()
    cancelled = await api.client.post(f"/api/v1/appointments/{first['number']}/cancel", headers=citizen)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await api.client.post(f"/api/v1/appointments/{first['number']}/cancel", headers=citizen)
    assert again.json()["code"] == "not_cancellable"
    # the seat is free again and the citizen may book the service again (rule T5)
    assert next(s for s in await api.slots(service["id"], DAY) if s["id"] == slots[0]["id"])["remaining"] == 9
    second = (await api.book(citizen, slots[1]["id"])).json()  # 10:00–11:00, deadline 09:00
    await api.set_clock("2026-12-03T08:59:30+08:00")  # the clock runs on: just before the deadline
    at_deadline = await api.client.post(f"/api/v1/appointments/{second['number']}/cancel", headers=citizen)
    assert at_deadline.status_code == 200
    await api.set_clock("2026-12-03T09:00:00+08:00")
    third = (await book_at(api, 8, service["id"], slots[2]["start"][:16], channel="onsite"))["booking"]
    assert third["status"] == "booked"
    await api.set_clock("2026-12-03T10:00:01+08:00")  # slot 11–12: deadline 10:00
    late = await api.client.post(
        f"/api/v1/appointments/{third['number']}/cancel", headers=await api.login(resident_id(8))
    )
    assert late.status_code == 422 and late.json()["code"] == "cancel_too_late"


async def test_reschedule_is_atomic_and_keeps_the_number(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    citizen = await api.login(resident_id(9))
    slots = await api.slots(service["id"], DAY)
    booking = (await api.book(citizen, slots[0]["id"])).json()
    # slot 2 taken by someone else: rescheduling there fails and changes nothing
    assert (await api.book(await api.login(resident_id(19)), slots[1]["id"])).status_code == 201
    full = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/reschedule",
        json={"slot_id": slots[1]["id"]},
        headers=citizen,
    )
    assert full.status_code == 409 and full.json()["code"] == "slot_full"
    moved = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/reschedule",
        json={"slot_id": slots[2]["id"]},
        headers=citizen,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["number"] == booking["number"] and moved.json()["slot_id"] == slots[2]["id"]
    rows = await raw(api, "SELECT id, booked FROM slots WHERE service_id = :s ORDER BY id", s=service["id"])
    assert {r.id: r.booked for r in rows} == {slots[0]["id"]: 0, slots[1]["id"]: 1, slots[2]["id"]: 1}


async def test_special_reason_rebook_once(api: Api) -> None:
    """Rules T9, G14: on the missed slot's day, from its start until 24:00, one rebook; miss excused."""
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(11))
    slots = await api.slots(service["id"], DAY)
    missed = (await api.book(citizen, slots[0]["id"])).json()
    target = (await api.slots(service["id"], "2026-12-04"))[0]
    early = await api.client.post(
        f"/api/v1/appointments/{missed['number']}/rebook",
        json={"slot_id": target["id"], "reason": "住院"},
        headers=citizen,
    )
    assert early.status_code == 422 and early.json()["code"] == "not_rebookable"
    await api.set_clock("2026-12-03T09:30:00+08:00")
    rebooked = await api.client.post(
        f"/api/v1/appointments/{missed['number']}/rebook",
        json={"slot_id": target["id"], "reason": "住院"},
        headers=citizen,
    )
    assert rebooked.status_code == 201, rebooked.text
    assert rebooked.json()["rebook_of"] == missed["number"]
    original = await api.client.get(f"/api/v1/appointments/{missed['number']}", headers=citizen)
    assert original.json()["status"] == "excused"
    twice = await api.client.post(
        f"/api/v1/appointments/{missed['number']}/rebook",
        json={"slot_id": target["id"], "reason": "住院"},
        headers=citizen,
    )
    assert twice.json()["code"] == "not_rebookable"
    chain = await api.client.post(
        f"/api/v1/appointments/{rebooked.json()['number']}/rebook",
        json={"slot_id": target["id"], "reason": "again"},
        headers=citizen,
    )
    assert chain.json()["code"] == "not_rebookable"


async def test_idempotency_key(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(12))
    slot = (await api.slots(service["id"], DAY))[0]
    headers = {**citizen, "Idempotency-Key": "k-1"}
    body = {"slot_id": slot["id"], "channel": "web"}
    first = await api.client.post("/api/v1/appointments", json=body, headers=headers)
    replay = await api.client.post("/api/v1/appointments", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert first.json() == replay.json()
    other = await api.client.post("/api/v1/appointments", json={**body, "channel": "app"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 1
    # another citizen may use the same key string independently
    other_citizen = {**await api.login(resident_id(13)), "Idempotency-Key": "k-1"}
    assert (
        await api.client.post("/api/v1/appointments", json=body, headers=other_citizen)
    ).status_code == 201


async def test_citizens_see_only_their_own(api: Api) -> None:
    await api.hall()
    service = await api.service()
    owner = await api.login(resident_id(14))
    stranger = await api.login(resident_id(15))
    booking = (await api.book(owner, (await api.slots(service["id"], DAY))[0]["id"])).json()
    for path in ("", "/receipt"):
        seen = await api.client.get(f"/api/v1/appointments/{booking['number']}{path}", headers=stranger)
        assert seen.status_code == 404 and seen.json()["code"] == "not_found"
    cancel = await api.client.post(f"/api/v1/appointments/{booking['number']}/cancel", headers=stranger)
    assert cancel.status_code == 404
    assert (await api.client.get("/api/v1/appointments", headers=stranger)).json() == []
    mine = (await api.client.get("/api/v1/appointments", headers=owner)).json()
    assert [b["number"] for b in mine] == [booking["number"]]
    assert (await api.client.get("/api/v1/appointments")).json()["code"] == "unauthenticated"
    bad = await api.client.get("/api/v1/appointments", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401
    # an admin token is not a citizen token
    assert (await api.client.get("/api/v1/appointments", headers=api.admin())).status_code == 401


async def test_me_shows_the_owner_unmasked(api: Api) -> None:
    citizen = await api.login(resident_id(16), name="李四", phone="13912345678")
    me = (await api.client.get("/api/v1/me", headers=citizen)).json()
    assert me == {
        "citizen": {
            "id_type": "resident_id",
            "id_number": resident_id(16),
            "name": "李四",
            "phone": "13912345678",
        },
        "bans": [],
        "no_shows": 0,
    }
    stored = await raw(api, "SELECT id_enc, phone_enc, id_masked FROM citizens")
    assert resident_id(16) not in str(stored[0][:2])


async def test_batch_and_max_batch(api: Api) -> None:
    """Rule G16: a batch of N takes N seats; above max_batch is refused."""
    await api.hall()
    service = await api.service(max_batch=3, name="企业设立登记", department="市场监管")
    citizen = await api.login(resident_id(17))
    slot = (await api.slots(service["id"], DAY))[0]
    too_many = await api.book(citizen, slot["id"], quantity=4)
    assert too_many.status_code == 422 and too_many.json()["code"] == "quantity_exceeds_max"
    booked = await api.book(citizen, slot["id"], quantity=3)
    assert booked.status_code == 201 and booked.json()["quantity"] == 3
    assert next(s for s in await api.slots(service["id"], DAY) if s["id"] == slot["id"])["remaining"] == 6


async def test_company_agent_needs_valid_uscc(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(18))
    slot = (await api.slots(service["id"], DAY))[0]
    code = uscc(1)
    bad = code[:-1] + ("0" if code[-1] != "0" else "1")
    refused = await api.book(citizen, slot["id"], company={"uscc": bad, "name": "广州某某有限公司"})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_uscc"
    ok = await api.book(citizen, slot["id"], company={"uscc": code, "name": "广州某某有限公司"})
    assert ok.status_code == 201 and ok.json()["company"] == {"uscc": code, "name": "广州某某有限公司"}


async def test_medical_insurance_one_per_day_m10(api: Api) -> None:
    """Rule M10: one live booking per person and day among the halls under the unit that set it."""
    bureau = await api.client.post(
        "/api/v1/admin/units",
        headers=api.admin(),
        json={"id": "yb", "name": "医保局", "kind": "city_department", "parent_id": "platform"},
    )
    assert bureau.status_code == 201
    await api.policy("yb", "gz-medical-insurance")
    await api.hall("yb-a", parent="yb")
    await api.hall("yb-b", parent="yb")
    one = await api.service("yb-a", name="异地就医备案")
    two = await api.service("yb-b", name="医保关系转移")
    citizen = await api.login(resident_id(20))
    # medical horizon: working days 1–5 after today (12-02 … 12-08)
    slot_one = (await api.slots(one["id"], "2026-12-02"))[0]
    slot_two = (await api.slots(two["id"], "2026-12-02"))[3]
    assert (await api.book(citizen, slot_one["id"])).status_code == 201
    second = await api.book(citizen, slot_two["id"])
    assert second.status_code == 409 and second.json()["code"] == "daily_limit"
    other_day = (await api.slots(two["id"], "2026-12-03"))[0]
    assert (await api.book(citizen, other_day["id"])).status_code == 201
    beyond = (await api.slots(two["id"], "2026-12-09"))[0]
    assert beyond["status"] == "not_yet_open"


async def test_booking_cap(api: Api) -> None:
    await api.hall()
    await api.policy("platform", "guangzhou-2021", max_live_bookings=2)
    citizen = await api.login(resident_id(21))
    services = [await api.service(name=f"事项{i}") for i in range(3)]
    for service in services[:2]:
        assert (await api.book(citizen, (await api.slots(service["id"], DAY))[0]["id"])).status_code == 201
    capped = await api.book(citizen, (await api.slots(services[2]["id"], DAY))[0]["id"])
    assert capped.status_code == 409 and capped.json()["code"] == "booking_cap"


async def ban_everyone(api: Api, until: str) -> None:
    """A ban in force on every citizen, written as an admin's would be."""
    async with api.app.state.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO bans (citizen_id, unit_id, until, reason, source, created_at) "
                "SELECT id, 'platform', :until, 'hoarding', 'admin', :now FROM citizens"
            ),
            {"until": date.fromisoformat(until), "now": START.replace(tzinfo=None)},
        )


async def desk(api: Api, clerk: dict[str, str], slot_id: str, n: int) -> httpx.Response:
    """Hall staff book `slot_id` on site for citizen n at the desk (rule G10)."""
    body = {"slot_id": slot_id, "name": "张三", "id_number": resident_id(n), "phone": "13800138000"}
    return await api.client.post("/api/v1/halls/hall-a/bookings", json=body, headers=clerk)


async def test_ban_in_force_blocks_booking(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(22))
    await ban_everyone(api, "2026-12-10")
    refused = await api.book(citizen, (await api.slots(service["id"], DAY))[0]["id"])
    assert refused.status_code == 403
    assert refused.json()["code"] == "banned" and refused.json()["banned_until"] == "2026-12-10"
    me = (await api.client.get("/api/v1/me", headers=citizen)).json()
    assert [b["until"] for b in me["bans"]] == ["2026-12-10"]


async def test_onsite_channel_takes_todays_seats_from_nine(api: Api) -> None:
    """Rule G10: on site (at the desk), today's slots not yet ended, on-site share plus unsold
    off-site seats, from 9:00 on working days."""
    await api.hall()
    service = await api.service(daily_capacity=7)
    clerk = await staff(api, username="clerk-g10")
    today = await api.slots(service["id"], "2026-12-01")  # START is 10:00: 9–10 ended? no: ends at 10:00
    ended = today[0]
    assert (await desk(api, clerk, ended["id"], 23)).json()["code"] == "booking_closed"
    running = today[1]  # 10:00–11:00, under way
    ok = await desk(api, clerk, running["id"], 23)
    assert ok.status_code == 201, ok.text
    assert ok.json()["channel"] == "onsite"
    tomorrow = (await api.slots(service["id"], "2026-12-02"))[0]
    not_today = await desk(api, clerk, tomorrow["id"], 24)
    assert not_today.json()["code"] == "not_open_yet"
    await api.set_clock("2026-12-02T08:59:00+08:00")
    assert (await desk(api, clerk, tomorrow["id"], 24)).json()["code"] == "not_open_yet"
    await api.set_clock("2026-12-02T09:00:00+08:00")
    assert (await desk(api, clerk, tomorrow["id"], 24)).status_code == 201


async def test_a_citizens_own_token_cannot_book_on_site_g10(api: Api) -> None:
    """docs/rules.md "On-site booking": only hall staff or the hall's kiosk book `onsite`; a citizen's own
    token asking for it is 403 forbidden and takes nothing, so the on-site share stays at the hall."""
    await api.hall()
    service = await api.service(daily_capacity=7)  # 10:00 slot: capacity 1, all of it off-site
    citizen = await api.login(resident_id(26))
    running = (await api.slots(service["id"], "2026-12-01"))[1]  # today 10:00–11:00, under way
    refused = await api.book(citizen, running["id"], channel="onsite")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden", refused.text
    later = (await api.slots(service["id"], DAY))[0]
    assert (await api.book(citizen, later["id"], channel="onsite")).json()["code"] == "forbidden"
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0
    assert (await raw(api, "SELECT count(*) FROM slots WHERE booked > 0"))[0][0] == 0
    # the citizen's own booking of today's on-site seat by reschedule is refused the same way: a
    # booking made at the desk moves at the desk
    clerk = await staff(api, username="clerk-26")
    made = await desk(api, clerk, running["id"], 26)
    assert made.status_code == 201, made.text
    moved = await api.client.post(
        f"/api/v1/appointments/{made.json()['number']}/reschedule",
        json={"slot_id": (await api.slots(service["id"], "2026-12-01"))[2]["id"]},
        headers=citizen,
    )
    assert moved.status_code == 403 and moved.json()["code"] == "forbidden", moved.text


async def test_a_banned_citizen_cannot_reschedule(api: Api) -> None:
    """docs/rules.md "Penalties": a ban forbids booking anew, reschedule included (403 banned with
    `banned_until`); the booking already held stays, and may be cancelled."""
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(27))
    slots = await api.slots(service["id"], DAY)
    held = (await api.book(citizen, slots[0]["id"])).json()
    await ban_everyone(api, "2026-12-10")
    moved = await api.client.post(
        f"/api/v1/appointments/{held['number']}/reschedule", json={"slot_id": slots[1]["id"]}, headers=citizen
    )
    assert moved.status_code == 403, moved.text
    assert moved.json()["code"] == "banned" and moved.json()["banned_until"] == "2026-12-10"
    rows = await raw(api, "SELECT id, booked FROM slots ORDER BY id")
    assert [(r.id, r.booked) for r in rows] == [(slots[0]["id"], 1)]  # nothing moved
    again = await api.client.get(f"/api/v1/appointments/{held['number']}", headers=citizen)
    assert again.json()["slot_id"] == slots[0]["id"] and again.json()["status"] == "booked"
    cancelled = await api.client.post(f"/api/v1/appointments/{held['number']}/cancel", headers=citizen)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_receipt_html_and_pdf(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(25))
    booking = (await api.book(citizen, (await api.slots(service["id"], DAY))[0]["id"])).json()
    html = await api.client.get(f"/api/v1/appointments/{booking['number']}/receipt", headers=citizen)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert booking["number"] in html.text and "<svg" in html.text and "<script" not in html.text
    pdf = await api.client.get(
        f"/api/v1/appointments/{booking['number']}/receipt?format=pdf", headers=citizen
    )
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"


async def test_list_is_newest_first_and_shape_is_stable(api: Api) -> None:
    await api.hall()
    citizen = await api.login(resident_id(26))
    numbers = []
    for i in range(3):
        service = await api.service(name=f"事项{i}")
        numbers.append(
            (await api.book(citizen, (await api.slots(service["id"], DAY))[i]["id"])).json()["number"]
        )
        await api.set_clock(START + timedelta(minutes=i + 1))
    listed = (await api.client.get("/api/v1/appointments", headers=citizen)).json()
    assert [b["number"] for b in listed] == numbers[::-1]
    assert all(re.fullmatch(r"I\d{2}\d{8}\d{5}", n) for n in numbers)
    assert datetime.fromisoformat(listed[0]["created_at"]).tzinfo is not None
    assert listed[0]["created_at"].endswith("+08:00")
    assert TZ is not None
