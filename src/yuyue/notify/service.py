"""The notification outbox and its delivery (rules T7, T11, G9, G13; issue 7).

Outbox: every change that must reach the citizen writes a `messages` row in the same transaction
(event subscribers below), so a rolled-back booking sends nothing and a committed one is never left
unsent. A row stores its template id and parameters, not text.

Delivery (`deliver_due`, run by `yuyue worker`, by the in-process loop of `serve`, and before
GET /api/v1/test/messages answers):
1. claim: one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING` marks a batch of due
   rows `sending` under a lease and a claim token, and commits; concurrent workers skip each
   other's rows (SQLite serialises writers with BEGIN IMMEDIATE instead);
2. send, with no transaction open, each message with its idempotency key;
3. settle each message at once (`WHERE claim = :token`): `sent` with the provider's receipt;
   `pending` again after a temporary failure, with exponential backoff and jitter; `dead` after a
   permanent failure or the last attempt (visible to admins, who may retry it).
A worker that dies between 1 and 3 leaves rows `sending`; once the lease runs out another worker
claims them again, and the idempotency key lets the provider drop the duplicate.

Channels beyond SMS ride the same outbox (`messages.channel`): `webhook` rows carry a booking's event
to the partner client it was booked through (issue 7 item 7), POSTed as JSON signed like partner
requests (decision 0063) and retried the same way.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter as Metric
from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yuyue.catalogue.service import service_info
from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import DomainError, NotFound, Unprocessable
from yuyue.errors import ValidationFailed as ValidationFailedError
from yuyue.identity.service import MOBILE, process_secret
from yuyue.jobs.service import Job, Schedule, daily, register
from yuyue.kit import crypto
from yuyue.kit.events import Event, collecting, subscribe
from yuyue.kit.masking import mask_email, mask_phone
from yuyue.models import (
    Admin,
    Alert,
    Ban,
    Booking,
    CapacityRequest,
    Citizen,
    ConsoleMessage,
    DeliveryAttempt,
    Message,
    PhoneCode,
    RateCounter,
    Unit,
)
from yuyue.notify import templates
from yuyue.notify.config import NotifySettings, email_settings, in_quiet_hours, notify_settings, sms_settings
from yuyue.notify.providers import (
    EmailProvider,
    Outgoing,
    Provider,
    ProviderError,
    Receipt,
    make_provider,
)
from yuyue.ops.logging import log

# Kinds the system sends on its own initiative: held back during quiet hours. What a citizen just
# did (booked, cancelled, rescheduled, a code) is confirmed at once.
DEFERRABLE = ("reminder", "allocated", "no_show", "banned", "alert", "capacity_approved", "expired")
HOTLINE_MAX = 13


class RateLimited(DomainError):
    code, status = "rate_limited", 429


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


async def enqueue(session: AsyncSession, drafts: Sequence[Draft]) -> int:
    """Write outbox rows in the caller's transaction; a row whose dedup key exists is skipped
    (a reminder is never made twice). Returns how many rows were written."""
    if not drafts:
        return 0
    now, settings = clock.now(), notify_settings()
    rows = collecting(session)
    if rows is not None:  # the caller writes them in its own statement (kit/events.py `collect`)
        rows.extend((Message.__table__, _row(d, now, settings)) for d in drafts)
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


# --- what the other domains announce (same transaction) -----------------------------------------


@subscribe("booking.created")
async def _on_booked(session: AsyncSession, event: Event) -> None:
    """Rules T7, G9: an SMS on success; a waiting-list allocation (rule G11) has its own text."""
    booking: Booking = event.data["booking"]
    kind = "allocated" if event.data.get("source") == "waitlist" else "booked"
    await enqueue(session, [await booking_draft(session, booking, kind)])


@subscribe("booking.cancelled")
async def _on_cancelled(session: AsyncSession, event: Event) -> None:
    """Rules T7, T11: every cancel is confirmed by SMS (channels/webhooks.py tells the partner)."""
    booking: Booking = event.data["booking"]
    await enqueue(session, [await booking_draft(session, booking, "cancelled")])


@subscribe("booking.rescheduled")
async def _on_rescheduled(session: AsyncSession, event: Event) -> None:
    booking: Booking = event.data["booking"]
    await enqueue(session, [await booking_draft(session, booking, "rescheduled")])


@subscribe("booking.no_show")
async def _on_no_show(session: AsyncSession, event: Event) -> None:
    """Rule G13: a no-show, and an SMS tells the citizen (once: one per booking)."""
    booking: Booking = event.data["booking"]
    draft = await booking_draft(session, booking, "no_show", dedup_key=f"no_show:{booking.number}")
    await enqueue(session, [draft])


@subscribe("ban.imposed")
async def _on_ban(session: AsyncSession, event: Event) -> None:
    """docs/rules.md 'Penalties': a ban sends an SMS."""
    ban: Ban = event.data["ban"]
    citizen = await session.get(Citizen, ban.citizen_id)
    unit = await session.get(Unit, ban.unit_id)
    if citizen is None or unit is None:
        return
    draft = Draft(
        kind="banned",
        params={
            "until": ban.until.isoformat(),
            "unit": unit.name[:NAME_MAX],
            "hotline": (unit.hotline or notify_settings().default_hotline)[:HOTLINE_MAX],
        },
        phone_enc=citizen.phone_enc,
        phone_masked=citizen.phone_masked,
        unit_path=unit.path,
        citizen_id=citizen.id,
        dedup_key=f"banned:{ban.id}" if ban.id is not None else None,
    )
    await enqueue(session, [draft])


def _admin_drafts(
    admins: Sequence[Admin], kind: str, params: dict[str, str], unit_path: str, key: str | None
) -> list[Draft]:
    """One SMS to each admin with a mobile number on record, and the same by email when email is
    enabled (issue 7 item 7); `key` makes each once per admin."""
    secret = process_secret()
    drafts = []
    for admin in admins:
        own = f"{key}:{admin.id}" if key else None
        if admin.phone:
            drafts.append(
                Draft(
                    kind=kind,
                    params=params,
                    phone_enc=crypto.encrypt(secret, admin.phone),
                    phone_masked=mask_phone(admin.phone),
                    unit_path=unit_path,
                    dedup_key=own,
                )
            )
        if admin.email and email_settings().enabled:
            drafts.append(
                Draft(
                    kind=kind,
                    channel="email",
                    params=params,
                    phone_enc=crypto.encrypt(secret, admin.email),
                    phone_masked=mask_email(admin.email),
                    unit_path=unit_path,
                    dedup_key=f"{own}:email" if own else None,
                )
            )
    return drafts


async def _active_admins(session: AsyncSession, unit_ids: list[str]) -> list[Admin]:
    query = select(Admin).where(Admin.unit_id.in_(unit_ids), Admin.active.is_(True)).order_by(Admin.id)
    return list((await session.execute(query)).scalars())


@subscribe("alert.raised")
async def _on_alert(session: AsyncSession, event: Event) -> None:
    """Alerts for administrators (rules G12, G20): an SMS (and email) to each active admin of the
    alert's unit and of every unit above it, up to the platform (G12: "the administrators of
    every level"), who has a mobile number (an email address) on record."""
    alert: Alert = event.data["alert"]
    unit = await session.get(Unit, alert.unit_id)
    if unit is None:
        return
    admins = await _active_admins(session, unit.path.strip("/").split("/"))  # the path names the ancestors
    detail = {"waitlist_over_release": "排队人数超过放号量", "approval_overdue": "有放号调整审批超时"}.get(
        alert.kind, "有新的告警"
    )
    params = {"unit": unit.name[:NAME_MAX], "detail": detail}
    key = f"alert:{alert.id}" if alert.id is not None else None
    await enqueue(session, _admin_drafts(admins, "alert", params, unit.path, key))


@subscribe("capacity.approved")
async def _on_capacity_approved(session: AsyncSession, event: Event) -> None:
    """Rule G4 (Art. 8): an approved capacity change goes to the administrators of the hall it
    concerns, by SMS (and email)."""
    request: CapacityRequest = event.data["request"]
    hall = await session.get(Unit, request.hall_id)
    if hall is None:
        return
    start = f"{request.date_from.month}月{request.date_from.day}日"
    if request.date_to is None:
        days = f"{start}起"
    elif request.date_to == request.date_from:
        days = start
    else:
        days = f"{start}至{request.date_to.month}月{request.date_to.day}日"
    params = {
        "unit": hall.name[:NAME_MAX],
        "request": str(request.id),
        "days": days,
        "capacity": str(request.daily_capacity),
    }
    admins = await _active_admins(session, [hall.id])
    key = f"capacity_approved:{request.id}"
    await enqueue(session, _admin_drafts(admins, "capacity_approved", params, hall.path, key))


# --- delivery -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    idem_key: str
    channel: str
    kind: str
    template: str
    params: dict[str, Any]
    phone_enc: str
    phone_masked: str
    booking_number: str | None
    attempts: int
    claim: str


async def claim_batch(maker: async_sessionmaker[AsyncSession], limit: int, lease_s: int) -> list[Claimed]:
    """Mark up to `limit` due messages `sending` under a lease, in their own committed transaction."""
    now = clock.now()
    token = f"{os.getpid()}-{secrets.token_hex(6)}"  # which process holds a claim, for operators
    due = or_(
        and_(Message.status == "pending", Message.next_attempt_at <= now),
        and_(Message.status == "sending", Message.locked_until < now),  # a dead worker's claim
    )
    if in_quiet_hours(notify_settings(), now.strftime("%H:%M")):
        due = and_(due, Message.kind.notin_(DEFERRABLE))
    pick = (
        select(Message.id)
        .where(due)
        .order_by(Message.next_attempt_at, Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(Message)
        .where(Message.id.in_(pick))
        .values(
            status="sending",
            claim=token,
            locked_until=now + timedelta(seconds=lease_s),
            attempts=Message.attempts + 1,
            updated_at=now,
        )
        .returning(
            Message.id,
            Message.idem_key,
            Message.channel,
            Message.kind,
            Message.template,
            Message.params,
            Message.phone_enc,
            Message.phone_masked,
            Message.booking_number,
            Message.attempts,
        )
        .execution_options(synchronize_session=False)
    )
    async with maker() as session:
        rows = (await session.execute(statement)).all()
        await session.commit()
    return [
        Claimed(
            id=row.id,
            idem_key=row.idem_key,
            channel=row.channel,
            kind=row.kind,
            template=row.template,
            params=dict(row.params or {}),
            phone_enc=row.phone_enc,
            phone_masked=row.phone_masked,
            booking_number=row.booking_number,
            attempts=row.attempts,
            claim=token,
        )
        for row in rows
    ]


def backoff(settings: NotifySettings, attempts: int) -> timedelta:
    """Exponential backoff with ±25 % jitter: base, 2 × base, 4 × base … capped."""
    delay = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=delay * random.uniform(0.75, 1.25))


def display_params(message: Claimed | Message, secret: str) -> dict[str, str]:
    """The stored parameters as the template shows them."""
    params = {str(k): str(v) for k, v in (message.params or {}).items()}
    if "start" in params:
        params["when"] = templates.when(params.pop("start"))
    if "until" in params:
        params["until"] = templates.day(params["until"])
    if "code_enc" in params:
        params["code"] = crypto.decrypt(secret, params.pop("code_enc"))
    return params


async def _still_applies(maker: async_sessionmaker[AsyncSession], message: Claimed) -> bool:
    """A reminder is never sent for a booking no longer booked, or once its slot has begun."""
    if message.kind != "reminder" or message.booking_number is None:
        return True
    async with maker() as session:
        row = (
            await session.execute(
                select(Booking.status, Booking.slot_start).where(Booking.number == message.booking_number)
            )
        ).first()
    if row is None:
        return False
    start = datetime.fromisoformat(str(message.params.get("start")))
    return bool(row.status == "booked" and row.slot_start == start and clock.now() < row.slot_start)


async def settle(
    maker: async_sessionmaker[AsyncSession],
    message: Claimed,
    provider: str,
    outcome: str,
    *,
    receipt: Receipt | None = None,
    error: ProviderError | None = None,
) -> str:
    settings = notify_settings()
    now = clock.now()
    values: dict[str, Any] = {"locked_until": None, "claim": None, "updated_at": now, "provider": provider}
    if outcome == "sent":
        assert receipt is not None
        values |= {"status": "sent", "sent_at": now, "provider_ref": receipt.provider_ref, "last_error": None}
    elif outcome == "skipped":
        values |= {"status": "skipped", "last_error": "no longer applies"}
    else:
        assert error is not None
        final = outcome == "permanent" or message.attempts >= settings.max_attempts
        values |= {"last_error": str(error)[:500]}
        if final:
            values |= {"status": "dead"}
        else:
            values |= {"status": "pending", "next_attempt_at": now + backoff(settings, message.attempts)}
    async with maker() as session:
        changed = await session.execute(
            update(Message)
            .where(Message.id == message.id, Message.claim == message.claim)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(changed, "rowcount", 0) or 0) and outcome != "skipped":
            session.add(
                DeliveryAttempt(
                    message_id=message.id,
                    attempt=message.attempts,
                    at=now,
                    provider=provider,
                    outcome=outcome,
                    code=receipt.code if receipt else (error.code if error else None),
                    provider_ref=receipt.provider_ref if receipt else None,
                    detail=(error.detail[:500] if error else None),
                )
            )
        await session.commit()
    return str(values["status"])


# Channels that another domain delivers itself, through this outbox (claim, retries, dead letters):
# `webhook` rows are delivered by channels/webhooks.py, which registers here.
Deliverer = Callable[[async_sessionmaker[AsyncSession], str, "Claimed"], Awaitable[str]]
deliverers: dict[str, Deliverer] = {}


def register_deliverer(channel: str, deliver: Deliverer) -> None:
    """`deliver(maker, secret, message)` sends one claimed message of `channel` and settles it
    (`settle`), returning the message's new status."""
    deliverers[channel] = deliver


async def _deliver_one(
    maker: async_sessionmaker[AsyncSession], provider: Provider, secret: str, message: Claimed
) -> str:
    deliver = deliverers.get(message.channel)
    if deliver is not None:
        return await deliver(maker, secret, message)
    if message.channel == "email":
        provider = EmailProvider(email_settings())
    if not await _still_applies(maker, message):
        return await settle(maker, message, provider.name, "skipped")
    try:
        params = display_params(message, secret)
        text = templates.render(message.template, params, sms_settings().sign_name)
        phone = crypto.decrypt(secret, message.phone_enc)
    except Exception as exc:  # a template or key problem will not fix itself: dead-letter it
        failure = ProviderError("render_failed", type(exc).__name__, temporary=False)
        return await settle(maker, message, provider.name, "permanent", error=failure)
    outgoing = Outgoing(message.idem_key, phone, message.kind, message.template, params, text)
    try:
        receipt = await provider.send(outgoing)
    except ProviderError as error:
        outcome = "temporary" if error.temporary else "permanent"
        status = await settle(maker, message, provider.name, outcome, error=error)
        log.warning(
            f"{message.channel}_failed",
            kind=message.kind,
            phone=message.phone_masked,
            code=error.code,
            status=status,
        )
        return status
    except Exception as exc:  # an unexpected failure of the adapter: treat as temporary
        failure = ProviderError(type(exc).__name__, str(exc)[:200], temporary=True)
        return await settle(maker, message, provider.name, "temporary", error=failure)
    log.info(f"{message.channel}_sent", kind=message.kind, phone=message.phone_masked)  # never the text
    return await settle(maker, message, provider.name, "sent", receipt=receipt)


async def deliver_due(
    maker: async_sessionmaker[AsyncSession],
    secret: str,
    provider: Provider | None = None,
    *,
    max_batches: int | None = None,
    concurrency: int = 8,
) -> int:
    """Deliver every message due now, batch after batch; returns how many were handled."""
    settings = notify_settings()
    provider = provider or make_provider(sms_settings(), maker)
    handled, batches = 0, 0
    gate = asyncio.Semaphore(concurrency)

    async def one(message: Claimed) -> str:
        async with gate:
            return await _deliver_one(maker, provider, secret, message)

    while max_batches is None or batches < max_batches:
        batch = await claim_batch(maker, settings.batch_size, settings.lease_s)
        if not batch:
            break
        await asyncio.gather(*(one(message) for message in batch))
        handled += len(batch)
        batches += 1
    return handled


async def delivery_loop(
    maker: async_sessionmaker[AsyncSession], refresh: Callable[[], Awaitable[None]], secret: str
) -> None:
    """The delivery runner of `yuyue worker` and `serve`: deliver what is due, then wait a little."""
    provider = make_provider(sms_settings(), maker)
    while True:
        handled = 0
        try:
            await refresh()
            handled = await deliver_due(maker, secret, provider)
        except Exception:
            log.exception("delivery_failed")
        if not handled:
            await asyncio.sleep(notify_settings().interval_s)


# --- reminders (registered jobs) ----------------------------------------------------------------


async def _remind(session: AsyncSession, bookings: Sequence[Booking], tag: str) -> None:
    drafts = [
        await booking_draft(session, b, "reminder", dedup_key=f"reminder:{tag}:{b.number}:{b.slot_id}")
        for b in bookings
    ]
    await enqueue(session, drafts)


async def _evening_reminders(session: AsyncSession, due: datetime) -> None:
    """The evening before: one reminder per booked booking of tomorrow, never twice (dedup key),
    never for a cancelled one (only `booked` rows, and checked again at delivery)."""
    tomorrow = due.date() + timedelta(days=1)
    rows = (
        await session.execute(select(Booking).where(Booking.slot_day == tomorrow, Booking.status == "booked"))
    ).scalars()
    await _remind(session, list(rows), "eve")


async def _hour_before_reminders(session: AsyncSession, due: datetime) -> None:
    """Optional: about an hour before the slot (slots starting in (due + 30 min, due + 60 min])."""
    if in_quiet_hours(notify_settings(), due.strftime("%H:%M")):
        return
    rows = (
        await session.execute(
            select(Booking).where(
                Booking.status == "booked",
                Booking.slot_start > due + timedelta(minutes=30),
                Booking.slot_start <= due + timedelta(minutes=60),
            )
        )
    ).scalars()
    await _remind(session, list(rows), "hour")


def _evening_schedule() -> Schedule:
    def due(after: datetime, until: datetime) -> list[datetime]:
        return daily(notify_settings().reminder_evening)(after, until)

    return due


def _hour_before_schedule() -> Schedule:
    def due(after: datetime, until: datetime) -> list[datetime]:
        if not notify_settings().reminder_hour_before:
            return []  # off by default: no job runs at all
        step = timedelta(minutes=30)
        start = at(after.date(), "00:00")
        moment = start + step * ((after - start) // step + 1)
        times = []
        while moment <= until:
            times.append(moment)
            moment += step
        return times

    return due


async def _clean_up(session: AsyncSession, due: datetime) -> None:
    """Expired rate-limit windows go; console messages are kept for 30 days."""
    await session.execute(delete(RateCounter).where(RateCounter.expires_at < due))
    await session.execute(delete(ConsoleMessage).where(ConsoleMessage.sent_at < due - timedelta(days=30)))


register(Job("reminders_evening", _evening_schedule(), _evening_reminders))
register(Job("reminders_hour_before", _hour_before_schedule(), _hour_before_reminders))
register(Job("notify_clean_up", daily("03:30"), _clean_up))


# --- delivery reports pushed back by the providers (decision 0082) -------------------------------

SMS_REPORTS = Metric(
    "yuyue_sms_reports_total",
    "Delivery reports pushed by SMS providers, by outcome",
    ["provider", "outcome"],  # delivered | undelivered | duplicate | unknown | malformed | refused
)


@dataclass(frozen=True)
class DeliveryReport:
    """One handset delivery report, whichever provider pushed it."""

    provider_ref: str  # Aliyun BizId, Tencent SerialNo (`sid`)
    delivered: bool
    code: str | None
    detail: str | None
    reported_at: datetime | None


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


async def record_reports(
    session: AsyncSession, provider: str, reports: Sequence[DeliveryReport]
) -> Counter[str]:
    """Record each report on the message the provider accepted under that reference, in the
    caller's transaction. Only a message without a report takes one (a conditional `UPDATE`), so a
    report pushed twice, even by two requests at once, is recorded once. Returns the outcomes:
    `delivered`, `undelivered`, `duplicate` (the message has its report already) and `unknown` (no
    message of this provider has the reference: ignored)."""
    now = clock.now()
    outcomes: Counter[str] = Counter()
    for report in reports:
        matched = (Message.provider == provider, Message.provider_ref == report.provider_ref)
        status = "delivered" if report.delivered else "undelivered"
        rows = (
            await session.execute(
                update(Message)
                .where(*matched, Message.delivery_status.is_(None))
                .values(
                    delivery_status=status,
                    delivery_code=_clip(report.code, 100),
                    delivery_detail=_clip(report.detail, 200),
                    delivery_reported_at=report.reported_at,
                    delivery_received_at=now,
                    updated_at=now,
                )
                .returning(Message.id, Message.kind, Message.phone_masked)
                .execution_options(synchronize_session=False)
            )
        ).all()
        if rows:
            outcomes[status] += 1
            if not report.delivered:  # the masked number only, as everywhere in the logs
                for row in rows:
                    log.warning(
                        "sms_undelivered",
                        provider=provider,
                        message=row.id,
                        kind=row.kind,
                        phone=row.phone_masked,
                        code=report.code,
                    )
            continue
        known = (await session.execute(select(Message.id).where(*matched).limit(1))).first()
        outcomes["duplicate" if known else "unknown"] += 1
    return outcomes


def count_reports(provider: str, outcomes: Counter[str]) -> None:
    """The metric and a log line, once the reports are committed (or refused)."""
    for outcome, n in outcomes.items():
        SMS_REPORTS.labels(provider=provider, outcome=outcome).inc(n)
    if outcomes.get("unknown"):
        log.warning("sms_reports_unknown", provider=provider, n=outcomes["unknown"])
    log.info("sms_reports", provider=provider, **dict(outcomes))


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


# --- SMS verification codes (rule M6) -----------------------------------------------------------

CODE_TTL = timedelta(minutes=5)
CODE_MAX_TRIES = 5
# (window, length in seconds, most codes in one window), per number and per client address.
CODE_LIMITS = (("minute", 60, 1), ("hour", 3600, 5), ("day", 86400, 10))


def _window_start(now: datetime, window: str) -> datetime:
    if window == "minute":
        return now.replace(second=0, microsecond=0)
    if window == "hour":
        return now.replace(minute=0, second=0, microsecond=0)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def _count(session: AsyncSession, key: str, limit: int, expires_at: datetime) -> bool:
    """One conditional upsert: the window's counter goes up unless it already reached `limit`."""
    insert = _insert(session, RateCounter).values(key=key, n=1, expires_at=expires_at)
    statement = insert.on_conflict_do_update(
        index_elements=["key"], set_={"n": RateCounter.n + 1}, where=RateCounter.n < limit
    ).returning(RateCounter.n)
    return (await session.execute(statement)).first() is not None


def _code_hash(secret: str, phone: str, code: str) -> str:
    return crypto.lookup_hash(secret, f"code:{phone}:{code}")


async def request_code(session: AsyncSession, secret: str, phone: str, client: str) -> dict[str, Any]:
    """Rule M6: a 6-digit code for the number, valid 5 minutes; at most 1 a minute, 5 an hour and 10
    a day per number and per client address (fixed windows of the platform clock)."""
    if not MOBILE.match(phone):
        raise ValidationFailedError("phone must be a mainland mobile number of 11 digits")
    now = clock.now()
    phone_hash = crypto.lookup_hash(secret, f"phone:{phone}")
    client_hash = crypto.lookup_hash(secret, f"client:{client}")
    for scope, subject in (("p", phone_hash), ("c", client_hash)):
        for window, length, limit in CODE_LIMITS:
            start = _window_start(now, window)
            end = start + timedelta(seconds=length)
            if not await _count(session, f"code:{scope}:{subject}:{window}:{start:%Y%m%d%H%M}", limit, end):
                retry = max(1, int((end - now).total_seconds()) + 1)
                raise RateLimited(
                    f"at most {limit} code(s) per {window} for this "
                    + ("number" if scope == "p" else "client"),
                    retry_after_s=retry,
                )
    # A new code replaces the number's earlier ones.
    await session.execute(
        update(PhoneCode)
        .where(PhoneCode.phone_hash == phone_hash, PhoneCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        PhoneCode(
            phone_hash=phone_hash,
            client_hash=client_hash,
            code_hash=_code_hash(secret, phone, code),
            created_at=now,
            expires_at=now + CODE_TTL,
            tries=0,
        )
    )
    draft = Draft(
        kind="code",
        params={"code_enc": crypto.encrypt(secret, code)},
        phone_enc=crypto.encrypt(secret, phone),
        phone_masked=mask_phone(phone),
        unit_path="platform/",
    )
    await enqueue(session, [draft])
    return {"phone": mask_phone(phone), "expires_at": (now + CODE_TTL).isoformat(), "length": 6}


async def check_code(session: AsyncSession, secret: str, phone: str, code: str) -> bool:
    """True when `code` is the number's live code (then used up). A wrong code counts a try;
    the 5th wrong try burns the code. The caller commits either way."""
    now = clock.now()
    phone_hash = crypto.lookup_hash(secret, f"phone:{phone}")
    row = (
        await session.execute(
            select(PhoneCode)
            .where(
                PhoneCode.phone_hash == phone_hash, PhoneCode.used_at.is_(None), PhoneCode.expires_at > now
            )
            .order_by(PhoneCode.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    live = and_(PhoneCode.id == row.id, PhoneCode.used_at.is_(None), PhoneCode.tries < CODE_MAX_TRIES)
    if hmac.compare_digest(row.code_hash, _code_hash(secret, phone, code)):
        used = await session.execute(
            update(PhoneCode).where(live).values(used_at=now).execution_options(synchronize_session=False)
        )
        return bool(getattr(used, "rowcount", 0))
    await session.execute(
        update(PhoneCode)
        .where(live)
        .values(
            tries=PhoneCode.tries + 1,
            used_at=case((PhoneCode.tries + 1 >= CODE_MAX_TRIES, now), else_=None),
        )
        .execution_options(synchronize_session=False)
    )
    return False
