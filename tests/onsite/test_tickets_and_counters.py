"""Walk-in and green tickets by hall mode (rules M2, G10, M3), the call order at the counters
(rule T4), recall, skip, finish, bundles (rule G17), the public queue and wait estimates."""

from __future__ import annotations

import pytest

from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.onsite.conftest import book_at, call_next, checkin, counters, kiosk, staff, walk_in

DAY = "2026-12-03"


def t(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00+08:00"


async def test_walk_in_follows_hall_mode_m2(api: Api) -> None:
    await api.hall("first", mode="appointment_first")
    await api.hall("priority", mode="appointment_priority")
    await api.hall("self", mode="self_service")
    strict = await api.service("first", walk_in_allowed=False)
    open_ = await api.service("first", name="社保查询", walk_in_allowed=True)
    anything = await api.service("priority", walk_in_allowed=False)
    selfish = await api.service("self")
    someone = resident_id(1)
    refused = await walk_in(api, await staff(api, "first"), strict["id"], someone, hall_id="first")
    assert refused.status_code == 422 and refused.json()["code"] == "walk_in_not_allowed"
    ok = await walk_in(api, await kiosk(api, "first"), open_["id"], someone, hall_id="first")
    assert ok.status_code == 201, ok.text
    assert ok.json()["ticket"]["kind"] == "walk_in" and ok.json()["ticket"]["call_number"] == "W001"
    behind = await walk_in(api, await kiosk(api, "priority"), anything["id"], someone, hall_id="priority")
    assert behind.status_code == 201, behind.text
    green = await walk_in(
        api,
        await staff(api, "first", username="f2"),
        strict["id"],
        someone,
        green="military",
        hall_id="first",
    )
    assert green.status_code == 201 and green.json()["ticket"]["kind"] == "green"  # green needs no walk-in
    for kind in (None, "military"):
        none = await walk_in(
            api, await staff(api, "self", username=f"s-{kind}"), selfish["id"], someone, kind, "self"
        )
        assert none.status_code == 422 and none.json()["code"] == "walk_in_not_allowed"
    wrong_hall = await walk_in(
        api, await staff(api, "priority", username="p2"), strict["id"], someone, hall_id="priority"
    )
    assert wrong_hall.status_code == 404
    assert (await raw(api, "SELECT count(*) FROM tickets"))[0][0] == 3


async def test_green_channel_eligibility_g10_m3(api: Api) -> None:
    await api.hall()
    service = await api.service()
    desk, clerk = await kiosk(api), await staff(api)
    sixty_today = resident_id(1, birth="19661201")  # 60 on 2026-12-01 (START)
    sixty_tomorrow = resident_id(2, birth="19661202")
    ok = await walk_in(api, desk, service["id"], sixty_today, green="elderly")
    assert ok.status_code == 201 and ok.json()["ticket"]["call_number"] == "G001"
    young = await walk_in(api, desk, service["id"], sixty_tomorrow, green="elderly")
    assert young.status_code == 422 and young.json()["code"] == "not_eligible"
    # disabled and military: staff confirms the document; a kiosk cannot
    assert (await walk_in(api, desk, service["id"], sixty_tomorrow, green="disabled")).status_code == 403
    assert (await walk_in(api, clerk, service["id"], sixty_tomorrow, green="disabled")).status_code == 201


async def test_call_order_t4_through_the_counters(api: Api) -> None:
    """Green first; then appointments inside their slot checked in before its end, earlier booking
    first; then everyone else by ticket time."""
    await api.hall(counters=1)
    service = await api.service()
    later_booker = await book_at(api, 1, service["id"], f"{DAY}T10:00")
    earlier_booker = await book_at(api, 2, service["id"], f"{DAY}T10:00")  # booked second...
    early_slot = await book_at(api, 3, service["id"], f"{DAY}T11:00")
    await raw(api, "SELECT 1")
    clerk = await staff(api)
    await api.set_clock(t("09:05"))
    walk_a = (await walk_in(api, clerk, service["id"], resident_id(10))).json()["ticket"]
    await api.set_clock(t("09:10"))
    assert (await checkin(api, clerk, earlier_booker["id_number"])).status_code == 201
    await api.set_clock(t("09:15"))
    assert (await checkin(api, clerk, later_booker["id_number"])).status_code == 201
    await api.set_clock(t("10:01"))
    assert (await checkin(api, clerk, early_slot["id_number"])).status_code == 201  # slot 11:00 not under way
    walk_b = (await walk_in(api, clerk, service["id"], resident_id(11))).json()["ticket"]
    green = (
        await walk_in(api, clerk, service["id"], resident_id(12, birth="19500101"), green="elderly")
    ).json()["ticket"]
    queue = (await api.client.get("/api/v1/halls/hall-a/queue")).json()
    order = [x["number"] for x in queue["waiting"]]
    by_booking = {
        x["appointment_number"]: x["number"]
        for x in (await api.client.get("/api/v1/halls/hall-a/queue")).json()["waiting"]
        if "appointment_number" in x
    }
    assert not by_booking  # the public queue shows numbers and counters only
    tickets = {
        r.booking_number: r.number for r in await raw(api, "SELECT booking_number, number FROM tickets")
    }
    # rule T4: among appointment tickets of one slot, earlier bookings first (by booking time, not check-in)
    expected = [
        green["number"],
        tickets[later_booker["booking"]["number"]],
        tickets[earlier_booker["booking"]["number"]],
        walk_a["number"],
        tickets[early_slot["booking"]["number"]],
        walk_b["number"],
    ]
    assert order == expected
    [counter] = await counters(api, clerk)
    called = []
    for _ in expected:
        answer = await call_next(api, clerk, counter["id"])
        assert answer.status_code == 200, answer.text
        called.append(answer.json()["ticket"]["number"])
    assert called == expected
    nobody = await call_next(api, clerk, counter["id"])
    assert nobody.status_code == 204
    statuses = await raw(api, "SELECT status, count(*) FROM tickets GROUP BY status")
    assert dict((s[0], s[1]) for s in statuses) == {"finished": 6}  # call-next finished each before
    served = await raw(api, "SELECT count(*) FROM bookings WHERE status = 'served'")
    assert served[0][0] == 3


async def test_recall_skip_finish_and_bad_states(api: Api) -> None:
    await api.hall(counters=2)
    await api.hall("hall-b")
    service = await api.service()
    clerk = await staff(api)
    other = await staff(api, "hall-b")
    one = (await walk_in(api, clerk, service["id"], resident_id(1))).json()["ticket"]
    two = (await walk_in(api, clerk, service["id"], resident_id(2))).json()["ticket"]
    first, second = await counters(api, clerk)
    assert first["service_ids"] is None and first["open"] is True
    assert (await call_next(api, clerk, first["id"])).json()["ticket"]["number"] == one["number"]
    base = "/api/v1/tickets"
    early_finish = await api.client.post(f"{base}/{two['number']}/finish", headers=clerk)
    assert early_finish.status_code == 422 and early_finish.json()["code"] == "invalid_ticket_state"
    skipped = await api.client.post(f"{base}/{one['number']}/skip", headers=clerk)
    assert skipped.status_code == 200 and skipped.json()["ticket"]["status"] == "skipped"
    assert (await call_next(api, clerk, first["id"])).json()["ticket"]["number"] == two["number"]
    # the skipped ticket is recalled at the second counter while the hall is open
    back = await api.client.post(
        f"{base}/{one['number']}/recall", json={"counter_id": second["id"]}, headers=clerk
    )
    assert back.status_code == 200, back.text
    assert back.json()["ticket"]["status"] == "called" and back.json()["ticket"]["counter_id"] == second["id"]
    done = await api.client.post(f"{base}/{one['number']}/finish", headers=clerk)
    assert done.status_code == 200 and done.json()["ticket"]["status"] == "finished"
    twice = await api.client.post(f"{base}/{one['number']}/finish", headers=clerk)
    assert twice.status_code == 422 and twice.json()["code"] == "invalid_ticket_state"
    foreign = await api.client.post(f"{base}/{two['number']}/finish", headers=other)
    assert foreign.status_code == 403
    foreign_counter = await call_next(api, other, first["id"])
    assert foreign_counter.status_code == 403
    unknown = await api.client.post(f"{base}/nope/finish", headers=clerk)
    assert unknown.status_code == 404
    rows = await raw(api, "SELECT number, status FROM tickets ORDER BY id")
    assert [r.status for r in rows] == ["finished", "called"]
    # after the hall closes (17:00) a skipped ticket can no longer be recalled
    skipped_two = await api.client.post(f"{base}/{two['number']}/skip", headers=clerk)
    assert skipped_two.status_code == 200
    await api.set_clock("2026-12-01T17:00:00+08:00")
    closed = await api.client.post(f"{base}/{two['number']}/recall", headers=clerk)
    assert closed.status_code == 422 and closed.json()["code"] == "invalid_ticket_state"


async def test_counter_services_staff_counter_binding_and_closed_counter(api: Api) -> None:
    await api.hall(counters=2)
    one = await api.service()
    two = await api.service(name="社保卡补领", department="人社")
    clerk = await staff(api)
    first, second = await counters(api, clerk)
    patched = await api.client.patch(
        f"/api/v1/counters/{first['id']}", json={"service_ids": [two["id"]]}, headers=clerk
    )
    assert patched.status_code == 200 and patched.json()["service_ids"] == [two["id"]]
    bad = await api.client.patch(
        f"/api/v1/counters/{first['id']}", json={"service_ids": [9999]}, headers=clerk
    )
    assert bad.status_code == 422
    a = (await walk_in(api, clerk, one["id"], resident_id(1))).json()["ticket"]
    b = (await walk_in(api, clerk, two["id"], resident_id(2))).json()["ticket"]
    assert (await call_next(api, clerk, first["id"])).json()["ticket"]["number"] == b["number"]
    assert (await call_next(api, clerk, first["id"])).status_code == 204  # only service two here
    bound = await staff(api, username="bound", counter_id=second["id"])
    assert (await call_next(api, bound, first["id"])).status_code == 403
    assert (await call_next(api, bound, second["id"])).json()["ticket"]["number"] == a["number"]
    closing = await api.client.patch(f"/api/v1/counters/{second['id']}", json={"open": False}, headers=bound)
    assert closing.status_code == 200 and closing.json()["open"] is False
    shut = await call_next(api, bound, second["id"])
    assert shut.status_code == 422 and shut.json()["code"] == "counter_closed"
    desk = await kiosk(api)
    assert (await call_next(api, desk, first["id"])).status_code == 403  # kiosks issue, staff call


async def test_bundle_items_finished_separately_g17(api: Api) -> None:
    await api.hall(counters=1)
    one = await api.service()
    two = await api.service(name="社保卡补领", department="人社")
    bundle = await api.service(
        name="新生儿出生一件事", department="综合窗口", bundle_of=[one["id"], two["id"]]
    )
    clerk = await staff(api)
    ticket = (await walk_in(api, clerk, bundle["id"], resident_id(1))).json()["ticket"]
    assert ticket["items"] == [
        {"service_id": one["id"], "finished": False},
        {"service_id": two["id"], "finished": False},
    ]
    [counter] = await counters(api, clerk)
    await call_next(api, clerk, counter["id"])
    url = f"/api/v1/tickets/{ticket['number']}/finish"
    part = await api.client.post(url, json={"service_id": one["id"]}, headers=clerk)
    assert part.status_code == 200 and part.json()["ticket"]["status"] == "called"
    assert part.json()["ticket"]["items"][0]["finished"] is True
    again = await api.client.post(url, json={"service_id": one["id"]}, headers=clerk)
    assert again.status_code == 422 and again.json()["code"] == "invalid_ticket_state"
    last = await api.client.post(url, json={"service_id": two["id"]}, headers=clerk)
    assert last.json()["ticket"]["status"] == "finished"


async def test_wait_estimate_people_ahead_times_mean_over_open_counters(api: Api) -> None:
    await api.hall(counters=2)
    service = await api.service()
    clerk = await staff(api)
    first, second = await counters(api, clerk)
    # one served ticket of 8 minutes gives the mean service time of the item
    served = (await walk_in(api, clerk, service["id"], resident_id(1))).json()["ticket"]
    await api.set_clock("2026-12-01T10:00:00+08:00")
    await call_next(api, clerk, first["id"])
    await api.set_clock("2026-12-01T10:08:00+08:00")
    await api.client.post(f"/api/v1/tickets/{served['number']}/finish", headers=clerk)
    for n in range(2, 6):
        assert (await walk_in(api, clerk, service["id"], resident_id(n))).status_code == 201
    waits = [
        x["estimated_wait_s"] for x in (await api.client.get("/api/v1/halls/hall-a/queue")).json()["waiting"]
    ]
    # k ahead × 480 s ÷ 2 open counters; the settable clock runs on in real time between the call and
    # the finish, so the measured service time may be 480 s and a fraction on a busy machine
    assert waits == pytest.approx([0, 240, 480, 720], abs=3)
    await api.client.patch(f"/api/v1/counters/{second['id']}", json={"open": False}, headers=clerk)
    waits = [
        x["estimated_wait_s"] for x in (await api.client.get("/api/v1/halls/hall-a/queue")).json()["waiting"]
    ]
    assert waits == pytest.approx([0, 480, 960, 1440], abs=6)
    missing = await api.client.get("/api/v1/halls/nowhere/queue")
    assert missing.status_code == 404
