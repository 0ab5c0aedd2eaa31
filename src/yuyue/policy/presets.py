"""The policy knobs and the three presets of docs/rules.md ("Policies"), as data.

Knob names and meanings are documented in docs/policies.md. A preset sets only the knobs its
document sets; the rest are inherited from the units above (`(city)` in docs/rules.md).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from yuyue.clock import HHMM


class Knobs(BaseModel):
    """Every knob with its type; used to validate overrides and to hold an effective policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Horizon (rules G10, T6, M4): which days off-site booking offers.
    horizon_rule: Literal["working_days_from_release", "calendar_days", "working_days"]
    horizon_days: StrictInt = Field(ge=1, le=60)
    release_time: str | None  # "18:00": when the newest day opens; None = at midnight
    # Rule M5: a slot stops taking bookings at this time of the calendar day before its date.
    cutoff_prev_day: str | None
    # Rule G10: on-site share of each slot (percent, floor) and when on-site booking opens.
    onsite_share_pct: StrictInt = Field(ge=0, le=100)
    onsite_opens: str
    # Cancel deadline (rules G13, T8, M8).
    cancel_rule: Literal["before_slot_end", "before_slot_start", "prev_working_day"]
    cancel_minutes: StrictInt = Field(ge=0, le=24 * 60)
    cancel_time: str | None
    # One live booking (rules T5, M10).
    one_live_per: Literal["service", "day"]
    # Check-in window (rules T3, M7).
    checkin_before_min: StrictInt = Field(ge=0, le=24 * 60)
    checkin_after_end_min: StrictInt = Field(ge=0, le=24 * 60)
    # No-show penalty (rules G15, M9).
    penalty: Literal["city", "medical_insurance", "none"]
    # Platform cap of live bookings per citizen (docs/api.md booking_cap).
    max_live_bookings: StrictInt = Field(ge=1, le=1000)
    # Issue 9 item 5 (decision 0081): seats a cancel or a reschedule frees, and the waiting list
    # (rule G11) does not take, stay taken until a random second of [min, max] later; max 0 frees
    # them at once. A min above the max (the two set by different units) is capped to the max.
    freed_seat_delay_min_s: StrictInt = Field(ge=0, le=3600)
    freed_seat_delay_max_s: StrictInt = Field(ge=0, le=3600)
    # Rule G19 (issue 23): the lines the nightly watch over the figures draws (yuyue.watch.rules).
    watch_sold_out_minutes: StrictInt = Field(ge=1, le=24 * 60)  # sold out within N min of release
    watch_sold_out_days: StrictInt = Field(ge=1, le=30)  # … on this many released days running
    watch_utilisation_floor_pct: StrictInt = Field(ge=0, le=100)  # utilisation under this floor
    watch_utilisation_weeks: StrictInt = Field(ge=1, le=12)  # … in each of this many weeks
    watch_no_show_factor_pct: StrictInt = Field(ge=100, le=10_000)  # week's rate ≥ baseline × pct/100
    watch_waitlist_days: StrictInt = Field(ge=2, le=30)  # waiting list longer each day this many days
    watch_channel_surge_factor_pct: StrictInt = Field(ge=100, le=10_000)  # share ≥ usual × pct/100
    watch_bureau_silent_hours: StrictInt = Field(ge=1, le=24 * 30)  # no bureau data for this long
    watch_min_count: StrictInt = Field(ge=1, le=10_000)  # fewer events than this prove nothing
    # Rule G15, last clause (issue 23): the hoarding patterns the console's 限制约 page ranks
    # (yuyue.watch.service.hoarding), taken from the effective policy of the unit examined.
    hoarding_late_cancel_min: StrictInt = Field(ge=2, le=100)  # this many cancels each …
    hoarding_late_cancel_window_min: StrictInt = Field(ge=1, le=24 * 60)  # … this close to the deadline
    hoarding_many_halls_min: StrictInt = Field(ge=2, le=100)  # one item booked at this many halls
    hoarding_no_show_areas_min: StrictInt = Field(ge=2, le=100)  # no-shows in this many districts
    hoarding_burst_min: StrictInt = Field(ge=2, le=1000)  # this many bookings through one channel …
    hoarding_burst_seconds: StrictInt = Field(ge=1, le=3600)  # … within this many seconds

    @field_validator("release_time", "cutoff_prev_day", "onsite_opens", "cancel_time")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not HHMM.match(value):
            raise ValueError("must be a time HH:MM")
        return value


KNOB_NAMES: tuple[str, ...] = tuple(Knobs.model_fields)

PRESETS: dict[str, dict[str, Any]] = {
    # Guangzhou unified appointment measures (seed 004): the city rule book.
    "guangzhou-2021": {
        "horizon_rule": "working_days_from_release",  # rule G10
        "horizon_days": 10,
        "release_time": "18:00",
        "cutoff_prev_day": None,
        "onsite_share_pct": 10,  # rule G10: on-site at most 10 %
        "onsite_opens": "09:00",
        "cancel_rule": "before_slot_end",  # rule G13: 2 h before the slot ends
        "cancel_minutes": 120,
        "cancel_time": None,
        "one_live_per": "service",  # rule T5 (city reading)
        "checkin_before_min": 60,  # choice: 60 min before start → slot end
        "checkin_after_end_min": 0,
        "penalty": "city",  # rule G15
        "max_live_bookings": 10,
        # Off in the presets: the source documents free a cancelled seat at once and partners rely on
        # it; a city turns the delay on per policy (decision 0081; the demo sets 60–300 s).
        "freed_seat_delay_min_s": 0,
        "freed_seat_delay_max_s": 0,
        # rule G19: platform choices (issue 23); docs/policies.md
        "watch_sold_out_minutes": 30,
        "watch_sold_out_days": 3,
        "watch_utilisation_floor_pct": 30,
        "watch_utilisation_weeks": 2,
        "watch_no_show_factor_pct": 200,
        "watch_waitlist_days": 3,
        "watch_channel_surge_factor_pct": 200,
        "watch_bureau_silent_hours": 24,
        "watch_min_count": 10,
        # rule G15, last clause: platform choices (issue 23); docs/policies.md
        "hoarding_late_cancel_min": 3,
        "hoarding_late_cancel_window_min": 120,
        "hoarding_many_halls_min": 3,
        "hoarding_no_show_areas_min": 2,
        "hoarding_burst_min": 3,
        "hoarding_burst_seconds": 60,
    },
    # Tianhe district guide (seed 000): 14 days, the 14th from 12:00; cancel before the start.
    "tianhe": {
        "horizon_rule": "calendar_days",  # rule T6
        "horizon_days": 14,
        "release_time": "12:00",
        "cancel_rule": "before_slot_start",  # rule T8
        "cancel_minutes": 0,
        "cancel_time": None,
    },
    # Medical-insurance centre guide (seed 001).
    "gz-medical-insurance": {
        "horizon_rule": "working_days",  # rules M4: tomorrow to 5 working days ahead
        "horizon_days": 5,
        "release_time": None,
        "cutoff_prev_day": "17:30",  # rule M5
        "cancel_rule": "prev_working_day",  # rule M8
        "cancel_minutes": 0,
        "cancel_time": "17:30",
        "one_live_per": "day",  # rule M10
        "checkin_before_min": 15,  # rule M7
        "checkin_after_end_min": 15,
        "penalty": "medical_insurance",  # rule M9
    },
}

DEFAULTS: dict[str, Any] = PRESETS["guangzhou-2021"]
