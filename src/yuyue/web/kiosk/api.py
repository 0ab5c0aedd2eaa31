"""Routes of the kiosk page at `/kiosk`.

A kiosk is set up once by the admin who installs it: they paste the kiosk token that
`POST /api/v1/admin/halls/{hall_id}/kiosks` showed them; it is kept in an HttpOnly cookie and checked
on every request exactly as the API checks it (a revoked kiosk stops at once). Check-in and tickets
call the same yuyue.onsite.tickets functions as `POST /api/v1/halls/{hall_id}/checkin` and
`…/tickets`. The machine is shared: pages show masked data only and go back to the start page by
themselves after a minute.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.catalogue.service import hall_services
from yuyue.db import Db
from yuyue.errors import DomainError, Unauthenticated, ValidationFailed
from yuyue.kit.http import settings_of
from yuyue.kit.masking import mask_id
from yuyue.onsite.queue import public_queue
from yuyue.onsite.staff import KIOSK_TTL_S, Actor, actor_from_token, get_hall
from yuyue.onsite.tickets import check_in, issue_ticket
from yuyue.web import service as web
from yuyue.web.api import PageRoute, checked_form, redirect, render, secret_of, set_cookie

COOKIE = "yuyue_kiosk"
IDLE_S = 60  # back to the start page after a minute without a touch


def error_page(request: Request, exc: DomainError) -> Response:
    status = exc.status if 400 <= exc.status < 600 else 500
    if isinstance(exc, Unauthenticated):
        return render(request, "kiosk/setup.html", status=status, error=web.error_view(exc))
    return render(request, "kiosk/error.html", status=status, error=web.error_view(exc), idle=IDLE_S)


class KioskRoute(PageRoute):
    @staticmethod
    def error_response(request: Request, exc: DomainError) -> Response:
        return error_page(request, exc)


router = APIRouter(include_in_schema=False, route_class=KioskRoute)


async def kiosk_of(request: Request, db: AsyncSession) -> Actor:
    actor = await actor_from_token(db, secret_of(request), request.cookies.get(COOKIE))
    if actor.kind != "kiosk" or actor.hall_id is None:
        raise Unauthenticated("this machine is not set up as a kiosk")
    return actor


async def _context(db: AsyncSession, actor: Actor) -> dict[str, Any]:
    assert actor.hall_id is not None
    hall = await get_hall(db, actor.hall_id)
    offered = [svc for svc, _ in await hall_services(db, hall.id) if svc.active]
    return {"hall": hall, "services": offered, "idle": IDLE_S}


@router.get("/kiosk", response_class=HTMLResponse)
async def home(request: Request, db: Db) -> Response:
    actor = await kiosk_of(request, db)
    return render(request, "kiosk/home.html", **await _context(db, actor))


@router.post("/kiosk/setup", response_class=HTMLResponse)
async def setup(request: Request, db: Db) -> Response:
    form = await checked_form(request)
    token = web.field(form, "token", 2000)
    actor = await actor_from_token(db, secret_of(request), token)
    if actor.kind != "kiosk":
        raise Unauthenticated("this is not a kiosk token")
    response = redirect("/kiosk")
    set_cookie(response, request, COOKIE, token, KIOSK_TTL_S)
    return response


@router.get("/kiosk/{step}", response_class=HTMLResponse)
async def form(request: Request, step: str, db: Db) -> Response:
    """The three ways in: 预约取号 (checkin), 现场取号 (walk-in), 绿色通道 (green, elderly only here)."""
    if step not in ("checkin", "walk-in", "green"):
        raise DomainError("no such page", code="not_found", status=404)
    actor = await kiosk_of(request, db)
    return render(request, "kiosk/form.html", step=step, **await _context(db, actor))


@router.post("/kiosk/{step}", response_class=HTMLResponse)
async def submit(request: Request, step: str, db: Db) -> Response:
    if step not in ("checkin", "walk-in", "green"):
        raise DomainError("no such page", code="not_found", status=404)
    form = await checked_form(request)
    actor = await kiosk_of(request, db)
    assert actor.hall_id is not None
    id_type = web.field(form, "id_type", 40) or "resident_id"
    id_number = web.field(form, "id_number", 40)
    if not id_number:
        raise ValidationFailed("id_number is required")
    secret = secret_of(request)
    before_open_min = settings_of(request).tickets_before_open_min
    if step == "checkin":  # rules T3, M7
        _, tickets = await check_in(db, secret, actor, actor.hall_id, id_type, id_number)
    else:
        try:
            service_id = int(web.field(form, "service_id", 12))
        except ValueError:  # no item touched: the same form again, the error next to the items
            context = await _context(db, actor)
            return render(
                request,
                "kiosk/form.html",
                status=422,
                step=step,
                errors={"service_id": "请先点选要办理的事项，再点“取号”。"},
                id_type=id_type,
                id_number=id_number,
                **context,
            )
        # rules G10, M3: at a kiosk only the elderly green channel (staff confirm other documents)
        green = "elderly" if step == "green" else None
        tickets = [
            await issue_ticket(
                db, secret, actor, actor.hall_id, service_id, id_type, id_number, green, before_open_min
            )
        ]
    context = await _context(db, actor)
    names = {svc.id: svc.name for svc in context["services"]}
    queue = await public_queue(db, actor.hall_id)
    ahead = {entry.number: i for i, entry in enumerate(queue.waiting)}
    printed = [
        asdict(ticket)
        | {
            "service": names.get(ticket.service_id, ""),
            "ahead": ahead.get(ticket.number),
            "wait_min": (ticket.estimated_wait_s or 0) // 60,
        }
        for ticket in tickets
    ]
    return render(request, "kiosk/tickets.html", tickets=printed, who=mask_id(id_number), **context)
