"""Bureaus' own booking systems (rules G5, G6, G18; decision 0080).

A city bureau or a district that runs its own booking system connects as an API client of channel
`bureau`, bound to its unit, signing its requests as every partner does (`channels/service.py`).
Each request is authorised against the unit's subtree by the admins' own table (`auth.service.may`,
as a level-2 admin of that unit: rule G5, "L2 configures and runs"): a hall outside it is `forbidden`.

Push: slots and bookings keyed by the system's own external ids, in batches of at most `MAX_BATCH`
rows. The batch is checked whole before anything is written; the first bad row fails it with its
`index` (and `external_id`) and a stable code. A row equal to what is stored changes nothing; a
booking older (by `updated_at`) than the stored one is left alone (`stale`), so retries and
out-of-order deliveries are harmless. Pushes of one system run one at a time (a row lock on its
client), and each recomputes the `bureau_figures` of the (day, service) pairs it touched, which the
figures read (`stats.service`).

Pull: the platform's own slots (derived from opening hours, rule G11) and bookings of the subtree over
a date range, keyset-paginated, without personal data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.auth.service import Acting, may
from yuyue.calendar.service import hall_calendar
from yuyue.catalogue.service import HALL_KINDS, day_slots, parse_slot_id, service_info
from yuyue.channels.bureau.schemas import MAX_BATCH, BookingRow, SlotRow
from yuyue.channels.service import Partner, require_scope
from yuyue.clock import TZ, clock
from yuyue.errors import Forbidden, Unprocessable, ValidationFailed
from yuyue.models import ApiClient, Booking, Service, Slot, Unit
from yuyue.models.bureau import BureauBooking, BureauFigures, BureauSlot

Held = TypeVar("Held", BureauSlot, BureauBooking)

CHANNEL_PREFIX = "bureau:"  # the figures' channel of a bureau system: `bureau:<client id>`
MAX_PULL_DAYS = 92
MAX_PAGE = 1000
PUSH_WINDOW_DAYS = 366  # a pushed slot's day lies within a year of today
FUTURE_SKEW = timedelta(hours=1)  # a pushed booking's times may run this far ahead of the platform's
FIGURES = ("released", "seats", "booked", "cancelled", "checked_in", "served", "no_show")

DayService = tuple[date, int]


@dataclass(frozen=True)
class Bureau:
    """A bureau system's request: its client, its unit, and the unit seen as an admin would be."""

    client_id: str
    unit_id: str
    unit_path: str
    acting: Acting


async def bureau_of(session: AsyncSession, partner: Partner, *, write: bool) -> Bureau:
    """The calling bureau system: `bureau:sync` to push, `bureau:read` or `bureau:sync` to pull."""
    if write:
        require_scope(partner, "bureau:sync")
    else:
        require_scope(partner, "bureau:read", "bureau:sync")
    unit = await session.get(Unit, partner.unit_id) if partner.unit_id else None
    if unit is None:
        raise Forbidden("this client is not bound to a unit")
    acting = Acting(
        id=0,
        username=f"api-client:{partner.client_id}",
        unit_id=unit.id,
        unit_path=unit.path,
        unit_kind=unit.kind,
        level=2,  # rule G5: level 2 configures and runs; inside its own subtree only
    )
    return Bureau(partner.client_id, unit.id, unit.path, acting)


def _bad(index: int, external_id: str, detail: str, code: str = "invalid_row") -> Unprocessable:
    return Unprocessable(f"row {index}: {detail}", code=code, index=index, external_id=external_id)


async def _lock(session: AsyncSession, bureau: Bureau) -> None:
    """Pushes of one system run one at a time (on SQLite every write transaction already does)."""
    await session.execute(select(ApiClient.id).where(ApiClient.id == bureau.client_id).with_for_update())


# --- push: slots -------------------------------------------------------------------------------------


async def push_slots(session: AsyncSession, bureau: Bureau, rows: list[SlotRow]) -> dict[str, int]:
    """Create or update the system's slots (by external id); all or nothing."""
    if len(rows) > MAX_BATCH:
        raise ValidationFailed(f"at most {MAX_BATCH} rows a batch")
    await _lock(session, bureau)
    halls = {
        u.id: u
        for u in (await session.execute(select(Unit).where(Unit.id.in_({r.hall_id for r in rows})))).scalars()
    }
    service_hall = {
        int(sid): str(hall_id)
        for sid, hall_id in (
            await session.execute(
                select(Service.id, Service.hall_id).where(Service.id.in_({r.service_id for r in rows}))
            )
        ).all()
    }
    today = clock.today()
    seen: set[str] = set()
    wanted: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        ext = row.external_id
        if ext in seen:
            raise _bad(index, ext, "external_id repeated in the batch", "duplicate_row")
        seen.add(ext)
        hall = halls.get(row.hall_id)
        if hall is None or hall.kind not in HALL_KINDS:
            raise _bad(index, ext, f"no hall {row.hall_id!r} in the catalogue", "unknown_hall")
        if not may(bureau.acting, "configure", hall.path):
            raise Forbidden(
                f"row {index}: hall {row.hall_id!r} is outside unit {bureau.unit_id!r}",
                index=index,
                external_id=ext,
            )
        if service_hall.get(row.service_id) != row.hall_id:
            raise _bad(index, ext, f"no service {row.service_id} at hall {row.hall_id!r}", "unknown_service")
        if abs((row.day - today).days) > PUSH_WINDOW_DAYS:
            raise _bad(index, ext, f"day must lie within {PUSH_WINDOW_DAYS} days of today")
        for moment in (row.start, row.end):
            if moment.tzinfo is not None or moment.second or moment.microsecond:
                raise _bad(index, ext, "start and end are platform times of day to the minute (HH:MM)")
        if row.end <= row.start:
            raise _bad(index, ext, "end must be after start")
        if row.booked > row.capacity:
            raise _bad(index, ext, "booked exceeds capacity")
        wanted.append(
            {
                "hall_id": row.hall_id,
                "service_id": row.service_id,
                "day": row.day,
                "start": datetime.combine(row.day, row.start, tzinfo=TZ),
                "end": datetime.combine(row.day, row.end, tzinfo=TZ),
                "capacity": row.capacity,
                "booked": row.booked,
            }
        )
    existing = await _held(session, BureauSlot, bureau, seen)
    now = clock.now()
    counts = dict.fromkeys(("created", "updated", "unchanged", "stale"), 0)
    touched: set[DayService] = set()
    for row, values in zip(rows, wanted, strict=True):
        old = existing.get(row.external_id)
        if old is None:
            session.add(
                BureauSlot(client_id=bureau.client_id, external_id=row.external_id, received_at=now, **values)
            )
            counts["created"] += 1
        elif any(getattr(old, name) != value for name, value in values.items()):
            touched.add((old.day, old.service_id))
            for name, value in values.items():
                setattr(old, name, value)
            old.received_at = now
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
            continue
        touched.add((values["day"], values["service_id"]))
    await session.flush()
    await refresh_figures(session, bureau.client_id, touched)
    return {"received": len(rows), **counts}


async def _held(
    session: AsyncSession, model: type[Held], bureau: Bureau, ids: Iterable[str]
) -> dict[str, Held]:
    """The rows this system pushed earlier (slots or bookings), by its own external ids."""
    query = select(model).where(model.client_id == bureau.client_id, model.external_id.in_(set(ids)))
    return {row.external_id: row for row in (await session.execute(query)).scalars()}


# --- push: bookings ----------------------------------------------------------------------------------


async def push_bookings(session: AsyncSession, bureau: Bureau, rows: list[BookingRow]) -> dict[str, int]:
    """Create or update the system's bookings (by external id); all or nothing. A booking's slot must
    be one this system pushed (`unknown_slot`)."""
    if len(rows) > MAX_BATCH:
        raise ValidationFailed(f"at most {MAX_BATCH} rows a batch")
    await _lock(session, bureau)
    ids = {r.external_id for r in rows}
    existing = await _held(session, BureauBooking, bureau, ids)
    slot_ids = {r.slot_external_id for r in rows} | {b.slot_external_id for b in existing.values()}
    slots = {
        external_id: (s.day, s.service_id)
        for external_id, s in (await _held(session, BureauSlot, bureau, slot_ids)).items()
    }
    latest = clock.now() + FUTURE_SKEW
    seen: set[str] = set()
    for index, row in enumerate(rows):
        ext = row.external_id
        if ext in seen:
            raise _bad(index, ext, "external_id repeated in the batch", "duplicate_row")
        seen.add(ext)
        if row.slot_external_id not in slots:
            raise _bad(index, ext, f"no slot {row.slot_external_id!r} pushed by this system", "unknown_slot")
        if row.updated_at < row.created_at:
            raise _bad(index, ext, "updated_at is before created_at")
        if row.updated_at > latest:
            raise _bad(index, ext, "updated_at lies in the future")
    now = clock.now()
    counts = dict.fromkeys(("created", "updated", "unchanged", "stale"), 0)
    touched: set[DayService] = set()
    for row in rows:
        values = {
            "slot_external_id": row.slot_external_id,
            "status": row.status,
            "channel": row.channel,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
        old = existing.get(row.external_id)
        if old is None:
            session.add(
                BureauBooking(
                    client_id=bureau.client_id, external_id=row.external_id, received_at=now, **values
                )
            )
            counts["created"] += 1
        elif old.updated_at > row.updated_at:
            counts["stale"] += 1  # an older state than the one held: delivered late, ignored
            continue
        elif any(getattr(old, name) != value for name, value in values.items()):
            touched.add(slots[old.slot_external_id])
            for name, value in values.items():
                setattr(old, name, value)
            old.received_at = now
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
            continue
        touched.add(slots[row.slot_external_id])
    await session.flush()
    await refresh_figures(session, bureau.client_id, touched)
    return {"received": len(rows), **counts}


# --- figures (rule G18) --------------------------------------------------------------------------------


async def refresh_figures(session: AsyncSession, client_id: str, touched: Iterable[DayService]) -> None:
    """Recompute the system's `bureau_figures` rows of these slot dates and services from its slots
    and bookings (the definitions of `stats.service`: `booked` counts bookings whatever became of
    them; `checked_in` those checked in or served; `seats` the seats its slots report sold)."""
    pairs = set(touched)
    if not pairs:
        return
    days = sorted({day for day, _ in pairs})
    services = sorted({sid for _, sid in pairs})
    await session.execute(
        delete(BureauFigures).where(
            BureauFigures.client_id == client_id,
            BureauFigures.day.in_(days),
            BureauFigures.service_id.in_(services),
        )
    )
    in_keys = [
        BureauSlot.client_id == client_id,
        BureauSlot.day.in_(days),
        BureauSlot.service_id.in_(services),
    ]
    out: dict[DayService, dict[str, Any]] = {}
    supply = await session.execute(
        select(
            BureauSlot.day,
            BureauSlot.service_id,
            func.max(BureauSlot.hall_id),
            func.sum(BureauSlot.capacity),
            func.sum(BureauSlot.booked),
        )
        .where(*in_keys)
        .group_by(BureauSlot.day, BureauSlot.service_id)
    )
    for day, sid, hall_id, released, seats in supply.all():
        out[(day, int(sid))] = {
            "client_id": client_id,
            "day": day,
            "service_id": int(sid),
            "hall_id": str(hall_id),
            **dict.fromkeys(FIGURES, 0),
            "released": int(released or 0),
            "seats": int(seats or 0),
        }
    status = BureauBooking.status
    demand = await session.execute(
        select(
            BureauSlot.day,
            BureauSlot.service_id,
            func.count(),
            func.sum(case((status == "cancelled", 1), else_=0)),
            func.sum(case((status.in_(("checked_in", "served")), 1), else_=0)),
            func.sum(case((status == "served", 1), else_=0)),
            func.sum(case((status == "no_show", 1), else_=0)),
        )
        .select_from(BureauBooking)
        .join(
            BureauSlot,
            and_(
                BureauSlot.client_id == BureauBooking.client_id,
                BureauSlot.external_id == BureauBooking.slot_external_id,
            ),
        )
        .where(BureauBooking.client_id == client_id, *in_keys)
        .group_by(BureauSlot.day, BureauSlot.service_id)
    )
    for day, sid, booked, cancelled, checked_in, served, no_show in demand.all():
        row = out.get((day, int(sid)))
        if row is not None:  # a booking always has its slot
            row.update(
                booked=int(booked),
                cancelled=int(cancelled or 0),
                checked_in=int(checked_in or 0),
                served=int(served or 0),
                no_show=int(no_show or 0),
            )
    if out:
        await session.execute(insert(BureauFigures), list(out.values()))


# --- pull: the platform's own slots and bookings ---------------------------------------------------------


async def _root(session: AsyncSession, bureau: Bureau, unit_id: str | None) -> str:
    """The subtree to read: the system's unit, or a unit inside it (`forbidden` outside)."""
    if unit_id is None or unit_id == bureau.unit_id:
        return bureau.unit_path
    unit = await session.get(Unit, unit_id)
    if unit is None or not may(bureau.acting, "view", unit.path):
        raise Forbidden(f"unit {unit_id!r} is outside unit {bureau.unit_id!r}")
    return unit.path


def _range(first: date, last: date) -> None:
    if last < first:
        raise ValidationFailed("'to' is before 'from'")
    if (last - first).days >= MAX_PULL_DAYS:
        raise ValidationFailed(f"a range covers at most {MAX_PULL_DAYS} days")
    today = clock.today()
    if abs((first - today).days) > 366 or abs((last - today).days) > 366:
        raise ValidationFailed("from/to must lie within a year of today")


async def _halls(session: AsyncSession, root_path: str) -> list[str]:
    query = select(Unit.id).where(Unit.path.startswith(root_path, autoescape=True), Unit.kind.in_(HALL_KINDS))
    return [str(hall_id) for hall_id in (await session.execute(query)).scalars()]


async def platform_bookings(
    session: AsyncSession,
    bureau: Bureau,
    unit_id: str | None,
    first: date,
    last: date,
    after: str | None,
    limit: int,
) -> dict[str, Any]:
    """The platform's bookings at the subtree's halls with slot dates `first`–`last`, in the order
    they were made; `next` is the cursor of the following page (null on the last)."""
    root = await _root(session, bureau, unit_id)
    _range(first, last)
    if after is not None and not (after.isdigit() and len(after) <= 18):
        raise ValidationFailed("after: not a cursor of this list")
    halls = await _halls(session, root)
    if not halls:
        return {"items": [], "next": None}
    query = (
        select(
            Booking.id,
            Booking.number,
            Booking.service_id,
            Booking.hall_id,
            Booking.slot_id,
            Booking.slot_start,
            Booking.slot_end,
            Booking.quantity,
            Booking.status,
            Booking.channel,
            Booking.created_at,
            Booking.updated_at,
        )
        .where(Booking.hall_id.in_(halls), Booking.slot_day >= first, Booking.slot_day <= last)
        .order_by(Booking.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(Booking.id > int(after))
    rows = (await session.execute(query)).all()
    items = [
        {
            "number": row.number,
            "service_id": int(row.service_id),
            "hall_id": row.hall_id,
            "slot_id": row.slot_id,
            "slot": {"start": row.slot_start.isoformat(), "end": row.slot_end.isoformat()},
            "quantity": int(row.quantity),
            "status": row.status,
            "channel": row.channel,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }
        for row in rows[:limit]
    ]
    return {"items": items, "next": str(rows[limit - 1].id) if len(rows) > limit else None}


async def platform_slots(
    session: AsyncSession,
    bureau: Bureau,
    unit_id: str | None,
    first: date,
    last: date,
    after: str | None,
    limit: int,
) -> dict[str, Any]:
    """The platform's slots of the subtree's active services over `first`–`last`, ordered by service
    and start: the hourly slots of each working day (rule G11), with the capacity and seats sold of
    the slot's row where one is stored. Self-service halls have none (rule M2)."""
    root = await _root(session, bureau, unit_id)
    _range(first, last)
    cursor: tuple[int, datetime] | None = None
    if after is not None:
        cursor = parse_slot_id(after)
        if cursor is None:
            raise ValidationFailed("after: not a cursor of this list")
    query = (
        select(Service.id)
        .join(Unit, Unit.id == Service.hall_id)
        .where(
            Unit.path.startswith(root, autoescape=True),
            Service.active.is_(True),
            Unit.mode.is_distinct_from("self_service"),
        )
        .order_by(Service.id)
    )
    if cursor is not None:
        query = query.where(Service.id >= cursor[0])
    service_ids = [int(sid) for sid in (await session.execute(query)).scalars()]
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    items: list[dict[str, Any]] = []
    for chunk in range(0, len(service_ids), 50):
        ids = service_ids[chunk : chunk + 50]
        stored = {
            str(row.id): (int(row.capacity), int(row.booked))
            for row in (
                await session.execute(
                    select(Slot.id, Slot.capacity, Slot.booked).where(
                        Slot.service_id.in_(ids), Slot.day >= first, Slot.day <= last
                    )
                )
            ).all()
        }
        for sid in ids:
            info = await service_info(session, sid)
            calendar = await hall_calendar(session, info.hall_id)
            for day in days:
                if not calendar.is_working(day):
                    continue
                for spec in day_slots(info, day):
                    if cursor is not None and (sid, spec.start) <= cursor:
                        continue
                    capacity, booked = stored.get(spec.id, (spec.capacity, 0))
                    items.append(
                        {
                            "id": spec.id,
                            "service_id": sid,
                            "hall_id": info.hall_id,
                            "day": day.isoformat(),
                            "start": spec.start.isoformat(),
                            "end": spec.end.isoformat(),
                            "capacity": capacity,
                            "booked": booked,
                        }
                    )
                    if len(items) > limit:
                        return {"items": items[:limit], "next": items[limit - 1]["id"]}
    return {"items": items, "next": None}
