"""The notification outbox (rules T7, T11, G9, G13; issue 7): every change that must reach the
citizen writes a `messages` row in the same transaction (handlers.py), so a rolled-back booking sends
nothing and a committed one is never left unsent. A row stores its template id and parameters, not
text. Also the outbox as admins and the test console read it, and an admin's retry of a dead letter.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.catalogue.service import service_info
from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import NotFound, Unprocessable
from yuyue.kit.events import Rows
from yuyue.models import Booking, Citizen, ConsoleMessage, DeliveryAttempt, Message
from yuyue.notify.config import NotifySettings, in_quiet_hours, notify_settings

# Kinds the system sends on its own initiative: held back during quiet hours. What a citizen just
# did (booked, cancelled, rescheduled, a code) is confirmed at once.
DEFERRABLE = ("reminder", "allocated", "no_show", "banned", "alert", "capacity_approved", "expired")
HOTLINE_MAX = 13

NAME_MAX = 40


def _quiet_end_after(settings: NotifySettings, moment: datetime) -> datetime:
    end = at(moment.date(), settings.quiet_end)
    return end if end > moment else end + timedelta(days=1)


def first_attempt_at(settings: NotifySettings, kind: str, now: datetime) -> datetime:
    """Now, or the end of the quiet hours for a message the citizen did not just ask for."""
    if kind in DEFERRABLE and in_quiet_hours(settings, now.strftime("%H:%M")):
        return _quiet_end_after(settings, now)
    return now


# --- the outbox ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    kind: str
    params: dict[str, str]
    phone_enc: str
    phone_masked: str
    unit_path: str
    citizen_id: int | None = None
    booking_number: str | None = None
    dedup_key: str | None = None
    template: str | None = None
    channel: str = "sms"


def _row(draft: Draft, now: datetime, settings: NotifySettings) -> dict[str, Any]:
    return {
        "idem_key": secrets.token_hex(16),
        "dedup_key": draft.dedup_key,
        "kind": draft.kind,
        "channel": draft.channel,
        "template": draft.template or draft.kind,
        "params": draft.params,
        "phone_enc": draft.phone_enc,
        "phone_masked": draft.phone_masked,
        "citizen_id": draft.citizen_id,
        "booking_number": draft.booking_number,
        "unit_path": draft.unit_path,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": first_attempt_at(settings, draft.kind, now),
        "created_at": now,
        "updated_at": now,
    }


async def enqueue(session: AsyncSession, drafts: Sequence[Draft], into: Rows | None = None) -> int:
    """Write outbox rows in the caller's transaction; a row whose dedup key exists is skipped
    (a reminder is never made twice). Returns how many rows were written. With `into` (a collected
    event's `event.into`) the rows go there instead: the caller writes them in its own statement
    (kit/events.py `collect`)."""
    if not drafts:
        return 0
    now, settings = clock.now(), notify_settings()
    if into is not None:
        into.extend((Message.__table__, _row(d, now, settings)) for d in drafts)
        return len(drafts)
    if len(drafts) == 1:  # every booking change: one statement compiled once, run with the row
        dialect = session.bind.dialect.name if session.bind else "sqlite"
        single = _single_insert.get(dialect)
        if single is None:
            single = _single_insert[dialect] = _insert(session, Message.__table__).on_conflict_do_nothing(
                index_elements=["dedup_key"], index_where=Message.dedup_key.isnot(None)
            )
        result = await session.execute(single, _row(drafts[0], now, settings))
        return int(getattr(result, "rowcount", 0) or 0)
    statement = _insert(session, Message).values([_row(d, now, settings) for d in drafts])
    statement = statement.on_conflict_do_nothing(
        index_elements=["dedup_key"], index_where=Message.dedup_key.isnot(None)
    )
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


# The single-row outbox INSERT per dialect (decision 0013): a multi-row VALUES statement is not
# cached by SQLAlchemy and was compiled on every booking.
_single_insert: dict[str, Any] = {}


async def booking_draft(
    session: AsyncSession, booking: Booking, kind: str, *, dedup_key: str | None = None
) -> Draft:
    citizen = await session.get(Citizen, booking.citizen_id)
    assert citizen is not None
    info = await service_info(session, booking.service_id)
    return Draft(
        kind=kind,
        params={
            "number": booking.number,
            "start": booking.slot_start.isoformat(),
            "hall": info.hall_name[:NAME_MAX],
            "hotline": (info.hall_hotline or notify_settings().default_hotline)[:HOTLINE_MAX],
        },
        phone_enc=citizen.phone_enc,
        phone_masked=citizen.phone_masked,
        unit_path=info.hall_path,
        citizen_id=citizen.id,
        booking_number=booking.number,
        dedup_key=dedup_key,
    )


# --- reading: the test console and the admins' view ---------------------------------------------


async def console_messages(session: AsyncSession, limit: int) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(ConsoleMessage)
            .order_by(ConsoleMessage.sent_at.desc(), ConsoleMessage.id.desc())
            .limit(limit)
        )
    ).scalars()
    return [
        {"phone": row.phone, "kind": row.kind, "text": row.text, "sent_at": row.sent_at.isoformat()}
        for row in rows
    ]


def message_view(message: Message) -> dict[str, Any]:
    """An outbox row for admins: the masked number, never the text or the clear number."""
    return {
        "id": message.id,
        "kind": message.kind,
        "status": message.status,
        "phone": message.phone_masked,
        "booking_number": message.booking_number,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "provider": message.provider,
        "provider_ref": message.provider_ref,
        "created_at": message.created_at.isoformat(),
        "next_attempt_at": message.next_attempt_at.isoformat(),
        "sent_at": message.sent_at.isoformat() if message.sent_at else None,
        "delivery": delivery_view(message),
    }


def delivery_view(message: Message) -> dict[str, Any] | None:
    """The handset delivery report of a message, if one arrived (decision 0082)."""
    if message.delivery_status is None or message.delivery_received_at is None:
        return None
    reported = message.delivery_reported_at
    return {
        "status": message.delivery_status,
        "code": message.delivery_code,
        "detail": message.delivery_detail,
        "reported_at": reported.isoformat() if reported else None,
        "received_at": message.delivery_received_at.isoformat(),
    }


async def list_messages(
    session: AsyncSession, unit_path: str, status: str | None, limit: int, delivery: str | None = None
) -> list[dict[str, Any]]:
    query = select(Message).where(func.substr(Message.unit_path, 1, len(unit_path)) == unit_path)
    if status is not None:
        query = query.where(Message.status == status)
    if delivery is not None:
        query = query.where(Message.delivery_status == delivery)
    rows = (await session.execute(query.order_by(Message.id.desc()).limit(limit))).scalars()
    return [message_view(row) for row in rows]


async def message_attempts(session: AsyncSession, message_id: int) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.message_id == message_id)
            .order_by(DeliveryAttempt.id)
        )
    ).scalars()
    return [
        {
            "attempt": row.attempt,
            "at": row.at.isoformat(),
            "provider": row.provider,
            "outcome": row.outcome,
            "code": row.code,
            "provider_ref": row.provider_ref,
            "detail": row.detail,
        }
        for row in rows
    ]


async def get_message(session: AsyncSession, message_id: int, unit_path: str) -> Message:
    message = await session.get(Message, message_id)
    if message is None or not message.unit_path.startswith(unit_path):
        raise NotFound("message not found")
    return message


async def retry_dead(session: AsyncSession, message: Message) -> Message:
    """An admin sends a dead letter again: back to `pending`, attempts counted afresh."""
    now = clock.now()
    changed = await session.execute(
        update(Message)
        .where(Message.id == message.id, Message.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not int(getattr(changed, "rowcount", 0) or 0):
        raise Unprocessable("only a dead message can be retried", code="not_retryable")
    await session.refresh(message)
    return message
