"""Routes of the hall: check-in, tickets, counters, queue and its event stream, staff and kiosks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yuyue.auth.api import AdminDep
from yuyue.booking.schemas import BookingOut
from yuyue.booking.views import TicketView
from yuyue.clock import clock
from yuyue.db import Db
from yuyue.errors import DomainError
from yuyue.kit.http import bearer, client_address, problems, settings_of
from yuyue.onsite import counters as counter_service
from yuyue.onsite import staff as staff_service
from yuyue.onsite import stream
from yuyue.onsite.counters import CounterView, list_counters
from yuyue.onsite.desk import MovedDocument, book_at_desk, move_foreign_document
from yuyue.onsite.queue import PublicQueue, closure_event, public_queue
from yuyue.onsite.schemas import (
    CheckinIn,
    CounterOut,
    CounterPatch,
    DeskBookingIn,
    FinishIn,
    KioskIn,
    KioskOut,
    LoginIn,
    MovedDocumentOut,
    MoveDocumentIn,
    OneTicketOut,
    QueueOut,
    RecallIn,
    StaffIn,
    StaffLoginOut,
    StaffOut,
    StaffPasswordIn,
    StaffRetireIn,
    TicketIn,
    TicketsOut,
)
from yuyue.onsite.staff import Actor, NewKiosk, StaffView, actor_from_token
from yuyue.onsite.tickets import check_in, issue_ticket
from yuyue.ops.metrics import BOOKINGS
from yuyue.ops.replicas import ReadDb

router = APIRouter(prefix="/api/v1", tags=["on site"])
HallId = Annotated[str, Path(min_length=1, max_length=64)]
TicketNumber = Annotated[str, Path(min_length=1, max_length=32)]
StaffId = Annotated[int, Path(ge=1, le=2_000_000_000)]
HEARTBEAT_S = 15.0


async def current_actor(request: Request, db: Db) -> Actor:
    return await actor_from_token(db, settings_of(request).effective_secret, bearer(request))


ActorDep = Annotated[Actor, Depends(current_actor)]


# --- staff accounts and kiosks --------------------------------------------------------------------


@router.post("/staff/login", response_model=StaffLoginOut, responses=problems(401, 422), tags=["on site"])
async def staff_login(body: LoginIn, request: Request, db: Db) -> dict[str, object]:
    settings = settings_of(request)
    token, account = await staff_service.staff_login(
        db,
        settings.effective_secret,
        settings.token_ttl_s,
        body.username,
        body.password,
        client_address(request),
    )
    return {"token": token, "staff": account}  # checked by StaffLoginOut


@router.post(
    "/admin/halls/{hall_id}/staff",
    status_code=201,
    response_model=StaffOut,
    responses=problems(401, 403, 404, 409, 422),
)
async def create_staff(hall_id: HallId, body: StaffIn, admin: AdminDep, db: Db) -> StaffView:
    """A clerk account bound to this hall (and optionally to one counter); audited."""
    answer = await staff_service.create_staff(
        db, admin, hall_id, body.username, body.password, body.name, body.counter_id
    )
    return answer


@router.get("/admin/halls/{hall_id}/staff", response_model=list[StaffOut], responses=problems(401, 403, 404))
async def list_staff(hall_id: HallId, admin: AdminDep, db: Db) -> list[StaffView]:
    """The hall's clerk accounts, retired ones included."""
    return await staff_service.list_staff(db, admin, hall_id)


@router.post(
    "/admin/staff/{staff_id}/retire", response_model=StaffOut, responses=problems(401, 403, 404, 422)
)
async def retire_staff(
    staff_id: StaffId, admin: AdminDep, db: Db, body: Annotated[StaffRetireIn | None, Body()] = None
) -> StaffView:
    """Close a clerk account for good: its tokens stop working at once, its username is never
    reused (`422 already_retired` the second time); audited."""
    answer = await staff_service.retire_staff(db, admin, staff_id, body.reason if body else None)
    return answer


@router.post(
    "/admin/staff/{staff_id}/password", response_model=StaffOut, responses=problems(401, 403, 404, 422)
)
async def reset_staff_password(
    staff_id: StaffId, body: StaffPasswordIn, admin: AdminDep, db: Db
) -> StaffView:
    """Set a clerk's new password (12+ characters, letters and digits); tokens issued before stop
    working; audited."""
    answer = await staff_service.reset_staff_password(db, admin, staff_id, body.password)
    return answer


@router.post(
    "/admin/halls/{hall_id}/kiosks",
    status_code=201,
    response_model=KioskOut,
    responses=problems(401, 403, 404, 422),
)
async def create_kiosk(hall_id: HallId, body: KioskIn, admin: AdminDep, request: Request, db: Db) -> NewKiosk:
    """A kiosk of this hall and its token (shown once); audited."""
    answer = await staff_service.create_kiosk(
        db, settings_of(request).effective_secret, admin, hall_id, body.name
    )
    return answer


@router.delete("/admin/kiosks/{kiosk_id}", status_code=204, responses=problems(401, 403, 404))
async def revoke_kiosk(kiosk_id: int, admin: AdminDep, db: Db) -> Response:
    await staff_service.revoke_kiosk(db, admin, kiosk_id)
    return Response(status_code=204)


# --- check-in and tickets -------------------------------------------------------------------------


@router.post(
    "/halls/{hall_id}/checkin",
    status_code=201,
    response_model=TicketsOut,
    responses=problems(401, 403, 404, 422),
)
async def checkin(
    hall_id: HallId, body: CheckinIn, actor: ActorDep, request: Request, response: Response, db: Db
) -> dict[str, list[TicketView]]:
    """Rules T3, M7: check in (取号) every booking of this ID at this hall whose window is open now."""
    response.status_code, issued = await check_in(
        db, settings_of(request).effective_secret, actor, hall_id, body.id_type, body.id_number
    )
    return {"tickets": issued}


@router.post(
    "/halls/{hall_id}/tickets",
    status_code=201,
    response_model=OneTicketOut,
    responses=problems(401, 403, 404, 422),
)
async def ticket(
    hall_id: HallId, body: TicketIn, actor: ActorDep, request: Request, db: Db
) -> dict[str, TicketView]:
    """A walk-in (rule M2) or green-channel (rules G10, M3) ticket."""
    answer = await issue_ticket(
        db,
        settings_of(request).effective_secret,
        actor,
        hall_id,
        body.service_id,
        body.id_type,
        body.id_number,
        body.green,
        settings_of(request).tickets_before_open_min,
    )
    return {"ticket": answer}


@router.post(
    "/halls/{hall_id}/bookings",
    status_code=201,
    response_model=None,
    responses={201: {"model": BookingOut}, **problems(401, 403, 404, 409, 422)},
)
async def desk_booking(
    hall_id: HallId, body: DeskBookingIn, actor: ActorDep, request: Request, db: Db
) -> JSONResponse:
    """Rule G10: book one of today's slots of this hall on site (channel `onsite`) for the citizen
    at the desk, by staff or an admin acting as staff (a kiosk may not); audited."""
    try:
        answer = await book_at_desk(
            db,
            settings_of(request).effective_secret,
            actor,
            hall_id,
            body.slot_id,
            name=body.name,
            id_type=body.id_type,
            id_number=body.id_number,
            phone=body.phone,
            business_types=tuple(body.business_types),
            quantity=body.quantity,
        )
    except DomainError as exc:
        BOOKINGS.labels(action="book", outcome=exc.code).inc()
        raise
    BOOKINGS.labels(action="book", outcome="ok").inc()
    return JSONResponse(answer, status_code=201)


@router.post(
    "/halls/{hall_id}/foreigner-documents/move",
    response_model=MovedDocumentOut,
    responses=problems(401, 403, 404, 422),
)
async def move_document(
    hall_id: HallId, body: MoveDocumentIn, actor: ActorDep, request: Request, db: Db
) -> MovedDocument:
    """Issue 19 (rule G8 login): a clerk who has seen the holder and the passport or permit moves it
    to the holder's new phone (the only way to change it); the record keeps its bookings, every
    session of it ends; a kiosk may not. Answer masked; audited `foreigner.move_document`."""
    return await move_foreign_document(
        db,
        settings_of(request),
        actor,
        hall_id,
        id_type=body.id_type,
        id_number=body.id_number,
        phone=body.phone,
    )


# --- counters -------------------------------------------------------------------------------------


@router.get("/halls/{hall_id}/counters", response_model=list[CounterOut], responses=problems(401, 403, 404))
async def counters(hall_id: HallId, actor: ActorDep, db: Db) -> list[CounterView]:
    answer = await list_counters(db, actor, hall_id)
    return answer


@router.patch("/counters/{counter_id}", response_model=CounterOut, responses=problems(401, 403, 404, 422))
async def patch_counter(counter_id: int, body: CounterPatch, actor: ActorDep, db: Db) -> CounterView:
    """Open or close a counter, rename it, or set the services it calls (null: all)."""
    answer = await counter_service.patch_counter(db, actor, counter_id, body.model_dump(exclude_unset=True))
    return answer


@router.post(
    "/counters/{counter_id}/call-next",
    response_model=OneTicketOut,
    responses={204: {"description": "nobody waits"}, **problems(401, 403, 404, 422)},
)
async def call_next(counter_id: int, actor: ActorDep, db: Db) -> Response | dict[str, TicketView]:
    """Finish the counter's current ticket and call the next one in call order (rule T4)."""
    answer = await counter_service.call_next(db, actor, counter_id)
    if answer is None:
        return Response(status_code=204)
    return {"ticket": answer}


@router.post("/tickets/{number}/recall", response_model=OneTicketOut, responses=problems(401, 403, 404, 422))
async def recall(
    number: TicketNumber, actor: ActorDep, db: Db, body: Annotated[RecallIn | None, Body()] = None
) -> dict[str, TicketView]:
    answer = await counter_service.recall(db, actor, number, body.counter_id if body else None)
    return {"ticket": answer}


@router.post("/tickets/{number}/skip", response_model=OneTicketOut, responses=problems(401, 403, 404, 422))
async def skip(number: TicketNumber, actor: ActorDep, db: Db) -> dict[str, TicketView]:
    answer = await counter_service.skip(db, actor, number)
    return {"ticket": answer}


@router.post("/tickets/{number}/finish", response_model=OneTicketOut, responses=problems(401, 403, 404, 422))
async def finish(
    number: TicketNumber, actor: ActorDep, db: Db, body: Annotated[FinishIn | None, Body()] = None
) -> dict[str, TicketView]:
    """Finish a called ticket; `service_id` finishes one member item of a bundle (rule G17)."""
    answer = await counter_service.finish(db, actor, number, body.service_id if body else None)
    return {"ticket": answer}


# --- public queue and display stream ------------------------------------------------------------------


@router.get("/halls/{hall_id}/queue", response_model=QueueOut, responses=problems(404))
async def queue(hall_id: HallId, db: ReadDb) -> PublicQueue:
    """Public: the waiting tickets in call order with wait estimates, and those being served."""
    return await public_queue(db, hall_id)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.get(
    "/halls/{hall_id}/queue/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **problems(404)},
)
async def queue_events(hall_id: HallId, request: Request) -> StreamingResponse:
    """Public Server-Sent Events: `queue` and `closure` (snapshots on connect), `call` (ticket and
    counter), `change` (the queue changed) and `closure` (today's closure set or removed), from
    every app process."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        snapshot = await public_queue(session, hall_id)
        closure = {**await closure_event(session, hall_id, clock.today()), "hall_id": hall_id}
    screen = await stream.broker.subscribe(hall_id, settings_of(request).database_url)

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n\n"
            yield _sse("queue", QueueOut.model_validate(snapshot).model_dump(mode="json"))
            yield _sse("closure", {k: v for k, v in closure.items() if k != "type"})
            while True:
                try:
                    message = await asyncio.wait_for(screen.get(), timeout=HEARTBEAT_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        break
                    yield ": keep-alive\n\n"
                    continue
                kind = str(message.get("type", "change"))
                yield _sse(kind, {k: v for k, v in message.items() if k != "type"})
        finally:
            await stream.broker.unsubscribe(hall_id, screen)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
