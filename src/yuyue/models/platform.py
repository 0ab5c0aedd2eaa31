"""Platform-wide state: key/value settings (test clock), job runs, alerts, stored hoarding rankings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime


class PlatformState(Base):
    __tablename__ = "platform_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class JobRun(Base):
    """A scheduled job ran for this due time: the primary key makes it run once, whatever the
    number of processes."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(LocalDateTime, primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(LocalDateTime)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    service_id: Mapped[int | None] = mapped_column(Integer)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    raised_at: Mapped[datetime] = mapped_column(LocalDateTime)
    detail: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(LocalDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    # Abnormal-figure alerts (rule G19): {"name", "value", "threshold"} and null | {"daily_capacity",
    # "date_from"}, a capacity request to pre-fill
    figure: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    suggestion: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)


class HoardingRanking(Base):
    """The hoarding suspects of a unit's subtree as the console's 限制预约 page shows them (rule
    G15, last clause; `watch.service.store_rankings`, nightly): the rows of `watch.service.hoarding`
    over slot dates `first`–`last`, masked, without the opaque ids (made from the secret when read)."""

    __tablename__ = "hoarding_rankings"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), primary_key=True)
    first: Mapped[date] = mapped_column(Date)
    last: Mapped[date] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(LocalDateTime)
    rows: Mapped[list[Any]] = mapped_column(JSON)
