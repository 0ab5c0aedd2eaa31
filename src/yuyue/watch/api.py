"""Admin routes of the watch: hoarding evidence (rule G15) and the quality report (rule G18)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from yuyue.auth.api import AdminDep
from yuyue.db import Db
from yuyue.kit.http import problems, settings_of
from yuyue.ops.replicas import ReadDb
from yuyue.watch import service
from yuyue.watch.schemas import HoardingRow, QualityReport

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])


@router.get("/hoarding", response_model=list[HoardingRow], responses=problems(401, 403, 404, 422))
async def hoarding(
    request: Request,
    who: AdminDep,
    db: Db,
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Citizens whose bookings in the unit's subtree over slot dates `from`–`to` (default: the 30
    days to today) fit a hoarding pattern, strongest first, with the evidence; masked. Bans no one:
    `id` is the opaque citizen id that `POST /api/v1/admin/citizens/{id}/bans` takes."""
    return await service.hoarding(db, settings_of(request).effective_secret, who, unit_id, from_, to)


@router.get(
    "/reports/quality",
    response_model=None,
    responses={
        200: {"model": QualityReport, "content": {service.XLSX: {}}},
        **problems(401, 403, 404, 422),
    },
)
async def quality_report(
    request: Request,
    who: AdminDep,
    reads: ReadDb,
    unit_id: Annotated[str | None, Query(max_length=64)] = None,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
) -> Response:
    """The month's figures per child unit (rule G18, Art. 22); XLSX with that `Accept`."""
    report = await service.quality_report(reads, who, unit_id, month)  # a replica when fresh (0090)
    if service.XLSX in request.headers.get("accept", ""):
        return Response(
            service.report_xlsx(report),
            media_type=service.XLSX,
            headers={"Content-Disposition": f'attachment; filename="quality-{report["month"]}.xlsx"'},
        )
    return JSONResponse(QualityReport.model_validate(report).model_dump())
