"""Delivery: retries with backoff for temporary failures, none for permanent ones, dead letters
visible to admins, receipts, and workers that die or race without losing or duplicating a message."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.notify.conftest import SECRET, Counting, Flaky, book_one, outbox, sent, setup_service
from yuyue.booking.commands import book
from yuyue.booking.rules import BookRequest
from yuyue.clock import TZ
from yuyue.notify import delivery
from yuyue.notify.config import NotifySettings
from yuyue.notify.delivery import backoff, claim_batch, deliver_due, display_params
from yuyue.notify.outbox import first_attempt_at
from yuyue.notify.providers import ConsoleProvider, Outgoing


def console(api: Api) -> ConsoleProvider:
    return ConsoleProvider(api.app.state.sessionmaker)


async def deliver(api: Api, provider: Any = None) -> int:
    return await deliver_due(api.app.state.sessionmaker, SECRET, provider or console(api))


async def many_bookings(api: Api, service_id: int, count: int) -> list[str]:
    """`count` bookings made straight through the booking service (quicker than HTTP)."""
    slots = [s for s in await api.slots(service_id, "2026-12-03") if s["status"] == "open"]
    numbers = []
    for i in range(count):
        await api.login(resident_id(100 + i), phone=f"1390000{i:04d}")
    citizens = [row[0] for row in await raw(api, "SELECT id FROM citizens ORDER BY id")]
    async with api.app.state.sessionmaker() as session:
        for i, citizen_id in enumerate(citizens[:count]):
            request = BookRequest(slot_id=slots[i % len(slots)]["id"], channel="web")
            numbers.append((await book(session, citizen_id, request))["number"])
        await session.commit()
    return numbers


async def test_temporary_failures_are_retried_with_backoff(api: Api) -> None:
    service_ = await setup_service(api)
    booking = await book_one(api, service_["id"])
    flaky = Flaky(console(api), failures=2, temporary=True)
    assert await deliver(api, flaky) == 1
    row = (await outbox(api))[0]
    assert row.status == "pending" and row.attempts == 1
    assert "isv.BUSINESS_LIMIT_CONTROL" in row.last_error
    first_retry = row.next_attempt_at if isinstance(row.next_attempt_at, datetime) else None
    # backoff: 30 s ± 25 % after the first failure; nothing is due before that
    assert await deliver(api, flaky) == 0
    await api.set_clock("2026-12-01T10:00:45+08:00")
    assert await deliver(api, flaky) == 1
    row = (await outbox(api))[0]
    assert row.status == "pending" and row.attempts == 2
    if first_retry is not None:
        assert row.next_attempt_at > first_retry
    await api.set_clock("2026-12-01T10:03:00+08:00")  # second backoff: 60 s ± 25 %
    assert await deliver(api, flaky) == 1
    row = (await outbox(api))[0]
    assert row.status == "sent" and row.attempts == 3 and row.provider == "flaky"
    assert row.provider_ref == f"console:{row.idem_key}"  # the receipt
    assert len(flaky.calls) == 3 and len(set(flaky.calls)) == 1  # one idempotency key throughout
    messages = await sent(api)
    assert len(messages) == 1 and booking["number"] in messages[0]["text"]
    attempts = await raw(api, "SELECT attempt, outcome, code FROM delivery_attempts ORDER BY id")
    assert [tuple(a) for a in attempts] == [
        (1, "temporary", "isv.BUSINESS_LIMIT_CONTROL"),
        (2, "temporary", "isv.BUSINESS_LIMIT_CONTROL"),
        (3, "sent", "OK"),
    ]


def test_backoff_grows_exponentially_with_jitter() -> None:
    settings = NotifySettings(backoff_base_s=30, backoff_max_s=3600)
    for attempts, base in ((1, 30), (2, 60), (3, 120), (4, 240), (10, 3600)):
        delays = {backoff(settings, attempts).total_seconds() for _ in range(50)}
        assert all(0.75 * base <= d <= 1.25 * base for d in delays), (attempts, delays)
        assert len(delays) > 1  # jitter


async def test_permanent_failure_is_dead_at_once_and_admins_see_it(api: Api) -> None:
    service_ = await setup_service(api)
    booking = await book_one(api, service_["id"])
    flaky = Flaky(console(api), failures=1, temporary=False)
    await deliver(api, flaky)
    row = (await outbox(api))[0]
    assert row.status == "dead" and row.attempts == 1
    await api.set_clock("2026-12-02T10:00:00+08:00")
    assert await deliver(api, flaky) == 0  # never retried on its own
    assert len(flaky.calls) == 1
    listed = await api.client.get("/api/v1/admin/notifications?status=dead", headers=api.admin())
    assert listed.status_code == 200, listed.text
    [dead] = listed.json()
    assert dead["kind"] == "booked" and dead["booking_number"] == booking["number"]
    assert dead["phone"] == "138****5678" and "13812345678" not in listed.text
    assert "isv.MOBILE_NUMBER_ILLEGAL" in dead["last_error"]
    one = await api.client.get(f"/api/v1/admin/notifications/{dead['id']}", headers=api.admin())
    assert one.json()["receipts"][0]["outcome"] == "permanent"
    # an admin sends it again (audited); it then goes out
    retried = await api.client.post(f"/api/v1/admin/notifications/{dead['id']}/retry", headers=api.admin())
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "pending"
    assert await raw(api, "SELECT action FROM audit_log WHERE action = 'notification.retry'")
    again = await api.client.post(f"/api/v1/admin/notifications/{dead['id']}/retry", headers=api.admin())
    assert again.status_code == 422 and again.json()["code"] == "not_retryable"
    assert [m["kind"] for m in await sent(api)] == ["booked"]
    assert (await outbox(api))[0].status == "sent"


async def test_admin_endpoints_need_an_admin(api: Api) -> None:
    response = await api.client.get("/api/v1/admin/notifications")
    assert response.status_code == 401
    citizen = await api.login(resident_id(9))
    assert (await api.client.get("/api/v1/admin/notifications", headers=citizen)).status_code == 401


async def test_too_many_temporary_failures_end_dead(api: Api, notify_config: dict) -> None:
    notify_config.update(max_attempts=3, backoff_base_s=1)
    service_ = await setup_service(api)
    await book_one(api, service_["id"])
    flaky = Flaky(console(api), failures=100, temporary=True)
    for minute in range(1, 6):
        await deliver(api, flaky)
        await api.set_clock(f"2026-12-01T10:{minute:02d}:00+08:00")
    row = (await outbox(api))[0]
    assert row.status == "dead" and row.attempts == 3 and len(flaky.calls) == 3
    assert await sent(api) == []


async def test_worker_dying_after_its_claim_loses_nothing(api: Api, notify_config: dict) -> None:
    """A worker claims a batch and dies: the rows wait out the lease, then another worker sends
    each exactly once."""
    notify_config.update(batch_size=5, lease_s=60)
    service_ = await setup_service(api, daily_capacity=140)
    numbers = await many_bookings(api, service_["id"], 12)
    maker = api.app.state.sessionmaker
    dead_claim = await claim_batch(maker, 5, 60)  # ... and the worker is killed here
    assert len(dead_claim) == 5
    survivor = Counting(console(api))
    assert await deliver(api, survivor) == 7  # the claimed five are leased to the dead worker
    await api.set_clock("2026-12-01T10:01:30+08:00")  # the lease ran out
    assert await deliver(api, survivor) == 5
    assert sorted(Counter(survivor.calls).values()) == [1] * 12
    texts = [m["text"] for m in await sent(api)]
    assert len(texts) == 12 and all(any(n in t for t in texts) for n in numbers)
    assert {r.status for r in await outbox(api)} == {"sent"}


async def test_worker_dying_after_sending_duplicates_nothing(api: Api) -> None:
    """A worker sends and dies before recording it: the next worker sends again with the same
    idempotency key, and the provider (here the console) keeps one."""
    service_ = await setup_service(api, daily_capacity=140)
    await many_bookings(api, service_["id"], 6)
    maker = api.app.state.sessionmaker
    claimed = await claim_batch(maker, 3, 60)
    for message in claimed:  # sent, then the process is killed before _settle
        params = display_params(message, SECRET)
        await console(api).send(
            Outgoing(message.idem_key, "13900000000", message.kind, message.template, params, "x")
        )
    await api.set_clock("2026-12-01T10:02:00+08:00")
    assert await deliver(api) == 6
    rows = await raw(api, "SELECT idem_key, count(*) FROM console_messages GROUP BY idem_key")
    assert len(rows) == 6 and all(row[1] == 1 for row in rows)
    assert {r.status for r in await outbox(api)} == {"sent"}


async def test_concurrent_workers_never_send_a_message_twice(api: Api, notify_config: dict) -> None:
    """Several workers at once (SKIP LOCKED on PostgreSQL): each message is handed to a provider
    exactly once — counted at the provider, before the console's key could hide a duplicate."""
    notify_config.update(batch_size=4)
    service_ = await setup_service(api, daily_capacity=140)
    await many_bookings(api, service_["id"], 30)
    counting = Counting(console(api))
    handled = await asyncio.gather(*(deliver(api, counting) for _ in range(4)))
    assert sum(handled) == 30
    assert len(counting.calls) == 30 and len(set(counting.calls)) == 30
    assert {r.status for r in await outbox(api)} == {"sent"}


async def test_reminder_for_a_cancelled_booking_is_skipped(api: Api) -> None:
    service_ = await setup_service(api)
    booking = await book_one(api, service_["id"])
    await sent(api)
    await api.set_clock("2026-12-02T19:00:00+08:00")  # the evening-before job writes the reminder
    rows = [r for r in await outbox(api) if r.kind == "reminder"]
    assert len(rows) == 1 and rows[0].status == "pending"
    # cancelled between the job and delivery: the reminder is dropped, never sent
    cancel = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/cancel", headers=booking["headers"]
    )
    assert cancel.status_code == 200
    kinds = [m["kind"] for m in await sent(api)]
    assert kinds == ["cancelled", "booked"]
    assert [r.status for r in await outbox(api) if r.kind == "reminder"] == ["skipped"]


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = warning = exception = _record


async def test_log_shows_kind_and_masked_number_only(api: Api, monkeypatch: Any) -> None:
    service_ = await setup_service(api)
    await book_one(api, service_["id"], phone="13812345678")
    await book_one(api, service_["id"], n=2, phone="13987654321")
    recorder = Recorder()
    monkeypatch.setattr(delivery, "log", recorder)
    await deliver(api, Flaky(console(api), failures=1))
    assert sorted(recorder.lines, key=repr) == [
        (
            "sms_failed",
            {
                "kind": "booked",
                "phone": "138****5678",
                "code": "isv.BUSINESS_LIMIT_CONTROL",
                "status": "pending",
            },
        ),
        ("sms_sent", {"kind": "booked", "phone": "139****4321"}),
    ] or sorted(recorder.lines, key=repr) == [
        (
            "sms_failed",
            {
                "kind": "booked",
                "phone": "139****4321",
                "code": "isv.BUSINESS_LIMIT_CONTROL",
                "status": "pending",
            },
        ),
        ("sms_sent", {"kind": "booked", "phone": "138****5678"}),
    ]
    assert "13812345678" not in repr(recorder.lines) and "预约" not in repr(recorder.lines)


def test_quiet_hours_wrap_midnight() -> None:
    settings = NotifySettings()
    assert first_attempt_at(settings, "reminder", datetime(2026, 12, 1, 23, 0, tzinfo=TZ)) == datetime(
        2026, 12, 2, 8, 0, tzinfo=TZ
    )
    assert first_attempt_at(settings, "reminder", datetime(2026, 12, 2, 7, 0, tzinfo=TZ)) == datetime(
        2026, 12, 2, 8, 0, tzinfo=TZ
    )
    noon = datetime(2026, 12, 2, 12, 0, tzinfo=TZ)
    assert first_attempt_at(settings, "reminder", noon) == noon
    night = datetime(2026, 12, 1, 23, 0, tzinfo=TZ)
    assert first_attempt_at(settings, "cancelled", night) == night  # the citizen just asked
    assert night + timedelta(hours=9) == datetime(2026, 12, 2, 8, 0, tzinfo=TZ)
