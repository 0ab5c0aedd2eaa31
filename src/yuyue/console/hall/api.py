"""Routes of the console's hall pages (see the package docstring).

Every action calls the same yuyue.onsite function as the API route of docs/api.md "On site"
(check-in, tickets, call next, recall, skip, finish, counters) with the viewer's `Actor`, so a page
is authorised exactly as the API is: a clerk only in their hall (and at their counter if bound to
one), an admin in the halls of their subtree. Once the request's transaction commits, the queue
events reach the hall screens (`onsite/stream.py`), as for the API. Forms work without
JavaScript (post, then 303 back).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.calendar.service import closed_note
from yuyue.catalogue.service import HALL_KINDS
from yuyue.clock import clock
from yuyue.console.api import ConsoleRoute, admin, checked_form, redirect, render, viewer
from yuyue.console.hall import service as views
from yuyue.console.manage import service as manage
from yuyue.console.service import Viewer
from yuyue.db import Db
from yuyue.errors import DomainError, ValidationFailed
from yuyue.kit.http import settings_of
from yuyue.onsite import counters
from yuyue.onsite.counters import counter_screen, hall_counter, list_counters, patch_counter, ticket_person
from yuyue.onsite.desk import book_at_desk, desk_booking, desk_slots
from yuyue.onsite.queue import public_queue, waiting_line
from yuyue.onsite.staff import create_kiosk, get_hall, hall_for, revoke_kiosk
from yuyue.onsite.tickets import check_in, issue_ticket, ticket_slip
from yuyue.web import service as web
from yuyue.web.api import secret_of

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
HallId = Annotated[str, Path(min_length=1, max_length=64)]
CounterId = Annotated[int, Path(ge=1, le=2_000_000_000)]
TicketNumber = Annotated[str, Path(min_length=1, max_length=32)]
GREEN_KINDS = ("elderly", "disabled", "military")  # rules G10, M3
# Failures that belong on the page the clerk is working on (in staff wording), not on an error page.
COUNTER_ERRORS = {"counter_closed", "invalid_ticket_state", "hall_closed", "validation_error", "no_booking"}
DESK_ERRORS = {
    "no_booking",
    "checkin_too_early",
    "checkin_too_late",
    "not_eligible",
    "walk_in_not_allowed",
    "invalid_id_number",
    "hall_closed",
    "validation_error",
    # on-site booking at the desk (rule G10): what the booking core may refuse
    "not_open_yet",
    "booking_closed",
    "slot_full",
    "banned",
    "already_booked",
    "daily_limit",
    "booking_cap",
    "quantity_exceeds_max",
    "document_phone_differs",
}
DONE_TEXT = {
    "called": "已叫号。",
    "empty": "现在没有等候的市民。",
    "recalled": "已重新呼叫。",
    "skipped": "已过号，可在“已过号”里重新呼叫。",
    "finished": "已办结。",
    "opened": "窗口已开始叫号。",
    "closed": "窗口已暂停叫号。",
    "checkin": "签到成功，已出预约号。",
    "checkin_again": "该证件今天的预约已经签到过，以下是已出的号票（没有重复出号）。",
    "ticket": "已出号。",
    "booked": "已为市民现场预约，市民会收到预约成功短信。请在取号时间内为其签到取号。",
}


def _id_fields(form: dict[str, list[str]]) -> tuple[str, str]:
    id_type = web.field(form, "id_type", 32) or "resident_id"
    id_number = web.field(form, "id_number", 32)
    if id_type not in web.ID_TYPES:
        raise ValidationFailed("id_type: unknown document type")
    if not id_number:
        raise ValidationFailed("id_number: required")
    return id_type, id_number


def _int_field(form: dict[str, list[str]], name: str) -> int | None:
    value = web.field(form, name, 12)
    if not value:
        return None
    if not value.isdigit():
        raise ValidationFailed(f"{name}: a number is required")
    return int(value)


# --- counter screen (issue 10 item 1) ----------------------------------------------------------------


def _counter_url(hall_id: str, counter_id: int) -> str:
    return f"/admin/halls/{hall_id}/counters/{counter_id}"


async def _counter_page(
    request: Request,
    db: AsyncSession,
    who: Viewer,
    hall_id: str,
    counter_id: int,
    *,
    done: str = "",
    error: DomainError | None = None,
    person: dict[str, Any] | None = None,
) -> Response:
    screen = await counter_screen(db, who.actor, hall_id, counter_id)
    if person is None and screen.current is not None:
        # masked, as every answer (docs/api.md); the full details only on an explicit, audited reveal
        person = await ticket_person(db, secret_of(request), who.actor, hall_id, screen.current.number)
    names = await views.service_names(db, hall_id)
    return render(
        request,
        "hall/counter.html",
        status=error.status if error is not None else 200,
        hall=screen.hall,
        counter=screen.counter,
        view=views.counter_view(screen, names, clock.now()),
        person=views.person_view(person),
        done=DONE_TEXT.get(done, ""),
        error=web.error_view(error, "staff") if error is not None else None,
    )


@router.get("/admin/halls/{hall_id}/counters/{counter_id}", response_class=HTMLResponse)
async def counter_page(
    request: Request,
    hall_id: HallId,
    counter_id: CounterId,
    db: Db,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """The counter screen: the line this counter calls (rule T4), the ticket it serves, actions."""
    who = await viewer(request, db)
    return await _counter_page(request, db, who, hall_id, counter_id, done=done)


async def _counter_action(
    request: Request, db: AsyncSession, hall_id: str, counter_id: int, action: str
) -> Response:
    form = await checked_form(request)  # CSRF first: nothing runs when it fails
    who = await viewer(request, db)
    await hall_counter(db, who.actor, hall_id, counter_id)
    try:
        done = await _act(db, who, form, counter_id, action)
    except DomainError as exc:
        if exc.code not in COUNTER_ERRORS:
            raise
        await db.rollback()
        return await _counter_page(request, db, who, hall_id, counter_id, error=exc)
    return redirect(f"{_counter_url(hall_id, counter_id)}?done={done}")


async def _act(
    db: AsyncSession, who: Viewer, form: dict[str, list[str]], counter_id: int, action: str
) -> str:
    """One counter action through the API's own service functions; the word for the page."""
    if action == "call-next":
        called = await counters.call_next(db, who.actor, counter_id)  # rule T4 order
        return "called" if called is not None else "empty"
    if action == "open":
        is_open = web.field(form, "open", 1) == "1"
        await patch_counter(db, who.actor, counter_id, {"open": is_open})
        return "opened" if is_open else "closed"
    number = web.field(form, "number", 32)
    if not number:
        raise ValidationFailed("number: required")
    if action == "recall":
        await counters.recall(db, who.actor, number, counter_id)
        return "recalled"
    if action == "skip":
        await counters.skip(db, who.actor, number)
        return "skipped"
    await counters.finish(db, who.actor, number, _int_field(form, "service_id"))  # rule G17: one item
    return "finished"


@router.post("/admin/halls/{hall_id}/counters/{counter_id}/call-next", response_class=HTMLResponse)
async def call_next(request: Request, hall_id: HallId, counter_id: CounterId, db: Db) -> Response:
    """Finish the current ticket and call the next in call order (rule T4)."""
    return await _counter_action(request, db, hall_id, counter_id, "call-next")


@router.post("/admin/halls/{hall_id}/counters/{counter_id}/recall", response_class=HTMLResponse)
async def recall(request: Request, hall_id: HallId, counter_id: CounterId, db: Db) -> Response:
    return await _counter_action(request, db, hall_id, counter_id, "recall")


@router.post("/admin/halls/{hall_id}/counters/{counter_id}/skip", response_class=HTMLResponse)
async def skip(request: Request, hall_id: HallId, counter_id: CounterId, db: Db) -> Response:
    return await _counter_action(request, db, hall_id, counter_id, "skip")


@router.post("/admin/halls/{hall_id}/counters/{counter_id}/finish", response_class=HTMLResponse)
async def finish(request: Request, hall_id: HallId, counter_id: CounterId, db: Db) -> Response:
    return await _counter_action(request, db, hall_id, counter_id, "finish")


@router.post("/admin/halls/{hall_id}/counters/{counter_id}/open", response_class=HTMLResponse)
async def open_counter(request: Request, hall_id: HallId, counter_id: CounterId, db: Db) -> Response:
    """Open (start calling) or close the counter, as `PATCH /api/v1/counters/{id}` does."""
    return await _counter_action(request, db, hall_id, counter_id, "open")


@router.post("/admin/halls/{hall_id}/counters/{counter_id}/reveal", response_class=HTMLResponse)
async def reveal(request: Request, hall_id: HallId, counter_id: CounterId, db: Db) -> Response:
    """查看完整信息: the full name, ID and phone number of the citizen being served; audited. The
    answer is this page itself (never a redirect: the details must not outlive it)."""
    form = await checked_form(request)
    who = await viewer(request, db)
    await hall_counter(db, who.actor, hall_id, counter_id)
    number = web.field(form, "number", 32)
    try:
        person = await ticket_person(db, secret_of(request), who.actor, hall_id, number, reveal=True)
    except DomainError as exc:
        if exc.code not in COUNTER_ERRORS:
            raise
        await db.rollback()
        return await _counter_page(request, db, who, hall_id, counter_id, error=exc)
    return await _counter_page(request, db, who, hall_id, counter_id, person=person)


# --- check-in desk (issue 10 item 2) -------------------------------------------------------------------


async def _desk_page(
    request: Request,
    db: AsyncSession,
    who: Viewer,
    hall_id: str,
    *,
    issued: list[str] | None = None,
    done: str = "",
    error: DomainError | None = None,
    form: str = "",
    booked: str | None = None,
) -> Response:
    hall = await hall_for(db, who.actor, hall_id)
    slips = [await ticket_slip(db, who.actor, hall_id, number) for number in issued or []]
    note = views.booked_note(await desk_booking(db, who.actor, hall_id, booked)) if booked else None
    can_book = who.actor.kind != "kiosk" and hall.mode != "self_service"
    line, serving = await waiting_line(db, hall)
    counts = {kind: sum(1 for e in line if e.ticket.kind == kind) for kind in views.KIND_TEXT}
    return render(
        request,
        "hall/desk.html",
        status=error.status if error is not None else 200,
        hall=hall,
        services=await views.services_for_desk(db, hall_id),
        counters=views.counter_links(hall.code or "", await list_counters(db, who.actor, hall_id)),
        slips=slips,
        counts=counts,
        waiting_total=len(line),
        serving_total=len(serving),
        done=DONE_TEXT.get(done, ""),
        error=web.error_view(error, "staff") if error is not None else None,
        failed_form=form,
        can_book=can_book,
        slots=views.desk_slot_options(await desk_slots(db, who.actor, hall_id)) if can_book else [],
        booked=note,
        KIND_TEXT=views.KIND_TEXT,
        GREEN_TEXT=views.GREEN_TEXT,
        minutes_text=views.minutes_text,
        hhmm=views.hhmm,
    )


@router.get("/admin/halls/{hall_id}/desk", response_class=HTMLResponse)
async def desk(
    request: Request,
    hall_id: HallId,
    db: Db,
    issued: Annotated[str, Query(max_length=400)] = "",
    done: Annotated[str, Query(max_length=20)] = "",
    booked: Annotated[str, Query(max_length=24)] = "",
) -> Response:
    """The check-in desk: check in by document (rules T3, M7), walk-in and green tickets (G10, M3),
    on-site booking of today's slots (G10)."""
    who = await viewer(request, db)
    response = await _desk_page(
        request,
        db,
        who,
        hall_id,
        issued=views.ticket_numbers(issued),
        done=done,
        booked=views.booking_number(booked),
    )
    return response


async def _desk_action(request: Request, db: AsyncSession, hall_id: str, action: str) -> Response:
    form = await checked_form(request)
    who = await viewer(request, db)
    secret = secret_of(request)
    before_open_min = settings_of(request).tickets_before_open_min
    try:
        id_type, id_number = _id_fields(form)
        if action == "checkin":
            status, tickets = await check_in(db, secret, who.actor, hall_id, id_type, id_number)
            numbers = [t.number for t in tickets]
            action = "checkin" if status == 201 else "checkin_again"  # a repeat issues nothing new
        else:
            service_id = _int_field(form, "service_id")
            if service_id is None:
                raise ValidationFailed("service_id: choose a service")
            green = web.field(form, "green", 16) or None
            if green is not None and green not in GREEN_KINDS:
                raise ValidationFailed("green: unknown green-channel kind")
            ticket = await issue_ticket(
                db, secret, who.actor, hall_id, service_id, id_type, id_number, green, before_open_min
            )
            numbers = [ticket.number]
    except DomainError as exc:
        if exc.code not in DESK_ERRORS:
            raise
        await db.rollback()
        return await _desk_page(request, db, who, hall_id, error=exc, form=action)
    return redirect(f"/admin/halls/{hall_id}/desk?done={action}&issued={','.join(numbers)}")


@router.post("/admin/halls/{hall_id}/desk/checkin", response_class=HTMLResponse)
async def desk_checkin(request: Request, hall_id: HallId, db: Db) -> Response:
    """Check in (取号) every booking of the document at this hall whose window is open (T3, M7)."""
    return await _desk_action(request, db, hall_id, "checkin")


@router.post("/admin/halls/{hall_id}/desk/ticket", response_class=HTMLResponse)
async def desk_ticket(request: Request, hall_id: HallId, db: Db) -> Response:
    """A walk-in (rule M2) or green-channel (rules G10, M3) ticket."""
    return await _desk_action(request, db, hall_id, "ticket")


@router.post("/admin/halls/{hall_id}/desk/book", response_class=HTMLResponse)
async def desk_book(request: Request, hall_id: HallId, db: Db) -> Response:
    """现场预约 (rule G10): book one of today's open slots on site for the citizen at the desk,
    through the same service as `POST /api/v1/halls/{hall_id}/bookings`; audited."""
    form = await checked_form(request)
    who = await viewer(request, db)
    try:
        id_type, id_number = _id_fields(form)
        slot_id = web.field(form, "slot_id", 40)
        if not slot_id:
            raise ValidationFailed("slot_id: choose a slot")
        answer = await book_at_desk(
            db,
            secret_of(request),
            who.actor,
            hall_id,
            slot_id,
            name=web.field(form, "name", 50),
            id_type=id_type,
            id_number=id_number,
            phone=web.field(form, "phone", 20),
        )
    except DomainError as exc:
        if exc.code not in DESK_ERRORS:
            raise
        await db.rollback()
        return await _desk_page(request, db, who, hall_id, error=exc, form="book")
    return redirect(f"/admin/halls/{hall_id}/desk?done=booked&booked={answer['number']}")


@router.get("/admin/halls/{hall_id}/tickets/{number}", response_class=HTMLResponse)
async def ticket_print(request: Request, hall_id: HallId, number: TicketNumber, db: Db) -> Response:
    """The printable ticket: number, service, hall, time, people ahead."""
    who = await viewer(request, db)
    slip = await ticket_slip(db, who.actor, hall_id, number)
    return render(
        request,
        "hall/ticket.html",
        slip=slip,
        hall_id=hall_id,
        KIND_TEXT=views.KIND_TEXT,
        GREEN_TEXT=views.GREEN_TEXT,
        minutes_text=views.minutes_text,
        issued=web.cn_datetime(slip.ticket.issued_at),
    )


# --- hall display (issue 10 item 3), public ----------------------------------------------------------


@router.get("/halls/{hall_id}/display", response_class=HTMLResponse)
async def display(request: Request, hall_id: HallId, db: Db) -> Response:
    """The hall's big screen: public, no personal data (ticket numbers and counters only). Live
    over `/api/v1/halls/{hall_id}/queue/events` (display.js); without JavaScript it refreshes."""
    hall = await get_hall(db, hall_id)
    queue = await public_queue(db, hall_id)
    closed = await closed_note(db, hall_id, clock.today())  # a closed day says so (今日闭厅)
    return render(request, "hall/display.html", hall=hall, screen=views.display_view(queue), closed=closed)


# --- the admin's halls: every screen of a hall, and its kiosks (issue 20) -------------------------

KIOSK_DONE = {"revoked": "自助机已停用：它的令牌立即失效，机器回到设置页面。"}


@router.get("/admin/halls", response_class=HTMLResponse)
async def halls_page(request: Request, db: Db) -> Response:
    """The halls of the admin's subtree, each leading to its screens."""
    who = await admin(request, db)
    halls = [u for u in await manage.scope_units(db, who) if u.kind in HALL_KINDS]
    return render(request, "hall/halls.html", halls=halls)


async def _screens_page(
    request: Request, db: AsyncSession, hall_id: str, status: int = 200, **extra: Any
) -> Response:
    who = await viewer(request, db)
    if who.admin is None:
        return redirect("/admin")
    hall = await get_hall(db, hall_id)
    counters = await list_counters(db, who.actor, hall.id)  # authorised: inside the subtree
    return render(
        request,
        "hall/screens.html",
        status=status,
        hall=hall,
        counters=counters,
        kiosks=await views.kiosks_of(db, hall.id),
        **extra,
    )


@router.get("/admin/halls/{hall_id}", response_class=HTMLResponse)
async def screens(request: Request, hall_id: HallId, db: Db, done: str = "") -> Response:
    """取号台, 叫号屏 per counter, 大厅显示屏 and 自助机 of one hall."""
    return await _screens_page(request, db, hall_id, done=KIOSK_DONE.get(done, ""))


@router.post("/admin/halls/{hall_id}/kiosks", response_class=HTMLResponse)
async def kiosk_create(request: Request, hall_id: HallId, db: Db) -> Response:
    """The same onsite.staff.create_kiosk as POST /api/v1/admin/halls/{hall_id}/kiosks; the token is
    shown once, on this answer only (no-store), to paste into the machine's set-up page."""
    form = await checked_form(request)
    who = await admin(request, db)
    name = web.field(form, "name", 100)
    if not name:
        return await _screens_page(
            request, db, hall_id, status=422, errors={"name": "请填写自助机名称，例如：1号自助机。"}
        )
    made = await create_kiosk(db, secret_of(request), who, hall_id, name)
    return await _screens_page(request, db, hall_id, created=made)


@router.post("/admin/halls/{hall_id}/kiosks/{kiosk_id}/revoke", response_class=HTMLResponse)
async def kiosk_revoke(request: Request, hall_id: HallId, kiosk_id: CounterId, db: Db) -> Response:
    """The same onsite.staff.revoke_kiosk as DELETE /api/v1/admin/kiosks/{kiosk_id}."""
    await checked_form(request)
    who = await admin(request, db)
    await revoke_kiosk(db, who, kiosk_id)
    return redirect(f"/admin/halls/{hall_id}?done=revoked")
