"""Admin routes of penalties: citizen lookup, add and lift bans (rule G15, docs/api.md "Administration")."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response

from yuyue.auth.api import AdminDep
from yuyue.db import Db
from yuyue.kit.http import problems, settings_of
from yuyue.penalties import service
from yuyue.penalties.schemas import BanIn, BanOut, LiftIn, LookupIn, LookupOut

router = APIRouter(prefix="/api/v1/admin/citizens", tags=["penalties"])


@router.post("/lookup", response_model=LookupOut, responses=problems(401, 403, 404, 422))
async def lookup(body: LookupIn, admin: AdminDep, request: Request, db: Db) -> service.Lookup:
    """A citizen by ID number, unmasked, with their bookings in your subtree, no-shows and bans (audited)."""
    secret = settings_of(request).effective_secret
    return await service.lookup(db, secret, admin, body.id_type, body.id_number)


@router.post(
    "/{citizen_id}/bans", status_code=201, response_model=BanOut, responses=problems(401, 403, 404, 422)
)
async def add_ban(citizen_id: str, body: BanIn, admin: AdminDep, request: Request, db: Db) -> service.BanView:
    """Rule G15: a ban for deliberate slot hoarding, over the halls under your unit (audited)."""
    secret = settings_of(request).effective_secret
    return await service.add_ban(db, secret, admin, citizen_id, date.fromisoformat(body.until), body.reason)


@router.delete("/{citizen_id}/bans/{ban_id}", status_code=204, responses=problems(401, 403, 404, 409, 422))
async def lift_ban(
    citizen_id: str, ban_id: int, body: LiftIn, admin: AdminDep, request: Request, db: Db
) -> Response:
    """Lift a ban with a reason (audited)."""
    await service.lift_ban(db, settings_of(request).effective_secret, admin, citizen_id, ban_id, body.reason)
    return Response(status_code=204)
