"""The dashboard's figures from the stats service: slot fill by weekday × hour (released seats of
derived and stored slots alike) and the waiting list's length per day."""

from __future__ import annotations

from datetime import date

from tests.admin.support import execute, fill_day, new_admin, problem, unit
from tests.conftest import Api
from tests.ids import resident_id
from yuyue.stats import service as stats


async def fill(api: Api, root: str, first: str, last: str) -> dict[tuple[int, int], tuple[int, int]]:
    async with api.app.state.sessionmaker() as session:
        cells = await stats.fill_by_hour(session, root, date.fromisoformat(first), date.fromisoformat(last))
    return {(c["weekday"], c["hour"]): (c["released"], c["seats"]) for c in cells}


async def test_fill_counts_derived_and_stored_slots(api: Api) -> None:
    await api.hall()  # 09–12, 13–17: seven hourly slots
    service = (await api.service(daily_capacity=10))["id"]  # 2, 2, 2, 1, 1, 1, 1
    await api.hall("hall-b")
    other = (await api.service("hall-b", daily_capacity=7))["id"]
    for n, slot in enumerate((f"{service}-202612030900", f"{service}-202612031000", f"{other}-202612030900")):
        citizen = await api.login(resident_id(n + 1))
        assert (await api.book(citizen, slot)).status_code == 201
    # the booked 10:00 slot's stored capacity changes; the 09:00 row keeps the spread; the other
    # slots have no row at all. Friday 12-04 the hall is closed.
    await execute(api, "UPDATE slots SET capacity = 5 WHERE id = :id", id=f"{service}-202612031000")
    closed = await api.client.put(
        "/api/v1/admin/units/hall-a/closures/2026-12-04", json={"note": "停电"}, headers=api.admin()
    )
    assert closed.status_code == 200, closed.text
    citizen = await api.login(resident_id(9))
    cancelled = await api.book(citizen, f"{service}-202612030900")  # a cancelled booking fills nothing
    assert cancelled.status_code == 201
    number = cancelled.json()["number"]
    assert (
        await api.client.post(f"/api/v1/appointments/{number}/cancel", headers=citizen)
    ).status_code == 200

    hall_a = await fill(api, "platform/hall-a/", "2026-12-03", "2026-12-04")
    thursday = 3
    assert hall_a == {
        (thursday, 9): (2, 1),
        (thursday, 10): (5, 1),
        (thursday, 11): (2, 0),
        (thursday, 13): (1, 0),
        (thursday, 14): (1, 0),
        (thursday, 15): (1, 0),
        (thursday, 16): (1, 0),
    }
    everything = await fill(api, "platform/", "2026-12-03", "2026-12-04")
    assert everything[(thursday, 9)] == (2 + 1, 1 + 1)
    assert everything[(4, 9)] == (1, 0)  # Friday: hall-b works
    # the cells add up to the figures' released seats and utilisation
    async with api.app.state.sessionmaker() as session:
        (row,) = await stats.figures(
            session, "platform/hall-a/", date(2026, 12, 3), date(2026, 12, 4), "hall"
        )
    assert row["released"] == sum(r for r, _ in hall_a.values()) == 13
    assert row["utilisation"] == round(sum(s for _, s in hall_a.values()) / 13, 4)


async def test_waitlist_length_per_day(api: Api) -> None:
    await api.hall()
    await api.hall("hall-b")
    service = (await api.service(daily_capacity=1))["id"]  # one seat a day, at 09:00
    other = (await api.service("hall-b", daily_capacity=1))["id"]
    holder = await api.login(resident_id(1))
    for sid in (service, other):
        assert (await api.book(holder, f"{sid}-202612030900")).status_code == 201
    entries = {}
    for n, (sid, when) in enumerate(
        (
            (service, "2026-12-01T10:00:00+08:00"),
            (service, "2026-12-01T11:00:00+08:00"),
            (other, "2026-12-02T09:00:00+08:00"),
        )
    ):
        await api.set_clock(when)
        citizen = await api.login(resident_id(10 + n))
        joined = await api.client.post(
            "/api/v1/waitlist", json={"service_id": sid, "dates": ["2026-12-03"]}, headers=citizen
        )
        assert joined.status_code == 201, joined.text
        entries[n] = (citizen, joined.json()["id"])
    await api.set_clock("2026-12-02T15:00:00+08:00")
    citizen, entry = entries[1]
    assert (await api.client.delete(f"/api/v1/waitlist/{entry}", headers=citizen)).status_code == 204

    async def length(root: str) -> list[tuple[str, int, int, int | None]]:
        async with api.app.state.sessionmaker() as session:
            rows = await stats.waitlist_length(session, root, date(2026, 11, 30), date(2026, 12, 3))
        return [(r["day"], r["joined"], r["left"], r["waiting"]) for r in rows]

    assert await length("platform/") == [
        ("2026-11-30", 0, 0, 0),
        ("2026-12-01", 2, 0, 2),
        ("2026-12-02", 1, 1, 2),  # today: waiting now
        ("2026-12-03", 0, 0, None),  # still to come
    ]
    assert await length("platform/hall-a/") == [
        ("2026-11-30", 0, 0, 0),
        ("2026-12-01", 2, 0, 2),
        ("2026-12-02", 0, 1, 1),
        ("2026-12-03", 0, 0, None),
    ]
    # from a later start, the entries made before it are carried in
    async with api.app.state.sessionmaker() as session:
        rows = await stats.waitlist_length(session, "platform/", date(2026, 12, 2), date(2026, 12, 2))
    assert [(r["joined"], r["left"], r["waiting"]) for r in rows] == [(1, 1, 2)]


async def test_fill_and_waitlist_over_http_inside_the_admins_scope(api: Api) -> None:
    """GET /api/v1/admin/stats/fill-by-hour and /stats/waitlist: the service's figures for the
    caller's subtree only (rule G18)."""
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    await unit(api, "d2", "district", "platform")
    service = (await api.service("s1", daily_capacity=7))["id"]  # one seat a slot
    district, stranger = await new_admin(api, "d1-1", "d1", 1), await new_admin(api, "d2-1", "d2", 1)
    day = "2026-12-03"
    await fill_day(api, service, day)
    waiting = await api.login(resident_id(30, birth="19880101"))
    joined = await api.client.post(
        "/api/v1/waitlist", json={"service_id": service, "dates": [day], "channel": "app"}, headers=waiting
    )
    assert joined.status_code == 201, joined.text

    cells = await api.client.get(
        "/api/v1/admin/stats/fill-by-hour", params={"from": day, "to": day}, headers=district
    )
    assert cells.status_code == 200, cells.text
    assert {(c["weekday"], c["hour"]): (c["released"], c["seats"], c["fill"]) for c in cells.json()} == {
        (3, hour): (1, 1, 1.0) for hour in (9, 10, 11, 13, 14, 15, 16)
    }
    today = (await api.client.get("/api/v1/test/clock")).json()["now"][:10]
    lengths = await api.client.get(
        "/api/v1/admin/stats/waitlist", params={"unit_id": "s1", "from": today, "to": today}, headers=district
    )
    assert lengths.status_code == 200, lengths.text
    assert lengths.json() == [{"day": today, "joined": 1, "left": 0, "waiting": 1}]
    for path in ("/api/v1/admin/stats/fill-by-hour", "/api/v1/admin/stats/waitlist"):
        problem(await api.client.get(path, params={"unit_id": "d1"}, headers=stranger), 403, "forbidden")
    mine = await api.client.get(
        "/api/v1/admin/stats/fill-by-hour", params={"from": day, "to": day}, headers=stranger
    )
    assert mine.status_code == 200 and mine.json() == []  # d2 has no hall: nothing of d1 shows
