"""What the other domains announce, turned into outbox rows in the same transaction (kit/events.py
subscribers): booking confirmations, no-shows and bans for the citizen (rules T7, T11, G9, G13),
alerts and approved capacity changes for the administrators (rules G4, G12, G20). Imported by
yuyue.domains, so the subscribers are registered in every process.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin import alert_text
from yuyue.identity.service import process_secret
from yuyue.kit import crypto
from yuyue.kit.events import Event, subscribe
from yuyue.kit.masking import mask_email
from yuyue.models import Admin, Alert, Ban, Booking, CapacityRequest, Citizen, Service, Unit
from yuyue.notify.config import email_settings, notify_settings, sms_settings
from yuyue.notify.outbox import HOTLINE_MAX, NAME_MAX, Draft, booking_draft, enqueue
from yuyue.notify.templates import fits


@subscribe("booking.created")
async def _on_booked(session: AsyncSession, event: Event) -> None:
    """Rules T7, G9: an SMS on success; a waiting-list allocation (rule G11) has its own text."""
    booking: Booking = event.data["booking"]
    kind = "allocated" if event.data.get("source") == "waitlist" else "booked"
    await enqueue(session, [await booking_draft(session, booking, kind)], into=event.into)


@subscribe("booking.cancelled")
async def _on_cancelled(session: AsyncSession, event: Event) -> None:
    """Rules T7, T11: every cancel is confirmed by SMS (channels/webhooks.py tells the partner)."""
    booking: Booking = event.data["booking"]
    await enqueue(session, [await booking_draft(session, booking, "cancelled")])


@subscribe("booking.rescheduled")
async def _on_rescheduled(session: AsyncSession, event: Event) -> None:
    booking: Booking = event.data["booking"]
    await enqueue(session, [await booking_draft(session, booking, "rescheduled")])


@subscribe("booking.no_show")
async def _on_no_show(session: AsyncSession, event: Event) -> None:
    """Rule G13: a no-show, and an SMS tells the citizen (once: one per booking)."""
    booking: Booking = event.data["booking"]
    draft = await booking_draft(session, booking, "no_show", dedup_key=f"no_show:{booking.number}")
    await enqueue(session, [draft])


@subscribe("ban.imposed")
async def _on_ban(session: AsyncSession, event: Event) -> None:
    """docs/rules.md 'Penalties': a ban sends an SMS."""
    ban: Ban = event.data["ban"]
    citizen = await session.get(Citizen, ban.citizen_id)
    unit = await session.get(Unit, ban.unit_id)
    if citizen is None or unit is None:
        return
    draft = Draft(
        kind="banned",
        params={
            "until": ban.until.isoformat(),
            "unit": unit.name[:NAME_MAX],
            "hotline": (unit.hotline or notify_settings().default_hotline)[:HOTLINE_MAX],
        },
        phone_enc=citizen.phone_enc,
        phone_masked=citizen.phone_masked,
        unit_path=unit.path,
        citizen_id=citizen.id,
        dedup_key=f"banned:{ban.id}" if ban.id is not None else None,
    )
    await enqueue(session, [draft])


def _admin_drafts(
    admins: Sequence[Admin], kind: str, params: dict[str, str], unit_path: str, key: str | None
) -> list[Draft]:
    """One SMS to each admin with a mobile number on record, and the same by email when email is
    enabled (issue 7 item 7); `key` makes each once per admin."""
    secret = process_secret()
    drafts = []
    for admin in admins:
        own = f"{key}:{admin.id}" if key else None
        if admin.phone_masked:  # the registration's mobile, already encrypted (decision 0095)
            drafts.append(
                Draft(
                    kind=kind,
                    params=params,
                    phone_enc=admin.phone_enc,
                    phone_masked=admin.phone_masked,
                    unit_path=unit_path,
                    dedup_key=own,
                )
            )
        if admin.email and email_settings().enabled:
            drafts.append(
                Draft(
                    kind=kind,
                    channel="email",
                    params=params,
                    phone_enc=crypto.encrypt(secret, admin.email),
                    phone_masked=mask_email(admin.email),
                    unit_path=unit_path,
                    dedup_key=f"{own}:email" if own else None,
                )
            )
    return drafts


async def _active_admins(session: AsyncSession, unit_ids: list[str]) -> list[Admin]:
    query = select(Admin).where(Admin.unit_id.in_(unit_ids), Admin.active.is_(True)).order_by(Admin.id)
    return list((await session.execute(query)).scalars())


@subscribe("alert.raised")
async def _on_alert(session: AsyncSession, event: Event) -> None:
    """Alerts for administrators (rules G12, G20): an SMS (and email) to each active admin of the
    alert's unit and of every unit above it, up to the platform (G12: "the administrators of
    every level"), who has a mobile number (an email address) on record."""
    alert: Alert = event.data["alert"]
    unit = await session.get(Unit, alert.unit_id)
    if unit is None:
        return
    admins = await _active_admins(session, unit.path.strip("/").split("/"))  # the path names the ancestors
    if not admins:
        return
    # The alert's own sentence (the console's), its first clause: the template names the unit before
    # it, so the sentence names the service, or, when that makes two SMS, nothing (the figure says
    # more than the service's name); `render` shortens what still does not fit (notify.templates).
    service = await session.get(Service, alert.service_id) if alert.service_id else None
    extra = (await alert_text.alert_extras(session, [alert]))[alert.id]
    params = {"unit": unit.name[:NAME_MAX], "detail": ""}
    for named in dict.fromkeys((service.name if service else "", "")):
        params["detail"] = alert_text.sms_clause(alert_text.alert_sentence(alert, "", named, extra))
        if fits("alert", params, sms_settings().sign_name):
            break
    key = f"alert:{alert.id}" if alert.id is not None else None
    await enqueue(session, _admin_drafts(admins, "alert", params, unit.path, key))


@subscribe("capacity.approved")
async def _on_capacity_approved(session: AsyncSession, event: Event) -> None:
    """Rule G4 (Art. 8): an approved capacity change goes to the administrators of the hall it
    concerns, by SMS (and email)."""
    request: CapacityRequest = event.data["request"]
    hall = await session.get(Unit, request.hall_id)
    if hall is None:
        return
    start = f"{request.date_from.month}月{request.date_from.day}日"
    if request.date_to is None:
        days = f"{start}起"
    elif request.date_to == request.date_from:
        days = start
    else:
        days = f"{start}至{request.date_to.month}月{request.date_to.day}日"
    params = {
        "unit": hall.name[:NAME_MAX],
        "request": str(request.id),
        "days": days,
        "capacity": str(request.daily_capacity),
    }
    admins = await _active_admins(session, [hall.id])
    key = f"capacity_approved:{request.id}"
    await enqueue(session, _admin_drafts(admins, "capacity_approved", params, hall.path, key))
