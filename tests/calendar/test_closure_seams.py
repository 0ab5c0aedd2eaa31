"""A closed day at its seams (issue 18 item 4, decision 0093): the console asks to confirm a closure
that has bookings, saying how many citizens it cancels and texts; a same-day closure leaves the
tickets of citizens already checked in in the queue (only what is still `booked` is cancelled), and
the hall display says 今日闭厅."""

from __future__ import annotations

from tests.conftest import Api, raw
from tests.console.conftest import console_login, post
from tests.onsite.conftest import book_at, checkin


async def test_console_confirms_a_closure_with_the_number_of_citizens(api: Api) -> None:
    await api.hall()
    service = await api.service()
    await book_at(api, 1, service["id"], "2026-12-03T09:00")
    await book_at(api, 2, service["id"], "2026-12-03T10:00")
    await book_at(api, 3, service["id"], "2026-12-04T10:00")  # another day
    assert (await console_login(api)).status_code == 303
    asked = await post(api, "/admin/units/hall-a/closures", {"date": "2026-12-03", "note": "台风"})
    assert asked.status_code == 200, asked.text
    assert 'id="closure-confirm" data-citizens="2"' in asked.text
    assert "确认设为休息日并通知 2 位市民" in asked.text
    assert (await raw(api, "SELECT count(*) FROM closures"))[0][0] == 0  # nothing changed yet
    assert {r[0] for r in await raw(api, "SELECT status FROM bookings")} == {"booked"}
    done = await post(
        api, "/admin/units/hall-a/closures", {"date": "2026-12-03", "note": "台风", "confirm": "1"}
    )
    assert done.status_code == 303 and "done=closure_added" in done.headers["location"]
    rows = await raw(api, "SELECT slot_day, status, cancelled_by FROM bookings ORDER BY id")
    assert [(str(r[0]), r[1], r[2]) for r in rows] == [
        ("2026-12-03", "cancelled", "hall"),
        ("2026-12-03", "cancelled", "hall"),
        ("2026-12-04", "booked", None),
    ]
    # a day without bookings is set at once, nothing to confirm
    free = await post(api, "/admin/units/hall-a/closures", {"date": "2026-12-07", "note": "检修"})
    assert free.status_code == 303


async def test_same_day_closure_keeps_checked_in_tickets_in_the_queue(api: Api) -> None:
    await api.hall()
    service = await api.service()
    inside = await book_at(api, 1, service["id"], "2026-12-02T09:00")
    later = await book_at(api, 2, service["id"], "2026-12-02T10:00")
    await api.set_clock("2026-12-02T08:30:00+08:00")
    checked = await checkin(api, api.admin(), inside["id_number"])
    assert checked.status_code == 201, checked.text
    ticket = checked.json()["tickets"][0]["number"]
    display = await api.client.get("/halls/hall-a/display")
    assert "今日闭厅" not in display.text

    closed = await api.client.put(
        "/api/v1/admin/units/hall-a/closures/2026-12-02", json={"note": "停电"}, headers=api.admin()
    )
    assert closed.status_code == 200 and closed.json()["cancelled"] == 1  # only the one still to come
    statuses = await raw(api, "SELECT number, status, cancelled_by FROM bookings ORDER BY id")
    assert [(r[1], r[2]) for r in statuses] == [("checked_in", None), ("cancelled", "hall")]
    assert statuses[1][0] == later["booking"]["number"]
    queue = (await api.client.get("/api/v1/halls/hall-a/queue")).json()
    assert [t["number"] for t in queue["waiting"]] == [ticket]  # still called
    display = await api.client.get("/halls/hall-a/display")
    assert 'data-closed="1"' in display.text and "今日闭厅" in display.text and "停电" in display.text

    await api.set_clock("2026-12-02T09:05:00+08:00")
    counters = (await api.client.get("/api/v1/halls/hall-a/counters", headers=api.admin())).json()
    called = await api.client.post(f"/api/v1/counters/{counters[0]['id']}/call-next", headers=api.admin())
    assert called.status_code == 200 and called.json()["ticket"]["number"] == ticket
    await api.set_clock("2026-12-03T00:30:00+08:00")  # the sweep: nobody is a no-show
    rows = await raw(api, "SELECT status FROM bookings ORDER BY id")
    assert [r[0] for r in rows] == ["checked_in", "cancelled"]
    assert "今日闭厅" not in (await api.client.get("/halls/hall-a/display")).text  # 12-03 works
