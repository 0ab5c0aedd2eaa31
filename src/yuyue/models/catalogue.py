"""Units (the tree, halls included), departments, services, policies, calendar and closures."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"), index=True)
    # Materialised path "platform/tianhe/tianhe-hall/": a subtree is a prefix match.
    path: Mapped[str] = mapped_column(String(2000), index=True)
    address: Mapped[str | None] = mapped_column(String(300))
    hotline: Mapped[str | None] = mapped_column(String(40))
    mode: Mapped[str | None] = mapped_column(String(32))
    hours: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    counters: Mapped[int] = mapped_column(Integer, default=0)
    code: Mapped[str | None] = mapped_column(String(4), unique=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)


class Policy(Base):
    __tablename__ = "policies"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), primary_key=True)
    preset: Mapped[str | None] = mapped_column(String(40))
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(LocalDateTime)


class Department(Base):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("hall_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    name: Mapped[str] = mapped_column(String(200))


class Service(Base):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    name: Mapped[str] = mapped_column(String(200))
    business_types: Mapped[list[Any]] = mapped_column(JSON, default=list)
    daily_capacity: Mapped[int] = mapped_column(Integer)
    max_batch: Mapped[int] = mapped_column(Integer, default=1)
    walk_in_allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    bundle_of: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    # Rules T2/G8: foreigner-related business, the only business a foreigner login (passport or
    # permit, no provincial login) may book (decision 0065).
    foreigner_related: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # docs/rules.md "Items": the city catalogue's code of the item it handles; services with one code at
    # several halls are one item (rules T5, G15); NULL: the service is an item of its own.
    item_code: Mapped[str | None] = mapped_column(String(64))


class CalendarDay(Base):
    """National calendar override (rule: working day), set by platform admins."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    working_day: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(Text, default="")


class CalendarYear(Base):
    """A year whose national calendar was imported from the State Council's notice (decision 0092):
    its listed dates are `calendar_days` rows, every other date of it is Monday–Friday, and the year
    counts as covered (no `calendar_missing`)."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(200))
    imported_at: Mapped[datetime] = mapped_column(LocalDateTime)


class Closure(Base):
    """A hall's own closed day (less the hall's closures: RULES 'Working day')."""

    __tablename__ = "closures"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    note: Mapped[str] = mapped_column(Text, default="")


class ItemSynonym(Base):
    """A word people type for an item (医保卡 → 社会保障卡), kept by platform admins; the hall
    finder's item search also matches the items that `means` matches (issue 20)."""

    __tablename__ = "item_synonyms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    term: Mapped[str] = mapped_column(String(50), unique=True)
    means: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
