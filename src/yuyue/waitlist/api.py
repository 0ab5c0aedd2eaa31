"""Waiting-list routes (API.md "Waiting list"): join, mine with positions, leave."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.db import get_db
from yuyue.identity.api import Citizen
from yuyue.kit.http import problems
from yuyue.waitlist import service
from yuyue.waitlist.schemas import EntryOut, JoinIn

router = APIRouter(prefix="/api/v1", tags=["waiting list"])
Db = Annotated[AsyncSession, Depends(get_db)]


@router.post(
    "/waitlist", status_code=201, response_model=EntryOut, responses=problems(401, 403, 404, 409, 422)
)
async def join(body: JoinIn, citizen_id: Citizen, db: Db) -> dict[str, Any]:
    """Queue for a full service (rule G11): seats that appear go to the earliest waiting entry that
    accepts their date, as an ordinary booking of the entry's channel."""
    entry = await service.join(db, citizen_id, body.service_id, body.dates, body.channel)
    view = await service.entry_view(db, entry)
    await db.commit()
    return view


@router.get("/waitlist", response_model=list[EntryOut], responses=problems(401))
async def mine(citizen_id: Citizen, db: Db) -> list[dict[str, Any]]:
    """The caller's entries, newest first, with their place in the queue while waiting."""
    return [await service.entry_view(db, entry) for entry in await service.mine(db, citizen_id)]


@router.delete("/waitlist/{entry_id}", status_code=204, responses=problems(401, 404, 422))
async def leave(entry_id: int, citizen_id: Citizen, db: Db) -> Response:
    await service.leave(db, citizen_id, entry_id)
    await db.commit()
    return Response(status_code=204)
