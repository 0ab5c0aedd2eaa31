"""On site and penalties: counters, tickets, staff accounts, kiosks, no-show marks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime


class Counter(Base):
    """A service counter (窗口) of a hall. Rows 1..`units.counters` are created on first use;
    `service_ids` null means every service of the hall (docs/api.md)."""

    __tablename__ = "counters"
    __table_args__ = (UniqueConstraint("hall_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    service_ids: Mapped[list[Any] | None] = mapped_column(JSON)
    open: Mapped[bool] = mapped_column(Boolean, default=True)


class Ticket(Base):
    """A queue ticket (号). `number` is unique platform-wide (hall code, date, call number);
    `call_number` (A001, G001, W001) is what the display shows."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_hall_day_status", "hall_id", "day", "status"),
        Index(
            "uq_tickets_booking",
            "booking_id",
            unique=True,
            sqlite_where=text("booking_id IS NOT NULL"),
            postgresql_where=text("booking_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    call_number: Mapped[str] = mapped_column(String(8))
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))  # appointment | walk_in | green
    green: Mapped[str | None] = mapped_column(String(16))  # elderly | disabled | military
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"))
    booking_number: Mapped[str | None] = mapped_column(String(24))
    booked_at: Mapped[datetime | None] = mapped_column(LocalDateTime)
    slot_start: Mapped[datetime | None] = mapped_column(LocalDateTime)
    slot_end: Mapped[datetime | None] = mapped_column(LocalDateTime)
    id_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # waiting | called | skipped | finished
    counter_id: Mapped[int | None] = mapped_column(ForeignKey("counters.id"))
    # Rule G17: member items of a bundle, each finished separately: [{"service_id", "finished"}].
    items: Mapped[list[Any] | None] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(LocalDateTime)
    called_at: Mapped[datetime | None] = mapped_column(LocalDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(LocalDateTime)


class TicketCounter(Base):
    """Sequence of call numbers per hall, day and prefix."""

    __tablename__ = "ticket_counters"

    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(2), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class StaffAccount(Base):
    """A hall clerk: bound to one hall, optionally to one counter. Retiring closes the account for
    good (`active` false, `retired_at`; the username is never reused). A token carries the
    `token_version` it was issued under; a password reset raises it, ending older tokens."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(100))
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    counter_id: Mapped[int | None] = mapped_column(ForeignKey("counters.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    retired_at: Mapped[datetime | None] = mapped_column(LocalDateTime)


class Kiosk(Base):
    """A self-service check-in machine of one hall; its token names this row and dies with it."""

    __tablename__ = "kiosks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(LocalDateTime)


class NoShowMark(Base):
    """One no-show as the penalty rules see it (rules G13, G15, M9): the policy scope it counts in,
    its item, and the bans that used it up, one per count of the rule (docs/rules.md "Penalties": each
    rule keeps its own count): `ban_id` for G15's one-day count or M9's count in all, `item_ban_id`
    for G15's one-item count. Deleted when the miss is excused (rules T9, G14)."""

    __tablename__ = "no_show_marks"
    __table_args__ = (Index("ix_no_show_marks_citizen_scope", "citizen_id", "scope_unit_id"),)

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"))
    service_id: Mapped[int] = mapped_column(Integer)
    hall_id: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    scope_unit_id: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(24))  # city | medical_insurance | none
    ban_id: Mapped[int | None] = mapped_column(ForeignKey("bans.id"))
    marked_at: Mapped[datetime] = mapped_column(LocalDateTime)
    # docs/rules.md "Items": `catalogue.service.item_of` of the booked service when marked (NULL in rows
    # marked before items: the service is its own item)
    item: Mapped[str | None] = mapped_column(String(80))
    item_ban_id: Mapped[int | None] = mapped_column(ForeignKey("bans.id"))
