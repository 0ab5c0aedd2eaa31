"""Administration routes: login and sessions, admin accounts, capacity requests, alerts, audit.
Every action is authorised by `auth.service.authorise` and audited inside the functions of
`admin.accounts`, `admin.capacity` and `admin.alerts` that the console pages call too (issue 10
item 6); a route parses, calls, commits and shapes. (Citizen lookup and bans by hand live in
`yuyue.penalties.api`, authorised by the same table.)"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin import accounts
from yuyue.admin import alerts as admin_alerts
from yuyue.admin import capacity as admin_capacity
from yuyue.admin.schemas import (
    AdminIn,
    AdminLoginOut,
    AdminOut,
    AlertOut,
    AuditOut,
    CapacityRequestIn,
    CapacityRequestOut,
    DecisionIn,
    LoginIn,
    ResolveIn,
    RetireIn,
    UnlockOut,
)
from yuyue.audit.service import AuditView
from yuyue.auth.api import AdminDep
from yuyue.auth.service import Acting
from yuyue.db import Db
from yuyue.kit.http import client_address, problems, settings_of

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])


# --- login and sessions ----------------------------------------------------------------------------


@router.post("/login", response_model=AdminLoginOut, responses=problems(401, 422, 429))
async def login(body: LoginIn, request: Request, db: Db) -> dict[str, object]:
    """Log in; from the 5th failure within an hour from one address, that address waits before
    the next try of this username (1 minute, doubling, at most an hour: `429 rate_limited`)."""
    settings = settings_of(request)
    token, admin = await accounts.login(
        db,
        settings.effective_secret,
        settings.token_ttl_s,
        body.username,
        body.password,
        client_address(request),
    )
    return {"token": token, "admin": accounts.admin_view(admin)}  # checked by AdminLoginOut


@router.post("/logout", status_code=204, responses=problems(401))
async def logout(who: AdminDep, db: Db) -> Response:
    """End this session: its token is refused from now on."""
    await accounts.logout(db, who)
    return Response(status_code=204)


# --- admin accounts (rules G3, G7) -----------------------------------------------------------------


@router.post("/admins", status_code=201, response_model=AdminOut, responses=problems(401, 403, 409, 422))
async def create_admin(body: AdminIn, who: AdminDep, db: Db) -> accounts.AdminView:
    """Register an administrator (name, title, mobile) and open their account (rule G7)."""
    return await accounts.register_admin(db, who, body.model_dump())


@router.get("/admins", response_model=list[AdminOut], responses=problems(401))
async def list_admins(who: AdminDep, db: Db) -> list[accounts.AdminView]:
    """Admins of units in the caller's subtree, retired ones included."""
    return [accounts.admin_view(a) for a in await accounts.list_admins(db, who)]


@router.get("/admins/{admin_id}", response_model=AdminOut, responses=problems(401, 403, 404))
async def get_admin(admin_id: int, who: AdminDep, db: Db) -> accounts.AdminView:
    return accounts.admin_view(await accounts.admin_for(db, who, admin_id))


@router.post("/admins/{admin_id}/retire", response_model=AdminOut, responses=problems(401, 403, 404, 422))
async def retire_admin(
    admin_id: int, who: AdminDep, db: Db, body: RetireIn | None = None
) -> accounts.AdminView:
    """Close an account for good (rule G7): its sessions end, its username is never reused."""
    return await accounts.retire_admin(db, who, admin_id, body.reason if body is not None else None)


# --- capacity requests (rule G20) ------------------------------------------------------------------


@router.post("/admins/{admin_id}/unlock", response_model=UnlockOut, responses=problems(401, 403, 404))
async def unlock_admin(admin_id: int, who: AdminDep, db: Db) -> accounts.Unlocked:
    """Lift every login lockout of this admin (a superior who may manage them); audited."""
    return await accounts.unlock(db, who, "admin", admin_id)


@router.post("/staff/{staff_id}/unlock", response_model=UnlockOut, responses=problems(401, 403, 404))
async def unlock_staff(staff_id: int, who: AdminDep, db: Db) -> accounts.Unlocked:
    """Lift every login lockout of this clerk (an admin who may configure the hall); audited."""
    return await accounts.unlock(db, who, "staff", staff_id)


@router.post(
    "/capacity-requests",
    status_code=201,
    response_model=CapacityRequestOut,
    responses=problems(401, 403, 404, 422),
)
async def request_capacity(body: CapacityRequestIn, who: AdminDep, db: Db) -> admin_capacity.RequestView:
    """Ask for a change of released capacity; `date_from` at least the 2nd working day after today."""
    return await admin_capacity.propose_capacity(
        db,
        who,
        body.service_id,
        body.date_from,
        body.date_to,
        body.daily_capacity,
        body.reason,
        [period.model_dump() for period in body.hours] if body.hours else None,
        body.open_days,
    )


@router.get("/capacity-requests", response_model=list[CapacityRequestOut], responses=problems(401))
async def list_requests(
    who: AdminDep, db: Db, status: Literal["pending", "approved", "rejected"] | None = None
) -> list[admin_capacity.RequestView]:
    return [admin_capacity.request_view(r) for r in await admin_capacity.list_requests(db, who, status)]


@router.get(
    "/capacity-requests/{request_id}", response_model=CapacityRequestOut, responses=problems(401, 403, 404)
)
async def get_request(request_id: int, who: AdminDep, db: Db) -> admin_capacity.RequestView:
    return admin_capacity.request_view(await admin_capacity.request_for(db, who, request_id))


async def _decide(
    request_id: int, who: Acting, db: AsyncSession, approve: bool, body: DecisionIn | None
) -> admin_capacity.RequestView:
    return await admin_capacity.decide_request(db, who, request_id, approve, body.note if body else None)


@router.post(
    "/capacity-requests/{request_id}/approve",
    response_model=CapacityRequestOut,
    responses=problems(401, 403, 404, 409),
)
async def approve(
    request_id: int, who: AdminDep, db: Db, body: DecisionIn | None = None
) -> admin_capacity.RequestView:
    """Approve and apply at once: each slot's capacity becomes the new spread, never below the seats
    already sold; seats gained go to the waiting list first."""
    return await _decide(request_id, who, db, True, body)


@router.post(
    "/capacity-requests/{request_id}/reject",
    response_model=CapacityRequestOut,
    responses=problems(401, 403, 404, 409),
)
async def reject(
    request_id: int, who: AdminDep, db: Db, body: DecisionIn | None = None
) -> admin_capacity.RequestView:
    return await _decide(request_id, who, db, False, body)


# --- alerts ----------------------------------------------------------------------------------------


@router.get("/alerts", response_model=list[AlertOut], responses=problems(401))
async def alerts(who: AdminDep, db: Db, resolved: bool | None = None) -> list[admin_alerts.AlertView]:
    """Alerts of the caller's subtree, newest first (`?resolved=false` for the open ones)."""
    return [admin_alerts.alert_view(a) for a in await admin_alerts.list_alerts(db, who, resolved)]


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, responses=problems(401, 403, 404, 422))
async def resolve_alert(alert_id: int, body: ResolveIn, who: AdminDep, db: Db) -> admin_alerts.AlertView:
    return await admin_alerts.resolve_alert_as(db, who, alert_id, body.note)


# --- audit -----------------------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditOut], responses=problems(401, 403, 404, 422))
async def audit_log(
    who: AdminDep,
    db: Db,
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditView]:
    """Audit entries of a unit's subtree (default: the caller's), newest first."""
    return await accounts.audit_log(db, who, unit_id, from_, to, limit)
