"""Pydantic models of the administration contract (strict: unknown fields are errors)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from yuyue.catalogue.schemas import Period
from yuyue.kit.answers import Answer

Text = Annotated[StrictStr, Field(min_length=1, max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    username: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    password: Annotated[StrictStr, Field(min_length=1, max_length=200)]


EMAIL = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"


class AdminIn(Strict):
    username: Annotated[StrictStr, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    password: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    name: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    title: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    phone: Annotated[StrictStr, Field(min_length=11, max_length=11, pattern=r"^1[3-9][0-9]{9}$")]
    unit_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    level: Annotated[StrictInt, Field(ge=1, le=3)]
    email: Annotated[StrictStr | None, Field(max_length=254, pattern=EMAIL)] = None


class AdminOut(Answer):
    id: int
    username: str
    name: str
    title: str
    phone: str
    email: str | None = None
    unit_id: str
    level: int
    active: bool
    created_at: str
    retired_at: str | None


class AdminLoginOut(Answer):
    token: str
    admin: AdminOut


class UnlockOut(Answer):
    kind: Literal["admin", "staff"]
    id: int
    username: str
    unlocked: int


class RetireIn(Strict):
    reason: Text | None = None


class CapacityRequestIn(Strict):
    service_id: Annotated[StrictInt, Field(ge=1, le=2_000_000_000)]
    date_from: date
    date_to: date | None  # required; null: the standing daily capacity from date_from on (rule G20)
    daily_capacity: Annotated[StrictInt, Field(ge=0, le=100_000)]
    reason: Text
    # rule G12's remedies (decision 0093): the service's opening hours on these dates (extended
    # hours, covering the hall's), and whether the range's non-working dates open too ("5+X")
    hours: Annotated[list[Period], Field(min_length=1, max_length=8)] | None = None
    open_days: StrictBool = False


class DecisionIn(Strict):
    note: Text | None = None


class CapacityRequestOut(Answer):
    id: int
    service_id: int
    hall_id: str
    date_from: str
    date_to: str | None
    daily_capacity: int
    reason: str
    status: str
    requested_by: int
    requested_at: str
    approval_due: str
    decided_by: int | None
    decided_at: str | None
    note: str | None
    hours: list[dict[str, str]] | None = None
    open_days: bool = False


class AlertFigure(Answer):
    name: str
    value: float
    threshold: float


class AlertSuggestion(Answer):
    """A capacity request to pre-fill (rule G20)."""

    daily_capacity: int
    date_from: str


class AlertOut(Answer):
    id: int
    kind: str
    unit_id: str
    service_id: int | None
    raised_at: str
    detail: str
    resolved_at: str | None
    note: str | None
    figure: AlertFigure | None = None  # abnormal-figure alerts (rule G19)
    suggestion: AlertSuggestion | None = None
    chart: str | None = None  # the console's chart of the hall, on the service (G12, G19 kinds)


class ResolveIn(Strict):
    note: Text


class AuditOut(Answer):
    id: int
    at: str
    admin: str | None
    staff: str | None = None  # the clerk's username when a hall clerk acted (e.g. citizen.reveal)
    unit_id: str
    action: str
    target: str
    before: dict[str, object] | None
    after: dict[str, object] | None
