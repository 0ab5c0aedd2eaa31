"""Policy routes: the effective policy of a unit (public) and setting it (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.api import AdminDep
from yuyue.admin.service import audit, authorise
from yuyue.catalogue.service import clear_caches, get_unit
from yuyue.clock import clock
from yuyue.db import get_db
from yuyue.kit.http import problems
from yuyue.models import Policy
from yuyue.policy import service

public = APIRouter(prefix="/api/v1", tags=["catalogue"])
admin = APIRouter(prefix="/api/v1/admin", tags=["administration"])
Db = Annotated[AsyncSession, Depends(get_db)]


class KnobOut(BaseModel):
    value: Any
    from_: str = Field(alias="from")


class PolicyOut(BaseModel):
    unit_id: str
    preset: str | None
    knobs: dict[str, KnobOut]


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Annotated[str, Field(max_length=40)] | None = None
    overrides: Annotated[dict[Annotated[str, Field(max_length=40)], Any], Field(max_length=40)] = {}


@public.get(
    "/units/{unit_id}/policy", response_model=None, responses={200: {"model": PolicyOut}, **problems(404)}
)
async def get_policy(unit_id: str, db: Db) -> dict[str, Any]:
    """The effective policy of a unit, each knob with the unit it came from (docs/policies.md)."""
    return (await service.effective_policy(db, unit_id)).as_dict()


@admin.put(
    "/units/{unit_id}/policy",
    response_model=None,
    responses={200: {"model": PolicyOut}, **problems(401, 403, 404, 422)},
)
async def put_policy(unit_id: str, body: PolicyIn, who: AdminDep, db: Db) -> dict[str, Any]:
    """Set a unit's preset and overrides; children inherit what they don't set."""
    unit = await get_unit(db, unit_id)
    authorise(who, "configure", unit.path)
    overrides = service.validate_overrides(body.preset, body.overrides)
    row = await db.get(Policy, unit_id)
    before = {"preset": row.preset, "overrides": row.overrides} if row else None
    if row is None:
        row = Policy(unit_id=unit_id, preset=body.preset, overrides=overrides, updated_at=clock.now())
        db.add(row)
    else:
        row.preset, row.overrides, row.updated_at = body.preset, overrides, clock.now()
    await audit(
        db,
        who,
        unit.id,
        unit.path,
        "policy.set",
        unit.id,
        before,
        {"preset": body.preset, "overrides": overrides},
    )
    await db.commit()
    clear_caches()
    return (await service.effective_policy(db, unit_id)).as_dict()
