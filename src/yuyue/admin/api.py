"""Administration routes: login and sessions, admin accounts, capacity requests, alerts, audit.
Every action is authorised by `service.authorise` and audited. (Citizen lookup and bans by hand
live in `yuyue.penalties.api`, authorised by the same table.)"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin import service
from yuyue.admin.schemas import (
    AdminIn,
    AdminOut,
    AlertOut,
    AuditOut,
    CapacityRequestIn,
    CapacityRequestOut,
    DecisionIn,
    LoginIn,
    ResolveIn,
    RetireIn,
)
from yuyue.catalogue.service import get_unit
from yuyue.db import get_db
from yuyue.errors import DomainError
from yuyue.identity.api import settings_of
from yuyue.kit.http import bearer, problems

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])
Db = Annotated[AsyncSession, Depends(get_db)]


async def current_admin(request: Request, db: Db) -> service.Acting:
    return await service.acting_admin(db, settings_of(request).effective_secret, bearer(request))


AdminDep = Annotated[service.Acting, Depends(current_admin)]


# --- login and sessions ----------------------------------------------------------------------------


@router.post("/login", responses=problems(401, 422, 429))
async def login(body: LoginIn, request: Request, db: Db) -> dict[str, Any]:
    """Log in; 5 failures within 15 minutes lock the username for 15 minutes (`429 rate_limited`)."""
    settings = settings_of(request)
    try:
        token, admin = await service.login(
            db, settings.effective_secret, settings.token_ttl_s, body.username, body.password
        )
    except DomainError:
        await db.commit()  # the failure count must stick
        raise
    await db.commit()
    return {"token": token, "admin": service.admin_view(admin)}


@router.post("/logout", status_code=204, responses=problems(401))
async def logout(who: AdminDep, db: Db) -> Response:
    """End this session: its token is refused from now on."""
    await service.logout(db, who)
    await db.commit()
    return Response(status_code=204)


# --- admin accounts (rules G3, G7) -----------------------------------------------------------------


@router.post("/admins", status_code=201, response_model=AdminOut, responses=problems(401, 403, 409, 422))
async def create_admin(body: AdminIn, who: AdminDep, db: Db) -> dict[str, Any]:
    """Register an administrator (name, title, mobile) and open their account (rule G7)."""
    unit = await get_unit(db, body.unit_id)
    service.authorise(who, "manage_admins", unit.path, target_level=body.level)
    service.check_level_fits(unit, body.level)
    admin = await service.create_admin(db, **body.model_dump())
    view = service.admin_view(admin)
    await service.audit(db, who, unit.id, unit.path, "admin.create", str(admin.id), None, view)
    await db.commit()
    return view


@router.get("/admins", response_model=list[AdminOut], responses=problems(401))
async def list_admins(who: AdminDep, db: Db) -> list[dict[str, Any]]:
    """Admins of units in the caller's subtree, retired ones included."""
    return [service.admin_view(a) for a in await service.list_admins(db, who)]


@router.get("/admins/{admin_id}", response_model=AdminOut, responses=problems(401, 403, 404))
async def get_admin(admin_id: int, who: AdminDep, db: Db) -> dict[str, Any]:
    admin, unit = await service.get_admin(db, admin_id)
    service.authorise(who, "view", unit.path)
    return service.admin_view(admin)


@router.post("/admins/{admin_id}/retire", response_model=AdminOut, responses=problems(401, 403, 404, 422))
async def retire_admin(admin_id: int, who: AdminDep, db: Db, body: RetireIn | None = None) -> dict[str, Any]:
    """Close an account for good (rule G7): its sessions end, its username is never reused."""
    admin, unit = await service.get_admin(db, admin_id)
    service.authorise(who, "manage_admins", unit.path, target_level=admin.level)
    before = service.admin_view(admin)
    await service.retire(db, admin)
    after = service.admin_view(admin)
    if body is not None and body.reason:
        after = {**after, "reason": body.reason}
    await service.audit(db, who, unit.id, unit.path, "admin.retire", str(admin.id), before, after)
    await db.commit()
    return service.admin_view(admin)


# --- capacity requests (rule G20) ------------------------------------------------------------------


@router.post(
    "/capacity-requests",
    status_code=201,
    response_model=CapacityRequestOut,
    responses=problems(401, 403, 404, 422),
)
async def request_capacity(body: CapacityRequestIn, who: AdminDep, db: Db) -> dict[str, Any]:
    """Ask for a change of released capacity; `date_from` at least the 2nd working day after today."""
    request, hall = await service.request_capacity(
        db, who, body.service_id, body.date_from, body.date_to, body.daily_capacity, body.reason
    )
    view = service.request_view(request)
    await service.audit(db, who, hall.id, hall.path, "capacity.request", str(request.id), None, view)
    await db.commit()
    return view


@router.get("/capacity-requests", response_model=list[CapacityRequestOut], responses=problems(401))
async def list_requests(
    who: AdminDep, db: Db, status: Literal["pending", "approved", "rejected"] | None = None
) -> list[dict[str, Any]]:
    return [service.request_view(r) for r in await service.list_requests(db, who, status)]


@router.get(
    "/capacity-requests/{request_id}", response_model=CapacityRequestOut, responses=problems(401, 403, 404)
)
async def get_request(request_id: int, who: AdminDep, db: Db) -> dict[str, Any]:
    request, hall, _ = await service.get_request(db, request_id)
    service.authorise(who, "view", hall.path)
    return service.request_view(request)


async def _decide(
    request_id: int, who: service.Acting, db: AsyncSession, approve: bool, body: DecisionIn | None
) -> dict[str, Any]:
    request, hall, requester = await service.get_request(db, request_id)
    service.authorise(who, "approve", hall.path, requester=requester)
    before = service.request_view(request)
    await service.decide(db, who, request, approve, body.note if body else None)
    after = service.request_view(request)
    action = "capacity.approve" if approve else "capacity.reject"
    await service.audit(db, who, hall.id, hall.path, action, str(request.id), before, after)
    await db.commit()
    return after


@router.post(
    "/capacity-requests/{request_id}/approve",
    response_model=CapacityRequestOut,
    responses=problems(401, 403, 404, 409),
)
async def approve(request_id: int, who: AdminDep, db: Db, body: DecisionIn | None = None) -> dict[str, Any]:
    """Approve and apply at once: each slot's capacity becomes the new spread, never below the seats
    already sold; seats gained go to the waiting list first."""
    return await _decide(request_id, who, db, True, body)


@router.post(
    "/capacity-requests/{request_id}/reject",
    response_model=CapacityRequestOut,
    responses=problems(401, 403, 404, 409),
)
async def reject(request_id: int, who: AdminDep, db: Db, body: DecisionIn | None = None) -> dict[str, Any]:
    return await _decide(request_id, who, db, False, body)


# --- alerts ----------------------------------------------------------------------------------------


@router.get("/alerts", response_model=list[AlertOut], responses=problems(401))
async def alerts(who: AdminDep, db: Db, resolved: bool | None = None) -> list[dict[str, Any]]:
    """Alerts of the caller's subtree, newest first (`?resolved=false` for the open ones)."""
    return [service.alert_view(a) for a in await service.list_alerts(db, who, resolved)]


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, responses=problems(401, 403, 404, 422))
async def resolve_alert(alert_id: int, body: ResolveIn, who: AdminDep, db: Db) -> dict[str, Any]:
    alert, unit = await service.get_alert(db, alert_id)
    service.authorise(who, "resolve_alert", unit.path)
    before = service.alert_view(alert)
    await service.resolve_alert(db, alert, body.note)
    after = service.alert_view(alert)
    await service.audit(db, who, unit.id, unit.path, "alert.resolve", str(alert.id), before, after)
    await db.commit()
    return after


# --- audit -----------------------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditOut], responses=problems(401, 403, 404, 422))
async def audit_log(
    who: AdminDep,
    db: Db,
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Audit entries of a unit's subtree (default: the caller's), newest first."""
    unit = await get_unit(db, unit_id or who.unit_id)
    service.authorise(who, "view", unit.path)
    return await service.read_audit(db, unit.path, from_, to, limit)
