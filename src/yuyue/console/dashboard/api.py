"""Routes of the console's dashboard pages (see the package docstring).

`/admin/dashboard?unit_id=&from=&to=` the page; `/admin/dashboard.csv?…&table=` one table as CSV;
`/admin/dashboard.xlsx?…` every table as a workbook. All three: an admin's session (a clerk gets
`forbidden`), a unit of the admin's subtree (`not_found`, `forbidden` otherwise, as
`GET /api/v1/admin/stats` authorises), a period of at most a year (`invalid_date`, `invalid_period`).
A refused query answers the page again, with the form and what to correct (404, 403, 422).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.auth.service import Acting, authorise
from yuyue.catalogue.service import get_unit
from yuyue.clock import clock
from yuyue.console.api import ConsoleRoute, admin, render
from yuyue.console.dashboard import service as dashboard
from yuyue.console.dashboard.service import BadPeriod, Dashboard
from yuyue.db import Db
from yuyue.errors import DomainError, Forbidden, NotFound
from yuyue.ops.replicas import ReadDb

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)

UnitQuery = Annotated[str | None, Query(max_length=64)]
FromQuery = Annotated[str | None, Query(alias="from", max_length=32)]
ToQuery = Annotated[str | None, Query(max_length=32)]


class Asked:
    """The query of the three routes, as typed (to fill the form again after an error)."""

    def __init__(self, unit_id: str | None, from_: str | None, to: str | None) -> None:
        self.unit_id = (unit_id or "").strip()
        self.from_ = (from_ or "").strip()
        self.to = (to or "").strip()


async def _board(db: AsyncSession, who: Acting, asked: Asked) -> Dashboard:
    unit = await get_unit(db, asked.unit_id or who.unit_id)
    authorise(who, "view", unit.path)  # as GET /api/v1/admin/stats: only inside one's subtree
    today = clock.today()
    period = dashboard.parse_period(asked.from_, asked.to, today)
    return await dashboard.build(db, unit, period, today)


async def _refused(
    request: Request, db: AsyncSession, who: Acting, asked: Asked, exc: DomainError
) -> Response:
    """The dashboard page again, with the form (to correct the query) and what was wrong."""
    if isinstance(exc, BadPeriod):
        error = {"code": exc.code, "title": "日期有误，没有查询", "fact": exc.fact}
    elif isinstance(exc, Forbidden):
        error = {
            "code": exc.code,
            "title": "不能查看这个单位的统计",
            "fact": "您只能查看本单位及下属单位的统计，请在“单位”列表中选择。",
        }
    elif isinstance(exc, NotFound):
        error = {"code": exc.code, "title": "没有这个单位", "fact": "请在“单位”列表中选择要查看的单位。"}
    else:
        raise exc
    return render(
        request,
        "dashboard/index.html",
        status=exc.status,
        board=None,
        error=error,
        asked=asked,
        choices=await dashboard.unit_choices(db, who),
        max_days=dashboard.MAX_DAYS,
    )


def _query(board: Dashboard, **extra: str) -> str:
    return urlencode(
        {
            "unit_id": board.unit_id,
            "from": board.period.first.isoformat(),
            "to": board.period.last.isoformat(),
            **extra,
        }
    )


def _attachment(board: Dashboard, suffix: str) -> str:
    name = f"yuyue-stats-{board.unit_id}-{board.period.first:%Y%m%d}-{board.period.last:%Y%m%d}{suffix}"
    plain = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/admin/dashboard", response_class=HTMLResponse)
async def page(
    request: Request,
    db: Db,
    reads: ReadDb,
    unit_id: UnitQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    service_id: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    """The dashboard of a unit's subtree over a period of slot dates (default: the admin's unit,
    the last 30 days and the next 14). `service_id` (an alert's chart link) opens the table of
    services on that service's row."""
    who = await admin(request, db)
    asked = Asked(unit_id, from_, to)
    try:
        board = await _board(reads, who, asked)  # figures from a replica when fresh (decision 0090)
    except (BadPeriod, Forbidden, NotFound) as exc:
        return await _refused(request, db, who, asked, exc)
    return render(
        request,
        "dashboard/index.html",
        board=board,
        error=None,
        asked=asked,
        choices=await dashboard.unit_choices(db, who),
        charts=dashboard.charts(board),
        query=lambda **extra: _query(board, **extra),
        percent=dashboard.percent,
        number=dashboard.number,
        cell=dashboard.cell,
        sort_key=dashboard.sort_key,
        headings=dashboard.PAGE_HEADINGS,
        focus_service=(service_id or "").strip(),
        focus_hall=board.unit_id,
        max_days=dashboard.MAX_DAYS,
    )


@router.get("/admin/dashboard.csv")
async def download_csv(
    request: Request,
    db: Db,
    reads: ReadDb,
    unit_id: UnitQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    table: Annotated[dashboard.Table, Query()] = "day",
) -> Response:
    """One table of the dashboard as CSV (the groupings of the figures exactly as the API's CSV)."""
    who = await admin(request, db)
    asked = Asked(unit_id, from_, to)
    try:
        board = await _board(reads, who, asked)  # figures from a replica when fresh (decision 0090)
    except (BadPeriod, Forbidden, NotFound) as exc:
        return await _refused(request, db, who, asked, exc)
    return Response(
        dashboard.csv_of(board, table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": _attachment(board, f"-{table}.csv"), "Cache-Control": "no-store"},
    )


@router.get("/admin/dashboard.xlsx")
async def download_xlsx(
    request: Request,
    db: Db,
    reads: ReadDb,
    unit_id: UnitQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
) -> Response:
    """Every table of the dashboard as one XLSX workbook."""
    who = await admin(request, db)
    asked = Asked(unit_id, from_, to)
    try:
        board = await _board(reads, who, asked)  # figures from a replica when fresh (decision 0090)
    except (BadPeriod, Forbidden, NotFound) as exc:
        return await _refused(request, db, who, asked, exc)
    return Response(
        dashboard.xlsx_of(board, clock.now()),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": _attachment(board, ".xlsx"), "Cache-Control": "no-store"},
    )
