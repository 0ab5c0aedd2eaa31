"""Cancel deadlines (G13 city, T8 Tianhe, M8 medical insurance), check-in windows (T3, M7) and the
on-site share of a slot (G10, G11), per docs/rules.md "How the platform reads them".

Real 2026 calendar: Mid-autumn 09-25..27, National Day 10-01..07, swapped working days Sunday
09-20 and Saturday 10-10.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from fractions import Fraction
from math import floor

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.calendar.service import WorkCalendar
from yuyue.clock import TZ, at
from yuyue.policy.presets import PRESETS, Knobs
from yuyue.policy.service import cancel_deadline, checkin_window, onsite_hold

FAST = settings(max_examples=200, deadline=None)

CITY = Knobs(**PRESETS["guangzhou-2021"])
TIANHE = Knobs(**{**PRESETS["guangzhou-2021"], **PRESETS["tianhe"]})
MEDICAL = Knobs(**{**PRESETS["guangzhou-2021"], **PRESETS["gz-medical-insurance"]})
NATIONAL = WorkCalendar()
D = date


def ref_working(day: date, calendar: WorkCalendar) -> bool:
    if day in calendar.closures:
        return False
    if day in calendar.overrides:
        return calendar.overrides[day]
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def ref_previous_working_day(day: date, calendar: WorkCalendar) -> date:
    current = day - timedelta(days=1)
    while not ref_working(current, calendar):
        current -= timedelta(days=1)
    return current


special_days = st.one_of(st.dates(D(2025, 12, 1), D(2027, 1, 31)), st.dates(D(2026, 9, 15), D(2026, 10, 20)))
calendars = st.builds(
    lambda closed, overrides: WorkCalendar(overrides=overrides, closures=frozenset(closed)),
    st.sets(special_days, max_size=6),
    st.dictionaries(special_days, st.booleans(), max_size=6),
)
days = st.one_of(st.dates(D(2026, 1, 1), D(2026, 12, 31)), st.dates(D(2026, 9, 15), D(2026, 10, 20)))
starts = st.integers(6 * 60, 21 * 60).map(lambda m: time(m // 60, m % 60))


def slot(day: date, start: time) -> tuple[datetime, datetime]:
    begin = datetime.combine(day, start, tzinfo=TZ)
    return begin, begin + timedelta(hours=1)


# --- cancel deadlines ------------------------------------------------------------------------------


@FAST
@given(calendars, days, starts)
def test_g13_t8_m8_cancel_deadlines(calendar: WorkCalendar, day: date, start_time: time) -> None:
    """G13: slot end − 2 h; T8: slot start; M8: 17:30 of the previous working day."""
    start, end = slot(day, start_time)
    assert cancel_deadline(CITY, calendar, day, start, end) == end - timedelta(hours=2)
    assert cancel_deadline(TIANHE, calendar, day, start, end) == start
    previous = ref_previous_working_day(day, calendar)
    assert cancel_deadline(MEDICAL, calendar, day, start, end) == datetime.combine(
        previous, time(17, 30), tzinfo=TZ
    )


@FAST
@given(
    days,
    starts,
    st.sampled_from(["before_slot_end", "before_slot_start"]),
    st.integers(0, 24 * 60),
    st.integers(0, 120),
    st.integers(0, 60),
)
def test_g13_t8_t3_m7_deadlines_follow_the_knobs(
    day: date, start_time: time, rule: str, minutes: int, before: int, after: int
) -> None:
    """A hall can change the knobs, not the reading: the minutes come from the effective policy."""
    knobs = Knobs(
        **{
            **PRESETS["guangzhou-2021"],
            "cancel_rule": rule,
            "cancel_minutes": minutes,
            "checkin_before_min": before,
            "checkin_after_end_min": after,
        }
    )
    start, end = slot(day, start_time)
    anchor = end if rule == "before_slot_end" else start
    assert cancel_deadline(knobs, NATIONAL, day, start, end) == anchor - timedelta(minutes=minutes)
    assert checkin_window(knobs, start, end) == (
        start - timedelta(minutes=before),
        end + timedelta(minutes=after),
    )


def test_m8_cancel_time_knob() -> None:
    knobs = Knobs(**{**PRESETS["guangzhou-2021"], **PRESETS["gz-medical-insurance"], "cancel_time": "16:00"})
    start, end = slot(D(2026, 10, 8), time(9, 0))
    assert cancel_deadline(knobs, NATIONAL, D(2026, 10, 8), start, end) == at(D(2026, 9, 30), "16:00")


def test_g13_city_slot_9_to_10_cancel_until_8() -> None:
    start, end = slot(D(2026, 9, 24), time(9, 0))
    assert cancel_deadline(CITY, NATIONAL, D(2026, 9, 24), start, end) == at(D(2026, 9, 24), "08:00")


def test_t8_tianhe_cancel_until_the_start() -> None:
    start, end = slot(D(2026, 9, 24), time(14, 30))
    assert cancel_deadline(TIANHE, NATIONAL, D(2026, 9, 24), start, end) == at(D(2026, 9, 24), "14:30")


@pytest.mark.parametrize(
    ("day", "previous"),
    [
        (D(2026, 10, 8), D(2026, 9, 30)),  # first working day after National Day
        (D(2026, 10, 9), D(2026, 10, 8)),
        (D(2026, 10, 12), D(2026, 10, 10)),  # Monday after the swapped working Saturday
        (D(2026, 10, 13), D(2026, 10, 12)),
        (D(2026, 9, 28), D(2026, 9, 24)),  # Monday after Mid-autumn (Friday 09-25 is a holiday)
        (D(2026, 9, 21), D(2026, 9, 20)),  # Monday after the swapped working Sunday
        (D(2026, 10, 19), D(2026, 10, 16)),  # an ordinary Monday: Friday
    ],
)
def test_m8_medical_cancel_until_1730_previous_working_day(day: date, previous: date) -> None:
    start, end = slot(day, time(9, 0))
    assert cancel_deadline(MEDICAL, NATIONAL, day, start, end) == at(previous, "17:30")


def test_m8_medical_hall_closure_and_override() -> None:
    """ "Working day" is less the hall's closures; an override can make a day off a working day."""
    closed = WorkCalendar(closures=frozenset({D(2026, 9, 30), D(2026, 9, 29)}))
    start, end = slot(D(2026, 10, 8), time(9, 0))
    assert cancel_deadline(MEDICAL, closed, D(2026, 10, 8), start, end) == at(D(2026, 9, 28), "17:30")
    opened = WorkCalendar(overrides={D(2026, 10, 7): True})
    assert cancel_deadline(MEDICAL, opened, D(2026, 10, 8), start, end) == at(D(2026, 10, 7), "17:30")


# --- check-in windows ------------------------------------------------------------------------------


@FAST
@given(days, starts)
def test_t3_m7_checkin_windows(day: date, start_time: time) -> None:
    """City and Tianhe: 60 min before the start → the end (choice); M7: 15 min before → 15 min after."""
    start, end = slot(day, start_time)
    assert checkin_window(CITY, start, end) == (start - timedelta(minutes=60), end)
    assert checkin_window(TIANHE, start, end) == (start - timedelta(minutes=60), end)
    assert checkin_window(MEDICAL, start, end) == (start - timedelta(minutes=15), end + timedelta(minutes=15))


def test_m7_medical_slot_9_to_10_checks_in_845_to_1015() -> None:
    start, end = slot(D(2026, 10, 9), time(9, 0))
    assert checkin_window(MEDICAL, start, end) == (at(D(2026, 10, 9), "08:45"), at(D(2026, 10, 9), "10:15"))
    assert checkin_window(CITY, start, end) == (at(D(2026, 10, 9), "08:00"), at(D(2026, 10, 9), "10:00"))


# --- on-site share ------------------------------------------------------------------------------


@FAST
@given(st.integers(0, 100_000))
def test_g10_onsite_hold_is_floor_of_ten_percent(capacity: int) -> None:
    """G10: on-site is at most 10 %: floor(capacity × 10 %); off-site takes the rest."""
    hold = onsite_hold(CITY, capacity)
    assert hold == floor(Fraction(capacity) * Fraction(10, 100))
    offsite = capacity - hold
    assert offsite >= 0 and offsite + hold == capacity
    assert hold <= Fraction(capacity, 10) < hold + 1


@FAST
@given(st.integers(0, 100_000), st.integers(0, 100))
def test_g10_onsite_hold_for_any_share(capacity: int, pct: int) -> None:
    knobs = Knobs(**{**PRESETS["guangzhou-2021"], "onsite_share_pct": pct})
    hold = onsite_hold(knobs, capacity)
    assert hold == floor(Fraction(capacity * pct, 100))
    assert 0 <= hold <= capacity
    assert (capacity - hold) + hold == capacity


@pytest.mark.parametrize(("capacity", "hold"), [(0, 0), (9, 0), (10, 1), (19, 1), (20, 2), (105, 10)])
def test_g10_onsite_hold_examples(capacity: int, hold: int) -> None:
    assert onsite_hold(CITY, capacity) == hold
    assert onsite_hold(MEDICAL, capacity) == hold  # on-site share inherited from the city (docs/rules.md)
