"""Bureaus' own booking systems (rules G5, G6; decision 0080): the slots and bookings a city bureau
or district pushes from its own system, keyed by its own external ids, and their figures per day,
service and system, kept up to date at each push so that the figures (rule G18) read few rows.

No personal data: a pushed booking has no name, ID number or phone, only its slot and status."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime


class BureauSlot(Base):
    """A slot of a bureau's system at a hall and service of the platform's catalogue."""

    __tablename__ = "bureau_slots"
    __table_args__ = (
        Index("ix_bureau_slots_client_day_service", "client_id", "day", "service_id"),
        Index("ix_bureau_slots_hall_day", "hall_id", "day"),  # the dashboard's heat map
    )

    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    day: Mapped[date] = mapped_column(Date)
    start: Mapped[datetime] = mapped_column(LocalDateTime)
    end: Mapped[datetime] = mapped_column(LocalDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer)  # seats the bureau's system has sold
    received_at: Mapped[datetime] = mapped_column(LocalDateTime)  # when last created or changed


class BureauBooking(Base):
    """A booking of a bureau's system; its slot is one the same system pushed (composite key)."""

    __tablename__ = "bureau_bookings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["client_id", "slot_external_id"],
            ["bureau_slots.client_id", "bureau_slots.external_id"],
            name="fk_bureau_bookings_slot_bureau_slots",
        ),
        Index("ix_bureau_bookings_client_slot", "client_id", "slot_external_id"),
    )

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot_external_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # booked | cancelled | checked_in | served | no_show
    channel: Mapped[str] = mapped_column(String(40))  # the channel inside the bureau's system
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    updated_at: Mapped[datetime] = mapped_column(LocalDateTime)
    received_at: Mapped[datetime] = mapped_column(LocalDateTime)


class BureauFigures(Base):
    """The figures of one bureau system for one slot date and service, recomputed from its slots
    and bookings whenever a push changes them (never rolled up: a bureau may correct a past day)."""

    __tablename__ = "bureau_figures"
    __table_args__ = (
        Index("ix_bureau_figures_hall_day", "hall_id", "day"),
        Index("ix_bureau_figures_day", "day"),
    )

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    service_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hall_id: Mapped[str] = mapped_column(String(64))
    released: Mapped[int] = mapped_column(Integer, default=0)
    seats: Mapped[int] = mapped_column(Integer, default=0)
    booked: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    checked_in: Mapped[int] = mapped_column(Integer, default=0)
    served: Mapped[int] = mapped_column(Integer, default=0)
    no_show: Mapped[int] = mapped_column(Integer, default=0)
