"""View shaping of the hall pages: what the on-site services answer, put the way a clerk or a hall
screen reads it (labels, minutes, the announcement sentence). No rule lives here: the order, the
estimates and every check come from yuyue.onsite (queue, counters; rules T3, T4, M2, M3, M7, G10).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.views import BookingView
from yuyue.catalogue.service import hall_services
from yuyue.clock import as_local
from yuyue.errors import ValidationFailed
from yuyue.models import Kiosk, Ticket
from yuyue.onsite.counters import CounterScreen, CounterView
from yuyue.onsite.desk import DeskSlot
from yuyue.onsite.queue import InLine, PublicQueue

KIND_TEXT = {"green": "绿色通道", "appointment": "预约", "walk_in": "现场"}
GREEN_TEXT = {"elderly": "老年人", "disabled": "残疾人", "military": "军人"}
CHANNEL_TEXT = {
    "web": "网站",
    "wechat": "微信公众号",
    "app": "穗好办",
    "provincial_portal": "广东政务服务网",
    "onsite": "现场预约",
    "api": "对接系统",
}
TICKET_STATUS_TEXT = {"waiting": "等候中", "called": "办理中", "skipped": "已过号", "finished": "已办结"}
DISPLAY_WAITING = 8  # the display lists this many next numbers
TICKET_NUMBER = re.compile(r"^[0-9A-Za-z]{1,32}$")
BOOKING_NUMBER = re.compile(r"^I[0-9]{10,20}$")


def announcement(call_number: str, counter: str | None) -> str:
    """What the hall hears and reads when a number is called (display.js says the same)."""
    return f"请 {call_number} 号到 {counter or '窗口'} 办理"


def minutes_text(seconds: float | None) -> str:
    if seconds is None:
        return "暂无开放窗口"
    minutes = int(seconds // 60)
    return "不到 1 分钟" if minutes < 1 else f"约 {minutes} 分钟"


def hhmm(moment: datetime | str | None) -> str:
    if moment is None:
        return ""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return f"{as_local(value):%H:%M}"


async def service_names(session: AsyncSession, hall_id: str) -> dict[int, str]:
    return {service.id: service.name for service, _ in await hall_services(session, hall_id)}


async def services_for_desk(session: AsyncSession, hall_id: str) -> list[dict[str, Any]]:
    """The hall's active services grouped as the desk's select shows them (call after `hall_for`)."""
    return [
        {"id": service.id, "name": service.name, "department": department, "walk_in": service.walk_in_allowed}
        for service, department in await hall_services(session, hall_id)
    ]


def desk_slot_options(slots: list[DeskSlot]) -> list[dict[str, Any]]:
    """Today's slots that on-site booking may take now (rule G10), as the desk's select lists them."""
    return [
        {
            "id": slot.slot_id,
            "label": f"{hhmm(slot.start)}–{hhmm(slot.end)} {slot.department} · {slot.service}"
            f"（余 {slot.left} 位）",
        }
        for slot in slots
    ]


def booked_note(booking: BookingView) -> dict[str, str]:
    """What the desk says after booking on site: the number, item, slot and when to check in."""
    window = booking.checkin_window
    return {
        "number": booking.number,
        "service": booking.service_name,
        "slot": f"{hhmm(booking.slot.start)}–{hhmm(booking.slot.end)}",
        "checkin": f"{hhmm(window.from_)}–{hhmm(window.to)}",
        "applicant": f"{booking.applicant.name}（{booking.applicant.id_number}）",
    }


def kind_label(ticket: Ticket) -> str:
    text = KIND_TEXT.get(ticket.kind, ticket.kind)
    if ticket.kind == "green" and ticket.green:
        return f"{text}·{GREEN_TEXT.get(ticket.green, ticket.green)}"
    return text


def _row(entry: InLine, position: int, names: dict[int, str], now: datetime) -> dict[str, Any]:
    ticket = entry.ticket
    return {
        "position": position,
        "number": ticket.number,
        "call_number": ticket.call_number,
        "kind": ticket.kind,
        "kind_text": kind_label(ticket),
        "service": names.get(ticket.service_id, f"事项 {ticket.service_id}"),
        "issued": hhmm(ticket.issued_at),
        "waited": minutes_text(max(0.0, (now - ticket.issued_at).total_seconds())),
        "estimate": minutes_text(entry.wait_s),
        "slot": f"{hhmm(ticket.slot_start)}–{hhmm(ticket.slot_end)}" if ticket.slot_start else "",
    }


def ticket_row(ticket: Ticket, names: dict[int, str]) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "call_number": ticket.call_number,
        "kind": ticket.kind,
        "kind_text": kind_label(ticket),
        "service": names.get(ticket.service_id, f"事项 {ticket.service_id}"),
        "issued": hhmm(ticket.issued_at),
        "called": hhmm(ticket.called_at),
        "status_text": TICKET_STATUS_TEXT.get(ticket.status, ticket.status),
        "bundle": [
            {**item, "name": names.get(int(item["service_id"]), f"事项 {item['service_id']}")}
            for item in ticket.items or []
        ],
    }


def counter_view(screen: CounterScreen, names: dict[int, str], now: datetime) -> dict[str, Any]:
    return {
        "line": [_row(entry, index + 1, names, now) for index, entry in enumerate(screen.line)],
        "current": ticket_row(screen.current, names) if screen.current else None,
        "skipped": [ticket_row(ticket, names) for ticket in screen.skipped],
    }


def person_view(person: dict[str, Any] | None) -> dict[str, Any] | None:
    """The booking behind the current ticket with readable labels (the data as the service gave it:
    masked unless revealed)."""
    if person is None or person["booking"] is None:
        return person
    booking = dict(person["booking"])
    booking["slot"] = f"{hhmm(booking['slot_start'])}–{hhmm(booking['slot_end'])}"
    booking["channel_text"] = CHANNEL_TEXT.get(booking["channel"], booking["channel"])
    return {**person, "booking": booking}


def display_view(queue: PublicQueue) -> dict[str, Any]:
    """The hall screen: the calls, latest first, and the next few waiting (public data only)."""
    serving = list(reversed(queue.serving))  # public_queue lists them by call time
    latest = serving[0] if serving else None
    return {
        "latest": latest,
        "latest_text": announcement(latest.call_number, latest.counter) if latest else "",
        "serving": serving,
        "waiting": queue.waiting[:DISPLAY_WAITING],
        "waiting_total": len(queue.waiting),
        "max": DISPLAY_WAITING,
    }


def counter_links(hall_code: str, counters: list[CounterView]) -> list[dict[str, Any]]:
    """The hall's counters with the call number each serves (a ticket number is the hall's code,
    the date and the call number)."""
    skip = len(hall_code) + 8
    return [asdict(c) | {"serving_call": c.serving[skip:] if c.serving else None} for c in counters]


def booking_number(value: str) -> str | None:
    """The `booked` query parameter of the desk: one booking number (not personal data)."""
    if not value:
        return None
    if not BOOKING_NUMBER.match(value):
        raise ValidationFailed("booked: a booking number only")
    return value


def ticket_numbers(value: str) -> list[str]:
    """The `issued` query parameter of the desk: ticket numbers, comma-separated (not personal data)."""
    numbers = [part for part in value.split(",") if part][:10]
    if any(not TICKET_NUMBER.match(number) for number in numbers):
        raise ValidationFailed("issued: ticket numbers only")
    return numbers


# --- the admin's hall screens and kiosks (issue 20) ---------------------------------------------


async def kiosks_of(session: AsyncSession, hall_id: str) -> list[dict[str, Any]]:
    """The hall's kiosks, live first then revoked, with dates for the page (the API has no list)."""
    rows = (await session.execute(select(Kiosk).where(Kiosk.hall_id == hall_id).order_by(Kiosk.id))).scalars()
    found = [
        {
            "id": kiosk.id,
            "name": kiosk.name,
            "created": as_local(kiosk.created_at),
            "revoked": as_local(kiosk.revoked_at) if kiosk.revoked_at else None,
        }
        for kiosk in rows
    ]
    return sorted(found, key=lambda k: (k["revoked"] is not None, k["id"]))
