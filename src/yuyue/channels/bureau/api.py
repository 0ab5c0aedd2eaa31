"""Routes of bureaus' own booking systems (rules G5, G6; decision 0080), signed like every partner
request (`X-Yuyue-Key`, `-Timestamp`, `-Nonce`, `-Signature`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from yuyue.channels.api import PartnerDep
from yuyue.channels.bureau import service
from yuyue.channels.bureau.schemas import (
    BookingsIn,
    PlatformBookingsOut,
    PlatformSlotsOut,
    PushOut,
    SlotsIn,
)
from yuyue.db import Db
from yuyue.kit.http import problems

router = APIRouter(prefix="/api/v1/channel/bureau", tags=["bureau systems"])
UnitQuery = Annotated[str | None, Query(max_length=64, description="a unit inside the system's own")]
After = Annotated[str | None, Query(max_length=40, description="the `next` cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=service.MAX_PAGE)]


async def pusher(who: PartnerDep, db: Db) -> service.Bureau:
    return await service.bureau_of(db, who, write=True)


async def reader(who: PartnerDep, db: Db) -> service.Bureau:
    return await service.bureau_of(db, who, write=False)


Pusher = Annotated[service.Bureau, Depends(pusher)]
Reader = Annotated[service.Bureau, Depends(reader)]


@router.put("/slots", response_model=PushOut, responses=problems(401, 403, 413, 422, 429))
async def push_slots(body: SlotsIn, bureau: Pusher, db: Db) -> dict[str, Any]:
    """Create or update the system's slots by its own `external_id` (idempotent). The halls and
    services must be in the platform's catalogue and the halls inside the system's unit. The whole
    batch is refused on a bad row (`index`, `external_id`, and a code: `unknown_hall`,
    `unknown_service`, `duplicate_row`, `invalid_row`, or `403 forbidden` outside the unit)."""
    answer = await service.push_slots(db, bureau, body.slots)
    return answer


@router.put("/bookings", response_model=PushOut, responses=problems(401, 403, 413, 422, 429))
async def push_bookings(body: BookingsIn, bureau: Pusher, db: Db) -> dict[str, Any]:
    """Create or update the system's bookings by its own `external_id` (idempotent; a row older by
    `updated_at` than the one held is ignored). No personal data. A booking of a slot this system has
    not pushed is `422 unknown_slot`; the whole batch is refused on a bad row."""
    answer = await service.push_bookings(db, bureau, body.bookings)
    return answer


@router.get("/platform/slots", response_model=PlatformSlotsOut, responses=problems(401, 403, 422, 429))
async def platform_slots(
    bureau: Reader,
    db: Db,
    from_: Annotated[date, Query(alias="from")],
    to: Annotated[date, Query()],
    unit_id: UnitQuery = None,
    after: After = None,
    limit: Limit = 500,
) -> dict[str, Any]:
    """The platform's own slots in the system's unit (or `unit_id` inside it) over slot dates
    `from`–`to` (at most 92 days), by service and start; follow `next` for more."""
    return await service.platform_slots(db, bureau, unit_id, from_, to, after, limit)


@router.get("/platform/bookings", response_model=PlatformBookingsOut, responses=problems(401, 403, 422, 429))
async def platform_bookings(
    bureau: Reader,
    db: Db,
    from_: Annotated[date, Query(alias="from")],
    to: Annotated[date, Query()],
    unit_id: UnitQuery = None,
    after: After = None,
    limit: Limit = 500,
) -> dict[str, Any]:
    """The platform's own bookings in the system's unit (or `unit_id` inside it) with slot dates
    `from`–`to` (at most 92 days), without personal data; follow `next` for more."""
    return await service.platform_bookings(db, bureau, unit_id, from_, to, after, limit)
