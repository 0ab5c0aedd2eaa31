"""Identity and partner channels (issue 9): login states, citizen sessions, API clients and their
keys, request nonces, and which partner client made a booking."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime


class LoginState(Base):
    """A finished external login's `state` (hashed): the primary key makes each state single-use, so
    a replayed state is refused. The state itself is an encrypted, expiring blob that carries the
    nonce and PKCE verifier, so no database work happens before the provider answers."""

    __tablename__ = "login_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[datetime] = mapped_column(LocalDateTime, index=True)


class CitizenSession(Base):
    """A revocable login session; citizen access tokens name it (`sid`). Times are real time."""

    __tablename__ = "citizen_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str | None] = mapped_column(String(64))
    company_uscc: Mapped[str | None] = mapped_column(String(18))
    company_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    expires_at: Mapped[datetime] = mapped_column(LocalDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(LocalDateTime)


class ApiClient(Base):
    """A partner channel (WeChat account, city app, provincial portal) registered by platform admins,
    or a bureau's or district's own booking system (rules G5, G6), bound to its unit (`unit_id`)."""

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(24))
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    # Where this partner receives its bookings' events (issue 7 item 7); None: no webhook.
    webhook_url: Mapped[str | None] = mapped_column(String(500), default=None)
    # A bureau system's unit (decision 0080): its requests act inside that unit's subtree only.
    unit_id: Mapped[str | None] = mapped_column(String(64), default=None)


class ApiKey(Base):
    """A signing key of an API client; the secret is stored encrypted (it is needed to check HMACs).
    Rotation: a new key is added and the older ones expire after a grace period."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), index=True)
    secret_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(LocalDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(LocalDateTime)


class ChannelNonce(Base):
    """Nonces of signed partner requests, kept while their timestamp is acceptable (replay refusal
    by the primary key). `seen_at` is real time in epoch seconds."""

    __tablename__ = "channel_nonces"
    __table_args__ = (Index("ix_channel_nonces_seen_at", "seen_at"),)

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[int] = mapped_column(Integer)


class ChannelBooking(Base):
    """Which partner client made a booking (its `channel` is on the booking itself, rule T1)."""

    __tablename__ = "channel_bookings"

    number: Mapped[str] = mapped_column(String(24), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)


class ForeignerPhone(Base):
    """A travel document a confirmed phone number logged in with (issue 19): one phone holds at most
    YUYUE_FOREIGNER_DOCUMENTS_PER_PHONE documents. Keyed hashes only."""

    __tablename__ = "foreigner_phones"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    id_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
