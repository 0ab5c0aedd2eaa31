"""Policy routes: the effective policy of a unit (public) and setting it (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from yuyue.auth.api import AdminDep
from yuyue.db import Db
from yuyue.kit.http import problems
from yuyue.policy import service

public = APIRouter(prefix="/api/v1", tags=["catalogue"])
admin = APIRouter(prefix="/api/v1/admin", tags=["administration"])


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
    answer = await service.set_policy(db, who, unit_id, body.preset, body.overrides)
    return answer
