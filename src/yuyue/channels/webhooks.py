"""Partner webhooks (issue 7 item 7): a booking made through a partner client that set a webhook URL
has its events (created, cancelled, rescheduled, no-show) POSTed to the partner, signed as partners
sign to us (decision 0063, `kit/signing.py`). The event is written to the notification outbox in the
same transaction as the change; the outbox's delivery loop claims and retries it like an SMS and
hands it to `deliver_webhook`, registered here for the `webhook` channel. No personal data goes out:
numbers, ids and times only."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yuyue.catalogue.service import service_info
from yuyue.clock import clock
from yuyue.kit import addresses, crypto
from yuyue.kit.events import Event, Rows, subscribe
from yuyue.kit.signing import sign
from yuyue.models import ApiClient, ApiKey, Booking, ChannelBooking
from yuyue.notify import handlers as _sms_first  # noqa: F401 - its subscribers go first: the SMS row before the webhook's
from yuyue.notify.delivery import Claimed, register_deliverer, settle
from yuyue.notify.outbox import Draft, enqueue
from yuyue.notify.providers import ProviderError, Receipt
from yuyue.ops.logging import log

WEBHOOK = "webhook"
webhook_transport: httpx.AsyncBaseTransport | None = None  # tests route webhooks to a local fake
TEMPORARY_HTTP = (408, 425, 429)


async def post_webhook(
    url: str, key_id: str, key_secret: str, message_id: str, body: dict[str, Any]
) -> Receipt:
    """One signed POST of an event to a partner. Signature as partners sign to us (decision 0063):
    HMAC-SHA256 over METHOD, path, query, timestamp, a fresh nonce and the body's SHA-256, with the
    client's newest key; `X-Yuyue-Message-Id` stays the same across retries so the partner can drop a
    duplicate. 2xx: sent; 408/425/429/5xx and network failures: temporary; any other answer: permanent
    (a redirect is not followed). The host is resolved at each delivery and every address must be
    public (`kit/addresses.py`, decision 0094); the connection goes to the address checked."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    parts = urlsplit(url)
    timestamp, nonce = str(int(time.time())), secrets.token_urlsafe(16)
    headers = {
        "Content-Type": "application/json",
        "X-Yuyue-Key": key_id,
        "X-Yuyue-Timestamp": timestamp,
        "X-Yuyue-Nonce": nonce,
        "X-Yuyue-Signature": sign(
            key_secret, "POST", parts.path or "/", parts.query, timestamp, nonce, content
        ),
        "X-Yuyue-Message-Id": message_id,
        "X-Yuyue-Event": str(body.get("event", "")),
    }
    try:  # decision 0094: resolved and checked again now, and sent to the address checked
        target = await addresses.pinned(url)
    except addresses.AddressRefused as refused:
        raise ProviderError("address_not_allowed", str(refused), temporary=False) from None
    try:
        async with httpx.AsyncClient(
            transport=webhook_transport, timeout=5.0, follow_redirects=False
        ) as client:
            answer = await client.post(
                target.url,
                content=content,
                headers=headers | target.headers,
                extensions=dict(target.extensions),
            )
    except httpx.TimeoutException:
        raise ProviderError("timeout", "the partner did not answer in 5 s", temporary=True) from None
    except httpx.HTTPError as exc:
        raise ProviderError("unreachable", type(exc).__name__, temporary=True) from None
    if 200 <= answer.status_code < 300:
        return Receipt(provider_ref=answer.headers.get("x-request-id"), code=str(answer.status_code))
    temporary = answer.status_code in TEMPORARY_HTTP or answer.status_code >= 500
    raise ProviderError(f"http_{answer.status_code}", answer.text[:200], temporary=temporary)


async def enqueue_webhook(
    session: AsyncSession,
    number: str,
    event: str,
    booking: Booking | None = None,
    *,
    client: str | None = None,
    into: Rows | None = None,
    **extra: str,
) -> None:
    """Issue 7 item 7: a booking made through a partner client with a webhook: its event goes to
    the partner, in the same transaction as the change. No personal data: numbers, ids and times.
    `client`: the partner client, when the booking's `channel_bookings` row is not written yet;
    `into`: a collected event's rows (kit/events.py `collect`)."""
    if client is not None:
        found = select(ApiClient.id).where(ApiClient.id == client, ApiClient.webhook_url.isnot(None))
    else:
        found = (
            select(ChannelBooking.client_id)
            .join(ApiClient, ApiClient.id == ChannelBooking.client_id)
            .where(ChannelBooking.number == number, ApiClient.webhook_url.isnot(None))
        )
    target = (await session.execute(found)).scalar_one_or_none()
    if target is None:
        return
    if booking is None:
        booking = (await session.execute(select(Booking).where(Booking.number == number))).scalar_one()
    info = await service_info(session, booking.service_id)
    params = {
        "client_id": target,
        "event": event,
        "number": booking.number,
        "status": booking.status,
        "service_id": str(booking.service_id),
        "hall_id": info.hall_id,
        "slot_start": booking.slot_start.isoformat(),
        "slot_end": booking.slot_end.isoformat(),
        "quantity": str(booking.quantity),
        "channel": booking.channel,
        **extra,
    }
    draft = Draft(
        kind="webhook",
        channel="webhook",
        template=event,
        params=params,
        phone_enc="",
        phone_masked="",
        unit_path=info.hall_path,
        booking_number=booking.number,
    )
    await enqueue(session, [draft], into=into)


async def signing_key(session: AsyncSession, secret: str, client_id: str) -> tuple[str, str] | None:
    """The client's newest key in force (id, secret): webhooks are signed as partners sign to us."""
    now = clock.now()
    keys = (
        await session.execute(
            select(ApiKey)
            .where(ApiKey.client_id == client_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc())
        )
    ).scalars()
    for key in keys:
        if key.expires_at is None or key.expires_at > now:
            return key.id, crypto.decrypt(secret, key.secret_enc)
    return None


async def deliver_webhook(maker: async_sessionmaker[AsyncSession], secret: str, message: Claimed) -> str:
    """POST the event to the partner's current webhook URL, signed with its newest key in force."""
    client_id = str(message.params.get("client_id", ""))
    async with maker() as session:
        client = await session.get(ApiClient, client_id)
        key = await signing_key(session, secret, client_id) if client is not None else None
    if client is None or not client.active or not client.webhook_url or key is None:
        failure = ProviderError(
            "no_webhook", "no webhook URL, no key in force, or client disabled", temporary=False
        )
        return await settle(maker, message, WEBHOOK, "permanent", error=failure)
    payload = {k: v for k, v in message.params.items() if k not in ("client_id", "event")}
    body = {"id": message.idem_key, "event": message.template, "booking": payload}
    try:
        receipt = await post_webhook(client.webhook_url, key[0], key[1], message.idem_key, body)
    except ProviderError as error:
        outcome = "temporary" if error.temporary else "permanent"
        status = await settle(maker, message, WEBHOOK, outcome, error=error)
        log.warning("webhook_failed", client=client_id, what=message.template, code=error.code, status=status)
        return status
    log.info("webhook_sent", client=client_id, what=message.template)
    return await settle(maker, message, WEBHOOK, "sent", receipt=receipt)


register_deliverer(WEBHOOK, deliver_webhook)


# --- the booking events a partner hears of (same transaction as the change) ---------------------
# `booking.created` is written by channels/service.py with the partner's `channel_bookings` row.


@subscribe("booking.cancelled")
async def _on_cancelled(session: AsyncSession, event: Event) -> None:
    booking: Booking = event.data["booking"]
    await enqueue_webhook(session, booking.number, "booking.cancelled", booking)


@subscribe("booking.cancelled_by_hall")
async def _on_cancelled_by_hall(session: AsyncSession, event: Event) -> None:
    """A closed day's cancel (booking/closures.py) is a cancel to the partner too."""
    booking: Booking = event.data["booking"]
    await enqueue_webhook(session, booking.number, "booking.cancelled", booking, cancelled_by="hall")


@subscribe("booking.rescheduled")
async def _on_rescheduled(session: AsyncSession, event: Event) -> None:
    booking: Booking = event.data["booking"]
    old = str(event.data.get("old_slot_id") or "")
    await enqueue_webhook(session, booking.number, "booking.rescheduled", booking, old_slot_id=old)


@subscribe("booking.no_show")
async def _on_no_show(session: AsyncSession, event: Event) -> None:
    booking: Booking = event.data["booking"]
    await enqueue_webhook(session, booking.number, "booking.no_show", booking)
