"""Rule G12's remedies by capacity request (rule G20, decision 0093): extended hours on given dates
and an extra weekend day ("5+X"), approved like any capacity request, then booked, checked in and
served on site through HTTP."""

from __future__ import annotations

from typing import Any

from tests.admin.support import new_admin, problem
from tests.conftest import Api, raw
from tests.console.conftest import console_login, post
from tests.ids import resident_id
from tests.onsite.conftest import checkin

LONG_HOURS = [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "20:00"}]


async def _request(api: Api, service_id: int, **body: Any) -> Any:
    return await api.client.post(
        "/api/v1/admin/capacity-requests",
        json={"service_id": service_id, "reason": "排队人数超过放号量（5+X）", **body},
        headers=api.admin(),
    )


async def _day(api: Api, service_id: int, day: str) -> dict[str, Any]:
    answer = await api.client.get(
        f"/api/v1/services/{service_id}/availability", params={"from": day, "to": day}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["days"][0])


async def test_an_extra_saturday_with_longer_hours_is_requested_approved_booked_and_served(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat in each of the hall's 7 hours
    saturday = await _day(api, service["id"], "2026-12-05")
    assert saturday["working_day"] is False and saturday["slots"] == []
    made = await _request(
        api,
        service["id"],
        date_from="2026-12-05",
        date_to="2026-12-06",
        daily_capacity=10,
        hours=LONG_HOURS,
        open_days=True,
    )
    assert made.status_code == 201, made.text
    assert made.json() == {**made.json(), "status": "pending", "hours": LONG_HOURS, "open_days": True}
    assert (await _day(api, service["id"], "2026-12-05"))["slots"] == []  # nothing before approval
    approver = await new_admin(api, "p1b", "platform", 1)
    approved = await api.client.post(
        f"/api/v1/admin/capacity-requests/{made.json()['id']}/approve", headers=approver
    )
    assert approved.status_code == 200, approved.text

    for day in ("2026-12-05", "2026-12-06"):  # Saturday and Sunday both opened, 10 hours each
        opened = await _day(api, service["id"], day)
        assert opened["working_day"] is True
        assert [s["start"][11:16] for s in opened["slots"]][-3:] == ["17:00", "18:00", "19:00"]
        assert [s["capacity"] for s in opened["slots"]] == [1] * 10
    assert (await _day(api, service["id"], "2026-12-07"))["slots"][-1]["start"][
        11:16
    ] == "16:00"  # Monday as before

    citizen = await api.login(resident_id(1, birth="19900101"))
    booked = await api.book(citizen, f"{service['id']}-202612051900")
    assert booked.status_code == 201, booked.text
    # on the day: check-in and a walk-in ticket in the extended evening hour
    await api.set_clock("2026-12-05T18:30:00+08:00")
    checked = await checkin(api, api.admin(), resident_id(1, birth="19900101"))
    assert checked.status_code == 201, checked.text
    walk_in = await api.client.post(
        "/api/v1/halls/hall-a/tickets",
        json={
            "service_id": service["id"],
            "id_type": "resident_id",
            "id_number": resident_id(2),
            "green": None,
        },
        headers=api.admin(),
    )
    assert walk_in.status_code == 201, walk_in.text
    await api.set_clock("2026-12-06T00:30:00+08:00")  # the sweep: the extra day is no closed day
    rows = await raw(api, "SELECT status, cancelled_by FROM bookings")
    assert [tuple(r) for r in rows] == [("checked_in", None)]


async def test_extended_hours_alone_and_bad_requests(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    problem(
        await _request(
            api, service["id"], date_from="2026-12-07", date_to=None, daily_capacity=9, hours=LONG_HOURS
        ),
        422,
        "validation_error",
    )  # a standing change has no hours
    shorter = [{"start": "09:00", "end": "12:00"}]  # drops the afternoon: not an extension
    problem(
        await _request(
            api, service["id"], date_from="2026-12-07", date_to="2026-12-07", daily_capacity=3, hours=shorter
        ),
        422,
        "validation_error",
    )
    made = await _request(
        api, service["id"], date_from="2026-12-07", date_to="2026-12-07", daily_capacity=10, hours=LONG_HOURS
    )
    approver = await new_admin(api, "p1b", "platform", 1)
    assert (
        await api.client.post(
            f"/api/v1/admin/capacity-requests/{made.json()['id']}/approve", headers=approver
        )
    ).status_code == 200
    monday = await _day(api, service["id"], "2026-12-07")
    assert len(monday["slots"]) == 10 and monday["slots"][-1]["start"][11:16] == "19:00"
    assert (await _day(api, service["id"], "2026-12-12"))["slots"] == []  # a Saturday outside: closed


async def test_the_console_requests_longer_hours_and_an_extra_day(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    assert (await console_login(api)).status_code == 303
    made = await post(
        api,
        "/admin/capacity",
        {
            "service_id": str(service["id"]),
            "date_from": "2026-12-05",
            "date_to": "2026-12-05",
            "daily_capacity": "10",
            "hours": "09:00-12:00 13:00-20:00",
            "open_days": "1",
            "reason": "排队人数多，周六加班（5+X）",
        },
    )
    assert made.status_code == 303, made.text
    rows = await raw(api, "SELECT hours, open_days FROM capacity_requests")
    assert len(rows) == 1 and bool(rows[0][1]) is True
    page = (await api.client.get("/admin/capacity")).text
    assert "办理时间 09:00-12:00 13:00-20:00" in page and 'data-open-days="1"' in page
