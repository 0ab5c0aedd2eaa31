"""Slot rows before the release (issue 21, decision 0104): a quarter hour before a day opens for
off-site booking (rule G10, 18:00 on the 10th working day before), the job `open_slots_ahead` stores
the day's slot rows, none booked, so the first booking of each slot at the release is the one
statement. What anybody sees must not change: availability, the capacity a later edit gives
(rule G20), the release to the waiting list first (rule G11)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from tests.admin.support import new_admin, unit
from tests.conftest import Api, raw
from tests.ids import resident_id
from yuyue.booking import repository

NEW_DAY = "2026-12-15"  # the 10th working day after Tue 2026-12-01: opens at 18:00 that day
NEXT_DAY = "2026-12-16"  # opens at 18:00 on 12-02


async def _rows(api: Api, day: str) -> list[tuple[Any, ...]]:
    found = await raw(api, f"SELECT id, capacity, booked FROM slots WHERE day = '{day}' ORDER BY id")
    return [tuple(row) for row in found]


async def test_the_day_opening_next_gets_its_slot_rows_a_quarter_hour_ahead(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=14)  # 2 seats in each of the 7 hourly slots
    shown = await api.slots(service["id"], NEW_DAY)
    assert {s["status"] for s in shown} == {"not_yet_open"}

    # The 17:30 run covers (17:30, 17:45]: not 18:00. The test clock runs on from what is set, so
    # this moment is far enough from 17:45 for the catch-up of the day to finish before it.
    await api.set_clock("2026-12-01T17:44:00+08:00")
    assert await _rows(api, NEW_DAY) == []
    await api.set_clock("2026-12-01T17:45:00+08:00")
    stored = await _rows(api, NEW_DAY)
    assert stored == [(s["id"], s["capacity"], 0) for s in shown]  # the figures availability derives
    assert await _rows(api, NEXT_DAY) == []  # tomorrow's release is tomorrow's
    assert await api.slots(service["id"], NEW_DAY) == shown  # nobody sees a difference

    citizen = await api.login(resident_id(1))
    early = await api.book(citizen, shown[0]["id"])
    assert early.status_code == 422 and early.json()["code"] == "not_open_yet"  # a row opens nothing

    await api.set_clock("2026-12-01T18:00:00+08:00")  # the release run commits before this answers
    direct: list[dict[str, Any]] = []
    real = repository.fetch_direct

    async def counted(session: Any, statement: Any, params: dict[str, Any], **kw: Any) -> Any:
        direct.append(params)
        return await real(session, statement, params, **kw)

    engine = api.app.state.engine.sync_engine
    sent: list[str] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(" ".join(statement.split()))

    await api.slots(service["id"], NEW_DAY)  # the caches are loaded; the booking reloads nothing
    repository.fetch_direct = counted  # type: ignore[assignment]
    event.listen(engine, "before_cursor_execute", executed)
    try:
        booked = await api.book(citizen, shown[0]["id"])
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        repository.fetch_direct = real  # type: ignore[assignment]
    assert booked.status_code == 201, booked.text
    if engine.dialect.name == "postgresql":  # the first booking of the slot: one statement
        # (and, in the release's first seconds, whether its run has committed: decision 0092)
        # (and the periodic one-row reads of `platform_state`: the clock's offset, the version)
        others = [s for s in sent if "job_runs" not in s and "FROM platform_state" not in s]
        assert len(direct) == 1 and others == [], sent
    assert not [s for s in sent if s.startswith("INSERT INTO slots")]
    assert (await _rows(api, NEW_DAY))[0] == (shown[0]["id"], 2, 1)


async def test_a_capacity_change_approved_after_the_rows_exist_reaches_them(api: Api) -> None:
    """The seam of the stored rows and rule G20: an approved change for the day gives its stored
    rows the new capacity, as it does any slot somebody booked."""
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    service = await api.service("s1", daily_capacity=7)  # 1 seat a slot
    street = await new_admin(api, "s1-2", "s1", 2)
    district = await new_admin(api, "d1-1", "d1", 1)
    await api.set_clock("2026-12-01T17:45:00+08:00")
    assert [row[1] for row in await _rows(api, NEW_DAY)] == [1] * 7

    made = await api.client.post(
        "/api/v1/admin/capacity-requests",
        json={
            "service_id": service["id"],
            "date_from": NEW_DAY,
            "date_to": NEW_DAY,
            "daily_capacity": 21,
            "reason": "5+X",
        },
        headers=street,
    )
    assert made.status_code == 201, made.text
    approved = await api.client.post(
        f"/api/v1/admin/capacity-requests/{made.json()['id']}/approve",
        json={"note": "同意"},
        headers=district,
    )
    assert approved.status_code == 200, approved.text
    assert [row[1:] for row in await _rows(api, NEW_DAY)] == [(3, 0)] * 7
    shown = await api.slots(service["id"], NEW_DAY)
    assert [s["capacity"] for s in shown] == [3] * 7

    await api.set_clock("2026-12-01T18:00:00+08:00")
    answers = [
        (await api.book(await api.login(resident_id(n)), shown[0]["id"])).status_code for n in range(4)
    ]
    assert answers == [201, 201, 201, 409]  # 3 seats now, where the job stored 1
