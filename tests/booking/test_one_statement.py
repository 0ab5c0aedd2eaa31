"""Decision 0014: a booking without an Idempotency-Key is one statement that commits by itself (on
PostgreSQL; SQLite keeps one transaction), with its SMS, and its session is read with the pre-check.
What a citizen sees must not change: the SMS comes with the booking and never without it, numbers
have no gaps, and a session that has ended is told so (401) before anything else."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import event

from tests.conftest import Api, raw
from tests.ids import resident_id
from yuyue.booking import repository

DAY = "2026-12-03"  # Thursday, inside the city horizon seen from START (Tue 2026-12-01 10:00)


async def _open_slot(api: Api, service_id: int) -> dict:
    return next(s for s in await api.slots(service_id, DAY) if s["status"] == "open")


async def test_the_sms_is_written_with_the_booking_and_only_with_it(api: Api) -> None:
    hall = await api.hall()
    service = await api.service(daily_capacity=7)  # one seat per hourly slot
    slot = await _open_slot(api, service["id"])
    first = await api.login(resident_id(1), phone="13812345678")
    booked = await api.book(first, slot["id"])
    assert booked.status_code == 201, booked.text
    number = booked.json()["number"]
    assert number == f"I{hall['code']}2026120300001"  # rule M12
    rows = await raw(api, "SELECT kind, booking_number, params, phone_masked, status FROM messages")
    assert len(rows) == 1
    kind, booking_number, params, phone_masked, status = rows[0]
    params = params if isinstance(params, dict) else json.loads(params)
    assert (kind, booking_number, phone_masked, status) == ("booked", number, "138****5678", "pending")
    assert params["number"] == number  # the number drawn in the statement, not a stand-in

    # The seat is gone: the statement takes nothing, numbers nothing, writes no SMS.
    second = await api.login(resident_id(2))
    full = await api.book(second, slot["id"])
    assert full.status_code == 409 and full.json()["code"] == "slot_full"
    assert len(await raw(api, "SELECT id FROM messages")) == 1
    assert len(await raw(api, "SELECT id FROM bookings")) == 1

    # The next booking of the hall and day takes the next number: a refusal leaves no gap.
    other = await _open_slot(api, service["id"])
    again = await api.book(second, other["id"])
    assert again.status_code == 201, again.text
    assert again.json()["number"] == f"I{hall['code']}2026120300002"
    numbers = [r[0] for r in await raw(api, "SELECT booking_number FROM messages ORDER BY id")]
    assert numbers == [number, again.json()["number"]]


async def test_an_ended_session_is_told_so_before_anything_else(api: Api) -> None:
    await api.hall()
    service = await api.service()
    slot = await _open_slot(api, service["id"])
    headers = await api.login(resident_id(3))
    keyed = {**headers, "Idempotency-Key": "first-try"}
    made = await api.client.post(
        "/api/v1/appointments", json={"slot_id": slot["id"], "channel": "web"}, headers=keyed
    )
    assert made.status_code == 201, made.text
    assert (await api.client.post("/api/v1/auth/logout", headers=headers)).status_code == 204

    other = await _open_slot(api, (await api.service(name="社会保障卡申领", department="人社"))["id"])
    attempts = {
        "a valid booking": (other["id"], headers),
        "an unknown slot": ("no-such-slot", headers),
        "a slot it already holds": (slot["id"], headers),
        "a replay of its own key": (slot["id"], keyed),
    }
    for what, (slot_id, sent) in attempts.items():
        response = await api.client.post(
            "/api/v1/appointments", json={"slot_id": slot_id, "channel": "web"}, headers=sent
        )
        assert response.status_code == 401, (what, response.text)
        assert response.json()["code"] == "unauthenticated", what
    assert len(await raw(api, "SELECT id FROM bookings")) == 1
    assert len(await raw(api, "SELECT id FROM messages")) == 1


async def test_the_session_is_read_with_the_pre_check_only(api: Api, monkeypatch: Any) -> None:
    """Decision 0085: the deferred session check travels in the booking's `Caller`, and the
    pre-check still judges it in its own one read: no read of the session row of its own, no extra
    round trip. On PostgreSQL (decision 0099) that read is the booking's own statement (asyncpg's
    direct path): a booking that is made is one round trip."""
    await api.hall()
    service = await api.service()
    slot = await _open_slot(api, service["id"])
    first = await api.book(await api.login(resident_id(5)), slot["id"])  # the slot's row exists now
    assert first.status_code == 201, first.text
    headers = await api.login(resident_id(4))
    direct: list[dict[str, Any]] = []
    real = repository.fetch_direct

    async def counted(session: Any, statement: Any, params: dict[str, Any], **kw: Any) -> Any:
        direct.append(params)
        return await real(session, statement, params, **kw)

    monkeypatch.setattr(repository, "fetch_direct", counted)
    engine = api.app.state.engine.sync_engine
    sent: list[str] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", executed)
    try:
        booked = await api.book(headers, slot["id"])
    finally:
        event.remove(engine, "before_cursor_execute", executed)
    assert booked.status_code == 201, booked.text
    reads = [s for s in sent if "citizen_sessions" in s]
    if engine.dialect.name == "postgresql":
        [one] = direct  # the booking's statement, the pre-check and the session's row in it
        assert one["sid"] is not None and "hall_path" in one and "prefix" in one
        assert reads == [] and sent == []
    else:
        assert direct == []
        [read] = reads  # the pre-check's statement, the session row joined
        assert "bookings" in read and "citizens" in read


async def test_the_booking_door_and_the_route_answer_alike(api: Api) -> None:
    """Decision 0099: a booking without a key is answered by `BookingDoor`; one it does not take (a
    charset in the content type, a body `BookIn` refuses) goes on to the FastAPI route, which
    answers as the contract says."""
    await api.hall()
    service = await api.service()
    slot = await _open_slot(api, service["id"])
    path = "/api/v1/appointments"
    door = await api.login(resident_id(6))
    sent = {"slot_id": slot["id"], "channel": "web"}
    by_door = await api.client.post(path, json=sent, headers=door)
    assert by_door.status_code == 201, by_door.text
    route = {**await api.login(resident_id(7)), "Content-Type": "application/json; charset=utf-8"}
    by_route = await api.client.post(path, content=json.dumps(sent), headers=route)
    assert by_route.status_code == 201, by_route.text
    assert by_route.headers["content-type"] == by_door.headers["content-type"]
    assert sorted(by_route.json()) == sorted(by_door.json())
    assert by_route.json()["applicant"] != by_door.json()["applicant"]

    refused = await api.client.post(path, json={**sent, "extra": 1}, headers=door)
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error"
    assert "extra" in refused.json()["detail"]
    no_token = await api.client.post(path, json=sent)
    assert no_token.status_code == 401 and no_token.json()["code"] == "unauthenticated"
    assert len(await raw(api, "SELECT id FROM bookings")) == 2
