"""The transactional outbox through HTTP (rules T7, T11, G9, G13): every booking, cancel and
reschedule writes its message in the same transaction, and the console provider sends it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.notify.conftest import DAY, book_one, outbox, sent, setup_service
from yuyue.booking.commands import book
from yuyue.booking.rules import BookRequest, Caller
from yuyue.errors import Conflict
from yuyue.kit import events
from yuyue.kit.events import Event, emit
from yuyue.models import Ban, Booking


async def test_booking_sends_success_sms_t7(api: Api) -> None:
    service = await setup_service(api)
    booking = await book_one(api, service["id"], phone="13812345678")
    messages = await sent(api)
    assert len(messages) == 1
    message = messages[0]
    assert message["phone"] == "13812345678"  # full number: test console only
    assert message["kind"] == "booked"
    assert booking["number"] in message["text"]  # names the booking number
    assert "020-83123456" in message["text"]  # the hall's hotline
    assert "12月3日9时" in message["text"]
    assert "材料" in message["text"] and "准时" in message["text"]  # rule T7: documents, on time
    assert len(message["text"]) <= 70
    assert re.fullmatch(r"2026-12-01T10:00:\d\d(\.\d+)?\+08:00", message["sent_at"])


async def test_outbox_stores_template_and_parameters_not_text(api: Api) -> None:
    service = await setup_service(api)
    booking = await book_one(api, service["id"])
    rows = await outbox(api)
    assert len(rows) == 1
    row = rows[0]
    assert row.template == "booked" and row.status == "pending"
    params = row.params if isinstance(row.params, dict) else __import__("json").loads(row.params)
    assert params == {
        "number": booking["number"],
        "start": "2026-12-03T09:00:00+08:00",
        "hall": "测试大厅 hall-a",
        "hotline": "020-83123456",
    }
    assert "13812345678" not in str(tuple(row))  # the number is stored encrypted
    assert row.phone_masked == "138****5678"


async def test_cancel_and_reschedule_are_confirmed_t11(api: Api) -> None:
    service = await setup_service(api)
    booking = await book_one(api, service["id"])
    slots = [s for s in await api.slots(service["id"], DAY) if s["status"] == "open"]
    moved = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/reschedule",
        json={"slot_id": slots[2]["id"]},
        headers=booking["headers"],
    )
    assert moved.status_code == 200, moved.text
    cancelled = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/cancel", headers=booking["headers"]
    )
    assert cancelled.status_code == 200, cancelled.text
    messages = await sent(api)
    assert [m["kind"] for m in messages] == ["cancelled", "rescheduled", "booked"]  # newest first
    assert all(booking["number"] in m["text"] and len(m["text"]) <= 70 for m in messages)
    assert "12月3日11时" in messages[1]["text"]  # the new time
    assert "已取消" in messages[0]["text"]


async def test_failed_booking_writes_no_message(api: Api) -> None:
    service = await setup_service(api, daily_capacity=7)  # one seat per slot
    first = await book_one(api, service["id"], n=1)
    other = await api.login(resident_id(2))
    refused = await api.book(other, first["slot_id"])
    assert refused.json()["code"] == "slot_full"
    assert len(await outbox(api)) == 1
    assert len(await sent(api)) == 1


async def test_rolled_back_booking_leaves_no_message(api: Api) -> None:
    """A booking that fails after its event was handled rolls back with its message."""
    service = await setup_service(api)
    citizen = await api.login(resident_id(3))
    slot = next(s for s in await api.slots(service["id"], DAY) if s["status"] == "open")

    async def refuse(session: object, event: Event) -> None:
        raise Conflict("a later rule refused the booking", code="conflict")

    events.subscribe("booking.created")(refuse)
    try:
        response = await api.book(citizen, slot["id"])
    finally:
        events._handlers["booking.created"].remove(refuse)
    assert response.status_code == 409
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0
    assert await outbox(api) == []
    assert await sent(api) == []
    # the guard is real: the same booking without the refusal does write its message
    assert (await api.book(citizen, slot["id"])).status_code == 201
    assert [m["kind"] for m in await sent(api)] == ["booked"]


async def test_waitlist_allocation_sends_allocated(api: Api) -> None:
    """booking.created with source "waitlist" (rule G11) is an `allocated` message, not `booked`."""
    service = await setup_service(api)
    await api.login(resident_id(4), phone="13900001111")
    slot = next(s for s in await api.slots(service["id"], DAY) if s["status"] == "open")
    async with api.app.state.sessionmaker() as session:
        citizen_id = (await raw(api, "SELECT id FROM citizens"))[0][0]
        answer = await book(
            session, citizen_id, BookRequest(slot_id=slot["id"], channel="web"), Caller("waitlist")
        )
        await session.commit()
    messages = await sent(api)
    assert [(m["kind"], m["phone"]) for m in messages] == [("allocated", "13900001111")]
    assert answer["number"] in messages[0]["text"] and "排队" in messages[0]["text"]


async def test_no_show_and_ban_messages_g13(api: Api) -> None:
    """booking.no_show (rule G13) and ban.imposed (rules M9, G15) reach the citizen, once each."""
    service = await setup_service(api)
    booking = await book_one(api, service["id"], phone="13700007777")
    await sent(api)
    async with api.app.state.sessionmaker() as session:
        row = (await session.execute(__import__("sqlalchemy").select(Booking))).scalar_one()
        row.status = "no_show"
        await emit(session, Event("booking.no_show", {"booking": row}))
        await emit(session, Event("booking.no_show", {"booking": row}))  # announced twice: sent once
        ban = Ban(
            citizen_id=row.citizen_id,
            unit_id="hall-a",
            until=__import__("datetime").date(2026, 12, 13),
            reason="no-shows",
            source="penalty",
            created_at=row.created_at,
        )
        session.add(ban)
        await session.flush()
        await emit(session, Event("ban.imposed", {"ban": ban}))
        await session.commit()
    messages = await sent(api)
    kinds = [m["kind"] for m in messages]
    assert sorted(kinds) == ["banned", "booked", "no_show"]
    no_show = next(m for m in messages if m["kind"] == "no_show")
    assert booking["number"] in no_show["text"] and "爽约" in no_show["text"]
    banned = next(m for m in messages if m["kind"] == "banned")
    assert "2026年12月13日" in banned["text"] and "020-83123456" in banned["text"]
    assert all(len(m["text"]) <= 70 for m in messages)


@pytest.mark.parametrize("kind", ["no_show", "allocated"])
async def test_system_messages_wait_for_the_end_of_quiet_hours(api: Api, kind: str) -> None:
    """What the citizen did not just ask for is never sent at night (21:00–08:00)."""
    service = await setup_service(api)
    await book_one(api, service["id"])
    await sent(api)
    await api.set_clock("2026-12-01T22:30:00+08:00")
    async with api.app.state.sessionmaker() as session:
        row = (await session.execute(__import__("sqlalchemy").select(Booking))).scalar_one()
        if kind == "no_show":
            await emit(session, Event("booking.no_show", {"booking": row}))
        else:
            await emit(session, Event("booking.created", {"booking": row, "source": "waitlist"}))
        await session.commit()
    assert [m["kind"] for m in await sent(api)] == ["booked"]
    await api.set_clock("2026-12-02T07:59:00+08:00")
    assert [m["kind"] for m in await sent(api)] == ["booked"]
    await api.set_clock("2026-12-02T08:00:00+08:00")
    assert [m["kind"] for m in await sent(api)] == [kind, "booked"]


async def test_alert_reaches_the_admins_of_its_unit(api: Api) -> None:
    """alert.raised (rules G12, G19, G20): an SMS to each active admin of the unit and the units above
    it with a mobile number, saying the alert's own sentence (the console's, its first clause) in one
    SMS: with the service's name when it fits, without it when it would make two."""
    from yuyue.admin.alerts import raise_alert

    await api.hall(name="天河区政务服务中心")
    short = await api.service(name="户籍")
    long = await api.service(name="港澳台居民居住证申领与换领")
    async with api.app.state.sessionmaker() as session:
        assert await raise_alert(
            session,
            "waitlist_over_release",
            "hall-a",
            short["id"],
            f"waitlist_over_release:{short['id']}",
            "12 waiting entries, 9 off-site seats released for the next 10 working days",
            figure={"name": "waiting_entries", "value": 12, "threshold": 9},
        )
        assert await raise_alert(
            session,
            "sold_out_fast",
            "hall-a",
            long["id"],
            f"sold_out_fast:{long['id']}",
            "English detail for the API",
            figure={"name": "sold_out_minutes", "value": 3.5, "threshold": 30},
            suggestion={"daily_capacity": 90, "date_from": "2026-12-04"},
        )
        await session.commit()
    messages = await sent(api)
    assert [m["kind"] for m in messages] == ["alert", "alert"]
    assert {m["phone"] for m in messages} == {"13800000000"}  # the root admin, at the platform above
    texts = sorted(m["text"] for m in messages)
    assert all(len(text) <= 70 and text.endswith("，请登录管理端处理。") for text in texts), texts
    assert texts == [
        "【广州预约】预约平台提醒：天河区政务服务中心“户籍”排队候补 12 人，"
        "多于今后 10 个工作日已放出的网上号源 9 个，请登录管理端处理。",
        "【广州预约】预约平台提醒：天河区政务服务中心最近几天放出的网上号源在 4 分钟内"
        "就被约满（预警线 30 分钟），请登录管理端处理。",
    ]
