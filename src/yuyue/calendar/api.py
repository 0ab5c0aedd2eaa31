"""Calendar routes: national overrides (platform admins) and hall closures (authorised and audited in
`service`, shared with the console pages, issue 10 item 6)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Response

from yuyue.auth.api import AdminDep
from yuyue.auth.service import authorise
from yuyue.calendar import files, service
from yuyue.calendar.schemas import (
    CalendarImportIn,
    CalendarImportOut,
    CalendarIn,
    ClosureIn,
    ClosureOut,
    DayOverrideOut,
)
from yuyue.db import Db
from yuyue.kit.http import problems

admin = APIRouter(prefix="/api/v1/admin", tags=["administration"])


@admin.put("/calendar/{day}", response_model=DayOverrideOut, responses=problems(401, 403, 422))
async def put_calendar_day(day: date, body: CalendarIn, who: AdminDep, db: Db) -> service.DayOverride:
    """National working-day override (corrections, and years chinese-calendar does not cover yet)."""
    return await service.set_national_day(db, who, day, body.working_day, body.note)


@admin.post("/calendar/import", response_model=CalendarImportOut, responses=problems(401, 403, 422))
async def import_calendar(body: CalendarImportIn, who: AdminDep, db: Db) -> dict[str, Any]:
    """A year's national holidays and swapped working days from the State Council's notice as a CSV
    or iCalendar file's text: a preview of what changes and which bookings it cancels, or (`apply`)
    the import itself (platform L1; decision 0092)."""
    authorise(who, "calendar", "platform/")  # before the file is read: a 403 says nothing about it
    parsed = files.parse(body.file, body.name)
    preview = await service.import_calendar(
        db, who, parsed, body.name or f"{parsed.kind} file", apply=body.apply
    )
    return preview.as_dict()


@admin.put(
    "/units/{unit_id}/closures/{day}", response_model=ClosureOut, responses=problems(401, 403, 404, 422)
)
async def put_closure(unit_id: str, day: date, body: ClosureIn, who: AdminDep, db: Db) -> service.ClosureSet:
    """A hall's own closed day: not a working day for its horizon and slots."""
    return await service.set_closure(db, who, unit_id, day, body.note)


@admin.delete("/units/{unit_id}/closures/{day}", status_code=204, responses=problems(401, 403, 404))
async def delete_closure(unit_id: str, day: date, who: AdminDep, db: Db) -> Response:
    await service.remove_closure(db, who, unit_id, day)
    return Response(status_code=204)
