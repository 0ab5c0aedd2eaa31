"""Decision 0015: a booking made inside a transaction (with an Idempotency-Key, through a partner)
ends with its own statement: everything that needs the booking's number (the key's answer, the SMS,
the partner's row and webhook) is written by that statement, so the hall's counter row, locked by
it, is held only until COMMIT. What the citizen and the partner see does not change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.channels.conftest import register
from tests.conftest import Api, raw
from tests.ids import resident_id

DAY = "2026-12-03"


@contextmanager
def transactions(api: Api) -> Iterator[list[list[str]]]:
    """The statements of every transaction the app commits meanwhile, one list per transaction (a
    statement in autocommit is one: the session is then not committed, `db.committable`)."""
    engine = api.app.state.engine.sync_engine
    open_: dict[int, list[str]] = {}
    done: list[list[str]] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            done.append([" ".join(statement.split())])  # its own transaction (nothing to commit after)
            return
        open_.setdefault(id(conn), []).append(" ".join(statement.split()))

    def committed(conn: Any) -> None:
        done.append(open_.pop(id(conn), []))

    event.listen(engine, "before_cursor_execute", executed)
    event.listen(engine, "commit", committed)
    try:
        yield done
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        event.remove(engine, "commit", committed)


def assert_counter_last(api: Api, done: list[list[str]]) -> None:
    """On PostgreSQL the transaction that drew a number ends with the statement that drew it."""
    if api.app.state.engine.dialect.name != "postgresql":
        return  # SQLite serialises writers: one statement after the other, as before
    booking = [statements for statements in done if any("booking_counters" in s for s in statements)]
    assert len(booking) == 1, booking
    assert "booking_counters" in booking[0][-1], booking[0][-3:]


async def test_a_keyed_booking_ends_with_its_statement(api: Api) -> None:
    hall = await api.hall()
    service = await api.service()
    slot = next(s for s in await api.slots(service["id"], DAY) if s["status"] == "open")
    headers = {**await api.login(resident_id(7), phone="13812345678"), "Idempotency-Key": "k-1"}
    body = {"slot_id": slot["id"], "channel": "web"}
    with transactions(api) as done:
        first = await api.client.post("/api/v1/appointments", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert_counter_last(api, done)
    number = first.json()["number"]
    assert number == f"I{hall['code']}2026120300001"

    # The key's answer is the booking's, its number drawn in the statement: the replay is the same.
    [(status, stored)] = await raw(api, "SELECT status_code, body FROM idempotency_keys")
    assert status == 201 and json.loads(stored) == first.json()
    replay = await api.client.post("/api/v1/appointments", json=body, headers=headers)
    assert (replay.status_code, replay.json()) == (201, first.json())
    [(sms,)] = await raw(api, "SELECT booking_number FROM messages")
    assert sms == number

    # A refused keyed booking leaves no answer: the same key may try again (and is refused again).
    other = {**headers, "Idempotency-Key": "k-2"}
    again = await api.client.post("/api/v1/appointments", json=body, headers=other)
    assert again.status_code == 409, again.text
    assert len(await raw(api, "SELECT key FROM idempotency_keys")) == 1


async def test_a_partner_booking_ends_with_its_statement(api: Api) -> None:
    await api.hall()
    service = await api.service()
    slot = next(s for s in await api.slots(service["id"], DAY) if s["status"] == "open")
    partner = await register(api)
    hook = await api.client.put(
        "/api/v1/admin/api-clients/wechat-gz/webhook",
        json={"url": "https://93.184.216.34/hook"},  # a public address (decision 0094)
        headers=api.admin(),
    )
    assert hook.status_code == 200, hook.text
    citizen = {"name": "李四", "id_type": "resident_id", "id_number": resident_id(8), "phone": "13800138001"}
    login = await partner.call("POST", "/api/v1/channel/citizens/login", citizen)
    partner.citizen_token = login.json()["token"]
    with transactions(api) as done:
        booked = await partner.call(
            "POST", "/api/v1/channel/appointments", {"slot_id": slot["id"]}, idempotency="p-1"
        )
    assert booked.status_code == 201, booked.text
    assert_counter_last(api, done)
    number = booked.json()["number"]
    assert booked.json()["channel"] == "wechat"  # rule T1
    assert await raw(api, "SELECT number, client_id FROM channel_bookings") == [(number, "wechat-gz")]
    rows = await raw(api, "SELECT channel, booking_number, params FROM messages ORDER BY id")
    assert sorted((r[0], r[1]) for r in rows) == [("sms", number), ("webhook", number)]
    webhook = next(r[2] for r in rows if r[0] == "webhook")
    webhook = webhook if isinstance(webhook, dict) else json.loads(webhook)
    assert webhook["number"] == number and webhook["client_id"] == "wechat-gz"
    [(status, stored)] = await raw(api, "SELECT status_code, body FROM idempotency_keys")
    assert status == 201 and json.loads(stored) == booked.json()


async def test_one_key_for_two_requests_at_once_books_one(api: Api) -> None:
    """The same key sent at once with two different bodies: one books, the other is told the key
    was used for another request, and nothing of it is written (its statement failed whole)."""
    await api.hall()
    first = await api.service()
    second = await api.service(name="社会保障卡申领", department="人社")
    slots = [
        next(s for s in await api.slots(service["id"], DAY) if s["status"] == "open")["id"]
        for service in (first, second)
    ]
    headers = {**await api.login(resident_id(9)), "Idempotency-Key": "same"}
    answers = await asyncio.gather(
        *(
            api.client.post("/api/v1/appointments", json={"slot_id": slot, "channel": "web"}, headers=headers)
            for slot in slots
        )
    )
    codes = sorted((a.status_code, a.json().get("code")) for a in answers)
    assert codes == [(201, None), (422, "idempotency_key_reused")], [a.text for a in answers]
    assert len(await raw(api, "SELECT id FROM bookings")) == 1
    assert len(await raw(api, "SELECT id FROM messages")) == 1
    assert len(await raw(api, "SELECT key FROM idempotency_keys")) == 1
