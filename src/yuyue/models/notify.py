"""Notifications: the outbox of messages, their delivery attempts (receipts), the handset delivery
reports, what the console provider "sent", and SMS verification codes (rule M6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime

# pending → sending (claimed under a lease) → sent | dead; pending again after a temporary failure;
# skipped when the message no longer applies at delivery time (a reminder of a cancelled booking).
MESSAGE_STATUSES = ("pending", "sending", "sent", "dead", "skipped")
# What the handset delivery report said (decision 0082); NULL until a report arrives.
DELIVERY_STATUSES = ("delivered", "undelivered")


class Message(Base):
    """One outbox row, written in the same transaction as the change it reports. It stores the
    template id and its parameters, never rendered text, so a template fix applies to messages not
    yet sent. The phone number is stored encrypted (as in `citizens`), with its masked form."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Sent to the provider with every attempt, so a retried send is recognised (idempotency key).
    idem_key: Mapped[str] = mapped_column(String(64), unique=True)
    # Optional business key ("reminder:eve:<number>:<slot>"): unique, so a reminder is never made twice.
    dedup_key: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(16), default="sms")
    template: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    phone_enc: Mapped[str] = mapped_column(Text)
    phone_masked: Mapped[str] = mapped_column(String(20))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))
    booking_number: Mapped[str | None] = mapped_column(String(24))
    # Scope for admins: the path of the hall (or unit) the message is about.
    unit_path: Mapped[str] = mapped_column(String(2000), default="platform/")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(LocalDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(LocalDateTime)
    claim: Mapped[str | None] = mapped_column(String(32))
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(LocalDateTime)
    updated_at: Mapped[datetime] = mapped_column(LocalDateTime)
    # The delivery report the provider pushed after accepting the message (decision 0082), matched
    # by provider and provider_ref; the first report is kept, a repeated push changes nothing.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_code: Mapped[str | None] = mapped_column(String(100))  # DELIVERED, DELIVRD, MK:0001 …
    delivery_detail: Mapped[str | None] = mapped_column(String(200))  # the provider's description
    delivery_reported_at: Mapped[datetime | None] = mapped_column(LocalDateTime)  # the provider's time
    delivery_received_at: Mapped[datetime | None] = mapped_column(LocalDateTime)  # when it reached us

    __table_args__ = (
        Index("ix_messages_due", "status", "next_attempt_at"),
        Index("ix_messages_provider_ref", "provider", "provider_ref"),
        Index("ix_messages_booking", "booking_number"),
        Index(
            "uq_messages_dedup_key",
            "dedup_key",
            unique=True,
            sqlite_where=text("dedup_key IS NOT NULL"),
            postgresql_where=text("dedup_key IS NOT NULL"),
        ),
    )


class DeliveryAttempt(Base):
    """One try at handing a message to a provider, and what the provider answered (the receipt)."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(LocalDateTime)
    provider: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))  # sent | temporary | permanent
    code: Mapped[str | None] = mapped_column(String(100))
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(Text)


class ConsoleMessage(Base):
    """What the `console` provider sent (non-production: GET /api/v1/test/messages). The unique
    idempotency key makes a re-sent message (a worker died before recording its success) land once."""

    __tablename__ = "console_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idem_key: Mapped[str] = mapped_column(String(64), unique=True)
    phone: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(24))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(LocalDateTime, index=True)


class PhoneCode(Base):
    """An SMS verification code (rule M6), stored hashed with the keyed hash of the phone number and
    of the client address (for the rate limits)."""

    __tablename__ = "phone_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    phone_hash: Mapped[str] = mapped_column(String(64))
    client_hash: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    expires_at: Mapped[datetime] = mapped_column(LocalDateTime)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(LocalDateTime)

    __table_args__ = (
        Index("ix_phone_codes_phone", "phone_hash", "created_at"),
        Index("ix_phone_codes_client", "client_hash", "created_at"),
    )


class RateCounter(Base):
    """A fixed-window counter (`<scope>:<hash>:<window>:<start>`), incremented by one conditional
    upsert so that concurrent requests can never pass a limit together."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(LocalDateTime, index=True)
