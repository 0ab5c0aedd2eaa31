"""Effective policy (inheritance down the unit tree, knob by knob) and the time rules it drives:
when a day opens, when booking of a slot closes, cancel deadlines, check-in windows.

The time rules are pure functions of (knobs, calendar, times) so they can be property-tested;
docs/rules.md "How the platform reads them" is the specification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.service import Acting, authorise
from yuyue.calendar.service import WorkCalendar
from yuyue.catalogue.service import clear_caches, get_unit
from yuyue.clock import at, clock
from yuyue.db import after_commit
from yuyue.errors import NotFound, ValidationFailed
from yuyue.kit.cache import TTLCache
from yuyue.models import Policy, Unit
from yuyue.policy.presets import DEFAULTS, KNOB_NAMES, PRESETS, Knobs

cache = TTLCache(2.0)


@dataclass(frozen=True)
class EffectivePolicy:
    unit_id: str
    preset: str | None
    knobs: Knobs
    sources: dict[str, str]  # knob -> unit id it came from ("default" for the built-in city values)

    def as_dict(self) -> dict[str, Any]:
        values = self.knobs.model_dump()
        return {
            "unit_id": self.unit_id,
            "preset": self.preset,
            "knobs": {name: {"value": values[name], "from": self.sources[name]} for name in KNOB_NAMES},
        }


def path_ids(path: str) -> list[str]:
    """'platform/tianhe/th-hall/' -> ['platform', 'tianhe', 'th-hall'] (root first)."""
    return [part for part in path.split("/") if part]


def resolve(
    unit_id: str, chain: list[str], rows: dict[str, tuple[str | None, dict[str, Any]]]
) -> EffectivePolicy:
    """Apply, root first, each unit's preset then its overrides (pure)."""
    values: dict[str, Any] = dict(DEFAULTS)
    sources = dict.fromkeys(KNOB_NAMES, "default")
    preset: str | None = None
    for uid in chain:
        if uid not in rows:
            continue
        unit_preset, overrides = rows[uid]
        if unit_preset:
            preset = unit_preset
            for name, value in PRESETS[unit_preset].items():
                values[name], sources[name] = value, uid
        for name, value in (overrides or {}).items():
            if name in values:
                values[name], sources[name] = value, uid
    return EffectivePolicy(unit_id=unit_id, preset=preset, knobs=Knobs(**values), sources=sources)


async def unit_chain(session: AsyncSession, unit_id: str) -> list[str]:
    key = ("chain", unit_id)
    hit = cache.get(key)
    if hit is not None:
        return list(hit)
    since = TTLCache.generation()
    path = (await session.execute(select(Unit.path).where(Unit.id == unit_id))).scalar_one_or_none()
    if path is None:
        raise NotFound(f"unit {unit_id!r} not found")
    chain = path_ids(path)
    cache.put(key, chain, since)
    return chain


async def effective_policy(session: AsyncSession, unit_id: str) -> EffectivePolicy:
    key = ("policy", unit_id)
    hit = cache.get(key)
    if hit is not None:
        assert isinstance(hit, EffectivePolicy)
        return hit
    since = TTLCache.generation()
    chain = await unit_chain(session, unit_id)
    found = (
        await session.execute(
            select(Policy.unit_id, Policy.preset, Policy.overrides).where(Policy.unit_id.in_(chain))
        )
    ).all()
    policy = resolve(unit_id, chain, {row.unit_id: (row.preset, row.overrides or {}) for row in found})
    cache.put(key, policy, since)
    return policy


ONSITE_SHARE_MAX = 10  # per cent of a slot (docs/rules.md "On-site booking")


def validate_overrides(preset: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Check names and values of overrides; returns them normalised. Raises ValidationFailed."""
    if preset is not None and preset not in PRESETS:
        raise ValidationFailed(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(KNOB_NAMES))
    if unknown:
        raise ValidationFailed(f"unknown knob(s): {', '.join(unknown)}")
    try:
        checked = Knobs(**{**DEFAULTS, **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed(f"overrides.{first['loc'][0]}: {first['msg']}") from None
    if checked.onsite_share_pct > ONSITE_SHARE_MAX:  # rule G10 (Art. 14): on site at most 10 %
        raise ValidationFailed(f"overrides.onsite_share_pct: at most {ONSITE_SHARE_MAX} (rule G10)")
    dumped = checked.model_dump()
    return {name: dumped[name] for name in overrides}


async def own_policy(session: AsyncSession, unit_id: str) -> tuple[str | None, dict[str, Any]]:
    """What a unit sets itself (preset, overrides); (None, {}) when it inherits everything."""
    row = await session.get(Policy, unit_id)
    return (row.preset, dict(row.overrides or {})) if row is not None else (None, {})


async def set_policy(
    session: AsyncSession, who: Acting, unit_id: str, preset: str | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Set a unit's preset and overrides (children inherit what they don't set), by an admin who
    may configure the unit (rules G3–G6); audited. Returns the new effective policy; the caller
    commits, then clears the caches again. Shared by the API and the console (issue 10 item 6)."""
    unit = await get_unit(session, unit_id)
    authorise(who, "configure", unit.path)
    checked = validate_overrides(preset, overrides)
    row = await session.get(Policy, unit_id)
    before = {"preset": row.preset, "overrides": row.overrides} if row else None
    if row is None:
        row = Policy(unit_id=unit_id, preset=preset, overrides=checked, updated_at=clock.now())
        session.add(row)
    else:
        row.preset, row.overrides, row.updated_at = preset, checked, clock.now()
    after = {"preset": preset, "overrides": checked}
    await audit(session, who, unit.id, unit.path, "policy.set", unit.id, before, after)
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    return (await effective_policy(session, unit_id)).as_dict()


# --- time rules --------------------------------------------------------------------------------


def day_opens_at(knobs: Knobs, calendar: WorkCalendar, day: date) -> datetime:
    """When off-site booking of `day` opens (rules G10, T6, M4).

    City (G10): at release time on the `horizon_days`-th working day before `day`.
    Tianhe (T6): days 1..n-1 ahead are open, day n from the release time: `day - n` at release.
    Medical insurance (M4): working days 1..n ahead: from 00:00 of the n-th working day before.
    """
    if knobs.horizon_rule == "calendar_days":
        base = day - timedelta(days=knobs.horizon_days)
    else:
        base = calendar.nth_working_before(day, knobs.horizon_days)
    return at(base, knobs.release_time or "00:00")


def horizon_end(knobs: Knobs, calendar: WorkCalendar, today: date) -> date:
    """The last day of the policy's booking horizon seen from `today` (open or about to open)."""
    if knobs.horizon_rule == "calendar_days":
        return today + timedelta(days=knobs.horizon_days)
    return calendar.nth_working_after(today, knobs.horizon_days)


def booking_closes_at(knobs: Knobs, day: date, start: datetime) -> datetime:
    """Off-site booking of a slot closes at its start, or earlier at the M5 cut-off; never on the day."""
    closes = at(day, "00:00")  # rule G10: today is never booked off-site
    if knobs.cutoff_prev_day:
        closes = min(closes, at(day - timedelta(days=1), knobs.cutoff_prev_day))  # rule M5
    return min(closes, start)


def offsite_status(
    knobs: Knobs,
    calendar: WorkCalendar,
    day: date,
    start: datetime,
    end: datetime,
    remaining: int,
    now: datetime,
) -> str:
    """Status of a slot for off-site booking: past / closed_for_booking / not_yet_open / full / open."""
    if now >= end:
        return "past"
    if now >= booking_closes_at(knobs, day, start):
        return "closed_for_booking"
    if now < day_opens_at(knobs, calendar, day):
        return "not_yet_open"
    if remaining <= 0:
        return "full"
    return "open"


def onsite_status(knobs: Knobs, calendar: WorkCalendar, day: date, end: datetime, now: datetime) -> str:
    """Rule G10: on-site booking takes today's slots from `onsite_opens` on working days until the
    slot ends."""
    if now >= end:
        return "past"
    if day != now.date() or not calendar.is_working(day) or now < at(day, knobs.onsite_opens):
        return "not_yet_open"
    return "open"


def cancel_deadline(
    knobs: Knobs, calendar: WorkCalendar, day: date, start: datetime, end: datetime
) -> datetime:
    """Last moment a booking may be cancelled (rules G13, T8, M8); inclusive."""
    if knobs.cancel_rule == "before_slot_end":
        return end - timedelta(minutes=knobs.cancel_minutes)  # rule G13
    if knobs.cancel_rule == "before_slot_start":
        return start - timedelta(minutes=knobs.cancel_minutes)  # rule T8
    return at(calendar.previous_working_day(day), knobs.cancel_time or "17:30")  # rule M8


def checkin_window(knobs: Knobs, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Rules T3, M7: from `checkin_before_min` before the start to `checkin_after_end_min` after the end."""
    return start - timedelta(minutes=knobs.checkin_before_min), end + timedelta(
        minutes=knobs.checkin_after_end_min
    )


def freed_seat_window(knobs: Knobs) -> tuple[int, int] | None:
    """Issue 9 item 5 (decision 0081): the seconds, [low, high], for which seats freed by a cancel or
    a reschedule and left by the waiting list stay taken; None when the policy frees them at once
    (`freed_seat_delay_max_s` 0). A min above the max is capped to the max."""
    high = knobs.freed_seat_delay_max_s
    if high <= 0:
        return None
    return min(knobs.freed_seat_delay_min_s, high), high


def onsite_hold(knobs: Knobs, capacity: int) -> int:
    """Rule G10: the on-site share of a slot, floor(capacity × share)."""
    return capacity * knobs.onsite_share_pct // 100
