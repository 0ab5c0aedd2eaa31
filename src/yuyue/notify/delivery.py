"""Delivery of the outbox (`deliver_due`, run by `yuyue worker`, by the in-process loop of `serve`,
and before GET /api/v1/test/messages answers):
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
import os
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yuyue.clock import clock
from yuyue.kit import crypto
from yuyue.models import Booking, DeliveryAttempt, Message
from yuyue.notify import templates
from yuyue.notify.config import NotifySettings, email_settings, in_quiet_hours, notify_settings, sms_settings
from yuyue.notify.outbox import DEFERRABLE
from yuyue.notify.providers import EmailProvider, Outgoing, Provider, ProviderError, Receipt, make_provider
from yuyue.ops.logging import log


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
