"""Admin login and the admin dependency used by every /api/v1/admin route."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin import service
from yuyue.db import get_db
from yuyue.identity.api import settings_of
from yuyue.kit.http import bearer, problems

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])
Db = Annotated[AsyncSession, Depends(get_db)]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    password: Annotated[StrictStr, Field(min_length=1, max_length=200)]


async def current_admin(request: Request, db: Db) -> service.Acting:
    return await service.acting_admin(db, settings_of(request).effective_secret, bearer(request))


AdminDep = Annotated[service.Acting, Depends(current_admin)]


@router.post("/login", responses=problems(401, 422))
async def login(body: LoginIn, request: Request, db: Db) -> dict[str, Any]:
    settings = settings_of(request)
    token, admin = await service.login(
        db, settings.effective_secret, settings.token_ttl_s, body.username, body.password
    )
    return {"token": token, "admin": service.admin_view(admin)}
