"""Pydantic models of the booking part of the HTTP contract (strict: unknown fields are errors)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from yuyue.kit.answers import Answer

Channel = Literal["web", "wechat", "app", "provincial_portal", "onsite", "api"]
Short = Annotated[StrictStr, Field(min_length=1, max_length=200)]
MAX_QUANTITY = 99  # the largest batch any door accepts (rule G16; the service's max_batch decides below it)
Quantity = Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompanyIn(Strict):
    uscc: Annotated[StrictStr, Field(min_length=18, max_length=18)]
    name: Short


class BookIn(Strict):
    slot_id: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    channel: Channel = "web"
    quantity: Quantity = 1
    business_types: Annotated[list[Short], Field(max_length=20)] = []
    company: CompanyIn | None = None


class CancelIn(Strict):
    """A cancel takes no fields; a body, if sent, must be an empty JSON object."""


class RescheduleIn(Strict):
    slot_id: Annotated[StrictStr, Field(min_length=1, max_length=40)]


class RebookIn(Strict):
    slot_id: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)]


class SlotOut(Answer):
    id: str
    start: str
    end: str
    capacity: int
    remaining: int
    status: Literal["open", "full", "not_yet_open", "closed_for_booking", "past"]


class DayOut(Answer):
    date: str
    working_day: bool
    opens_at: str | None = None
    slots: list[SlotOut]


class AvailabilityOut(Answer):
    service_id: int
    days: list[DayOut]


class Masked(Answer):
    name: str
    id_number: str
    phone: str


class Window(Answer):
    from_: str = Field(alias="from")
    to: str


class SlotTimes(Answer):
    start: str
    end: str


class CompanyOut(Answer):
    uscc: str
    name: str | None


class ItemOut(Answer):
    service_id: int
    finished: bool


class TicketOut(Answer):
    """A ticket (docs/api.md "On site"), in a booking and on site alike."""

    number: str
    call_number: str
    kind: Literal["appointment", "walk_in", "green"]
    green: str | None
    service_id: int
    appointment_number: str | None
    status: Literal["waiting", "called", "skipped", "finished"]
    counter_id: int | None
    issued_at: str
    called_at: str | None
    finished_at: str | None
    estimated_wait_s: int | None
    items: list[ItemOut] | None


class BookingOut(Answer):
    number: str
    status: Literal["booked", "checked_in", "served", "cancelled", "no_show", "excused"]
    service_id: int
    service_name: str
    department: str
    hall_id: str
    hall_name: str
    slot_id: str
    slot: SlotTimes
    quantity: int
    channel: Channel
    business_types: list[str]
    bundle_of: list[int] | None
    applicant: Masked
    company: CompanyOut | None
    created_at: str
    cancel_deadline: str
    checkin_window: Window
    rebook_of: str | None
    ticket: TicketOut | None
    cancelled_by: Literal["citizen", "hall", "staff"] | None = None
