"""Citizen login (development stand-in for the provincial identity service) and /me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from yuyue.db import Db
from yuyue.errors import NotFound
from yuyue.identity import service
from yuyue.identity.schemas import (
    DevLoginIn,
    FinishIn,
    ForeignerLoginIn,
    LoginOut,
    MeOut,
    Provider,
    ProvidersOut,
    StartOut,
)
from yuyue.kit.http import bearer, problems, settings_of

router = APIRouter(prefix="/api/v1", tags=["citizens"])

__all__ = [
    "Citizen",
    "CitizenCheck",
    "CitizenLogin",
    "DevLoginIn",
    "current_citizen",
    "router",
    "settings_of",
]


async def current_session(request: Request, db: Db) -> service.SessionCheck:
    """A valid citizen token whose session is live, judged (401 otherwise), with its login."""
    return await service.citizen_session(db, settings_of(request).effective_secret, bearer(request))


CitizenCheck = Annotated[service.SessionCheck, Depends(current_session)]


async def current_citizen(check: CitizenCheck) -> int:
    """The citizen id of a valid citizen token whose session is live; 401 otherwise."""
    return check.citizen_id


Citizen = Annotated[int, Depends(current_citizen)]


async def current_login(check: CitizenCheck) -> service.SessionLogin | None:
    """How the citizen of this request logged in (provider, a legal person's company), as their
    session row said when `current_session` read it; None for a token without a session."""
    return check.login


CitizenLogin = Annotated[service.SessionLogin | None, Depends(current_login)]


def dev_login_enabled(request: Request) -> None:
    """Runs before the body is read: in production the route does not exist (404), whatever is sent."""
    settings = settings_of(request)
    if settings.production or "dev" not in settings.providers:
        raise NotFound("not found")


@router.post(
    "/auth/dev/login",
    response_model=LoginOut,
    responses=problems(404, 422),
    dependencies=[Depends(dev_login_enabled)],
)
async def dev_login(body: DevLoginIn, request: Request, db: Db) -> service.LoginAnswer:
    """Non-production: log in as a real-name-verified citizen (stands in for rule T2's provincial login)."""
    settings = settings_of(request)
    who = service.verify_identity(body.name, body.id_type, body.id_number, body.phone)
    result = await service.login(db, settings, who, "dev")
    return await service.login_answer(db, settings.effective_secret, result)


@router.get("/auth/providers", response_model=ProvidersOut)
async def login_providers(request: Request) -> dict[str, list[str]]:
    """The login providers this platform offers (YUYUE_IDENTITY_PROVIDERS)."""
    return {"providers": list(settings_of(request).providers)}


@router.post("/auth/{provider}/start", response_model=StartOut, responses=problems(404))
async def start_login(provider: Provider, request: Request) -> service.LoginStart:
    """Begin a provincial (`guangdong`) or OpenID Connect (`oidc`) login: send the citizen to
    `authorize_url`; the provider sends them back with `code` and this `state`."""
    return await service.start_login(settings_of(request), provider)


@router.post("/auth/{provider}/finish", response_model=LoginOut, responses=problems(401, 403, 404, 422))
async def finish_login(provider: Provider, body: FinishIn, request: Request, db: Db) -> service.LoginAnswer:
    """Finish the login (rule T2): accounts that are not real-name verified are refused
    (`403 not_real_name`); a bad, expired or reused state or a token that does not verify is
    `401 login_failed`."""
    settings = settings_of(request)
    result = await service.finish_login(db, settings, provider, body.code, body.state)
    return await service.login_answer(db, settings.effective_secret, result)


@router.post("/auth/foreigner/login", response_model=LoginOut, responses=problems(404, 422))
async def foreigner_login(body: ForeignerLoginIn, request: Request, db: Db) -> service.LoginAnswer:
    """Rule G8: foreigners' business without the provincial login (passport or permit). The phone
    token is single-use; a bad or used token and a document held with another phone all get the
    same `422 invalid_code`; one phone holds at most a few documents (`422 phone_document_limit`)."""
    settings = settings_of(request)
    result = await service.foreigner_login(
        db, settings, body.name, body.id_type, body.id_number, body.phone, body.phone_token
    )
    return await service.login_answer(db, settings.effective_secret, result)


@router.post("/auth/logout", status_code=204, response_class=Response, responses=problems(401))
async def logout(request: Request, db: Db) -> Response:
    """Revoke the session of this token: every token of the session stops working at once."""
    await service.logout(db, settings_of(request).effective_secret, bearer(request))
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, responses=problems(401))
async def me(citizen_id: Citizen, request: Request, db: Db) -> service.MeView:
    return await service.me(db, settings_of(request).effective_secret, citizen_id)
