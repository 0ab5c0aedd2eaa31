"""A day of one hall from opening to close: check-ins, walk-ins, a green ticket, two counters,
misses marked by the sweep, and the figures at the end (rules T3, T4, G10, G13, M3)."""

from __future__ import annotations

from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.onsite.conftest import book_at, call_next, checkin, counters, kiosk, staff, walk_in

DAY = "2026-12-03"


def t(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00+08:00"


async def test_a_day_of_a_hall(api: Api) -> None:
    await api.hall(counters=2)
    service = await api.service()
    plan = {1: "09:00", 2: "09:00", 3: "10:00", 4: "10:00", 5: "11:00", 6: "14:00"}
    booked = {n: await book_at(api, n, service["id"], f"{DAY}T{start}") for n, start in plan.items()}
    desk, clerk = await kiosk(api), await staff(api)
    first, second = await counters(api, clerk)
    served: list[str] = []

    async def serve(counter: dict) -> None:
        answer = await call_next(api, clerk, counter["id"])
        if answer.status_code == 200:
            served.append(answer.json()["ticket"]["call_number"])

    await api.set_clock(t("08:20"))
    assert (await checkin(api, desk, booked[1]["id_number"])).status_code == 201
    assert (await walk_in(api, desk, service["id"], resident_id(20))).status_code == 201
    await api.set_clock(t("09:05"))
    assert (await checkin(api, desk, booked[2]["id_number"])).status_code == 201
    green = await walk_in(api, clerk, service["id"], resident_id(21), green="military")
    assert green.status_code == 201
    await serve(first)  # G001: green first
    await serve(second)  # A001 (booking 1, its slot under way) before the 08:20 walk-in
    await api.set_clock(t("09:20"))
    await serve(first)  # A002 (booking 2)
    await serve(second)  # W001
    await api.set_clock(t("09:30"))
    assert (await checkin(api, desk, booked[3]["id_number"])).status_code == 201  # 10:00 slot, early
    await serve(first)
    await api.set_clock(t("10:00"))  # the 09:00 slot is over: nobody of it missed
    await api.set_clock(t("11:00"))  # booking 4 (10:00) never came: marked at 11:00
    late = await checkin(api, desk, booked[4]["id_number"])
    assert late.status_code == 422 and late.json()["code"] == "checkin_too_late"
    assert (await walk_in(api, desk, service["id"], resident_id(22))).status_code == 201
    assert (await checkin(api, desk, booked[5]["id_number"])).status_code == 201  # 11:00 slot, on time
    await serve(first)  # A004 inside its slot before the 11:00 walk-in
    await serve(second)  # W002
    await serve(first)  # finishes A004; nobody left
    await serve(second)
    await api.set_clock(t("15:00"))  # booking 6 (14:00) missed too
    await api.set_clock(t("17:00"))  # the hall closes

    assert served == ["G001", "A001", "A002", "W001", "A003", "A004", "W002"]
    statuses = dict(await raw(api, "SELECT status, count(*) FROM bookings GROUP BY status"))
    assert statuses == {"served": 4, "no_show": 2}
    kinds = dict(await raw(api, "SELECT kind, count(*) FROM tickets GROUP BY kind"))
    assert kinds == {"appointment": 4, "walk_in": 2, "green": 1}
    assert dict(await raw(api, "SELECT status, count(*) FROM tickets GROUP BY status")) == {"finished": 7}
    queue = (await api.client.get("/api/v1/halls/hall-a/queue")).json()
    assert queue["waiting"] == [] and queue["serving"] == []
    owed = await raw(
        api, "SELECT kind, dedup_key FROM messages WHERE kind IN ('no_show', 'banned') ORDER BY id"
    )
    assert [(m.kind, m.dedup_key) for m in owed] == [
        ("no_show", f"no_show:{booked[n]['booking']['number']}") for n in (4, 6)
    ]
    missed = (await api.client.get("/api/v1/me", headers=booked[4]["headers"])).json()
    assert missed["no_shows"] == 1 and missed["bans"] == []
    mine = (
        await api.client.get(
            f"/api/v1/appointments/{booked[1]['booking']['number']}", headers=booked[1]["headers"]
        )
    ).json()
    assert mine["status"] == "served" and mine["ticket"]["status"] == "finished"
