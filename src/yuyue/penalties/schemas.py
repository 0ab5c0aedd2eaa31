"""Pydantic models of the penalties part of the HTTP contract (strict bodies)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from yuyue.booking.schemas import BookingOut
from yuyue.identity.schemas import CitizenOut
from yuyue.kit.answers import Answer

IdType = Literal["resident_id", "passport", "hk_macao_permit", "taiwan_permit", "foreigner_permanent_id"]
Reason = Annotated[StrictStr, Field(min_length=1, max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupIn(Strict):
    id_type: IdType = "resident_id"
    id_number: Annotated[StrictStr, Field(min_length=1, max_length=32)]


class BanIn(Strict):
    until: Annotated[StrictStr, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    reason: Reason

    @field_validator("until")
    @classmethod
    def _real_date(cls, value: str) -> str:
        date.fromisoformat(value)
        return value


class LiftIn(Strict):
    reason: Reason


class BanOut(Answer):
    id: int
    until: str
    reason: str
    unit_id: str
    source: str
    created_at: str
    lifted_at: str | None


class LookupOut(Answer):
    id: str
    citizen: CitizenOut
    bookings: list[BookingOut]
    no_shows: int
    bans: list[BanOut]
