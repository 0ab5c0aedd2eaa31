"""On-site booking at the desk (rule G10, issue 5 item 3): a clerk books today's slot for a citizen
without a phone app, through the one `book` of every channel (on-site window from 9:00 on working
days, slots not yet ended, the held on-site share, one live booking per item, bans); audited.
Through HTTP on SQLite and PostgreSQL; the clock starts at Tue 2026-12-01 10:00."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.admin.support import problem
from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.onsite.conftest import STAFF_PASSWORD, book_at, checkin, kiosk, staff

TODAY = "2026-12-01"
NAME, PHONE = "李四海", "13912345678"


def slot(service_id: int, day: str, hhmm: str) -> str:
    return f"{service_id}-{day.replace('-', '')}{hhmm.replace(':', '')}"


async def desk_book(
    api: Api, headers: dict[str, str], slot_id: str, n: int, hall_id: str = "hall-a", **extra: Any
) -> httpx.Response:
    body = {
        "slot_id": slot_id,
        "name": NAME,
        "id_type": "resident_id",
        "id_number": resident_id(n),
        "phone": PHONE,
        "business_types": [],
        **extra,
    }
    return await api.client.post(f"/api/v1/halls/{hall_id}/bookings", json=body, headers=headers)


async def test_a_clerk_books_today_on_site_for_the_citizen_g10(api: Api) -> None:
    await api.hall()
    service = await api.service()
    clerk = await staff(api, username="clerk-desk")
    made = await desk_book(api, clerk, slot(service["id"], TODAY, "10:00"), 1, business_types=["换领"])
    assert made.status_code == 201, made.text
    booking = made.json()
    assert booking["channel"] == "onsite" and booking["status"] == "booked"
    assert booking["slot"]["start"].startswith(f"{TODAY}T10:00") and booking["business_types"] == ["换领"]
    assert booking["applicant"] == {
        "name": "李**",
        "id_number": "4401**********" + resident_id(1)[-4:],
        "phone": "139****5678",
    }
    assert booking["number"].startswith("I") and booking["hall_id"] == "hall-a"

    # booked for that citizen: their own login sees it (the citizen row is the one the login uses)
    citizen = await api.login(resident_id(1), name=NAME, phone=PHONE)
    mine = await api.client.get("/api/v1/appointments", headers=citizen)
    assert [b["number"] for b in mine.json()] == [booking["number"]]
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 1
    # the citizen is told by SMS (rule T7), as after any booking
    sms = await raw(api, "SELECT kind FROM messages WHERE booking_number = :n", n=booking["number"])
    assert [r.kind for r in sms] == ["booked"]

    # audited: who booked for whom, masked
    audit = await api.client.get("/api/v1/admin/audit", headers=api.admin())
    entry = next(e for e in audit.json() if e["action"] == "booking.onsite")
    assert entry["staff"] == "clerk-desk" and entry["admin"] is None and entry["unit_id"] == "hall-a"
    assert entry["target"] == f"booking:{booking['number']}"
    assert entry["after"]["citizen"] == {
        "id_type": "resident_id",
        "id_number": booking["applicant"]["id_number"],
        "name": "李**",
    }
    stored = json.dumps(await raw(api, "SELECT after FROM audit_log"), default=str, ensure_ascii=False)
    assert resident_id(1) not in stored and NAME not in stored and PHONE not in stored

    # the booking checks in at the desk like any other (rules T3, T4)
    ticket = await checkin(api, clerk, resident_id(1))
    assert ticket.status_code == 201 and ticket.json()["tickets"][0]["kind"] == "appointment"

    # an admin may act as staff; audited as that admin
    by_admin = await desk_book(api, api.admin(), slot(service["id"], TODAY, "11:00"), 2)
    assert by_admin.status_code == 201, by_admin.text
    entries = list((await api.client.get("/api/v1/admin/audit", headers=api.admin())).json())
    latest = next(e for e in entries if e["action"] == "booking.onsite")
    assert latest["admin"] == "root" and latest["staff"] is None


async def test_window_from_nine_on_working_days_today_only(api: Api) -> None:
    await api.hall()
    service = await api.service()
    clerk = await staff(api)
    sid = service["id"]
    await api.set_clock(f"{TODAY}T08:59:00+08:00")
    early = await desk_book(api, clerk, slot(sid, TODAY, "09:00"), 1)
    problem(early, 422, "not_open_yet")
    await api.set_clock(f"{TODAY}T09:00:00+08:00")
    assert (await desk_book(api, clerk, slot(sid, TODAY, "09:00"), 1)).status_code == 201
    # tomorrow is off-site business; on-site books today only
    problem(await desk_book(api, clerk, slot(sid, "2026-12-02", "09:00"), 2), 422, "not_open_yet")
    await api.set_clock(f"{TODAY}T10:00:00+08:00")
    # the 09:00 slot has ended: refused; the 10:00 slot is under way: allowed until it ends
    problem(await desk_book(api, clerk, slot(sid, TODAY, "09:00"), 3), 422, "booking_closed")
    await api.set_clock(f"{TODAY}T10:59:00+08:00")
    assert (await desk_book(api, clerk, slot(sid, TODAY, "10:00"), 3)).status_code == 201
    # a Saturday is not a working day: nothing on site (rule G10)
    await api.set_clock("2026-12-05T10:00:00+08:00")
    problem(await desk_book(api, clerk, slot(sid, "2026-12-05", "10:00"), 4), 404, "not_found")  # no slots
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 2
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 2  # a refusal writes nothing


async def test_a_full_off_site_slot_still_takes_the_held_on_site_share(api: Api) -> None:
    """Capacity 10 per slot (70 over 7 hours); 10 % on-site share: 9 seats off-site, 1 held."""
    await api.hall()
    service = await api.service()
    sid, day = service["id"], "2026-12-03"
    for n in range(9):
        await book_at(api, 100 + n, sid, f"{day}T10:00")
    one_more = await api.book(await api.login(resident_id(120)), slot(sid, day, "10:00"))
    problem(one_more, 409, "slot_full")  # off-site sold out
    clerk = await staff(api)
    await api.set_clock(f"{day}T09:30:00+08:00")
    held = await desk_book(api, clerk, slot(sid, day, "10:00"), 1)
    assert held.status_code == 201, held.text
    problem(await desk_book(api, clerk, slot(sid, day, "10:00"), 2), 409, "slot_full")
    seats = await raw(api, "SELECT capacity, booked FROM slots WHERE id = :id", id=slot(sid, day, "10:00"))
    assert [tuple(r) for r in seats] == [(10, 10)]


async def test_who_may_book_at_the_desk(api: Api) -> None:
    await api.hall()
    await api.hall("hall-b")
    mine, theirs = await api.service(), await api.service("hall-b")
    clerk = await staff(api)
    machine = await kiosk(api)
    problem(await desk_book(api, machine, slot(mine["id"], TODAY, "11:00"), 1), 403, "forbidden")
    problem(await desk_book(api, clerk, slot(theirs["id"], TODAY, "11:00"), 1), 404, "not_found")
    problem(await desk_book(api, clerk, slot(mine["id"], TODAY, "11:00"), 1, "hall-b"), 403, "forbidden")
    problem(await desk_book(api, clerk, slot(mine["id"], TODAY, "11:30"), 1), 404, "not_found")
    problem(await desk_book(api, clerk, "garbage", 1), 404, "not_found")
    problem(await desk_book(api, clerk, slot(mine["id"], TODAY, "11:00"), 1, "nope"), 404, "not_found")
    anonymous = await api.client.post(
        "/api/v1/halls/hall-a/bookings",
        json={
            "slot_id": slot(mine["id"], TODAY, "11:00"),
            "name": NAME,
            "id_number": resident_id(1),
            "phone": PHONE,
        },
    )
    problem(anonymous, 401, "unauthenticated")
    citizen = await api.login(resident_id(9))
    problem(await desk_book(api, citizen, slot(mine["id"], TODAY, "11:00"), 1), 401, "unauthenticated")
    # bad details: refused, nothing written
    problem(
        await desk_book(api, clerk, slot(mine["id"], TODAY, "11:00"), 1, id_number="12345"),
        422,
        "invalid_id_number",
    )
    problem(
        await desk_book(api, clerk, slot(mine["id"], TODAY, "11:00"), 1, phone="12345"),
        422,
        "validation_error",
    )
    problem(
        await desk_book(api, clerk, slot(mine["id"], TODAY, "11:00"), 1, name="  "), 422, "validation_error"
    )
    problem(
        await desk_book(api, clerk, slot(mine["id"], TODAY, "11:00"), 1, channel="web"),
        422,
        "validation_error",
    )
    problem(
        await desk_book(api, clerk, slot(mine["id"], TODAY, "11:00"), 1, business_types=["办证"]),
        422,
        "validation_error",
    )
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 1  # the one who logged in


async def test_rules_of_every_channel_apply_ban_and_one_live_booking(api: Api) -> None:
    await api.hall()
    service = await api.service()
    sid = service["id"]
    clerk = await staff(api)
    # one live booking per ID and item (rule T5): an off-site booking of the same item blocks it
    await book_at(api, 1, sid, "2026-12-03T10:00")
    problem(await desk_book(api, clerk, slot(sid, TODAY, "11:00"), 1), 409, "already_booked")
    # a banned citizen (rule G15) is refused on site too
    await api.login(resident_id(2))
    lookup = await api.client.post(
        "/api/v1/admin/citizens/lookup",
        json={"id_type": "resident_id", "id_number": resident_id(2)},
        headers=api.admin(),
    )
    ban = await api.client.post(
        f"/api/v1/admin/citizens/{lookup.json()['id']}/bans",
        json={"until": "2026-12-20", "reason": "恶意占号"},
        headers=api.admin(),
    )
    assert ban.status_code == 201, ban.text
    banned = problem(await desk_book(api, clerk, slot(sid, TODAY, "11:00"), 2), 403, "banned")
    assert banned["banned_until"] == "2026-12-20"
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 1
    # a self-service hall takes no bookings (rule M2)
    await api.hall("self", mode="self_service")
    selfish = await api.service("self")
    problem(
        await desk_book(api, await staff(api, "self"), slot(selfish["id"], TODAY, "11:00"), 3, "self"),
        422,
        "booking_closed",
    )


async def test_a_retired_or_reset_clerk_cannot_book(api: Api) -> None:
    await api.hall()
    service = await api.service()
    retiring = await staff(api, username="clerk-old")
    resetting = await staff(api, username="clerk-reset")
    accounts = (await api.client.get("/api/v1/admin/halls/hall-a/staff", headers=api.admin())).json()
    ids = {a["username"]: a["id"] for a in accounts}
    target = slot(service["id"], TODAY, "11:00")

    retired = await api.client.post(f"/api/v1/admin/staff/{ids['clerk-old']}/retire", headers=api.admin())
    assert retired.status_code == 200, retired.text
    problem(await desk_book(api, retiring, target, 1), 401, "unauthenticated")

    reset = await api.client.post(
        f"/api/v1/admin/staff/{ids['clerk-reset']}/password",
        json={"password": "another-pass-2027"},
        headers=api.admin(),
    )
    assert reset.status_code == 200, reset.text
    problem(await desk_book(api, resetting, target, 1), 401, "unauthenticated")
    assert (
        await api.client.post(
            "/api/v1/staff/login", json={"username": "clerk-reset", "password": STAFF_PASSWORD}
        )
    ).status_code == 401
    login = await api.client.post(
        "/api/v1/staff/login", json={"username": "clerk-reset", "password": "another-pass-2027"}
    )
    fresh = {"Authorization": f"Bearer {login.json()['token']}"}
    assert (await desk_book(api, fresh, target, 1)).status_code == 201
