"""Routes of notifications: the console's sent messages (non-production), SMS verification codes
(rule M6) and the admins' view of the outbox with its dead letters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.api import AdminDep
from yuyue.admin.service import audit, authorise
from yuyue.db import get_db
from yuyue.errors import Unprocessable
from yuyue.identity.api import settings_of
from yuyue.jobs.api import NonProd
from yuyue.kit.http import problems
from yuyue.notify import service
from yuyue.notify.schemas import (
    CodeIn,
    CodeOut,
    MessageOut,
    MessageStatus,
    TestMessageOut,
    VerifyIn,
    VerifyOut,
)

test = APIRouter(prefix="/api/v1/test", tags=["test"])
public = APIRouter(prefix="/api/v1/auth/phone", tags=["citizens"])
admin = APIRouter(prefix="/api/v1/admin/notifications", tags=["administration"])
Db = Annotated[AsyncSession, Depends(get_db)]


@test.get("/messages", response_model=list[TestMessageOut], responses=problems(404))
async def test_messages(
    _: NonProd, request: Request, db: Db, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    """What the console provider has sent, newest first (full numbers: test only). Messages due
    now are delivered first, so an answer reflects every committed change."""
    secret = settings_of(request).effective_secret
    await service.deliver_due(request.app.state.sessionmaker, secret)
    return await service.console_messages(db, limit)


@public.post("/code", status_code=201, response_model=CodeOut, responses=problems(422, 429))
async def request_code(body: CodeIn, request: Request, db: Db) -> dict[str, Any]:
    """Rule M6: send a 6-digit code (valid 5 minutes) to confirm a mobile number."""
    client = request.client.host if request.client else "unknown"
    answer = await service.request_code(db, settings_of(request).effective_secret, body.phone, client)
    await db.commit()
    return answer


@public.post("/verify", response_model=VerifyOut, responses=problems(422))
async def verify_code(body: VerifyIn, request: Request, db: Db) -> dict[str, Any]:
    """Rule M6: check the code; the answer carries a short-lived token proving the number."""
    secret = settings_of(request).effective_secret
    ok = await service.check_code(db, secret, body.phone, body.code)
    await db.commit()  # a wrong try is counted even though the answer is an error
    if not ok:
        raise Unprocessable("wrong, expired or used-up code", code="invalid_code")
    return {
        "verified": True,
        "phone_token": service.phone_token(secret, body.phone),
        "expires_in": service.PHONE_TOKEN_TTL_S,
    }


@admin.get("", response_model=list[MessageOut], responses=problems(401, 403, 422))
async def list_messages(
    who: AdminDep,
    db: Db,
    status: MessageStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The outbox of the admin's subtree, newest first; `?status=dead` lists the dead letters."""
    authorise(who, "view", who.unit_path)
    return await service.list_messages(db, who.unit_path, status, limit)


@admin.get("/{message_id}", response_model=MessageOut, responses=problems(401, 403, 404))
async def get_message(message_id: int, who: AdminDep, db: Db) -> dict[str, Any]:
    """One message with its delivery attempts and the providers' receipts."""
    message = await service.get_message(db, message_id, who.unit_path)
    return {**service.message_view(message), "receipts": await service.message_attempts(db, message.id)}


@admin.post("/{message_id}/retry", response_model=MessageOut, responses=problems(401, 403, 404, 422))
async def retry_message(message_id: int, who: AdminDep, db: Db) -> dict[str, Any]:
    """Send a dead letter again (audited)."""
    message = await service.get_message(db, message_id, who.unit_path)
    authorise(who, "configure", message.unit_path)
    before = {"status": message.status, "attempts": message.attempts}
    message = await service.retry_dead(db, message)
    await audit(
        db,
        who,
        who.unit_id,
        message.unit_path,
        "notification.retry",
        f"message:{message.id}",
        before,
        {"status": message.status},
    )
    view = service.message_view(message)
    await db.commit()
    return view
