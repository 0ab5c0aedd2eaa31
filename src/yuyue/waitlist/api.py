"""Waiting-list routes (docs/api.md "Waiting list"): join, mine with positions, leave; an admin's view of a
service's waiting list."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from yuyue.auth.api import AdminDep
from yuyue.db import Db
from yuyue.identity.api import Citizen, CitizenLogin
from yuyue.kit.http import problems
from yuyue.waitlist import service
from yuyue.waitlist.schemas import AdminEntryOut, EntryOut, JoinIn

router = APIRouter(prefix="/api/v1", tags=["waiting list"])


@router.post(
    "/waitlist", status_code=201, response_model=EntryOut, responses=problems(401, 403, 404, 409, 422)
)
async def join(body: JoinIn, citizen_id: Citizen, login: CitizenLogin, db: Db) -> service.EntryView:
    """Queue for a full service (rule G11): seats that appear go to the earliest waiting entry that
    accepts their date, as an ordinary booking of the entry's channel."""
    entry = await service.join(db, citizen_id, body.service_id, body.dates, body.channel, login=login)
    return await service.entry_view(db, entry)


@router.get("/waitlist", response_model=list[EntryOut], responses=problems(401))
async def mine(citizen_id: Citizen, db: Db) -> list[service.EntryView]:
    """The caller's entries, newest first, with their place in the queue while waiting."""
    return [await service.entry_view(db, entry) for entry in await service.mine(db, citizen_id)]


@router.delete("/waitlist/{entry_id}", status_code=204, responses=problems(401, 404, 422))
async def leave(entry_id: int, citizen_id: Citizen, db: Db) -> Response:
    await service.leave(db, citizen_id, entry_id)
    return Response(status_code=204)


@router.get(
    "/admin/waitlist",
    response_model=list[AdminEntryOut],
    tags=["administration"],
    responses=problems(401, 403, 404, 422),
)
async def admin_list(
    who: AdminDep,
    db: Db,
    service_id: Annotated[int, Query(ge=1, le=2_000_000_000)],
    status: Literal["waiting", "allocated", "left", "expired"] = "waiting",
) -> list[service.AdminEntryView]:
    """A service's waiting list for an admin of its hall's subtree, in queue order (rule G11),
    citizens masked."""
    return await service.admin_entries(db, who, service_id, status)
