"""On-site booking at the desk (rule G10): today's slots channel `onsite` may take now, and a
booking made by a clerk for a citizen who shows their document, through the one `book` every door
uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.booking import commands, rules, views
from yuyue.catalogue.service import SlotSpec, day_slots, hall_services
from yuyue.clock import clock
from yuyue.config import Settings
from yuyue.errors import Conflict, DomainError, NotFound
from yuyue.identity.service import (
    FOREIGN_ID_TYPES,
    held_with_another_phone,
    move_document,
    upsert_citizen,
    verify_identity,
)
from yuyue.kit.masking import mask_id, mask_name
from yuyue.models import Booking, Slot
from yuyue.onsite.staff import STAFF, Actor, hall_for, staff_only


@dataclass(frozen=True)
class DeskSlot:
    """One of today's slots that on-site booking may take now, with the seats left to it (the
    on-site share plus any off-site seats left unsold)."""

    slot_id: str
    service_id: int
    service: str
    department: str
    start: datetime
    end: datetime
    left: int


async def desk_slots(session: AsyncSession, actor: Actor, hall_id: str) -> list[DeskSlot]:
    """Today's slots of the hall's services that channel `onsite` may book now, by start then
    service: the same checks `booking.commands.book` makes (`check_open` on channel `onsite`: a
    working day, from the on-site opening time, until the slot ends), with seats left."""
    hall = await hall_for(session, actor, hall_id)
    if hall.mode == "self_service":
        return []  # rule M2: a self-service hall takes no bookings
    now = clock.now()
    candidates: list[tuple[rules.Context, str, SlotSpec]] = []
    for row, department in await hall_services(session, hall.id):
        ctx = await rules.context(session, row.id)
        for spec in day_slots(ctx.info, now.date()):
            try:
                rules.check_open(ctx, spec, "onsite", now)
            except DomainError:
                continue
            candidates.append((ctx, department, spec))
    if not candidates:
        return []
    ids = [spec.id for _, _, spec in candidates]
    stored = {
        row.id: (row.capacity, row.booked)
        for row in (
            await session.execute(select(Slot.id, Slot.capacity, Slot.booked).where(Slot.id.in_(ids)))
        )
    }
    found = []
    for ctx, department, spec in candidates:
        capacity, booked = stored.get(spec.id, (spec.capacity, 0))
        if capacity - booked > 0:
            found.append(
                DeskSlot(
                    spec.id, ctx.info.id, ctx.info.name, department, spec.start, spec.end, capacity - booked
                )
            )
    return sorted(found, key=lambda slot: (slot.start, slot.department, slot.service_id))


async def book_at_desk(
    session: AsyncSession,
    secret: str,
    actor: Actor,
    hall_id: str,
    slot_id: str,
    *,
    name: str,
    id_type: str,
    id_number: str,
    phone: str,
    business_types: tuple[str, ...] = (),
    quantity: int = 1,
) -> dict[str, Any]:
    """Rule G10: a clerk (or an admin acting as staff, never a kiosk) books one of today's slots of
    this hall on site for a citizen who shows their document, through the one `book` every channel
    uses (on-site window and share, one live booking, bans, batch size). The identity the clerk saw
    is verified and the citizen upserted as a login would. Audited: who booked for whom, masked."""
    hall = await hall_for(session, actor, hall_id)
    staff_only(actor)
    try:
        ctx, _ = await rules.resolve_slot(session, slot_id)
    except NotFound:
        raise NotFound(f"slot {slot_id!r} not found at this hall") from None
    if ctx.info.hall_id != hall.id:
        raise NotFound(f"slot {slot_id!r} not found at this hall")
    who = verify_identity(name, id_type, id_number, phone)
    if who.id_type in FOREIGN_ID_TYPES and await held_with_another_phone(session, secret, who):
        # the phone of a passport or permit changes only by the document move (issue 19), which
        # also ends the record's sessions; a booking would otherwise move the SMS silently
        raise Conflict(
            "this document is held with another phone number; move it to the new phone first",
            code="document_phone_differs",
        )
    citizen_id = await upsert_citizen(session, secret, who)
    request = rules.BookRequest(
        slot_id=slot_id, channel="onsite", quantity=quantity, business_types=business_types
    )
    answer = await commands.book(session, citizen_id, request, rules.Caller("staff"))
    after = {
        "number": answer["number"],
        "service_id": answer["service_id"],
        "slot_id": answer["slot_id"],
        "channel": "onsite",
        "quantity": answer["quantity"],
        "citizen": {"id_type": who.id_type, "id_number": mask_id(who.id_number), "name": mask_name(who.name)},
    }
    await audit(
        session,
        actor.admin,
        hall.id,
        hall.path,
        "booking.onsite",
        f"booking:{answer['number']}",
        None,
        after,
        staff_id=actor.id if actor.kind == STAFF else None,
    )
    return answer


@dataclass(slots=True, kw_only=True)
class MovedCitizen:
    """The record whose document moved, masked; checked by `MovedCitizenOut`."""

    id_type: str
    id_number: str
    name: str
    phone: str


@dataclass(slots=True, kw_only=True)
class MovedDocument:
    """What a move did; checked by `MovedDocumentOut`."""

    citizen: MovedCitizen
    sessions_ended: int


async def move_foreign_document(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    hall_id: str,
    *,
    id_type: str,
    id_number: str,
    phone: str,
) -> MovedDocument:
    """Issue 19 (rule G8 login): a clerk of this hall (or an admin acting as staff, never a kiosk)
    who has seen the holder and the document moves a passport or permit to the holder's new phone;
    the record's sessions end. Audited with masked values: who moved which record, from which
    masked phone to which."""
    hall = await hall_for(session, actor, hall_id)
    staff_only(actor)
    moved = await move_document(session, settings, id_type, id_number, phone)
    await audit(
        session,
        actor.admin,
        hall.id,
        hall.path,
        "foreigner.move_document",
        f"citizen:{moved.citizen_id}",
        {"phone": moved.phone_before},
        {"phone": moved.phone_after, "id_type": id_type, "id_number": moved.id_masked},
        staff_id=actor.id if actor.kind == STAFF else None,
    )
    return MovedDocument(
        citizen=MovedCitizen(
            id_type=id_type, id_number=moved.id_masked, name=moved.name_masked, phone=moved.phone_after
        ),
        sessions_ended=moved.sessions_ended,
    )


async def desk_booking(session: AsyncSession, actor: Actor, hall_id: str, number: str) -> views.BookingView:
    """A booking of this hall as the desk shows it after booking on site (masked, as every answer)."""
    hall = await hall_for(session, actor, hall_id)
    staff_only(actor)
    found = (
        await session.execute(select(Booking).where(Booking.number == number, Booking.hall_id == hall.id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("booking not found at this hall")
    return await views.read(session, found)
