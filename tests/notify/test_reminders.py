"""Reminders as registered jobs: the evening before at a configurable time, optionally an hour
before; never for cancelled bookings, never twice, never in quiet hours."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.notify.conftest import book_one, outbox, sent, setup_service
from yuyue.notify.config import NotifySettings


async def test_evening_before_reminder_once(api: Api) -> None:
    service = await setup_service(api)
    booking = await book_one(api, service["id"])  # Thu 12-03 09:00
    await api.set_clock("2026-12-01T19:30:00+08:00")  # Tuesday evening: nothing for Thursday yet
    assert [m["kind"] for m in await sent(api)] == ["booked"]
    await api.set_clock("2026-12-02T18:59:00+08:00")
    assert [m["kind"] for m in await sent(api)] == ["booked"]
    await api.set_clock("2026-12-02T19:00:00+08:00")
    messages = await sent(api)
    assert [m["kind"] for m in messages] == ["reminder", "booked"]
    reminder = messages[0]
    assert booking["number"] in reminder["text"] and "12月3日9时" in reminder["text"]
    assert "020-83123456" in reminder["text"] and len(reminder["text"]) <= 70
    assert reminder["sent_at"].startswith("2026-12-02T19:00")
    # the clock set back and forward again, the job's due time passed again: never twice
    await api.set_clock("2026-12-02T18:00:00+08:00")
    await api.set_clock("2026-12-02T20:00:00+08:00")
    assert [m["kind"] for m in await sent(api)] == ["reminder", "booked"]
    assert len([r for r in await outbox(api) if r.kind == "reminder"]) == 1


async def test_no_reminder_for_a_cancelled_booking(api: Api) -> None:
    service = await setup_service(api)
    booking = await book_one(api, service["id"])
    other = await book_one(api, service["id"], n=2, phone="13911112222")
    cancel = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/cancel", headers=booking["headers"]
    )
    assert cancel.status_code == 200
    await api.set_clock("2026-12-02T19:05:00+08:00")
    reminders = [m for m in await sent(api) if m["kind"] == "reminder"]
    assert [(m["phone"], other["number"] in m["text"]) for m in reminders] == [("13911112222", True)]


async def test_rescheduled_booking_is_reminded_for_its_new_day(api: Api) -> None:
    service = await setup_service(api)
    booking = await book_one(api, service["id"])
    await api.set_clock("2026-12-02T19:00:00+08:00")  # reminded for Thursday
    assert [m["kind"] for m in await sent(api)] == ["reminder", "booked"]
    friday = next(s for s in await api.slots(service["id"], "2026-12-04") if s["status"] == "open")
    moved = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/reschedule",
        json={"slot_id": friday["id"]},
        headers=booking["headers"],
    )
    assert moved.status_code == 200, moved.text
    await api.set_clock("2026-12-03T19:00:00+08:00")
    messages = await sent(api)
    assert [m["kind"] for m in messages] == ["reminder", "rescheduled", "reminder", "booked"]
    assert "12月4日9时" in messages[0]["text"]


async def test_reminder_of_a_moved_booking_not_yet_sent_is_dropped(api: Api) -> None:
    """Written for Thursday, moved to Friday before delivery: the stale reminder is never sent."""
    service = await setup_service(api)
    booking = await book_one(api, service["id"])
    await api.set_clock("2026-12-02T19:00:00+08:00")
    friday = next(s for s in await api.slots(service["id"], "2026-12-04") if s["status"] == "open")
    moved = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/reschedule",
        json={"slot_id": friday["id"]},
        headers=booking["headers"],
    )
    assert moved.status_code == 200, moved.text
    assert [m["kind"] for m in await sent(api)] == ["rescheduled", "booked"]


async def test_evening_time_is_configurable_and_never_in_quiet_hours(
    api: Api, notify_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify_config.update(reminder_evening="18:00")
    service = await setup_service(api)
    await book_one(api, service["id"])
    await api.set_clock("2026-12-02T18:10:00+08:00")
    assert [m["kind"] for m in await sent(api)] == ["reminder", "booked"]
    with pytest.raises(ValueError, match="quiet hours"):
        NotifySettings(reminder_evening="22:00")


async def test_hour_before_reminder_when_enabled(api: Api, notify_config: dict) -> None:
    service = await setup_service(api)
    booking = await book_one(api, service["id"])  # Thu 12-03 09:00
    await api.set_clock("2026-12-03T08:30:00+08:00")
    hour_before = [r for r in await outbox(api) if r.dedup_key and r.dedup_key.startswith("reminder:hour")]
    assert hour_before == []  # off by default
    notify_config.update(reminder_hour_before=True)
    await api.set_clock("2026-12-03T07:30:00+08:00")  # back, then forward: 08:00 falls due again
    await api.set_clock("2026-12-03T08:01:00+08:00")
    hour_before = [r for r in await outbox(api) if r.dedup_key and r.dedup_key.startswith("reminder:hour")]
    assert len(hour_before) == 1 and hour_before[0].booking_number == booking["number"]
    assert [m["kind"] for m in await sent(api)][0] == "reminder"


async def test_hour_before_reminder_never_in_quiet_hours(api: Api, notify_config: dict) -> None:
    """A 09:00 slot with quiet hours until 08:30: the 08:00 run sends nothing, and the 08:30 run
    no longer finds it an hour ahead — better no reminder than one at night."""
    notify_config.update(reminder_hour_before=True, quiet_end="08:30")
    service = await setup_service(api)
    await book_one(api, service["id"])
    await api.set_clock("2026-12-03T08:45:00+08:00")
    assert [r for r in await outbox(api) if r.kind == "reminder" and "hour" in (r.dedup_key or "")] == []
