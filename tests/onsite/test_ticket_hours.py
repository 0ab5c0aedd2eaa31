"""On-site tickets only while the hall is open that day (docs/api.md "On site": `422 hall_closed`),
and walk-ins only for services that allow them in the hall's mode (rule M2, `422
walk_in_not_allowed`). Through HTTP with the test clock."""

from __future__ import annotations

from tests.conftest import Api
from tests.ids import resident_id


async def _ticket(api: Api, service_id: int, n: int) -> tuple[int, str | None]:
    body = {"service_id": service_id, "id_type": "resident_id", "id_number": resident_id(n), "green": None}
    answer = await api.client.post("/api/v1/halls/hall-a/tickets", json=body, headers=api.admin())
    return answer.status_code, answer.json().get("code") if answer.status_code != 201 else None


async def test_no_ticket_before_the_hall_opens_or_after_it_closes(api: Api) -> None:
    await api.hall()
    service = await api.service()
    await api.set_clock("2026-12-03T04:01:00+08:00")
    assert await _ticket(api, service["id"], 1) == (422, "hall_closed")
    await api.set_clock("2026-12-03T07:59:00+08:00")  # YUYUE_TICKETS_BEFORE_OPEN_MIN: 60 by default
    assert await _ticket(api, service["id"], 1) == (422, "hall_closed")
    await api.set_clock("2026-12-03T08:00:00+08:00")
    assert await _ticket(api, service["id"], 1) == (201, None)
    await api.set_clock("2026-12-03T23:00:00+08:00")
    assert await _ticket(api, service["id"], 2) == (422, "hall_closed")


async def test_walk_in_only_where_the_service_allows_it(api: Api) -> None:
    await api.hall(mode="appointment_first")
    closed_to_walk_ins = await api.service(walk_in_allowed=False)
    await api.set_clock("2026-12-03T10:00:00+08:00")
    assert await _ticket(api, closed_to_walk_ins["id"], 1) == (422, "walk_in_not_allowed")
