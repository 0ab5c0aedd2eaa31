"""Pydantic models of the notification part of the HTTP contract (strict bodies)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

Phone = Annotated[StrictStr, Field(min_length=1, max_length=20)]
MessageStatus = Literal["pending", "sending", "sent", "dead", "skipped"]


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
    receipts: list[AttemptOut] | None = None
