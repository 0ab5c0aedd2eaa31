"""Pydantic models of the waiting-list contract (strict: unknown fields are errors)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from yuyue.kit.answers import Answer


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_id: Annotated[StrictInt, Field(ge=1, le=2_000_000_000)]
    dates: Annotated[list[date], Field(min_length=1, max_length=31)] | None = None
    channel: Literal["web", "wechat", "app", "provincial_portal", "api"] = "web"


class EntryOut(Answer):
    id: int
    service_id: int
    dates: list[str] | None
    channel: str
    position: int | None
    status: Literal["waiting", "allocated", "left", "expired"]
    number: str | None
    created_at: str


class MaskedCitizen(Answer):
    name: str
    id_number: str
    phone: str


class AdminEntryOut(Answer):
    id: int
    service_id: int
    position: int | None
    citizen: MaskedCitizen
    dates: list[str] | None
    channel: str
    status: Literal["waiting", "allocated", "left", "expired"]
    number: str | None
    created_at: str
