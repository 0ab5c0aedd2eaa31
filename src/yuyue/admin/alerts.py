"""Alerts (rules G12, G19, G20): raised once per dedup key, listed to every level above the unit,
resolved with a note (audited); the nightly `approval_overdue` job (rule G20)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.service import Acting, authorise
from yuyue.clock import clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import NotFound, Unprocessable
from yuyue.jobs.service import Job, daily, register
from yuyue.kit.events import Event, emit
from yuyue.kit.http import rowcount
from yuyue.models import Alert, CapacityRequest, Unit

# --- alerts ----------------------------------------------------------------------------------------


async def raise_alert(
    session: AsyncSession,
    kind: str,
    unit_id: str,
    service_id: int | None,
    dedup_key: str,
    detail: str,
    raised_at: datetime | None = None,
    figure: dict[str, Any] | None = None,
    suggestion: dict[str, Any] | None = None,
) -> bool:
    """Insert an alert once per `dedup_key` (the unique index decides); True when it is new.
    Abnormal-figure alerts (rule G19) carry the `figure` that crossed its line and a `suggestion`."""
    statement = _insert(session, Alert).values(
        kind=kind,
        unit_id=unit_id,
        service_id=service_id,
        dedup_key=dedup_key,
        raised_at=raised_at or clock.now(),
        detail=detail,
        figure=figure,
        suggestion=suggestion,
    )
    result = await session.execute(statement.on_conflict_do_nothing(index_elements=["dedup_key"]))
    created = rowcount(result) > 0
    if created:
        alert = (await session.execute(select(Alert).where(Alert.dedup_key == dedup_key))).scalar_one()
        await emit(session, Event("alert.raised", {"alert": alert}))
    return created


# Alerts about a hall's or a service's figures (rules G12, G19) link to the console's charts of that
# hall, on that service (docs/api.md "Alerts": `chart`); the others have nothing to chart.
CHARTED = (
    "waitlist_over_release",
    "sold_out_fast",
    "low_utilisation",
    "no_show_high",
    "waitlist_growing",
    "channel_surge",
    "bureau_silent",
)
CHART = "/admin/dashboard"


def chart_link(kind: str, unit_id: str, service_id: int | None) -> str | None:
    """The console's dashboard of the alert's unit, opened on its service (`#service-N`)."""
    if kind not in CHARTED:
        return None
    query = urlencode({"unit_id": unit_id, **({"service_id": service_id} if service_id else {})})
    return f"{CHART}?{query}" + (f"#service-{service_id}" if service_id else "")


@dataclass(slots=True, kw_only=True)
class AlertView:
    """An alert as docs/api.md shows it; checked by `AlertOut`. `figure` and `suggestion` are the
    stored JSON of an abnormal-figure alert (rule G19), their shape checked by the model."""

    id: int
    kind: str
    unit_id: str
    service_id: int | None
    raised_at: str
    detail: str
    resolved_at: str | None
    note: str | None
    figure: dict[str, Any] | None
    suggestion: dict[str, Any] | None
    chart: str | None


def alert_view(alert: Alert) -> AlertView:
    return AlertView(
        id=alert.id,
        kind=alert.kind,
        unit_id=alert.unit_id,
        service_id=alert.service_id,
        raised_at=alert.raised_at.isoformat(),
        detail=alert.detail,
        resolved_at=alert.resolved_at.isoformat() if alert.resolved_at else None,
        note=alert.note,
        figure=alert.figure,
        suggestion=alert.suggestion,
        chart=chart_link(alert.kind, alert.unit_id, alert.service_id),
    )


async def list_alerts(session: AsyncSession, who: Acting, resolved: bool | None) -> list[Alert]:
    """Alerts of units in the admin's subtree: an alert at a hall reaches every level above it."""
    query = (
        select(Alert)
        .join(Unit, Unit.id == Alert.unit_id)
        .where(Unit.path.startswith(who.unit_path, autoescape=True))
    )
    if resolved is not None:
        query = query.where(Alert.resolved_at.is_not(None) if resolved else Alert.resolved_at.is_(None))
    return list((await session.execute(query.order_by(Alert.raised_at.desc(), Alert.id.desc()))).scalars())


async def get_alert(session: AsyncSession, alert_id: int) -> tuple[Alert, Unit]:
    row = (
        await session.execute(
            select(Alert, Unit).join(Unit, Unit.id == Alert.unit_id).where(Alert.id == alert_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    return row[0], row[1]


# Kinds whose condition is re-checked by a job: resolving frees the dedup key so a recurrence
# raises a new alert (the others are about one event and stay once for good).
RECURRING = (
    "waitlist_over_release",
    # rule G19: the abnormal-figure kinds of yuyue.watch, re-checked nightly
    "sold_out_fast",
    "low_utilisation",
    "no_show_high",
    "waitlist_growing",
    "channel_surge",
    "bureau_silent",
)


async def resolve_alert(session: AsyncSession, alert: Alert, note: str) -> None:
    changed = await session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.resolved_at.is_(None))
        .values(
            resolved_at=clock.now(),
            note=note,
            dedup_key=f"{alert.dedup_key}#resolved:{alert.id}"
            if alert.kind in RECURRING
            else alert.dedup_key,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Unprocessable("this alert is already resolved", code="already_resolved")
    await session.refresh(alert)


async def resolve_alert_as(session: AsyncSession, who: Acting, alert_id: int, note: str) -> AlertView:
    """Resolve an alert of `who`'s subtree with a note; audited."""
    alert, unit = await get_alert(session, alert_id)
    authorise(who, "resolve_alert", unit.path)
    before = alert_view(alert)
    await resolve_alert(session, alert, note)
    after = alert_view(alert)
    await audit(
        session, who, unit.id, unit.path, "alert.resolve", str(alert.id), asdict(before), asdict(after)
    )
    return after


# --- overdue approvals (rule G20) ------------------------------------------------------------------


def request_days(request: CapacityRequest) -> str:
    """`2026-12-03–2026-12-05`, or `from 2026-12-03 on` for a standing change."""
    if request.date_to is None:
        return f"from {request.date_from.isoformat()} on"
    return f"{request.date_from.isoformat()}–{request.date_to.isoformat()}"


async def flag_overdue_approvals(session: AsyncSession, due: datetime) -> int:
    """Rule G20: a request still pending at 24:00 of the next working day raises
    `approval_overdue`, once per request, at the request's hall (seen by every level above)."""
    rows = (
        await session.execute(
            select(CapacityRequest).where(
                CapacityRequest.status == "pending", CapacityRequest.overdue_at <= due
            )
        )
    ).scalars()
    raised = 0
    for request in rows:
        raised += await raise_alert(
            session,
            "approval_overdue",
            request.hall_id,
            request.service_id,
            f"approval_overdue:{request.id}",
            f"capacity request {request.id} ({request_days(request)}, "
            f"{request.daily_capacity}/day) was not decided by {request.overdue_at.isoformat()}",
            raised_at=due,
        )
    return raised


# --- jobs ------------------------------------------------------------------------------------------


async def _approval_overdue_job(session: AsyncSession, due: datetime) -> None:
    await flag_overdue_approvals(session, due)


# Overdue moments are always 24:00 (rule G20), so one run a day at 00:00 finds them all.
register(Job("approval_overdue", daily("00:00"), _approval_overdue_job))
