"""Supply and oversight: admin sessions and lockouts, capacity requests, the waiting list, rollups
of the figures (rules G3–G7, G11, G12, G18, G20)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime


class AdminSession(Base):
    """One admin login. The token names its session (`sid`); logout or retirement revokes it, and
    it expires at `expires_at` (real time, docs/api.md "Test clock")."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    expires_at: Mapped[datetime] = mapped_column(LocalDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(LocalDateTime)


class AdminLockout(Base):
    """Failed logins per username in the current window; `locked_until` set after too many."""

    __tablename__ = "admin_lockouts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(LocalDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(LocalDateTime)


class CapacityRequest(Base):
    """A change of released capacity (rule G20): requested ahead, approved by the level above."""

    __tablename__ = "capacity_requests"
    __table_args__ = (Index("ix_capacity_requests_status_overdue", "status", "overdue_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    date_from: Mapped[date] = mapped_column(Date)
    # None: a change of the standing daily capacity from `date_from` on (docs/api.md "Capacity changes")
    date_to: Mapped[date | None] = mapped_column(Date, nullable=True)
    daily_capacity: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | rejected
    requested_by: Mapped[int] = mapped_column(ForeignKey("admins.id"))
    requested_at: Mapped[datetime] = mapped_column(LocalDateTime)
    overdue_at: Mapped[datetime] = mapped_column(LocalDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("admins.id"))
    decided_at: Mapped[datetime | None] = mapped_column(LocalDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    # Rule G12's remedies (decision 0093): opening hours of the service on the range's dates
    # (extended hours), and whether its non-working dates open too ("5+X"); a range only.
    hours: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    open_days: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ExtraSupply(Base):
    """A date on which an approved capacity request (rule G12's remedies, decision 0093) gives a
    service other opening hours (`hours`, extended hours) or opens it on a non-working day
    (`open_day`, "5+X"). A hall's closure of that date still wins."""

    __tablename__ = "extra_supply"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hours: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    open_day: Mapped[bool] = mapped_column(Boolean, default=False)
    request_id: Mapped[int] = mapped_column(ForeignKey("capacity_requests.id"))


class CapacityPeriod(Base):
    """A service's standing daily capacity before `until` (rule G20): an approved standing change
    from date D makes `services.daily_capacity` the new figure and keeps here the figure the days
    before D had. The capacity of a day is that of the row with the smallest `until` after it, else
    `services.daily_capacity` (`catalogue.service.ServiceInfo.capacity_on`)."""

    __tablename__ = "capacity_periods"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), primary_key=True)
    until: Mapped[date] = mapped_column(Date, primary_key=True)
    daily_capacity: Mapped[int] = mapped_column(Integer)


class WaitlistEntry(Base):
    """A citizen queueing for a service (rule G11): first come, first served per service."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        Index("ix_waitlist_service_status_id", "service_id", "status", "id"),
        Index("ix_waitlist_citizen", "citizen_id", "created_at"),
        Index(
            "uq_waitlist_waiting",
            "citizen_id",
            "service_id",
            unique=True,
            sqlite_where=text("status = 'waiting'"),
            postgresql_where=text("status = 'waiting'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    dates: Mapped[list[Any] | None] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))  # waiting | allocated | left | expired
    booking_number: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    updated_at: Mapped[datetime] = mapped_column(LocalDateTime)


class StatsDaily(Base):
    """Rollup of the figures of rule G18 for one finished slot date, service and channel. The row of
    channel '*' carries what belongs to no channel (seats released, mean wait)."""

    __tablename__ = "stats_daily"
    __table_args__ = (Index("ix_stats_daily_hall_day", "hall_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    service_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(24), primary_key=True)
    hall_id: Mapped[str] = mapped_column(String(64))
    released: Mapped[int] = mapped_column(Integer, default=0)
    booked: Mapped[int] = mapped_column(Integer, default=0)
    seats: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    checked_in: Mapped[int] = mapped_column(Integer, default=0)
    served: Mapped[int] = mapped_column(Integer, default=0)
    no_show: Mapped[int] = mapped_column(Integer, default=0)
    waitlist: Mapped[int] = mapped_column(Integer, default=0)
    wait_sum_s: Mapped[int] = mapped_column(Integer, default=0)
    wait_n: Mapped[int] = mapped_column(Integer, default=0)


class _Counts:
    """The counts of `stats_daily`, summed."""

    released: Mapped[int] = mapped_column(Integer, default=0)
    booked: Mapped[int] = mapped_column(Integer, default=0)
    seats: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    checked_in: Mapped[int] = mapped_column(Integer, default=0)
    served: Mapped[int] = mapped_column(Integer, default=0)
    no_show: Mapped[int] = mapped_column(Integer, default=0)
    waitlist: Mapped[int] = mapped_column(Integer, default=0)
    wait_sum_s: Mapped[int] = mapped_column(Integer, default=0)
    wait_n: Mapped[int] = mapped_column(Integer, default=0)


class StatsHallDaily(_Counts, Base):
    """`stats_daily` summed over a hall's services: one row per rolled-up day, hall and channel
    (decision 0089), for the figures grouped by day, hall, channel or in total (10 times fewer rows
    to read for a whole city). Written with `stats_daily`, from it, by `stats.service.roll_up`."""

    __tablename__ = "stats_hall_daily"
    __table_args__ = (Index("ix_stats_hall_daily_hall_day", "hall_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(24), primary_key=True)


class StatsServiceDaily(_Counts, Base):
    """`stats_daily` summed over the channels: one row per rolled-up day and service (decision 0089),
    for the figures grouped by service. Written with `stats_daily`, from it."""

    __tablename__ = "stats_service_daily"
    __table_args__ = (Index("ix_stats_service_daily_hall_day", "hall_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    service_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hall_id: Mapped[str] = mapped_column(String(64))


class StatsDay(Base):
    """A slot date whose figures are rolled up in `stats_daily`."""

    __tablename__ = "stats_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rolled_at: Mapped[datetime] = mapped_column(LocalDateTime)
