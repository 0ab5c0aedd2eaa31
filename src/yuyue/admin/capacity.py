"""Capacity requests (rule G20): proposed at any level (G4), decided once by an admin allowed to
approve them and never the requester (G4–G6), applied at once through the seats' one writer
(`booking.inventory`); audited."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.service import Acting, Party, authorise
from yuyue.booking.inventory import apply_capacity_change
from yuyue.calendar.service import hall_calendar
from yuyue.catalogue.service import hourly_starts, hours_tuple
from yuyue.clock import at, clock
from yuyue.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from yuyue.kit.events import Event, emit
from yuyue.kit.http import rowcount
from yuyue.models import Admin, CapacityRequest, Service, Unit

# --- capacity requests (rule G20) ------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class RequestView:
    """A capacity request as docs/api.md shows it (rule G20); checked by `CapacityRequestOut`."""

    id: int
    service_id: int
    hall_id: str
    date_from: str
    date_to: str | None
    daily_capacity: int
    reason: str
    status: str
    requested_by: int
    requested_at: str
    approval_due: str
    decided_by: int | None
    decided_at: str | None
    note: str | None
    hours: list[dict[str, str]] | None
    open_days: bool


def request_view(request: CapacityRequest) -> RequestView:
    return RequestView(
        id=request.id,
        service_id=request.service_id,
        hall_id=request.hall_id,
        date_from=request.date_from.isoformat(),
        date_to=request.date_to.isoformat() if request.date_to else None,
        daily_capacity=request.daily_capacity,
        reason=request.reason,
        status=request.status,
        requested_by=request.requested_by,
        requested_at=request.requested_at.isoformat(),
        approval_due=request.overdue_at.isoformat(),
        decided_by=request.decided_by,
        decided_at=request.decided_at.isoformat() if request.decided_at else None,
        note=request.note,
        hours=request.hours,
        open_days=bool(request.open_days),
    )


MAX_CHANGE_DAYS = 92


def check_extended_hours(hours: list[dict[str, str]], hall_hours: list[Any] | None) -> None:
    """Extended hours (rule G12) add hours: every hour the hall opens stays open, so no booking is
    left outside the day's slots; periods are HH:MM, start before end."""
    periods = []
    for period in hours:
        try:
            start, end = time.fromisoformat(period["start"]), time.fromisoformat(period["end"])
        except (KeyError, ValueError):
            raise ValidationFailed("hours: periods of HH:MM start and end") from None
        if start >= end:
            raise ValidationFailed("hours: each period starts before it ends")
        periods.append((period["start"], period["end"]))
    day = date(2000, 1, 3)  # any day: only the hours matter
    wanted = set(hourly_starts(tuple(periods), day))
    if not set(hourly_starts(hours_tuple(hall_hours), day)) <= wanted:
        raise ValidationFailed("hours: extended hours keep every hour the hall opens")


async def request_capacity(
    session: AsyncSession,
    who: Acting,
    service_id: int,
    date_from: date,
    date_to: date | None,
    daily_capacity: int,
    reason: str,
    hours: list[dict[str, str]] | None = None,
    open_days: bool = False,
) -> tuple[CapacityRequest, Unit]:
    """Rule G20: a change of released capacity, for the days `date_from`–`date_to`, or with
    `date_to` None a change of the standing daily capacity from `date_from` on. A range may also
    carry rule G12's remedies (decision 0093): `hours` the service opens on those dates (extended
    hours: they must cover the hall's own), `open_days` its non-working dates open too ("5+X")."""
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFound(f"service {service_id} not found")
    hall = await session.get(Unit, service.hall_id)
    assert hall is not None
    authorise(who, "propose", hall.path)
    if date_to is not None and date_to < date_from:
        raise ValidationFailed("date_to is before date_from")
    if date_to is not None and (date_to - date_from).days >= MAX_CHANGE_DAYS:
        raise ValidationFailed(f"a change covers at most {MAX_CHANGE_DAYS} days")
    if (hours or open_days) and date_to is None:
        raise ValidationFailed("hours and open_days are for a range of dates: give date_to")
    if hours:
        check_extended_hours(hours, hall.hours)
    calendar = await hall_calendar(session, hall.id)
    today = clock.today()
    earliest = calendar.nth_working_after(today, 2)
    if date_from < earliest:  # rule G20: at least the 2nd working day after the request
        raise Unprocessable(
            f"date_from must be on or after {earliest.isoformat()} (the 2nd working day after today)",
            code="too_late_for_change",
            earliest=earliest.isoformat(),
        )
    now = clock.now()
    # Rule G20: approved within 1 working day: overdue at 24:00 of the next working day.
    overdue_at = at(calendar.nth_working_after(today, 1) + timedelta(days=1), "00:00")
    request = CapacityRequest(
        service_id=service.id,
        hall_id=hall.id,
        date_from=date_from,
        date_to=date_to,
        daily_capacity=daily_capacity,
        reason=reason,
        status="pending",
        requested_by=who.id,
        requested_at=now,
        overdue_at=overdue_at,
        hours=hours or None,
        open_days=open_days,
    )
    session.add(request)
    await session.flush()
    return request, hall


async def get_request(session: AsyncSession, request_id: int) -> tuple[CapacityRequest, Unit, Party]:
    row = (
        await session.execute(
            select(CapacityRequest, Unit)
            .join(Unit, Unit.id == CapacityRequest.hall_id)
            .where(CapacityRequest.id == request_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"capacity request {request_id} not found")
    request, hall = row
    return request, hall, (await requesters(session, [request]))[request.id]


async def list_requests(session: AsyncSession, who: Acting, status: str | None) -> list[CapacityRequest]:
    query = (
        select(CapacityRequest)
        .join(Unit, Unit.id == CapacityRequest.hall_id)
        .where(Unit.path.startswith(who.unit_path, autoescape=True))
    )
    if status is not None:
        query = query.where(CapacityRequest.status == status)
    return list((await session.execute(query.order_by(CapacityRequest.id.desc()))).scalars())


async def decide(
    session: AsyncSession, who: Acting, request: CapacityRequest, approve: bool, note: str | None
) -> None:
    """Approve (apply the capacity at once, through the seats' one writer, `booking.inventory`) or
    reject; a conditional UPDATE decides exactly once. An approval is announced to the admins of
    the hall it concerns (`capacity.approved`, rule G4: approved changes go to the halls' admins)."""
    now = clock.now()
    changed = await session.execute(
        update(CapacityRequest)
        .where(CapacityRequest.id == request.id, CapacityRequest.status == "pending")
        .values(status="approved" if approve else "rejected", decided_by=who.id, decided_at=now, note=note)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Conflict(f"this request is already {request.status}", code="already_decided")
    await session.refresh(request)
    if approve:
        await apply_capacity_change(
            session,
            request.service_id,
            request.date_from,
            request.date_to,
            request.daily_capacity,
            hours=request.hours,
            open_days=bool(request.open_days),
            request_id=request.id,
        )
        await emit(session, Event("capacity.approved", {"request": request}))


async def propose_capacity(
    session: AsyncSession,
    who: Acting,
    service_id: int,
    date_from: date,
    date_to: date | None,
    daily_capacity: int,
    reason: str,
    hours: list[dict[str, str]] | None = None,
    open_days: bool = False,
) -> RequestView:
    """Rule G20: ask for a change of released capacity (any level may propose in its subtree, G4);
    audited. Returns the pending request's view."""
    request, hall = await request_capacity(
        session, who, service_id, date_from, date_to, daily_capacity, reason, hours, open_days
    )
    view = request_view(request)
    await audit(session, who, hall.id, hall.path, "capacity.request", str(request.id), None, asdict(view))
    return view


async def request_for(session: AsyncSession, who: Acting, request_id: int) -> CapacityRequest:
    """A capacity request of `who`'s subtree."""
    request, hall, _ = await get_request(session, request_id)
    authorise(who, "view", hall.path)
    return request


async def decide_request(
    session: AsyncSession, who: Acting, request_id: int, approve: bool, note: str | None
) -> RequestView:
    """Rules G4–G6, G20: approve (applied at once) or reject, by an admin allowed to approve it,
    never the requester; audited. Returns the decided request's view."""
    request, hall, requester = await get_request(session, request_id)
    authorise(who, "approve", hall.path, requester=requester)
    before = request_view(request)
    await decide(session, who, request, approve, note)
    after = request_view(request)
    action = "capacity.approve" if approve else "capacity.reject"
    await audit(session, who, hall.id, hall.path, action, str(request.id), asdict(before), asdict(after))
    return after


async def requesters(session: AsyncSession, requests: list[CapacityRequest]) -> dict[int, Party]:
    """Who asked for each request (for `may(..., "approve", requester=...)`), in one query."""
    ids = {r.requested_by for r in requests}
    if not ids:
        return {}
    rows = (
        await session.execute(
            select(Admin.id, Admin.level, Unit.path)
            .join(Unit, Unit.id == Admin.unit_id)
            .where(Admin.id.in_(ids))
        )
    ).all()
    parties = {row.id: Party(id=row.id, unit_path=row.path, level=int(row.level)) for row in rows}
    return {r.id: parties[r.requested_by] for r in requests if r.requested_by in parties}
