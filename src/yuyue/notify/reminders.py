"""The notification jobs: reminders the evening before and (optionally) an hour before a booked slot,
never twice (dedup keys) and never for a booking no longer booked; the nightly clean-up of expired
rate-limit windows and old console messages. Imported by yuyue.domains, so the jobs are registered
in every process.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.clock import at
from yuyue.jobs.service import Job, Schedule, daily, register
from yuyue.models import Booking, ConsoleMessage, RateCounter
from yuyue.notify.config import in_quiet_hours, notify_settings
from yuyue.notify.outbox import booking_draft, enqueue


async def _remind(session: AsyncSession, bookings: Sequence[Booking], tag: str) -> None:
    drafts = [
        await booking_draft(session, b, "reminder", dedup_key=f"reminder:{tag}:{b.number}:{b.slot_id}")
        for b in bookings
    ]
    await enqueue(session, drafts)


async def _evening_reminders(session: AsyncSession, due: datetime) -> None:
    """The evening before: one reminder per booked booking of tomorrow, never twice (dedup key),
    never for a cancelled one (only `booked` rows, and checked again at delivery)."""
    tomorrow = due.date() + timedelta(days=1)
    rows = (
        await session.execute(select(Booking).where(Booking.slot_day == tomorrow, Booking.status == "booked"))
    ).scalars()
    await _remind(session, list(rows), "eve")


async def _hour_before_reminders(session: AsyncSession, due: datetime) -> None:
    """Optional: about an hour before the slot (slots starting in (due + 30 min, due + 60 min])."""
    if in_quiet_hours(notify_settings(), due.strftime("%H:%M")):
        return
    rows = (
        await session.execute(
            select(Booking).where(
                Booking.status == "booked",
                Booking.slot_start > due + timedelta(minutes=30),
                Booking.slot_start <= due + timedelta(minutes=60),
            )
        )
    ).scalars()
    await _remind(session, list(rows), "hour")


def _evening_schedule() -> Schedule:
    def due(after: datetime, until: datetime) -> list[datetime]:
        return daily(notify_settings().reminder_evening)(after, until)

    return due


def _hour_before_schedule() -> Schedule:
    def due(after: datetime, until: datetime) -> list[datetime]:
        if not notify_settings().reminder_hour_before:
            return []  # off by default: no job runs at all
        step = timedelta(minutes=30)
        start = at(after.date(), "00:00")
        moment = start + step * ((after - start) // step + 1)
        times = []
        while moment <= until:
            times.append(moment)
            moment += step
        return times

    return due


async def _clean_up(session: AsyncSession, due: datetime) -> None:
    """Expired rate-limit windows go; console messages are kept for 30 days."""
    await session.execute(delete(RateCounter).where(RateCounter.expires_at < due))
    await session.execute(delete(ConsoleMessage).where(ConsoleMessage.sent_at < due - timedelta(days=30)))


register(Job("reminders_evening", _evening_schedule(), _evening_reminders))
register(Job("reminders_hour_before", _hour_before_schedule(), _hour_before_reminders))
register(Job("notify_clean_up", daily("03:30"), _clean_up, coalesce=True))
