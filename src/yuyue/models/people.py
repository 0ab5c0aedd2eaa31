"""Citizens, bans, administrators and the audit log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from yuyue.models.base import Base, LocalDateTime


class Citizen(Base):
    """A real-name person. ID number, name and phone are stored encrypted, with a keyed hash of the
    ID number for lookups and masked forms for display; never in clear. No birth date is kept beside
    the masked ID (issue 19, decision 0095): what the rules need of it is read from the ID number
    at the moment of use."""

    __tablename__ = "citizens"
    __table_args__ = (UniqueConstraint("id_type", "id_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id_type: Mapped[str] = mapped_column(String(32))
    id_hash: Mapped[str] = mapped_column(String(64))
    id_enc: Mapped[str] = mapped_column(Text)
    id_masked: Mapped[str] = mapped_column(String(40))
    name_enc: Mapped[str] = mapped_column(Text)
    name_masked: Mapped[str] = mapped_column(String(40))
    phone_enc: Mapped[str] = mapped_column(Text)
    phone_masked: Mapped[str] = mapped_column(String(20))
    gender: Mapped[str | None] = mapped_column(String(1))
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    updated_at: Mapped[datetime] = mapped_column(LocalDateTime)
    # 长辈模式 remembered per account (issue 20); None: never chosen, the browser's cookie decides
    elder_mode: Mapped[bool | None] = mapped_column(Boolean, default=None)


class Ban(Base):
    """A booking ban (rules M9, G15): covers the halls under `unit_id`, through `until` inclusive."""

    __tablename__ = "bans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    until: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # penalty | admin
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    lifted_at: Mapped[datetime | None] = mapped_column(LocalDateTime)


class Admin(Base):
    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(100))
    # Rule G7's mobile number, encrypted like citizens' (decision 0095), with its masked form.
    phone_enc: Mapped[str] = mapped_column(Text)
    phone_masked: Mapped[str] = mapped_column(String(20))
    # Optional: alerts also go by email when the platform has an SMTP server (issue 7 item 7).
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    level: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(LocalDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(LocalDateTime)


class AuditEntry(Base):
    """One audited action. The actor is an admin (`admin_id`) or a hall clerk (`staff_id`, e.g. a
    clerk revealing a citizen's full details at the counter); both null for the platform itself."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_unit_at", "unit_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(LocalDateTime)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admins.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    unit_id: Mapped[str] = mapped_column(String(64))
    unit_path: Mapped[str] = mapped_column(String(2000))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
