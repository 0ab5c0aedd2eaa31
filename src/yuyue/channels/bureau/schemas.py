"""Models of the bureau-system contract (strict: unknown fields are refused). No personal data in
either direction: no names, ID numbers or phone numbers."""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr

MAX_BATCH = 200  # rows per PUT; a request body is also bounded by YUYUE_MAX_BODY_BYTES (64 KiB)
ExternalId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Seats = Annotated[StrictInt, Field(ge=0, le=100_000)]
BureauStatus = Literal["booked", "cancelled", "checked_in", "served", "no_show"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlotRow(Strict):
    """A slot of the bureau's system, at a hall and service of the platform's catalogue."""

    external_id: ExternalId
    hall_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    service_id: Annotated[StrictInt, Field(ge=1, le=2**31 - 1)]
    day: date
    start: time  # "09:00", platform time
    end: time
    capacity: Seats
    booked: Seats  # seats sold by the bureau's system


class SlotsIn(Strict):
    slots: Annotated[list[SlotRow], Field(min_length=1, max_length=MAX_BATCH)]


class BookingRow(Strict):
    """A booking of the bureau's system: its slot (pushed before), its state, no personal data."""

    external_id: ExternalId
    slot_external_id: ExternalId
    status: BureauStatus
    channel: Annotated[StrictStr, Field(min_length=1, max_length=40)]  # the channel in its system
    created_at: AwareDatetime
    updated_at: AwareDatetime


class BookingsIn(Strict):
    bookings: Annotated[list[BookingRow], Field(min_length=1, max_length=MAX_BATCH)]


class PushOut(BaseModel):
    """What a push did: `unchanged` rows were already so; `stale` rows were older (by `updated_at`)
    than what the platform holds, and were left alone."""

    received: int
    created: int
    updated: int
    unchanged: int
    stale: int


class PlatformSlotOut(BaseModel):
    id: str
    service_id: int
    hall_id: str
    day: str
    start: str
    end: str
    capacity: int
    booked: int


class PlatformSlotsOut(BaseModel):
    items: list[PlatformSlotOut]
    next: str | None


class SlotTimesOut(BaseModel):
    start: str
    end: str


class PlatformBookingOut(BaseModel):
    number: str
    service_id: int
    hall_id: str
    slot_id: str
    slot: SlotTimesOut
    quantity: int
    status: str
    channel: str
    created_at: str
    updated_at: str


class PlatformBookingsOut(BaseModel):
    items: list[PlatformBookingOut]
    next: str | None
