"""Texts of things that end without the citizen asking, written to the outbox in the transaction
that ends them: a booking the hall cancelled because its day closed (docs/rules.md "A closed day that
has bookings"; kind `cancelled`, with the reason and where to book again, `YUYUE_NOTIFY_REBOOK_LINK`)
and a waiting entry that expired (docs/rules.md "Waiting list"; kind `expired`)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.catalogue.service import service_info
from yuyue.kit.events import Event, subscribe
from yuyue.models import Booking, Citizen, WaitlistEntry
from yuyue.notify.config import notify_settings
from yuyue.notify.outbox import HOTLINE_MAX, NAME_MAX, Draft, booking_draft, enqueue

DEFAULT_REASON = "大厅临时停办"


@subscribe("booking.cancelled_by_hall")
async def _on_cancelled_by_hall(session: AsyncSession, event: Event) -> None:
    booking: Booking = event.data["booking"]
    reason = " ".join(str(event.data.get("reason") or "").split()) or DEFAULT_REASON
    draft = await booking_draft(session, booking, "cancelled", dedup_key=f"hall_cancel:{booking.number}")
    params = {**draft.params, "reason": reason, "link": notify_settings().rebook_link}
    await enqueue(session, [replace(draft, params=params, template="cancelled_by_hall")])


@subscribe("waitlist.expired")
async def _on_waitlist_expired(session: AsyncSession, event: Event) -> None:
    """docs/rules.md "Waiting list": an entry that ended on its own is texted (kind `expired`)."""
    entry: WaitlistEntry = event.data["entry"]
    citizen = await session.get(Citizen, entry.citizen_id)
    if citizen is None:
        return
    info = await service_info(session, entry.service_id)
    draft = Draft(
        kind="expired",
        params={
            "service": info.name[:NAME_MAX],
            "hotline": (info.hall_hotline or notify_settings().default_hotline)[:HOTLINE_MAX],
        },
        phone_enc=citizen.phone_enc,
        phone_masked=citizen.phone_masked,
        unit_path=info.hall_path,
        citizen_id=citizen.id,
        dedup_key=f"waitlist_expired:{entry.id}",
    )
    await enqueue(session, [draft])
