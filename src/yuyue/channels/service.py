"""Partner channels (rules T1, M1): the WeChat accounts, the city app and the provincial portal call
the API for citizens they have logged in. Platform admins register each partner as an API client with
scopes and signing keys; every partner request is HMAC-signed with a timestamp and a nonce.

Signature (decision 0063): hex HMAC-SHA256, with the key's secret, of

    METHOD \\n PATH \\n QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))

sent as `X-Yuyue-Key` (key id), `X-Yuyue-Timestamp` (Unix seconds), `X-Yuyue-Nonce` (16–64 of
[A-Za-z0-9_-]) and `X-Yuyue-Signature`. A timestamp more than YUYUE_CHANNEL_CLOCK_SKEW_S away from
real time is refused, and so is a nonce the client already used (primary key of `channel_nonces`,
committed in its own transaction so that a failed request cannot be replayed either).

Key rotation: a new key starts working at once; the client's older keys keep working for a grace
period and then expire. A citizen token obtained through a partner is bound to that partner.

A bureau's or district's own booking system (rules G5, G6) is an API client of channel `bureau`
bound to its unit (`unit_id`), with the scopes `bureau:sync` and/or `bureau:read` only; it signs
exactly as partners do (see `channels/bureau/`, decision 0080).
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yuyue.channels.webhooks import enqueue_webhook
from yuyue.clock import clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import Conflict, Forbidden, NotFound, Unauthenticated, Unprocessable, ValidationFailed
from yuyue.identity import service as identity
from yuyue.jobs.service import Job, every, register
from yuyue.kit import addresses, crypto
from yuyue.kit.events import Event, subscribe, write
from yuyue.kit.http import rowcount
from yuyue.kit.masking import mask_id, mask_name, mask_phone
from yuyue.kit.signing import sign
from yuyue.models import ApiClient, ApiKey, ChannelBooking, ChannelNonce, CitizenSession, Unit

NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
HEADERS = ("x-yuyue-key", "x-yuyue-timestamp", "x-yuyue-nonce", "x-yuyue-signature")
NONCE_KEEP_S = 3600  # longer than any accepted timestamp skew
BUREAU_CHANNEL = "bureau"
BUREAU_SCOPES = ("bureau:sync", "bureau:read")
BUREAU_UNIT_KINDS = ("city_department", "district")  # rules G5, G6: a city bureau or a district


@dataclass(frozen=True)
class Partner:
    client_id: str
    channel: str
    scopes: tuple[str, ...]
    rate_per_minute: int
    key_id: str
    unit_id: str | None = None  # a bureau system's unit (decision 0080)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def client_view(client: ApiClient, keys: list[ApiKey]) -> dict[str, Any]:
    return {
        "id": client.id,
        "name": client.name,
        "channel": client.channel,
        "scopes": list(client.scopes),
        "rate_per_minute": client.rate_per_minute,
        "active": client.active,
        "created_at": client.created_at.isoformat(),
        "webhook_url": client.webhook_url,
        "unit_id": client.unit_id,
        "keys": [
            {
                "id": k.id,
                "created_at": k.created_at.isoformat(),
                "expires_at": _iso(k.expires_at),
                "revoked_at": _iso(k.revoked_at),
            }
            for k in sorted(keys, key=lambda k: k.created_at, reverse=True)
        ],
    }


# --- administration (platform admins) ------------------------------------------------------------


def _new_key(secret: str, client_id: str, now: datetime) -> tuple[ApiKey, str]:
    key_secret = secrets.token_urlsafe(32)
    key = ApiKey(
        id=f"k_{secrets.token_hex(8)}",
        client_id=client_id,
        secret_enc=crypto.encrypt(secret, key_secret),
        created_at=now,
        expires_at=None,
        revoked_at=None,
    )
    return key, key_secret


async def check_bureau(session: AsyncSession, channel: str, scopes: list[str], unit_id: str | None) -> None:
    """A bureau system (decision 0080) has channel `bureau`, a unit that is a city bureau or a
    district, and bureau scopes only; a partner channel has none of these."""
    bureau_scopes = [s for s in scopes if s in BUREAU_SCOPES]
    if unit_id is None:
        if channel == BUREAU_CHANNEL or bureau_scopes:
            raise ValidationFailed("unit_id: a bureau system (channel bureau, bureau:* scopes) needs a unit")
        return
    if channel != BUREAU_CHANNEL or len(bureau_scopes) != len(scopes):
        raise ValidationFailed(
            "a client bound to a unit is a bureau system: channel 'bureau', scopes among "
            + ", ".join(BUREAU_SCOPES)
        )
    unit = await session.get(Unit, unit_id)
    if unit is None or unit.kind not in BUREAU_UNIT_KINDS:
        raise ValidationFailed(f"unit_id: {unit_id!r} is not a city bureau or a district")


async def create_client(
    session: AsyncSession,
    secret: str,
    client_id: str,
    name: str,
    channel: str,
    scopes: list[str],
    rate: int,
    unit_id: str | None = None,
) -> tuple[ApiClient, ApiKey, str]:
    """A new partner client (or bureau system, bound to `unit_id`) with its first key; the key's
    secret is shown only in this answer."""
    await check_bureau(session, channel, scopes, unit_id)
    now = clock.now()
    client = ApiClient(
        id=client_id,
        name=name,
        channel=channel,
        scopes=sorted(set(scopes)),
        rate_per_minute=rate,
        active=True,
        created_at=now,
        unit_id=unit_id,
    )
    session.add(client)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"API client {client_id} exists", code="conflict") from None
    key, key_secret = _new_key(secret, client_id, now)
    session.add(key)
    await session.flush()
    return client, key, key_secret


async def get_client(session: AsyncSession, client_id: str) -> tuple[ApiClient, list[ApiKey]]:
    client = await session.get(ApiClient, client_id)
    if client is None:
        raise NotFound(f"no API client {client_id}")
    keys = list((await session.execute(select(ApiKey).where(ApiKey.client_id == client_id))).scalars())
    return client, keys


async def list_clients(session: AsyncSession) -> list[dict[str, Any]]:
    clients = list((await session.execute(select(ApiClient).order_by(ApiClient.id))).scalars())
    keys = list((await session.execute(select(ApiKey))).scalars())
    return [client_view(c, [k for k in keys if k.client_id == c.id]) for c in clients]


async def rotate_key(
    session: AsyncSession, secret: str, client_id: str, grace_hours: int
) -> tuple[ApiKey, str]:
    """Key rotation: a new key at once; the older live keys expire after `grace_hours`."""
    await get_client(session, client_id)
    now = clock.now()
    until = now + timedelta(hours=grace_hours)
    await session.execute(
        update(ApiKey)
        .where(ApiKey.client_id == client_id, ApiKey.revoked_at.is_(None), ApiKey.expires_at.is_(None))
        .values(expires_at=until)
        .execution_options(synchronize_session=False)
    )
    key, key_secret = _new_key(secret, client_id, now)
    session.add(key)
    await session.flush()
    return key, key_secret


async def revoke_key(session: AsyncSession, client_id: str, key_id: str) -> None:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.client_id == client_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if not rowcount(result):
        raise NotFound(f"no live key {key_id} of {client_id}")


async def set_active(session: AsyncSession, client_id: str, active: bool) -> ApiClient:
    client, _ = await get_client(session, client_id)
    client.active = active
    await session.flush()
    return client


# --- signed requests -------------------------------------------------------------------------------


async def verify_request(
    maker: async_sessionmaker[AsyncSession],
    secret: str,
    skew_s: int,
    headers: Mapping[str, str],
    method: str,
    path: str,
    query: str,
    body: bytes,
) -> Partner:
    """Check a partner request's signature, timestamp and nonce; the calling partner, or 401."""
    key_id, timestamp, nonce, signature = (headers.get(h, "") for h in HEADERS)
    if not (key_id and timestamp and nonce and signature):
        raise Unauthenticated(
            "a signed partner request is required (X-Yuyue-Key, -Timestamp, -Nonce, -Signature)"
        )
    if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > skew_s:
        raise Unauthenticated("X-Yuyue-Timestamp is outside the accepted window")
    if not NONCE.match(nonce):
        raise Unauthenticated("X-Yuyue-Nonce must be 16 to 64 of A-Z a-z 0-9 _ -")
    # One short transaction of its own, before the request's: find the key, check the signature,
    # use up the nonce. The nonce stays used whatever the request's outcome.
    async with maker() as own:
        row = (
            await own.execute(
                select(ApiKey, ApiClient)
                .join(ApiClient, ApiClient.id == ApiKey.client_id)
                .where(ApiKey.id == key_id)
            )
        ).first()
        now = clock.now()
        if row is None:
            raise Unauthenticated("unknown key")
        key, client = row
        expired = key.expires_at is not None and key.expires_at <= now
        if not client.active or key.revoked_at is not None or expired:
            raise Unauthenticated("the key is revoked or expired, or the client disabled")
        # Decision 0094: a citizen token travels signed; one put on or swapped in breaks the signature.
        authorization = headers.get("authorization", "")
        expected = sign(
            crypto.decrypt(secret, key.secret_enc), method, path, query, timestamp, nonce, body, authorization
        )
        if not hmac.compare_digest(expected, signature.lower()):
            raise Unauthenticated("the signature does not match")
        claimed = await own.execute(
            _insert(own, ChannelNonce)
            .values(client_id=client.id, nonce=nonce, seen_at=int(time.time()))
            .on_conflict_do_nothing(index_elements=["client_id", "nonce"])
        )
        await own.commit()
    if not rowcount(claimed):
        raise Unauthenticated("this nonce was already used (replayed request)", code="replayed_request")
    return Partner(
        client_id=client.id,
        channel=client.channel,
        scopes=tuple(client.scopes),
        rate_per_minute=client.rate_per_minute,
        key_id=key.id,
        unit_id=client.unit_id,
    )


def require_scope(partner: Partner, scope: str, *alternatives: str) -> None:
    """The client holds `scope` (or one of `alternatives`), or 403 `forbidden`."""
    if not {scope, *alternatives} & set(partner.scopes):
        raise Forbidden(f"this client lacks the scope {scope}")


async def audit_place(session: AsyncSession, client_id: str) -> tuple[str, str]:
    """Where a client's administration is audited: a bureau system's unit (so that the unit's own
    admins see it in their audit log), otherwise the platform."""
    client = await session.get(ApiClient, client_id)
    unit = await session.get(Unit, client.unit_id) if client and client.unit_id else None
    return (unit.id, unit.path) if unit else ("platform", "platform/")


# --- citizens through a partner --------------------------------------------------------------------


async def partner_login(
    session: AsyncSession,
    settings: Any,
    partner: Partner,
    name: str,
    id_type: str,
    id_number: str,
    phone: str,
) -> dict[str, Any]:
    """A citizen the partner logged in through the provincial identity service: a session bound to
    this partner (decision 0063). The answer masks the personal data (the partner holds it already)."""
    require_scope(partner, "citizens:login")
    who = identity.verify_identity(name, id_type, id_number, phone)
    result = await identity.login(
        session, settings, who, f"channel:{partner.channel}", client_id=partner.client_id
    )
    return {
        "token": result.token,
        "citizen": {
            "id_type": who.id_type,
            "id_number": mask_id(who.id_number),
            "name": mask_name(who.name),
            "phone": mask_phone(who.phone),
        },
    }


async def partner_citizen(
    session: AsyncSession, secret: str, partner: Partner, token: str | None
) -> identity.SessionCheck:
    """The citizen of a token that this partner obtained (a token of another channel is refused),
    whose session is neither revoked nor expired. One read of the session row judges both; the
    check carries the session's login, for the booking rules (`Caller.session`)."""
    refused = "a citizen token issued to this client is required"
    try:
        citizen_id, sid = identity.citizen_of_token(secret, token)
    except Unauthenticated:
        raise Unauthenticated(refused) from None
    row = await session.get(CitizenSession, sid) if sid else None
    if row is None or row.client_id != partner.client_id:
        raise Unauthenticated(refused)
    # revoked or expired: 401; issued to another partner: 401 (decision 0094)
    check = identity.SessionCheck(citizen_id, sid)
    identity.accept_session(check, row, partner=partner.client_id)
    return check


@subscribe("booking.created")
async def _on_booked(session: AsyncSession, event: Event) -> None:
    """Rule T1: a booking made through a partner carries the partner's channel; this row names the
    client too. The partner's webhook hears of the new booking (its later events come through the
    notify handlers). On PostgreSQL both rows go in the booking's own statement (decision 0015)."""
    client_id = event.data.get("client_id")
    if client_id is None:
        return
    booking = event.data["booking"]
    row = {"number": booking.number, "client_id": client_id, "created_at": clock.now()}
    await write(session, ChannelBooking.__table__, row, into=event.into)
    await enqueue_webhook(
        session, booking.number, "booking.created", booking, client=client_id, into=event.into
    )


def check_webhook_url(url: str, production: bool) -> str:
    """An absolute http(s) URL with a host; https only in production."""
    parts = urlsplit(url)
    schemes = ("https",) if production else ("https", "http")
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        raise ValidationFailed(
            f"webhook url must be an absolute {' or '.join(schemes)} URL without credentials"
        )
    return url


async def check_webhook_address(url: str) -> None:
    """Decision 0094: the URL's host resolves, now, to public addresses only (no loopback, private,
    link-local, multicast …), else `422 webhook_address_not_allowed`; delivery checks again."""
    try:
        await addresses.public_addresses(url)
    except addresses.AddressRefused as refused:
        raise Unprocessable(f"webhook url: {refused}", code="webhook_address_not_allowed") from None


async def set_webhook(session: AsyncSession, client_id: str, url: str | None, production: bool) -> ApiClient:
    client, _ = await get_client(session, client_id)
    if url:
        check_webhook_url(url, production)
        await check_webhook_address(url)
    client.webhook_url = url or None
    await session.flush()
    return client


async def _purge_nonces(session: AsyncSession, due: datetime) -> None:
    await session.execute(delete(ChannelNonce).where(ChannelNonce.seen_at < int(time.time()) - NONCE_KEEP_S))


register(Job("channel_nonce_purge", every(15), _purge_nonces, coalesce=True))
