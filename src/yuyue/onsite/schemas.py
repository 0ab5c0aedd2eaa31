"""Pydantic models of the on-site part of the HTTP contract (strict bodies)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from yuyue.booking.schemas import Quantity, TicketOut
from yuyue.kit.answers import Answer

IdType = Literal["resident_id", "passport", "hk_macao_permit", "taiwan_permit", "foreigner_permanent_id"]
IdNumber = Annotated[StrictStr, Field(min_length=1, max_length=32)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckinIn(Strict):
    id_type: IdType = "resident_id"
    id_number: IdNumber


class TicketIn(Strict):
    service_id: Annotated[StrictInt, Field(ge=1, le=999_999_999)]
    id_type: IdType = "resident_id"
    id_number: IdNumber
    green: Literal["elderly", "disabled", "military"] | None = None


class RecallIn(Strict):
    counter_id: Annotated[StrictInt, Field(ge=1)] | None = None


class FinishIn(Strict):
    service_id: Annotated[StrictInt, Field(ge=1, le=999_999_999)] | None = None


class CounterPatch(Strict):
    name: Name | None = None
    service_ids: (
        Annotated[list[Annotated[StrictInt, Field(ge=1, le=999_999_999)]], Field(max_length=200)] | None
    ) = None
    open: StrictBool | None = None


class StaffIn(Strict):
    username: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    password: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    name: Name
    counter_id: Annotated[StrictInt, Field(ge=1)] | None = None


class StaffPasswordIn(Strict):
    password: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class StaffRetireIn(Strict):
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)] | None = None


class StaffOut(Answer):
    id: int
    username: str
    name: str
    hall_id: str
    counter_id: int | None
    active: bool
    created_at: str
    retired_at: str | None


class DeskBookingIn(Strict):
    """Rule G10: a clerk books one of today's slots on site for the citizen at the desk."""

    slot_id: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    name: Annotated[StrictStr, Field(min_length=1, max_length=50)]
    id_type: IdType = "resident_id"
    id_number: IdNumber
    phone: Annotated[StrictStr, Field(min_length=1, max_length=20)]
    business_types: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=200)]], Field(max_length=20)
    ] = []
    quantity: Quantity = 1


class MoveDocumentIn(Strict):
    """Issue 19: a foreigner's passport or permit moves to the holder's new phone, at the hall."""

    id_type: Literal["passport", "hk_macao_permit", "taiwan_permit", "foreigner_permanent_id"]
    id_number: IdNumber
    phone: Annotated[StrictStr, Field(min_length=1, max_length=20)]


class MovedCitizenOut(Answer):
    id_type: str
    id_number: str
    name: str
    phone: str


class MovedDocumentOut(Answer):
    citizen: MovedCitizenOut  # masked
    sessions_ended: int


class LoginIn(Strict):
    username: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    password: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class KioskIn(Strict):
    name: Name


class KioskOut(Answer):
    id: int
    hall_id: str
    name: str
    token: str


class StaffLoginOut(Answer):
    token: str
    staff: StaffOut


class TicketsOut(Answer):
    tickets: list[TicketOut]


class OneTicketOut(Answer):
    ticket: TicketOut


class CounterOut(Answer):
    id: int
    name: str
    service_ids: list[int] | None
    open: bool
    serving: str | None


class QueueWaiting(Answer):
    number: str
    call_number: str
    kind: str
    service_id: int
    estimated_wait_s: int | None


class QueueServing(Answer):
    number: str
    call_number: str
    counter_id: int | None
    counter: str | None


class QueueOut(Answer):
    hall_id: str
    waiting: list[QueueWaiting]
    serving: list[QueueServing]
