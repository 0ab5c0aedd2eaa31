"""Routes of availability and bookings: parse, authorise, call the service, shape the answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from yuyue.booking import commands, idempotency, rules, views
from yuyue.booking.availability import availability_json
from yuyue.booking.idempotency import Keyed
from yuyue.booking.receipt import default_font, render_receipt_html, render_receipt_pdf
from yuyue.booking.schemas import AvailabilityOut, BookIn, BookingOut, CancelIn, RebookIn, RescheduleIn
from yuyue.catalogue.service import service_info
from yuyue.db import Db, autocommit, committable
from yuyue.errors import DomainError
from yuyue.identity.api import Citizen, CitizenCheck
from yuyue.identity.service import SessionCheck, citizen_session, defer_session_check, settle_session
from yuyue.kit.http import bearer, problems, settings_of
from yuyue.ops.metrics import BOOKINGS
from yuyue.ops.middleware import publish
from yuyue.ops.replicas import ReadDb, read_or_primary

router = APIRouter(prefix="/api/v1", tags=["bookings"])
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


async def _booking_citizen(request: Request, db: Db, key: IdemKey = None) -> SessionCheck:
    """`current_citizen` for `POST /appointments`. The booking is the request's only write: the
    session runs in autocommit, and the booking with its SMS (and its Idempotency-Key's answer) is
    one statement (decisions 0014, 0015). Without a key the session row is read with the booking's
    pre-check (an ended session still gets 401 first); with one it is read now, before the key's
    answer could be replayed. The check goes to `book` in its `Caller` (decision 0085)."""
    secret, token = settings_of(request).effective_secret, bearer(request)
    if key is not None:
        await autocommit(db)
        return await citizen_session(db, secret, token)
    check = defer_session_check(secret, token)  # the token now: no database for a bad one
    await autocommit(db)  # before the session's first statement
    return check


BookingCitizen = Annotated[SessionCheck, Depends(_booking_citizen)]


@router.get(
    "/services/{service_id}/availability",
    response_model=None,
    responses={200: {"model": AvailabilityOut}, **problems(404, 422)},
    tags=["catalogue"],
)
async def availability(
    service_id: int,
    db: Db,
    reads: ReadDb,
    request: Request,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
) -> Response:
    """Hourly slots over the policy's horizon (or `from`–`to`), with seats left for off-site booking.
    Read from a replica when one is fresh (decision 0090), else (or should it fail) from the primary."""
    body, fresh = await read_or_primary(
        request, reads, db, lambda session: availability_json(session, service_id, from_, to)
    )
    publish(request.scope, body, "application/json", fresh)  # repeated from memory while fresh
    return Response(body, media_type="application/json")


async def _changing(
    db: AsyncSession,
    citizen_id: int,
    key: str | None,
    request: Request,
    body: Callable[[], dict[str, Any]] | dict[str, Any],
    action: str,
    work: Callable[[Keyed | None], Awaitable[dict[str, Any]]],
    status: int,
) -> JSONResponse:
    """Run a booking change under the Idempotency-Key rules (`work` gets the request's `Keyed`),
    count its outcome, commit once."""

    async def run(keyed: Keyed | None) -> tuple[int, dict[str, Any]]:
        return status, await work(keyed)

    try:
        fingerprint = ""
        if key is not None:  # only a key needs the request's fingerprint (not built otherwise: issue 21)
            where = f"{request.method} {request.url.path}"
            fingerprint = idempotency.request_hash(where, body() if callable(body) else body)
        code, answer = await idempotency.idempotent(db, citizen_id, key, fingerprint, run)
    except DomainError as exc:
        BOOKINGS.labels(action=action, outcome=exc.code).inc()
        raise
    BOOKINGS.labels(action=action, outcome="ok").inc()
    return JSONResponse(answer, status_code=code)


@router.post(
    "/appointments",
    status_code=201,
    response_model=None,
    responses={201: {"model": BookingOut}, **problems(401, 403, 404, 409, 422, 429)},
)
async def book(
    body: BookIn, check: BookingCitizen, db: Db, request: Request, key: IdemKey = None
) -> JSONResponse:
    """Book a slot for the logged-in citizen (rules T2, T5, M10, G10, G16, G17). Without an
    Idempotency-Key, `BookingDoor` answers first (decision 0099)."""
    return await place_booking(db, check, body, request, key)


async def place_booking(
    db: AsyncSession, check: SessionCheck, body: BookIn, request: Request, key: str | None
) -> JSONResponse:
    """`POST /appointments` once parsed and its token checked: the citizen's booking under the
    Idempotency-Key rules, its outcome counted, the session judged before any refusal (401 first)."""
    citizen_id = check.citizen_id
    req = rules.BookRequest(
        slot_id=body.slot_id,
        channel=body.channel,
        quantity=body.quantity,
        business_types=tuple(body.business_types),
        company_uscc=body.company.uscc if body.company else None,
        company_name=body.company.name if body.company else None,
    )
    try:
        return await _changing(
            db,
            citizen_id,
            key,
            request,
            body.model_dump,
            "book",
            lambda keyed: commands.book(db, citizen_id, req, rules.Caller(session=check, keyed=keyed)),
            201,
        )
    except DomainError:
        await settle_session(db, check)  # refused before the pre-check read the session: 401 comes first
        raise


_BOOK_PATH = "/api/v1/appointments"
_REPLAYED = "yuyue.booking_door"  # set on a request `BookingDoor` handed on to the routes


class BookingDoor(Route):
    """`POST /api/v1/appointments` without an Idempotency-Key, ahead of FastAPI's routing and
    dependency solving (issue 21, decision 0099): the body parsed by the same `BookIn`, the token
    checked by the same `defer_session_check`, the request's session owned as `get_db` owns it
    (commit before the answer is sent, closed after), and the same `place_booking`. Its errors go
    to the app's handlers as a route's do. Anything else (a key, a body or token `BookIn` or the
    check refuses, another content type) goes on to the FastAPI route `book` unchanged, with the
    body replayed: every refusal of the contract is still answered there, and the OpenAPI
    document is that route's."""

    def __init__(self) -> None:
        super().__init__(_BOOK_PATH, self._door, methods=["POST"], include_in_schema=False)
        self.app = self._door  # an ASGI app, not a request-response endpoint

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_REPLAYED):
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is Match.FULL:
            child["route"] = self  # the route template, for the metrics and the log line
        return match, child

    async def _door(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        parsed, check = _parse(scope, body)
        if parsed is None or check is None:
            await _hand_on(scope, body, receive, send)
            return
        request = Request(scope, receive, send)
        maker = request.app.state.sessionmaker
        async with maker() as db:
            await autocommit(db)
            try:
                response = await place_booking(db, check, parsed, request, None)
            except DomainError as exc:
                await (db.commit() if exc.keep_writes else db.rollback())
                raise
            except BaseException:
                await db.rollback()
                raise
            if committable(db):  # else every statement has committed itself: nothing waits for it
                await db.commit()
            await response(scope, receive, send)


def _parse(scope: Scope, body: bytes) -> tuple[BookIn | None, SessionCheck | None]:
    """The body and token of a booking `BookingDoor` answers itself; (None, None) otherwise."""
    content_type = token = None
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return None, None
        if name == b"content-type":
            content_type = value
        elif name == b"authorization":
            token = value
    if content_type != b"application/json" or token is None:
        return None, None
    scheme, _, rest = token.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not rest.strip():
        return None, None
    try:
        parsed = BookIn.model_validate(json.loads(body))
        secret = scope["app"].state.settings.effective_secret
        return parsed, defer_session_check(secret, rest.strip())
    except (ValueError, DomainError):  # ValidationError and JSONDecodeError are ValueErrors
        return None, None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _hand_on(scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """The request to the app's routes as it came (`BookingDoor` steps aside)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # the client's disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope[_REPLAYED] = True
    await scope["router"](scope, replay, send)


@router.get("/appointments", response_model=list[BookingOut], responses=problems(401))
async def my_bookings(citizen_id: Citizen, db: Db) -> list[views.BookingView]:
    """The citizen's own bookings, newest first (rules T11, M12)."""
    return await views.list_bookings(db, citizen_id)


@router.get("/appointments/{number}", response_model=BookingOut, responses=problems(401, 404))
async def get_booking(number: str, citizen_id: Citizen, db: Db) -> views.BookingView:
    return await views.get_booking(db, citizen_id, number)


@router.post(
    "/appointments/{number}/cancel",
    response_model=None,
    responses={200: {"model": BookingOut}, **problems(401, 404, 422)},
)
async def cancel(
    number: str,
    citizen_id: Citizen,
    db: Db,
    request: Request,
    body: CancelIn | None = None,
    key: IdemKey = None,
) -> JSONResponse:
    """Cancel before the policy's deadline (rules G13, T8, M8); the seat is free at once."""
    return await _changing(
        db, citizen_id, key, request, {}, "cancel", lambda _: commands.cancel(db, citizen_id, number), 200
    )


@router.post(
    "/appointments/{number}/reschedule",
    response_model=None,
    responses={200: {"model": BookingOut}, **problems(401, 404, 409, 422)},
)
async def reschedule(
    number: str, body: RescheduleIn, check: CitizenCheck, db: Db, request: Request, key: IdemKey = None
) -> JSONResponse:
    """Move to another slot of the same service atomically; the number stays."""
    citizen_id, caller = check.citizen_id, rules.Caller(session=check)
    return await _changing(
        db,
        citizen_id,
        key,
        request,
        body.model_dump,
        "reschedule",
        lambda _: commands.reschedule(db, citizen_id, number, body.slot_id, caller),
        200,
    )


@router.post(
    "/appointments/{number}/rebook",
    status_code=201,
    response_model=None,
    responses={201: {"model": BookingOut}, **problems(401, 403, 404, 409, 422)},
)
async def rebook(
    number: str, body: RebookIn, check: CitizenCheck, db: Db, request: Request, key: IdemKey = None
) -> JSONResponse:
    """Special-reason rebook after a missed slot, once (rules T9, G14)."""
    citizen_id = check.citizen_id
    return await _changing(
        db,
        citizen_id,
        key,
        request,
        body.model_dump,
        "rebook",
        lambda keyed: commands.rebook(
            db, citizen_id, number, body.slot_id, body.reason, rules.Caller(session=check, keyed=keyed)
        ),
        201,
    )


@router.get(
    "/appointments/{number}/receipt",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}, **problems(401, 404)},
)
async def receipt(
    number: str,
    citizen_id: Citizen,
    db: Db,
    request: Request,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
) -> Response:
    """A printable receipt with a QR code of the number (rule T10): HTML, or `?format=pdf`."""
    view = views.as_json(await views.get_booking(db, citizen_id, number))
    info = await service_info(db, view["service_id"])
    hall = {"name": info.hall_name, "address": info.hall_address, "hotline": info.hall_hotline}
    if format == "pdf":
        pdf = render_receipt_pdf(view, hall, settings_of(request).pdf_font or default_font())
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="receipt-{number}.pdf"'},
        )
    return HTMLResponse(render_receipt_html(view, hall))
