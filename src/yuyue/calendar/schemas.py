"""Pydantic models of the calendar part of the HTTP contract (strict: unknown fields are errors)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from yuyue.calendar import files
from yuyue.kit.answers import Answer


class CalendarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    working_day: StrictBool
    note: Annotated[StrictStr, Field(max_length=200)] = ""


class ClosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[StrictStr, Field(max_length=200)] = ""


class DayOverrideOut(Answer):
    date: str
    working_day: bool
    note: str
    cancelled: int


class ClosureOut(Answer):
    unit_id: str
    date: str
    note: str
    cancelled: int


class CalendarImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: Annotated[StrictStr, Field(min_length=1, max_length=files.MAX_BYTES)]
    name: Annotated[StrictStr, Field(max_length=200)] = ""
    apply: StrictBool = False


class CalendarImportDay(Answer):
    date: str
    working_day: bool
    note: str
    working_before: bool
    changes: bool
    bookings: int


class CalendarImportOut(Answer):
    """A calendar file's preview, or its import (`applied`): what changes and what it cancels."""

    year: int
    format: str
    applied: bool
    changed: int
    bookings: int
    citizens: int
    days: list[CalendarImportDay]
