"""Calendar routes: national overrides (platform admins) and hall closures."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.api import AdminDep
from yuyue.admin.service import audit, authorise
from yuyue.catalogue.service import HALL_KINDS, clear_caches, get_unit
from yuyue.db import get_db
from yuyue.errors import ValidationFailed
from yuyue.kit.http import problems
from yuyue.models import CalendarDay, Closure

admin = APIRouter(prefix="/api/v1/admin", tags=["administration"])
Db = Annotated[AsyncSession, Depends(get_db)]


class CalendarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    working_day: StrictBool
    note: Annotated[StrictStr, Field(max_length=200)] = ""


class ClosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[StrictStr, Field(max_length=200)] = ""


@admin.put("/calendar/{day}", responses=problems(401, 403, 422))
async def put_calendar_day(day: date, body: CalendarIn, who: AdminDep, db: Db) -> dict[str, Any]:
    """National working-day override (corrections, and years chinese-calendar does not cover yet)."""
    authorise(who, "calendar", "platform/")
    row = await db.get(CalendarDay, day)
    before = {"working_day": row.working_day, "note": row.note} if row else None
    if row is None:
        db.add(CalendarDay(day=day, working_day=body.working_day, note=body.note))
    else:
        row.working_day, row.note = body.working_day, body.note
    after = {"date": day.isoformat(), "working_day": body.working_day, "note": body.note}
    await audit(db, who, "platform", "platform/", "calendar.set", day.isoformat(), before, after)
    await db.commit()
    clear_caches()
    return after


@admin.put("/units/{unit_id}/closures/{day}", responses=problems(401, 403, 404, 422))
async def put_closure(unit_id: str, day: date, body: ClosureIn, who: AdminDep, db: Db) -> dict[str, Any]:
    """A hall's own closed day: not a working day for its horizon and slots."""
    unit = await get_unit(db, unit_id)
    if unit.kind not in HALL_KINDS:
        raise ValidationFailed("closures are set on halls")
    authorise(who, "configure", unit.path)
    row = await db.get(Closure, (unit_id, day))
    if row is None:
        db.add(Closure(unit_id=unit_id, day=day, note=body.note))
    else:
        row.note = body.note
    after = {"unit_id": unit_id, "date": day.isoformat(), "note": body.note}
    await audit(db, who, unit.id, unit.path, "closure.set", day.isoformat(), None, after)
    await db.commit()
    clear_caches()
    return after


@admin.delete("/units/{unit_id}/closures/{day}", status_code=204, responses=problems(401, 403, 404))
async def delete_closure(unit_id: str, day: date, who: AdminDep, db: Db) -> Response:
    unit = await get_unit(db, unit_id)
    authorise(who, "configure", unit.path)
    await db.execute(delete(Closure).where(Closure.unit_id == unit_id, Closure.day == day))
    await audit(db, who, unit.id, unit.path, "closure.delete", day.isoformat(), None, None)
    await db.commit()
    clear_caches()
    return Response(status_code=204)
