"""Pydantic models of the notification part of the HTTP contract (strict bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr, WithJsonSchema

from yuyue.clock import TZ

Phone = Annotated[StrictStr, Field(min_length=1, max_length=20)]
MessageStatus = Literal["pending", "sending", "sent", "dead", "skipped"]
DeliveryStatus = Literal["delivered", "undelivered"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeIn(Strict):
    phone: Phone


class CodeOut(BaseModel):
    phone: str
    expires_at: str
    length: int


class VerifyIn(Strict):
    phone: Phone
    code: Annotated[StrictStr, Field(min_length=1, max_length=12)]


class VerifyOut(BaseModel):
    verified: bool
    phone_token: str
    expires_in: int


class TestMessageOut(BaseModel):
    phone: str
    kind: str
    text: str
    sent_at: str


class AttemptOut(BaseModel):
    attempt: int
    at: str
    provider: str
    outcome: str
    code: str | None
    provider_ref: str | None
    detail: str | None


class DeliveryOut(BaseModel):
    """The handset delivery report of a message (decision 0082)."""

    status: DeliveryStatus
    code: str | None
    detail: str | None
    reported_at: str | None  # the provider's time of the report
    received_at: str  # when the report reached the platform


class MessageOut(BaseModel):
    id: int
    kind: str
    status: str
    phone: str
    booking_number: str | None
    attempts: int
    last_error: str | None
    provider: str | None
    provider_ref: str | None
    created_at: str
    next_attempt_at: str
    sent_at: str | None
    delivery: DeliveryOut | None = None
    receipts: list[AttemptOut] | None = None


# --- delivery reports pushed by the providers (decision 0082) ----------------------------------


def _provider_time(value: Any) -> datetime | None:
    """Both providers write Beijing wall time, `2026-12-01 10:00:05`; an empty string: no time."""
    if not isinstance(value, str) or len(value) > 19:
        raise ValueError("expected a time as YYYY-MM-DD HH:MM:SS")
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ)
    except ValueError:
        raise ValueError("expected a time as YYYY-MM-DD HH:MM:SS") from None


ProviderTime = Annotated[
    datetime | None,
    BeforeValidator(_provider_time),
    WithJsonSchema({"type": "string", "examples": ["2026-12-01 10:00:05"]}),
]
ProviderRef = Annotated[StrictStr, Field(min_length=1, max_length=100)]
ProviderCode = Annotated[StrictStr, Field(max_length=100)]
ProviderText = Annotated[StrictStr, Field(max_length=1000)]


class Report(BaseModel):
    """A pushed row: only the fields the platform reads are declared; the others (the phone number
    among them) are ignored and never stored. Providers add fields over time: extras are allowed."""

    model_config = ConfigDict(extra="ignore")


class AliyunReport(Report):
    """Aliyun SMS `SmsReport`, HTTP batch push: one element of the JSON array."""

    biz_id: ProviderRef  # SendSms's BizId
    success: StrictBool
    report_time: ProviderTime
    err_code: ProviderCode = ""  # DELIVERED, or the carrier's error code
    err_msg: ProviderText = ""


class TencentReport(Report):
    """Tencent Cloud SMS status callback (短信下发状态通知): one element of the JSON array."""

    sid: ProviderRef  # SendSms's SerialNo
    report_status: Literal["SUCCESS", "FAIL"]
    user_receive_time: ProviderTime
    errmsg: ProviderCode = ""  # DELIVRD, or the carrier's error code
    description: ProviderText = ""


class AliyunAnswer(BaseModel):
    """What Aliyun expects back: `code` 0 (it only checks that `code` is a number and HTTP 200)."""

    code: int
    msg: str


class TencentAnswer(BaseModel):
    """What Tencent expects back: `result` 0 on success."""

    result: int
    errmsg: str
