"""Routes of notifications: the console's sent messages (non-production), SMS verification codes
(rule M6), the admins' view of the outbox with its dead letters, and the delivery reports the SMS
providers push back (decision 0082)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.api import AdminDep
from yuyue.auth.service import authorise
from yuyue.db import Db
from yuyue.errors import DomainError, NotFound, Unprocessable
from yuyue.identity import service as identity
from yuyue.jobs.api import NonProd
from yuyue.kit.http import problems, settings_of
from yuyue.notify import codes, config, outbox
from yuyue.notify.codes import check_code
from yuyue.notify.delivery import deliver_due
from yuyue.notify.outbox import console_messages, message_attempts, message_view, retry_dead
from yuyue.notify.reports import DeliveryReport, count_reports, record_reports
from yuyue.notify.schemas import (
    AliyunAnswer,
    AliyunReport,
    CodeIn,
    CodeOut,
    DeliveryStatus,
    MessageOut,
    MessageStatus,
    Report,
    TencentAnswer,
    TencentReport,
    TestMessageOut,
    VerifyIn,
    VerifyOut,
)

test = APIRouter(prefix="/api/v1/test", tags=["test"])
public = APIRouter(prefix="/api/v1/auth/phone", tags=["citizens"])
admin = APIRouter(prefix="/api/v1/admin/notifications", tags=["administration"])
reports = APIRouter(prefix="/api/v1/sms/reports", tags=["providers"])


@test.get("/messages", response_model=list[TestMessageOut], responses=problems(404))
async def test_messages(
    _: NonProd, request: Request, db: Db, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    """What the console provider has sent, newest first (full numbers: test only). Messages due
    now are delivered first, so an answer reflects every committed change."""
    secret = settings_of(request).effective_secret
    await deliver_due(request.app.state.sessionmaker, secret)
    return await console_messages(db, limit)


@public.post("/code", status_code=201, response_model=CodeOut, responses=problems(422, 429))
async def request_code(body: CodeIn, request: Request, db: Db) -> dict[str, Any]:
    """Rule M6: send a 6-digit code (valid 5 minutes) to confirm a mobile number."""
    client = request.client.host if request.client else "unknown"
    answer = await codes.request_code(db, settings_of(request).effective_secret, body.phone, client)
    return answer


@public.post("/verify", response_model=VerifyOut, responses=problems(422))
async def verify_code(body: VerifyIn, request: Request, db: Db) -> dict[str, Any]:
    """Rule M6: check the code; the answer carries a short-lived token proving the number."""
    secret = settings_of(request).effective_secret
    ok = await check_code(db, secret, body.phone, body.code)
    if not ok:
        # the wrong try is counted (committed) even though the answer is an error
        raise Unprocessable("wrong, expired or used-up code", code="invalid_code", keep_writes=True)
    return {
        "verified": True,
        "phone_token": identity.phone_token(secret, body.phone),
        "expires_in": identity.PHONE_TOKEN_TTL_S,
    }


@admin.get("", response_model=list[MessageOut], responses=problems(401, 403, 422))
async def list_messages(
    who: AdminDep,
    db: Db,
    status: MessageStatus | None = None,
    delivery: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The outbox of the admin's subtree, newest first; `?status=dead` lists the dead letters,
    `?delivery=undelivered` the messages a provider accepted but could not hand over."""
    authorise(who, "view", who.unit_path)
    return await outbox.list_messages(db, who.unit_path, status, limit, delivery)


@admin.get("/{message_id}", response_model=MessageOut, responses=problems(401, 403, 404))
async def get_message(message_id: int, who: AdminDep, db: Db) -> dict[str, Any]:
    """One message with its delivery attempts and the providers' receipts."""
    message = await outbox.get_message(db, message_id, who.unit_path)
    return {**message_view(message), "receipts": await message_attempts(db, message.id)}


@admin.post("/{message_id}/retry", response_model=MessageOut, responses=problems(401, 403, 404, 422))
async def retry_message(message_id: int, who: AdminDep, db: Db) -> dict[str, Any]:
    """Send a dead letter again (audited)."""
    message = await outbox.get_message(db, message_id, who.unit_path)
    authorise(who, "configure", message.unit_path)
    before = {"status": message.status, "attempts": message.attempts}
    message = await retry_dead(db, message)
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
    view = message_view(message)
    return view


# --- delivery reports pushed by the providers (decision 0082) ----------------------------------
#
# The providers cannot sign their pushes with our keys: the secret YUYUE_SMS_REPORT_TOKEN is the
# last segment of the URL configured in their consoles. A wrong or missing token, or no token
# configured, answers exactly like a path that does not exist (404 not_found). Our request logs and
# metrics carry the route template (`…/{token}`), never the path. After the token, what the provider
# reads is its own answer shape: 200 with code 0 when the push is recorded, 400 with a non-zero code
# when any row is malformed (then nothing is recorded).

R = TypeVar("R", bound=Report)
ALIYUN_ROWS = TypeAdapter(list[AliyunReport])
TENCENT_ROWS = TypeAdapter(list[TencentReport])


class PayloadTooLarge(DomainError):
    code, status = "payload_too_large", 413


class Malformed(Exception):
    """A push that is not a JSON array of well-formed reports (the message names no values)."""


@lru_cache(maxsize=8)
def _limit(rate: str) -> RateLimitItem:
    return parse(rate)


def _same(given: str, expected: str) -> bool:
    """Constant time, whatever the lengths: the digests are compared, not the strings."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


async def _admit(request: Request, token: str, provider: str) -> config.SmsReportSettings:
    """The per-address limit (counted before the token, so guessing is limited too), then the token."""
    settings = config.sms_report_settings()
    limits = getattr(request.app.state, "rate_limits", None)
    if limits is not None:
        client = request.client.host if request.client else "unknown"
        await limits.hit(_limit(settings.rate), "sms_report", client)
    if not settings.enabled or not _same(token, settings.token.get_secret_value()):
        count_reports(provider, Counter(refused=1))
        raise NotFound("Not Found")  # the answer of a path that does not exist
    return settings


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"a report push is limited to {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"a report push is limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _rows(body: bytes, adapter: TypeAdapter[list[R]], max_rows: int) -> list[R]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Malformed("the body is not JSON") from None
    if not isinstance(data, list):
        raise Malformed("the body is not a JSON array")
    if len(data) > max_rows:
        raise Malformed(f"at most {max_rows} reports in one push")
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = list(first.get("loc", ()))
        row = f"row {int(where[0]) + 1}: " if where and isinstance(where[0], int) else ""
        field = ".".join(str(part) for part in where[1:]) or "row"
        raise Malformed(f"{row}{field}: {first.get('msg', 'invalid')}") from None


async def _receive(
    request: Request,
    db: AsyncSession,
    token: str,
    provider: str,
    adapter: TypeAdapter[list[R]],
    convert: Callable[[R], DeliveryReport],
) -> str | None:
    """Admit, read, validate and record one push; the problem with it, or None when recorded."""
    settings = await _admit(request, token, provider)
    body = await _body(request, settings.max_bytes)
    try:
        rows = _rows(body, adapter, settings.max_rows)
    except Malformed as exc:
        count_reports(provider, Counter(malformed=1))
        return str(exc)
    outcomes = await record_reports(db, provider, [convert(row) for row in rows])
    count_reports(provider, outcomes)
    return None


def _from_aliyun(row: AliyunReport) -> DeliveryReport:
    return DeliveryReport(row.biz_id, row.success, row.err_code, row.err_msg, row.report_time)


def _from_tencent(row: TencentReport) -> DeliveryReport:
    delivered = row.report_status == "SUCCESS"
    return DeliveryReport(row.sid, delivered, row.errmsg, row.description, row.user_receive_time)


def _pushed(model: type[Report]) -> dict[str, Any]:
    """The documented request body: a JSON array of the provider's report rows."""
    schema = {"type": "array", "items": model.model_json_schema()}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@reports.post(
    "/aliyun/{token}",
    response_model=AliyunAnswer,
    responses={400: {"model": AliyunAnswer, "description": "Malformed push"}, **problems(404, 413, 429)},
    openapi_extra=_pushed(AliyunReport),
)
async def aliyun_reports(token: str, request: Request, db: Db) -> Any:
    """Aliyun SMS `SmsReport` (HTTP batch push): delivery reports matched by BizId."""
    problem = await _receive(request, db, token, "aliyun", ALIYUN_ROWS, _from_aliyun)
    if problem is not None:
        return JSONResponse({"code": 400, "msg": problem}, status_code=400)
    return {"code": 0, "msg": "成功"}


@reports.post(
    "/tencent/{token}",
    response_model=TencentAnswer,
    responses={400: {"model": TencentAnswer, "description": "Malformed push"}, **problems(404, 413, 429)},
    openapi_extra=_pushed(TencentReport),
)
async def tencent_reports(token: str, request: Request, db: Db) -> Any:
    """Tencent Cloud SMS status callback (短信下发状态通知): reports matched by SerialNo (`sid`)."""
    problem = await _receive(request, db, token, "tencent", TENCENT_ROWS, _from_tencent)
    if problem is not None:
        return JSONResponse({"result": 400, "errmsg": problem}, status_code=400)
    return {"result": 0, "errmsg": "OK"}
