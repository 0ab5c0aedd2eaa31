"""The test clock (non-production): read it, or move it and run the jobs that came due."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from yuyue.clock import as_local, clock
from yuyue.config import Settings
from yuyue.errors import NotFound, ValidationFailed
from yuyue.jobs.service import run_due
from yuyue.kit.http import problems

router = APIRouter(prefix="/api/v1/test", tags=["test"])


class ClockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    now: Annotated[StrictStr, Field(min_length=10, max_length=40)]

    def moment(self) -> datetime:
        """ISO 8601; without an offset it is platform time. Years 2000–2100 only."""
        try:
            value = as_local(datetime.fromisoformat(self.now))
        except (ValueError, OverflowError):
            raise ValidationFailed("now: an ISO 8601 date-time is expected") from None
        if not 2000 <= value.year <= 2100:
            raise ValidationFailed("now: the test clock takes years 2000 to 2100")
        return value


class ClockOut(BaseModel):
    now: str


def non_production(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if settings.production:
        raise NotFound("not found")
    return settings


NonProd = Annotated[Settings, Depends(non_production)]


@router.get("/clock", response_model=ClockOut, responses=problems(404))
async def get_clock(_: NonProd, request: Request) -> ClockOut:
    await clock.refresh(request.app.state.engine, force=True)
    return ClockOut(now=clock.now().isoformat())


@router.put("/clock", response_model=ClockOut, responses=problems(404, 422))
async def put_clock(body: ClockIn, _: NonProd, request: Request) -> ClockOut:
    """Set the platform's now for every process; moving forward first runs the jobs that came due."""
    await clock.refresh(request.app.state.engine, force=True)
    before = clock.now()
    target = body.moment()
    await clock.store(request.app.state.engine, target)
    if target > before:
        await run_due(request.app.state.sessionmaker, before, target)
    return ClockOut(now=clock.now().isoformat())
