"""Partner channel routes: API-client registration (platform admins) and the signed partner API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.api import AdminDep
from yuyue.auth.service import authorise
from yuyue.booking import commands, idempotency, rules, views
from yuyue.booking.idempotency import Keyed
from yuyue.booking.schemas import BookingOut
from yuyue.channels import service
from yuyue.channels.schemas import (
    ChannelBookIn,
    ClientCreatedOut,
    ClientIn,
    ClientOut,
    NewKeyOut,
    PartnerLoginIn,
    PartnerLoginOut,
    RotateIn,
    WebhookIn,
)
from yuyue.db import Db, autocommit
from yuyue.identity.service import SessionCheck
from yuyue.kit.http import bearer, problems, settings_of
from yuyue.ops.ratelimit import per_minute

admin = APIRouter(prefix="/api/v1/admin/api-clients", tags=["administration"])
partner = APIRouter(prefix="/api/v1/channel", tags=["partner channels"])
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
PLATFORM = "platform/"


# --- platform admins --------------------------------------------------------------------------------


@admin.post("", status_code=201, response_model=ClientCreatedOut, responses=problems(401, 403, 409, 422))
async def create_client(body: ClientIn, who: AdminDep, db: Db, request: Request) -> dict[str, Any]:
    """Register a partner client with scopes; the answer holds its first key's secret, once. With
    `unit_id` (channel `bureau`, scopes `bureau:sync`/`bureau:read`) it is a bureau's or district's own
    booking system acting inside that unit's subtree (rules G5, G6; decision 0080)."""
    authorise(who, "configure", PLATFORM)
    secret = settings_of(request).effective_secret
    client, key, key_secret = await service.create_client(
        db, secret, body.id, body.name, body.channel, list(body.scopes), body.rate_per_minute, body.unit_id
    )
    view = service.client_view(client, [key])
    unit_id, path = await service.audit_place(db, client.id)
    await audit(db, who, unit_id, path, "api_client.create", client.id, None, view)
    return {"client": view, "key": {"id": key.id, "secret": key_secret}}


@admin.get("", response_model=list[ClientOut], responses=problems(401, 403))
async def list_clients(who: AdminDep, db: Db) -> list[dict[str, Any]]:
    authorise(who, "configure", PLATFORM)
    return await service.list_clients(db)


@admin.post("/{client_id}/keys", status_code=201, response_model=NewKeyOut, responses=problems(401, 403, 404))
async def rotate_key(
    client_id: str, who: AdminDep, db: Db, request: Request, body: RotateIn | None = None
) -> dict[str, Any]:
    """Key rotation: a new key now; the client's older keys expire after `grace_hours` (default 24)."""
    authorise(who, "configure", PLATFORM)
    grace = body.grace_hours if body else 24
    key, key_secret = await service.rotate_key(db, settings_of(request).effective_secret, client_id, grace)
    unit_id, path = await service.audit_place(db, client_id)
    await audit(db, who, unit_id, path, "api_client.rotate_key", client_id, None, {"key": key.id})
    return {"id": key.id, "secret": key_secret}


@admin.delete(
    "/{client_id}/keys/{key_id}", status_code=204, response_class=Response, responses=problems(401, 403, 404)
)
async def revoke_key(client_id: str, key_id: str, who: AdminDep, db: Db) -> Response:
    authorise(who, "configure", PLATFORM)
    await service.revoke_key(db, client_id, key_id)
    unit_id, path = await service.audit_place(db, client_id)
    await audit(db, who, unit_id, path, "api_client.revoke_key", client_id, None, {"key": key_id})
    return Response(status_code=204)


async def _set_active(client_id: str, active: bool, who: AdminDep, db: AsyncSession) -> dict[str, Any]:
    authorise(who, "configure", PLATFORM)
    client = await service.set_active(db, client_id, active)
    action = "api_client.enable" if active else "api_client.disable"
    unit_id, path = await service.audit_place(db, client_id)
    await audit(db, who, unit_id, path, action, client_id, None, {"active": active})
    return service.client_view(*await service.get_client(db, client_id)) | {"active": client.active}


@admin.put("/{client_id}/webhook", response_model=ClientOut, responses=problems(401, 403, 404, 422))
async def set_webhook(
    client_id: str, body: WebhookIn, who: AdminDep, db: Db, request: Request
) -> dict[str, Any]:
    """Where the partner hears of its bookings (created, cancelled, rescheduled, no-show): a signed
    POST per event, retried from the outbox until the partner answers 2xx (issue 7 item 7)."""
    authorise(who, "configure", PLATFORM)
    before, _ = await service.get_client(db, client_id)
    old = before.webhook_url
    client = await service.set_webhook(db, client_id, body.url, settings_of(request).production)
    _, keys = await service.get_client(db, client_id)
    unit_id, path = await service.audit_place(db, client_id)
    await audit(
        db,
        who,
        unit_id,
        path,
        "api_client.webhook",
        client_id,
        {"webhook_url": old},
        {"webhook_url": client.webhook_url},
    )
    return service.client_view(client, keys)


@admin.post("/{client_id}/disable", response_model=ClientOut, responses=problems(401, 403, 404))
async def disable_client(client_id: str, who: AdminDep, db: Db) -> dict[str, Any]:
    return await _set_active(client_id, False, who, db)


@admin.post("/{client_id}/enable", response_model=ClientOut, responses=problems(401, 403, 404))
async def enable_client(client_id: str, who: AdminDep, db: Db) -> dict[str, Any]:
    return await _set_active(client_id, True, who, db)


# --- partners ---------------------------------------------------------------------------------------


async def signed_partner(request: Request) -> service.Partner:
    """A partner request whose signature, timestamp and nonce check out, within its rate limit."""
    settings = settings_of(request)
    found = await service.verify_request(
        request.app.state.sessionmaker,
        settings.effective_secret,
        settings.channel_clock_skew_s,
        request.headers,
        request.method,
        request.url.path,
        request.url.query,
        await request.body(),
    )
    await request.app.state.rate_limits.hit(
        per_minute(found.rate_per_minute), "partner client", found.client_id
    )
    return found


PartnerDep = Annotated[service.Partner, Depends(signed_partner)]


async def partner_session(request: Request, db: Db, who: PartnerDep) -> SessionCheck:
    return await service.partner_citizen(db, settings_of(request).effective_secret, who, bearer(request))


async def partner_citizen(check: Annotated[SessionCheck, Depends(partner_session)]) -> int:
    return check.citizen_id


ChannelCitizen = Annotated[int, Depends(partner_citizen)]


async def booking_citizen(request: Request, db: Db, who: PartnerDep) -> SessionCheck:
    """`partner_citizen` for a booking: its only write is the booking's one statement (with the
    partner's row, its webhook and the Idempotency-Key's answer), so the session runs in autocommit
    (decisions 0014, 0015)."""
    await autocommit(db)
    return await partner_session(request, db, who)


BookingCitizen = Annotated[SessionCheck, Depends(booking_citizen)]


@partner.post("/citizens/login", response_model=PartnerLoginOut, responses=problems(401, 403, 422, 429))
async def citizen_login(body: PartnerLoginIn, who: PartnerDep, db: Db, request: Request) -> dict[str, Any]:
    """A citizen the partner logged in through the provincial identity service (rule T2): a citizen
    token bound to this partner, for the calls below (`Authorization: Bearer`)."""
    answer = await service.partner_login(
        db, settings_of(request), who, body.name, body.id_type, body.id_number, body.phone
    )
    return answer


@partner.post(
    "/appointments",
    status_code=201,
    response_model=None,
    responses={201: {"model": BookingOut}, **problems(401, 403, 404, 409, 422, 429)},
)
async def book(
    body: ChannelBookIn,
    who: PartnerDep,
    check: BookingCitizen,
    db: Db,
    request: Request,
    key: IdemKey = None,
) -> JSONResponse:
    """Book for the citizen; the booking's channel is this client's (rule T1)."""
    citizen_id = check.citizen_id
    service.require_scope(who, "bookings:write")
    req = rules.BookRequest(
        slot_id=body.slot_id,
        channel=who.channel,
        quantity=body.quantity,
        business_types=tuple(body.business_types),
        company_uscc=body.company.uscc if body.company else None,
        company_name=body.company.name if body.company else None,
    )

    async def work(keyed: Keyed | None) -> tuple[int, dict[str, Any]]:
        caller = rules.Caller("channel", who.client_id, session=check, keyed=keyed)
        return 201, await commands.book(db, citizen_id, req, caller)

    fingerprint = idempotency.request_hash(f"POST {request.url.path} {who.client_id}", body.model_dump())
    status, answer = await idempotency.idempotent(db, citizen_id, key, fingerprint, work)
    return JSONResponse(answer, status_code=status)


@partner.get("/appointments", response_model=list[BookingOut], responses=problems(401, 403))
async def bookings(who: PartnerDep, citizen_id: ChannelCitizen, db: Db) -> list[views.BookingView]:
    service.require_scope(who, "bookings:read")
    return await views.list_bookings(db, citizen_id)


@partner.post(
    "/appointments/{number}/cancel",
    response_model=None,
    responses={200: {"model": BookingOut}, **problems(401, 403, 404, 422)},
)
async def cancel(number: str, who: PartnerDep, citizen_id: ChannelCitizen, db: Db) -> JSONResponse:
    service.require_scope(who, "bookings:write")
    answer = await commands.cancel(db, citizen_id, number)
    return JSONResponse(answer)
