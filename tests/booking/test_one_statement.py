"""Decision 0014: a booking without an Idempotency-Key is one statement that commits by itself (on
PostgreSQL; SQLite keeps one transaction), with its SMS, and its session is read with the pre-check.
What a citizen sees must not change: the SMS comes with the booking and never without it, numbers
have no gaps, and a session that has ended is told so (401) before anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event, text

from tests.conftest import Api, harness_for, raw
from tests.ids import resident_id
from yuyue.app import create_app
from yuyue.booking import repository
from yuyue.catalogue.service import clear_caches
from yuyue.config import Settings

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
    # The first booking reads the caches' configuration version afresh (the writes above were this
    # process's: decision 0103) and loads the service, policy and calendar under it; however slow
    # the machine, the booking measured below reloads none of them.
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
        # Nothing but, after a pause, the periodic one-row reads of `platform_state` (the settable
        # clock's offset, the caches' configuration version), which are not the booking's.
        assert reads == [] and [s for s in sent if "FROM platform_state" not in s] == []
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


# 4,000 other citizens with five past bookings each, on a slot of their own.
HISTORY = """
WITH c AS (
    INSERT INTO citizens (id_type, id_hash, id_enc, id_masked, name_enc, name_masked, phone_enc,
                          phone_masked, gender, created_at, updated_at)
    SELECT id_type, md5(id_hash || g), id_enc, id_masked, name_enc, name_masked, phone_enc,
           phone_masked, gender, created_at, updated_at
      FROM (SELECT * FROM citizens LIMIT 1) one, generate_series(1, 4000) g
    RETURNING id
), s AS (
    INSERT INTO slots (id, service_id, day, start, "end", capacity, booked)
    VALUES ('history', :service, '2026-11-02', '2026-11-02 09:00', '2026-11-02 10:00', 100000, 0)
)
INSERT INTO bookings (number, citizen_id, service_id, hall_id, slot_id, slot_day, slot_start, slot_end,
                      quantity, channel, business_types, status, live_key, rebooked, created_at, updated_at)
SELECT 'H' || c.id || '-' || k, c.id, :service, :hall, 'history', '2026-11-02', '2026-11-02 09:00',
       '2026-11-02 10:00', 1, 'web', '[]', 'served', 'h:' || c.id || ':' || k, false,
       '2026-10-30 10:00', '2026-10-30 10:00'
  FROM c, generate_series(1, 5) k
"""


async def test_postgresql_plans_the_booking_statement_once(settings: Settings) -> None:
    """Decision 0103: the live statuses are written in the statement, so PostgreSQL's generic plan
    can use the partial index on live bookings and is chosen after the first five executions; with
    them bound it planned the statement afresh on every booking (about half its cost there). One
    pooled connection, so every booking runs on the connection whose prepared statements are read."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's plan cache")
    clear_caches()
    app = create_app(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}), run_jobs=False)
    async with harness_for(app) as api:
        await api.hall()
        service = await api.service()
        slots = [s for s in await api.slots(service["id"], DAY) if s["status"] == "open"]
        await api.login(resident_id(199))
        async with app.state.engine.begin() as conn:  # a city's bookings, analysed (as autovacuum would)
            await conn.execute(text(HISTORY), {"service": service["id"], "hall": service["hall_id"]})
        async with app.state.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
        for k in range(9):
            booked = await api.book(await api.login(resident_id(200 + k)), slots[k % len(slots)]["id"])
            assert booked.status_code == 201, booked.text
        plans = await raw(
            api,
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE 'WITH pre AS%'",
        )
    clear_caches()
    assert len(plans) == 1, plans
    generic, custom = plans[0]
    assert custom <= 5 and generic >= 4, plans
