"""GET /api/v1/admin/stats (rule G18): JSON, or CSV with `Accept: text/csv`."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.api import AdminDep
from yuyue.admin.service import authorise
from yuyue.catalogue.service import get_unit
from yuyue.clock import clock
from yuyue.db import get_db
from yuyue.kit.http import problems
from yuyue.stats import service
from yuyue.stats.schemas import FiguresRow

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])
Db = Annotated[AsyncSession, Depends(get_db)]


@router.get(
    "/stats",
    response_model=None,
    responses={
        200: {"model": list[FiguresRow], "content": {"text/csv": {}}},
        **problems(401, 403, 404, 422),
    },
)
async def stats(
    request: Request,
    who: AdminDep,
    db: Db,
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    group_by: Annotated[service.GroupBy, Query()] = "day",
) -> Response:
    """Figures of a unit's subtree (default: the caller's) over slot dates `from`–`to` (default:
    today), grouped by day, hall, service or channel."""
    unit = await get_unit(db, unit_id or who.unit_id)
    authorise(who, "view", unit.path)
    first = from_ or clock.today()
    rows = await service.figures(db, unit.path, first, to or first, group_by)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(service.as_csv(rows), media_type="text/csv; charset=utf-8")
    return JSONResponse(rows)
