"""The audit log (rules G3–G7: every admin action is audited): one append-only table, written in
the transaction of the change it records, read by unit subtree. A leaf under every domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.auth.service import Acting
from yuyue.clock import at, clock
from yuyue.models import Admin, AuditEntry, StaffAccount


async def audit(
    session: AsyncSession,
    admin: Acting | None,
    unit_id: str,
    unit_path: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    staff_id: int | None = None,
) -> None:
    """Append one audit entry (the table is only ever inserted into). The actor is the admin, or a
    hall clerk (`staff_id`) for what clerks may do that must leave a trace."""
    session.add(
        AuditEntry(
            at=clock.now(),
            admin_id=admin.id if admin else None,
            staff_id=staff_id,
            unit_id=unit_id,
            unit_path=unit_path,
            action=action,
            target=target,
            before=before,
            after=after,
        )
    )


@dataclass(slots=True, kw_only=True)
class AuditView:
    """An audit entry as docs/api.md shows it; checked by `AuditOut`."""

    id: int
    at: str
    admin: str | None
    staff: str | None
    unit_id: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


async def read_audit(
    session: AsyncSession, root_path: str, start: date | None, end: date | None, limit: int
) -> list[AuditView]:
    query = (
        select(AuditEntry, Admin.username, StaffAccount.username)
        .outerjoin(Admin, Admin.id == AuditEntry.admin_id)
        .outerjoin(StaffAccount, StaffAccount.id == AuditEntry.staff_id)
        .where(AuditEntry.unit_path.startswith(root_path, autoescape=True))
    )
    if start is not None:
        query = query.where(AuditEntry.at >= at(start, "00:00"))
    if end is not None:
        query = query.where(AuditEntry.at < at(end + timedelta(days=1), "00:00"))
    rows = (
        await session.execute(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
    ).all()
    return [
        AuditView(
            id=entry.id,
            at=entry.at.isoformat(),
            admin=username,
            staff=clerk,
            unit_id=entry.unit_id,
            action=entry.action,
            target=entry.target,
            before=entry.before,
            after=entry.after,
        )
        for entry, username, clerk in rows
    ]
