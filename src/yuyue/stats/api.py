"""GET /api/v1/admin/stats (rule G18): JSON, or CSV with `Accept: text/csv`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.auth.api import AdminDep
from yuyue.auth.service import Acting, authorise
from yuyue.catalogue.service import get_unit
from yuyue.clock import clock
from yuyue.kit.http import problems
from yuyue.ops.replicas import ReadDb
from yuyue.stats import service
from yuyue.stats.schemas import FiguresRow

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])


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
    db: ReadDb,
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    group_by: Annotated[service.GroupBy, Query()] = "day",
) -> Response:
    """Figures of a unit's subtree (default: the caller's) over slot dates `from`–`to` (default:
    today), grouped by day, hall, service or channel."""
    path, first, last = await _period(db, who, unit_id, from_, to)
    rows = await service.figures(db, path, first, last, group_by)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(service.as_csv(rows), media_type="text/csv; charset=utf-8")
    return JSONResponse(rows)


async def _period(
    db: AsyncSession, who: Acting, unit_id: str | None, from_: date | None, to: date | None
) -> tuple[str, date, date]:
    """The unit's subtree the caller may view (default: their own) and the period (default: today)."""
    unit = await get_unit(db, unit_id or who.unit_id)
    authorise(who, "view", unit.path)
    first = from_ or clock.today()
    return unit.path, first, to or first


@router.get("/stats/fill-by-hour", responses=problems(401, 403, 404, 422))
async def stats_fill_by_hour(
    who: AdminDep,
    db: ReadDb,
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Slot fill by weekday × hour over slot dates `from`–`to` (rule G18; the dashboard's heat map):
    `released` and `seats` add up to the period's figures."""
    path, first, last = await _period(db, who, unit_id, from_, to)
    return await service.fill_by_hour(db, path, first, last)


@router.get("/stats/waitlist", responses=problems(401, 403, 404, 422))
async def stats_waitlist(
    who: AdminDep,
    db: ReadDb,
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
) -> list[dict[str, Any]]:
    """The waiting list per day (rules G11, G12): joined, left, still waiting at the day's end."""
    path, first, last = await _period(db, who, unit_id, from_, to)
    return await service.waitlist_length(db, path, first, last)
