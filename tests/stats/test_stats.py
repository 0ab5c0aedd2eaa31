"""Figures (rule G18) against a scenario counted by hand, live and after the nightly rollup."""

from __future__ import annotations

import csv
import io

from tests.admin.support import execute, problem
from tests.conftest import Api, raw
from tests.ids import resident_id

DAY = "2026-12-03"


async def book(api: Api, n: int, slot_id: str, channel: str) -> str:
    citizen = await api.login(resident_id(n, birth="19850101"))
    response = await api.client.post(
        "/api/v1/appointments", json={"slot_id": slot_id, "channel": channel}, headers=citizen
    )
    assert response.status_code == 201, response.text
    return str(response.json()["number"])


async def stats(api: Api, **params: str) -> dict[str, dict]:
    response = await api.client.get("/api/v1/admin/stats", params=params, headers=api.admin())
    assert response.status_code == 200, response.text
    return {row["key"]: row for row in response.json()}


def row(released, booked, cancelled, checked_in, served, no_show, utilisation, waitlist):  # noqa: PLR0913
    return {
        "released": released,
        "booked": booked,
        "cancelled": cancelled,
        "checked_in": checked_in,
        "served": served,
        "no_show": no_show,
        "utilisation": utilisation,
        "waitlist": waitlist,
        "mean_wait_s": None,
    }


async def scenario(api: Api) -> tuple[int, int, int]:
    await api.hall()
    a = (await api.service(daily_capacity=7))["id"]  # 7 seats a day
    b = (await api.service(name="社保卡", department="人社", daily_capacity=14))["id"]  # 14
    c = (await api.service(name="护照", department="出入境", daily_capacity=1))["id"]  # 1, at 09:00
    slots_a = [s["id"] for s in await api.slots(a, DAY)]  # one seat a slot
    slot_b, slot_c = [(await api.slots(s, DAY))[0]["id"] for s in (b, c)]
    a1 = await book(api, 1, slots_a[0], "web")
    a2 = await book(api, 2, slots_a[1], "web")
    a3 = await book(api, 3, slots_a[2], "app")
    b1 = await book(api, 4, slot_b, "wechat")
    b2 = await book(api, 5, slot_b, "web")
    c1 = await book(api, 6, slot_c, "api")
    holder = await api.login(resident_id(1, birth="19850101"))
    assert (await api.client.post(f"/api/v1/appointments/{a1}/cancel", headers=holder)).status_code == 200
    waiting = await api.login(resident_id(7, birth="19850101"))
    joined = await api.client.post(
        "/api/v1/waitlist", json={"service_id": c, "dates": [DAY]}, headers=waiting
    )
    assert joined.status_code == 201, joined.text
    # the on-site states, set directly (check-in and calling belong to the on-site work)
    for number, status in (
        (a2, "served"),
        (a3, "no_show"),
        (b1, "checked_in"),
        (b2, "served"),
        (c1, "checked_in"),
    ):
        await execute(api, "UPDATE bookings SET status = :s WHERE number = :n", s=status, n=number)
    return a, b, c


EXPECTED_BY_SERVICE = {
    # released, booked, cancelled, checked in, served, no-show, utilisation, waiting
    "A": row(7, 3, 1, 1, 1, 1, round(2 / 7, 4), 0),
    "B": row(14, 2, 0, 2, 1, 0, round(2 / 14, 4), 0),
    "C": row(1, 1, 0, 1, 0, 0, 1.0, 0),
}
EXPECTED_BY_DAY = {
    "2026-12-01": row(22, 0, 0, 0, 0, 0, 0.0, 1),  # the waiting entry counts on the day it was made
    "2026-12-02": row(22, 0, 0, 0, 0, 0, 0.0, 0),
    DAY: row(22, 6, 1, 4, 2, 1, round(5 / 22, 4), 0),
}
EXPECTED_BY_CHANNEL = {
    "web": {**row(None, 3, 1, 2, 2, 0, None, 1 - 1), "waitlist": 0},
    "app": row(None, 1, 0, 0, 0, 1, None, 0),
    "wechat": row(None, 1, 0, 1, 0, 0, None, 0),
    "api": row(None, 1, 0, 1, 0, 0, None, 0),
}


async def check(api: Api, a: int, b: int, c: int) -> None:
    by_service = await stats(api, **{"from": DAY, "to": DAY, "group_by": "service"})
    names = {str(a): "A", str(b): "B", str(c): "C"}
    assert {
        names[k]: {x: v[x] for x in v if x != "key"} for k, v in by_service.items()
    } == EXPECTED_BY_SERVICE
    by_day = await stats(api, **{"from": "2026-12-01", "to": DAY, "group_by": "day"})
    assert {k: {x: v[x] for x in v if x != "key"} for k, v in by_day.items()} == EXPECTED_BY_DAY
    by_channel = await stats(api, **{"from": DAY, "to": DAY, "group_by": "channel"})
    assert {k: {x: v[x] for x in v if x != "key"} for k, v in by_channel.items()} == EXPECTED_BY_CHANNEL
    by_hall = await stats(api, **{"from": DAY, "to": DAY, "group_by": "hall"})
    assert list(by_hall) == ["hall-a"] and by_hall["hall-a"]["booked"] == 6


async def test_figures_match_a_scenario_counted_by_hand(api: Api) -> None:
    a, b, c = await scenario(api)
    await check(api, a, b, c)  # live
    response = await api.client.get(
        "/api/v1/admin/stats",
        params={"from": DAY, "to": DAY, "group_by": "service"},
        headers={**api.admin(), "Accept": "text/csv"},
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.text)))
    assert lines[0] == [
        "key",
        "released",
        "booked",
        "cancelled",
        "checked_in",
        "served",
        "no_show",
        "utilisation",
        "waitlist",
        "mean_wait_s",
    ]
    assert lines[1] == [str(a), "7", "3", "1", "1", "1", "1", str(round(2 / 7, 4)), "0", ""]

    await api.set_clock("2026-12-04T03:00:00+08:00")  # the rollup of 12-01 … 12-03 has run
    rolled = await raw(api, "SELECT day FROM stats_days ORDER BY day")
    assert [str(r.day) for r in rolled] == ["2026-12-01", "2026-12-02", DAY]
    assert (await raw(api, "SELECT count(*) FROM stats_daily"))[0][0] > 0
    await execute(
        api, "UPDATE bookings SET status = 'cancelled'"
    )  # the rollup, not the bookings, answers now
    await check(api, a, b, c)


async def test_figures_are_scoped(api: Api) -> None:
    await api.hall()
    problem(
        await api.client.get("/api/v1/admin/stats", params={"unit_id": "nowhere"}, headers=api.admin()),
        404,
        "not_found",
    )
    problem(
        await api.client.get("/api/v1/admin/stats", params={"group_by": "month"}, headers=api.admin()),
        422,
        "validation_error",
    )
    problem(await api.client.get("/api/v1/admin/stats"), 401, "unauthenticated")


async def test_a_later_capacity_change_leaves_earlier_days_alone(api: Api) -> None:
    """Rule G18 at the seam of rule G20: a standing capacity change approved for a later date does
    not change the released seats (nor the utilisation) of the days before it, live or rolled up,
    stored slots or not; from its first day the figures count the new capacity."""
    from tests.admin.support import new_admin

    await api.hall()
    service = (await api.service(daily_capacity=7))["id"]  # one seat a slot
    booked = (await api.slots(service, DAY))[0]["id"]  # a stored slot on Thursday
    await book(api, 1, booked, "web")
    friday, monday = "2026-12-04", "2026-12-07"
    made = await api.client.post(
        "/api/v1/admin/capacity-requests",
        json={
            "service_id": service,
            "date_from": friday,
            "date_to": None,
            "daily_capacity": 14,
            "reason": "x",
        },
        headers=api.admin(),
    )
    assert made.status_code == 201, made.text
    l1 = await new_admin(api, "p1b", "platform", 1)
    approved = await api.client.post(
        f"/api/v1/admin/capacity-requests/{made.json()['id']}/approve", headers=l1
    )
    assert approved.status_code == 200, approved.text

    def released(rows: dict[str, dict]) -> dict[str, int]:
        return {day: row["released"] for day, row in rows.items()}

    live = await stats(api, **{"from": "2026-12-01", "to": monday, "group_by": "day"})
    assert released(live) == {"2026-12-01": 7, "2026-12-02": 7, DAY: 7, friday: 14, monday: 14}
    assert live[DAY]["utilisation"] == round(1 / 7, 4)
    await api.set_clock("2026-12-05T03:00:00+08:00")  # the rollup of 12-01 … 12-04 has run
    assert [str(r.day) for r in await raw(api, "SELECT day FROM stats_days ORDER BY day")][-1] == friday
    rolled = await stats(api, **{"from": "2026-12-01", "to": monday, "group_by": "day"})
    assert released(rolled) == released(live)
    by_service = await stats(api, **{"from": "2026-12-01", "to": DAY, "group_by": "service"})
    assert by_service[str(service)]["released"] == 21
