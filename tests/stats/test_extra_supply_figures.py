"""Rule G18's figures at the seam of rule G12's remedies (decision 0093): the seats of an
extra Saturday ("5+X") and of extended hours count as released, live and after the nightly rollup,
so their bookings give a true utilisation; days without extra supply are unchanged."""

from __future__ import annotations

from tests.admin.support import new_admin
from tests.conftest import Api, raw
from tests.console.conftest import console_login
from tests.console.test_dashboard import Tables
from tests.stats.test_stats import book, stats

LONG_HOURS = [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "20:00"}]  # 10 hours
FRIDAY, SATURDAY, SUNDAY, MONDAY, TUESDAY = (
    "2026-12-04",
    "2026-12-05",
    "2026-12-06",
    "2026-12-07",
    "2026-12-08",
)


def figures(rows: dict[str, dict]) -> dict[str, tuple[int, int, float | None]]:
    return {day: (row["released"], row["booked"], row["utilisation"]) for day, row in rows.items()}


async def test_extra_days_and_hours_count_as_released_live_and_rolled_up(api: Api) -> None:
    await api.hall()
    service = (await api.service(daily_capacity=7))["id"]  # the hall's 7 hours, one seat each
    made = await api.client.post(
        "/api/v1/admin/capacity-requests",
        json={
            "service_id": service,
            "date_from": SATURDAY,
            "date_to": MONDAY,  # Saturday and Sunday opened, Monday in longer hours
            "daily_capacity": 10,
            "hours": LONG_HOURS,
            "open_days": True,
            "reason": "排队人数超过放号量（5+X）",
        },
        headers=api.admin(),
    )
    assert made.status_code == 201, made.text
    approver = await new_admin(api, "p1b", "platform", 1)
    approved = await api.client.post(
        f"/api/v1/admin/capacity-requests/{made.json()['id']}/approve", headers=approver
    )
    assert approved.status_code == 200, approved.text
    await book(api, 1, f"{service}-{SATURDAY.replace('-', '')}0900", "web")
    await book(api, 2, f"{service}-{SATURDAY.replace('-', '')}1900", "app")  # an extended hour
    await book(api, 3, f"{service}-{MONDAY.replace('-', '')}1900", "web")  # an extended hour
    await book(api, 4, f"{service}-{TUESDAY.replace('-', '')}0900", "web")  # a normal day

    expected = {
        FRIDAY: (7, 0, 0.0),  # no extra supply: as before
        SATURDAY: (10, 2, 0.2),
        SUNDAY: (10, 0, 0.0),
        MONDAY: (10, 1, 0.1),
        TUESDAY: (7, 1, round(1 / 7, 4)),
    }
    live = figures(await stats(api, **{"from": FRIDAY, "to": TUESDAY, "group_by": "day"}))
    assert live == expected
    cells = await api.client.get(
        "/api/v1/admin/stats/fill-by-hour", params={"from": SATURDAY, "to": SATURDAY}, headers=api.admin()
    )
    assert cells.status_code == 200, cells.text
    assert {(c["weekday"], c["hour"]): (c["released"], c["seats"]) for c in cells.json()} == {
        (5, hour): (1, 1 if hour in (9, 19) else 0) for hour in (9, 10, 11, 13, 14, 15, 16, 17, 18, 19)
    }

    await api.set_clock("2026-12-09T03:00:00+08:00")  # the nightly rollup of the days up to Tuesday
    assert [str(r.day) for r in await raw(api, "SELECT day FROM stats_days ORDER BY day")][-1] == TUESDAY
    rolled = figures(await stats(api, **{"from": FRIDAY, "to": TUESDAY, "group_by": "day"}))
    assert rolled == expected
    by_service = await stats(api, **{"from": FRIDAY, "to": TUESDAY, "group_by": "service"})
    assert by_service[str(service)]["released"] == 44
    assert by_service[str(service)]["utilisation"] == round(4 / 44, 4)

    assert (await console_login(api)).status_code == 303  # the dashboard shows the same figures
    page = await api.client.get("/admin/dashboard", params={"from": FRIDAY, "to": TUESDAY})
    assert page.status_code == 200, page.text
    days = Tables(page.text).keyed("table-day")
    assert {day: (int(days[day]["released"]), int(days[day]["booked"])) for day in expected} == {
        day: (released, booked) for day, (released, booked, _) in expected.items()
    }
