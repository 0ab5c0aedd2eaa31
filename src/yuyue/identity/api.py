"""Citizen login (development stand-in for the provincial identity service) and /me."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.config import Settings
from yuyue.db import get_db
from yuyue.errors import NotFound
from yuyue.identity import service
from yuyue.kit.http import bearer, problems

router = APIRouter(prefix="/api/v1", tags=["citizens"])

IdType = Literal["resident_id", "passport", "hk_macao_permit", "taiwan_permit", "foreigner_permanent_id"]


class DevLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=50)]
    id_type: IdType = "resident_id"
    id_number: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    phone: Annotated[StrictStr, Field(min_length=1, max_length=20)]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def current_citizen(request: Request) -> int:
    """The citizen id of a valid citizen token; 401 otherwise."""
    return service.citizen_from_token(settings_of(request).effective_secret, bearer(request))


Citizen = Annotated[int, Depends(current_citizen)]
Db = Annotated[AsyncSession, Depends(get_db)]


@router.post("/auth/dev/login", responses=problems(404, 422))
async def dev_login(body: DevLoginIn, request: Request, db: Db) -> dict[str, Any]:
    """Non-production: log in as a real-name-verified citizen (stands in for rule T2's provincial login)."""
    settings = settings_of(request)
    if settings.production:
        raise NotFound("not found")
    who = service.verify_identity(body.name, body.id_type, body.id_number, body.phone)
    citizen_id = await service.upsert_citizen(db, settings.effective_secret, who)
    await db.commit()
    citizen = await service.get_citizen(db, citizen_id)
    token = service.citizen_token(settings.effective_secret, citizen_id, settings.token_ttl_s)
    return {"token": token, "citizen": service.citizen_view(settings.effective_secret, citizen)}


@router.get("/me", responses=problems(401))
async def me(citizen_id: Citizen, request: Request, db: Db) -> dict[str, Any]:
    secret = settings_of(request).effective_secret
    citizen = await service.get_citizen(db, citizen_id)
    bans = await service.bans_in_force(db, citizen_id)
    return {
        "citizen": service.citizen_view(secret, citizen),
        "bans": [
            {"id": b.id, "until": b.until.isoformat(), "reason": b.reason, "unit_id": b.unit_id} for b in bans
        ],
        "no_shows": await service.no_show_count(db, citizen_id),
    }
