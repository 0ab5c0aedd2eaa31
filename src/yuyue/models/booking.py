"""Slots, bookings, seats held before they return to the pool, booking-number counters and
idempotency keys."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime

LIVE_STATUSES = ("booked", "checked_in")


class Slot(Base):
    """One hour of one service on one day. `capacity` is the whole slot (on-site share included);
    `booked` counts every seat sold, whatever the channel, plus the seats held in `seat_returns`.
    Invariants: 0 <= booked <= capacity; booked = seats of live bookings + seats of pending returns."""

    __tablename__ = "slots"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    day: Mapped[date] = mapped_column(Date)
    start: Mapped[datetime] = mapped_column(LocalDateTime)
    end: Mapped[datetime] = mapped_column(LocalDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_slots_service_day", "service_id", "day"),
        Index("ix_slots_day", "day"),  # every service's slots of some days (the watch, decision 0101)
    )


class SeatReturn(Base):
    """Seats a cancel or a reschedule freed that the waiting list did not take (issue 9 item 5,
    decision 0081): still counted in `slots.booked` until `due_at`, a random moment of the policy's
    `freed_seat_delay_*` window, when the `return_freed_seats` job deletes the row and frees them
    in one transaction (offering them to the waiting list first again)."""

    __tablename__ = "seat_returns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slot_id: Mapped[str] = mapped_column(ForeignKey("slots.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    seats: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(LocalDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)

    __table_args__ = (CheckConstraint("seats > 0", name="seats_positive"),)


class Booking(Base):
    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    slot_id: Mapped[str] = mapped_column(ForeignKey("slots.id"))
    slot_day: Mapped[date] = mapped_column(Date)
    slot_start: Mapped[datetime] = mapped_column(LocalDateTime)
    slot_end: Mapped[datetime] = mapped_column(LocalDateTime)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    channel: Mapped[str] = mapped_column(String(24))
    business_types: Mapped[list[Any]] = mapped_column(JSON, default=list)
    company_uscc: Mapped[str | None] = mapped_column(String(18))
    company_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    # Who cancelled a `cancelled` booking: citizen | hall (a closed day) | staff (docs/api.md).
    cancelled_by: Mapped[str | None] = mapped_column(String(8), default=None)
    # The one-live-booking key of the policy in force (rules T5, M10): unique among live bookings.
    live_key: Mapped[str] = mapped_column(String(200))
    rebook_of: Mapped[str | None] = mapped_column(String(24))
    # The login session it was made through (`booking.rules.Caller.session_ref`, migration 0028):
    # the hoarding evidence's "many bookings in seconds through one session or partner" (rule G15).
    session_ref: Mapped[str | None] = mapped_column(String(100), default=None)
    rebooked: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    updated_at: Mapped[datetime] = mapped_column(LocalDateTime)

    __table_args__ = (
        Index("ix_bookings_citizen", "citizen_id", "created_at"),
        Index("ix_bookings_slot", "slot_id"),
        Index("ix_bookings_hall_day", "hall_id", "slot_day"),
        Index(
            "uq_bookings_live_key",
            "live_key",
            unique=True,
            sqlite_where=text("status IN ('booked', 'checked_in')"),
            postgresql_where=text("status IN ('booked', 'checked_in')"),
        ),
    )


class BookingCounter(Base):
    """Sequence of booking numbers per hall and slot date (rule M12)."""

    __tablename__ = "booking_counters"

    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    citizen_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime, index=True)
