"""Booking horizons (docs/rules.md "How the platform reads them"): city G10, Tianhe T6, medical
insurance M4/M5, and the on-site share's opening (G10).

The dates below are the real 2026 national calendar (chinese-calendar 1.11): Mid-autumn
2026-09-25..27, National Day 2026-10-01..07, swapped working days Sunday 2026-09-20 and
Saturday 2026-10-10; 2026-10-08 (Thursday) is a working day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import chinese_calendar
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from yuyue.calendar.service import WorkCalendar
from yuyue.clock import TZ, at
from yuyue.policy.presets import PRESETS, Knobs
from yuyue.policy.service import (
    booking_closes_at,
    cancel_deadline,
    day_opens_at,
    horizon_end,
    offsite_status,
    onsite_status,
    resolve,
)

FAST = settings(max_examples=200, deadline=None)

CITY = Knobs(**PRESETS["guangzhou-2021"])
TIANHE = Knobs(**{**PRESETS["guangzhou-2021"], **PRESETS["tianhe"]})
MEDICAL = Knobs(**{**PRESETS["guangzhou-2021"], **PRESETS["gz-medical-insurance"]})
NATIONAL = WorkCalendar()
D = date  # short alias for the many literal dates


# --- an independent reference: working days and the three horizons, by brute force ---------------


def ref_working(day: date, calendar: WorkCalendar) -> bool:
    """Working day per docs/rules.md: overrides, else the package, else Mon–Fri; less closures."""
    if day in calendar.closures:
        return False
    if day in calendar.overrides:
        return calendar.overrides[day]
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def ref_working_days_after(day: date, count: int, calendar: WorkCalendar) -> list[date]:
    found: list[date] = []
    current = day
    while len(found) < count:
        current += timedelta(days=1)
        if ref_working(current, calendar):
            found.append(current)
    return found


def ref_in_horizon(knobs: Knobs, calendar: WorkCalendar, day: date, now: datetime) -> bool:
    """Is `day` inside the off-site horizon at `now` (ignoring the M5 cut-off and today)?"""
    today = now.date()
    if knobs is CITY:  # G10: D is today from 18:00, else yesterday; up to the 10th working day after D
        d = today if now.time() >= time(18, 0) else today - timedelta(days=1)
        return day > today and day <= ref_working_days_after(d, 10, calendar)[-1]
    if knobs is TIANHE:  # T6: calendar days 1..13, day 14 from 12:00
        ahead = (day - today).days
        return 1 <= ahead <= 13 or (ahead == 14 and now.time() >= time(12, 0))
    assert knobs is MEDICAL  # M4: working days 1..5 after today
    return day > today and day <= ref_working_days_after(today, 5, calendar)[-1]


def ref_status(
    knobs: Knobs,
    calendar: WorkCalendar,
    day: date,
    start: datetime,
    end: datetime,
    remaining: int,
    now: datetime,
) -> str:
    if now >= end:
        return "past"
    if now.date() >= day or now >= start:  # G10: today is never booked off-site
        return "closed_for_booking"
    if knobs is MEDICAL and now >= datetime.combine(day - timedelta(days=1), time(17, 30), tzinfo=TZ):  # M5
        return "closed_for_booking"
    if not ref_in_horizon(knobs, calendar, day, now):
        return "not_yet_open"
    return "full" if remaining <= 0 else "open"


# --- strategies ---------------------------------------------------------------------------------

EDGE_MINUTES = [0, 9 * 60, 11 * 60 + 59, 12 * 60, 12 * 60 + 1, 17 * 60 + 29, 17 * 60 + 30, 17 * 60 + 59]
EDGE_MINUTES += [18 * 60, 18 * 60 + 1, 23 * 60 + 59]


@st.composite
def nows(draw: st.DrawFn) -> datetime:
    """A moment in 2026, often around National Day and often on a rule's edge minute."""
    day = draw(
        st.one_of(st.dates(D(2026, 1, 1), D(2026, 12, 31)), st.dates(D(2026, 9, 15), D(2026, 10, 20))),
    )
    minute = draw(st.one_of(st.integers(0, 24 * 60 - 1), st.sampled_from(EDGE_MINUTES)))
    second = draw(st.sampled_from([0, 0, 0, 59]))
    return datetime.combine(day, time(minute // 60, minute % 60, second), tzinfo=TZ)


special_days = st.one_of(st.dates(D(2026, 1, 1), D(2027, 3, 31)), st.dates(D(2026, 9, 15), D(2026, 11, 15)))
calendars = st.builds(
    lambda closed, overrides: WorkCalendar(overrides=overrides, closures=frozenset(closed)),
    st.sets(special_days, max_size=6),
    st.dictionaries(special_days, st.booleans(), max_size=6),
)
slot_hours = st.sampled_from([time(9, 0), time(10, 0), time(13, 30), time(16, 0), time(20, 0)])


def slot(day: date, hhmm: str = "09:00") -> tuple[datetime, datetime]:
    start = at(day, hhmm)
    return start, start + timedelta(hours=1)


# --- G10 city ------------------------------------------------------------------------------------


@FAST
@given(calendars, nows(), st.integers(-3, 30), slot_hours, st.integers(-1, 3))
@example(NATIONAL, datetime(2026, 9, 24, 17, 59, tzinfo=TZ), 21, time(9, 0), 1)
@example(NATIONAL, datetime(2026, 9, 24, 18, 0, tzinfo=TZ), 21, time(9, 0), 1)
def test_g10_city_open_iff_within_ten_working_days_after_release_day(
    calendar: WorkCalendar, now: datetime, ahead: int, hour: time, remaining: int
) -> None:
    """G10: a working day X is open iff today < X <= the 10th working day after D
    (D = today from 18:00, else yesterday); checked against a brute-force count."""
    day = now.date() + timedelta(days=ahead)
    if not ref_working(day, calendar):
        return
    start = datetime.combine(day, hour, tzinfo=TZ)
    end = start + timedelta(hours=1)
    status = offsite_status(CITY, calendar, day, start, end, remaining, now)
    assert status == ref_status(CITY, calendar, day, start, end, remaining, now)
    if day > now.date():
        assert (now >= day_opens_at(CITY, calendar, day)) == ref_in_horizon(CITY, calendar, day, now)


@FAST
@given(calendars, nows(), slot_hours, st.sampled_from([CITY, TIANHE, MEDICAL]))
def test_g10_today_never_open_offsite(
    calendar: WorkCalendar, now: datetime, hour: time, knobs: Knobs
) -> None:
    """G10: today's slots are never booked off-site, under every preset."""
    start = datetime.combine(now.date(), hour, tzinfo=TZ)
    status = offsite_status(knobs, calendar, now.date(), start, start + timedelta(hours=1), 5, now)
    assert status in ("closed_for_booking", "past")
    assert status == ("past" if now >= start + timedelta(hours=1) else "closed_for_booking")


# Thursday 2026-09-24: the working days after it are 09-28, 09-29, 09-30, 10-08, 10-09, 10-10 (Sat),
# 10-12, 10-13, 10-14, 10-15, 10-16 … and 09-24 itself is the 1st working day after 09-23.


@pytest.mark.parametrize(
    ("hhmm", "last_open"),
    [
        ("00:00", D(2026, 10, 14)),
        ("17:59", D(2026, 10, 14)),
        ("18:00", D(2026, 10, 15)),
        ("18:01", D(2026, 10, 15)),
    ],
)
def test_g10_city_edges_around_18(hhmm: str, last_open: date) -> None:
    """G10: before 18:00 on a working day days 1–9 are open, from 18:00 days 1–10."""
    now = at(D(2026, 9, 24), hhmm)
    for day in (D(2026, 9, 28), D(2026, 10, 10), D(2026, 10, 14), D(2026, 10, 15), D(2026, 10, 16)):
        expected = "open" if day <= last_open else "not_yet_open"
        assert offsite_status(CITY, NATIONAL, day, *slot(day), 3, now) == expected, (hhmm, day)


def test_g10_city_exact_opening_minute() -> None:
    """G10: 2026-10-15 opens at 18:00 on 09-24; the swapped Saturday 10-10 opens at 18:00 on the
    swapped working Sunday 09-20; 10-16 opens on 09-28 (the holiday days in between do not count)."""
    assert day_opens_at(CITY, NATIONAL, D(2026, 10, 15)) == at(D(2026, 9, 24), "18:00")
    assert day_opens_at(CITY, NATIONAL, D(2026, 10, 10)) == at(D(2026, 9, 20), "18:00")
    assert day_opens_at(CITY, NATIONAL, D(2026, 10, 16)) == at(D(2026, 9, 28), "18:00")
    assert day_opens_at(CITY, NATIONAL, D(2026, 10, 8)) == at(D(2026, 9, 17), "18:00")
    day = D(2026, 10, 15)
    assert offsite_status(CITY, NATIONAL, day, *slot(day), 1, at(D(2026, 9, 24), "17:59")) == "not_yet_open"
    assert offsite_status(CITY, NATIONAL, day, *slot(day), 1, at(D(2026, 9, 24), "18:00")) == "open"
    assert offsite_status(CITY, NATIONAL, day, *slot(day), 0, at(D(2026, 9, 24), "18:00")) == "full"


@pytest.mark.parametrize(
    ("now", "last_open"),
    [
        (datetime(2026, 9, 25, 10, 0, tzinfo=TZ), D(2026, 10, 15)),  # Mid-autumn holiday
        (datetime(2026, 9, 26, 18, 30, tzinfo=TZ), D(2026, 10, 15)),  # Saturday, after 18:00
        (datetime(2026, 9, 27, 23, 59, tzinfo=TZ), D(2026, 10, 15)),
        (datetime(2026, 9, 28, 17, 59, tzinfo=TZ), D(2026, 10, 15)),  # Monday before 18:00
        (datetime(2026, 9, 28, 18, 0, tzinfo=TZ), D(2026, 10, 16)),  # Monday from 18:00
        (datetime(2026, 9, 30, 18, 0, tzinfo=TZ), D(2026, 10, 20)),  # last working day before the holiday
        (datetime(2026, 10, 3, 12, 0, tzinfo=TZ), D(2026, 10, 20)),  # inside National Day
        (datetime(2026, 10, 8, 17, 59, tzinfo=TZ), D(2026, 10, 20)),  # first working day after it
        (datetime(2026, 10, 8, 18, 0, tzinfo=TZ), D(2026, 10, 21)),
    ],
)
def test_g10_city_day_once_opened_stays_open_over_holidays(now: datetime, last_open: date) -> None:
    """G10: one new day opens each working day at 18:00; nothing opens on days off."""
    day = last_open
    assert offsite_status(CITY, NATIONAL, day, *slot(day), 1, now) == "open"
    following = NATIONAL.nth_working_after(last_open, 1)
    assert offsite_status(CITY, NATIONAL, following, *slot(following), 1, now) == "not_yet_open"


def test_g10_city_hall_closure_and_override_shift_the_horizon() -> None:
    """G10 + "Working day": a hall closure does not count as a working day; an override does."""
    closed = WorkCalendar(closures=frozenset({D(2026, 10, 13)}))
    now = at(D(2026, 9, 24), "18:00")
    assert horizon_end(CITY, closed, now.date()) == D(2026, 10, 16)
    assert offsite_status(CITY, closed, D(2026, 10, 16), *slot(D(2026, 10, 16)), 1, now) == "open"
    # a platform override making Thursday 10-01 a working day pulls the 10th working day back
    extra = WorkCalendar(overrides={D(2026, 10, 1): True})
    assert horizon_end(CITY, extra, now.date()) == D(2026, 10, 14)
    assert day_opens_at(CITY, extra, D(2026, 10, 15)) == at(D(2026, 9, 28), "18:00")


# --- T6 Tianhe ----------------------------------------------------------------------------------


def test_t6_tianhe_knobs_equal_the_resolved_district_policy() -> None:
    rows = {"platform": ("guangzhou-2021", {}), "tianhe": ("tianhe", {})}
    assert resolve("tianhe", ["platform", "tianhe"], rows).knobs == TIANHE


@FAST
@given(calendars, nows(), st.integers(-2, 20), slot_hours)
def test_t6_tianhe_days_1_to_13_open_day_14_from_noon(
    calendar: WorkCalendar, now: datetime, ahead: int, hour: time
) -> None:
    """T6: calendar days 1–13 after today are open, day 14 from 12:00 today."""
    day = now.date() + timedelta(days=ahead)
    start = datetime.combine(day, hour, tzinfo=TZ)
    end = start + timedelta(hours=1)
    status = offsite_status(TIANHE, calendar, day, start, end, 2, now)
    assert status == ref_status(TIANHE, calendar, day, start, end, 2, now)
    if ahead >= 1:
        assert (now >= day_opens_at(TIANHE, calendar, day)) == ref_in_horizon(TIANHE, calendar, day, now)


@pytest.mark.parametrize(
    ("hhmm", "day14_open"), [("00:00", False), ("11:59", False), ("12:00", True), ("12:01", True)]
)
def test_t6_tianhe_day_14_edges(hhmm: str, day14_open: bool) -> None:
    today = D(2026, 9, 24)
    now = at(today, hhmm)
    for ahead in range(1, 14):
        day = today + timedelta(days=ahead)
        assert offsite_status(TIANHE, NATIONAL, day, *slot(day), 1, now) == "open"
    day14 = today + timedelta(days=14)  # 2026-10-08
    assert offsite_status(TIANHE, NATIONAL, day14, *slot(day14), 1, now) == (
        "open" if day14_open else "not_yet_open"
    )
    day15 = today + timedelta(days=15)
    assert offsite_status(TIANHE, NATIONAL, day15, *slot(day15), 1, now) == "not_yet_open"
    assert day_opens_at(TIANHE, NATIONAL, day14) == at(today, "12:00")


# --- M4, M5 medical insurance -------------------------------------------------------------------


@FAST
@given(calendars, nows(), st.integers(-3, 30), slot_hours)
@example(NATIONAL, datetime(2026, 10, 18, 17, 29, tzinfo=TZ), 1, time(9, 0))
@example(NATIONAL, datetime(2026, 10, 18, 17, 30, tzinfo=TZ), 1, time(9, 0))
def test_m4_m5_medical_working_days_1_to_5_until_1730_day_before(
    calendar: WorkCalendar, now: datetime, ahead: int, hour: time
) -> None:
    """M4: working days 1–5 after today; M5: a slot closes at 17:30 of the calendar day before."""
    day = now.date() + timedelta(days=ahead)
    if not ref_working(day, calendar):
        return
    start = datetime.combine(day, hour, tzinfo=TZ)
    end = start + timedelta(hours=1)
    status = offsite_status(MEDICAL, calendar, day, start, end, 4, now)
    assert status == ref_status(MEDICAL, calendar, day, start, end, 4, now)
    assert booking_closes_at(MEDICAL, day, start) == at(day - timedelta(days=1), "17:30")
    if day > now.date():
        assert (now >= day_opens_at(MEDICAL, calendar, day)) == ref_in_horizon(MEDICAL, calendar, day, now)


@pytest.mark.parametrize(("hhmm", "expected"), [("17:29", "open"), ("17:30", "closed_for_booking")])
def test_m5_medical_cutoff_edges(hhmm: str, expected: str) -> None:
    day = D(2026, 9, 29)
    assert booking_closes_at(MEDICAL, day, at(day, "09:00")) == at(D(2026, 9, 28), "17:30")
    assert offsite_status(MEDICAL, NATIONAL, day, *slot(day), 1, at(D(2026, 9, 28), hhmm)) == expected


def test_m4_medical_fifth_working_day_opens_at_midnight() -> None:
    """M4: on 09-24 the 5th working day ahead is 10-09 (holidays skipped); the swapped Saturday
    10-10 is the 6th and not yet open."""
    assert horizon_end(MEDICAL, NATIONAL, D(2026, 9, 24)) == D(2026, 10, 9)
    assert day_opens_at(MEDICAL, NATIONAL, D(2026, 10, 9)) == at(D(2026, 9, 24), "00:00")
    day = D(2026, 10, 9)
    assert offsite_status(
        MEDICAL, NATIONAL, day, *slot(day), 1, datetime(2026, 9, 23, 23, 59, tzinfo=TZ)
    ) == ("not_yet_open")
    assert offsite_status(MEDICAL, NATIONAL, day, *slot(day), 1, at(D(2026, 9, 24), "00:00")) == "open"
    day = D(2026, 10, 10)
    assert (
        offsite_status(MEDICAL, NATIONAL, day, *slot(day), 1, at(D(2026, 9, 24), "23:59")) == "not_yet_open"
    )


def test_m5_m8_monday_slot_cancel_friday_book_until_sunday() -> None:
    """docs/rules.md: for a Monday slot the cancel deadline is the previous Friday 17:30 (M8), while
    booking stays open until Sunday 17:30 (M5)."""
    monday = D(2026, 10, 19)
    start, end = slot(monday)
    assert cancel_deadline(MEDICAL, NATIONAL, monday, start, end) == at(D(2026, 10, 16), "17:30")
    assert booking_closes_at(MEDICAL, monday, start) == at(D(2026, 10, 18), "17:30")
    saturday_noon = at(D(2026, 10, 17), "12:00")
    assert offsite_status(MEDICAL, NATIONAL, monday, start, end, 1, saturday_noon) == "open"
    assert saturday_noon > cancel_deadline(MEDICAL, NATIONAL, monday, start, end)
    assert offsite_status(MEDICAL, NATIONAL, monday, start, end, 1, at(D(2026, 10, 18), "17:29")) == "open"
    assert offsite_status(MEDICAL, NATIONAL, monday, start, end, 1, at(D(2026, 10, 18), "17:30")) == (
        "closed_for_booking"
    )


# --- horizon_end ----------------------------------------------------------------------------------


def test_horizon_end_examples() -> None:
    """G10, T6, M4 seen from Thursday 2026-09-24."""
    today = D(2026, 9, 24)
    assert horizon_end(CITY, NATIONAL, today) == D(2026, 10, 15)
    assert horizon_end(TIANHE, NATIONAL, today) == D(2026, 10, 8)
    assert horizon_end(MEDICAL, NATIONAL, today) == D(2026, 10, 9)


@FAST
@given(calendars, st.dates(D(2026, 1, 1), D(2026, 12, 31)))
def test_horizon_end_is_the_last_day_open_by_the_end_of_today(calendar: WorkCalendar, today: date) -> None:
    """G10/M4: the n-th working day after today, open by 23:59 today while the next working day
    is not; T6: today + 14, opening at 12:00 today."""
    late = at(today, "23:59")
    for knobs, n in ((CITY, 10), (MEDICAL, 5)):
        end = horizon_end(knobs, calendar, today)
        assert end == ref_working_days_after(today, n, calendar)[-1]
        assert offsite_status(knobs, calendar, end, *slot(end), 1, late) == "open"
        following = ref_working_days_after(end, 1, calendar)[0]
        assert offsite_status(knobs, calendar, following, *slot(following), 1, late) == "not_yet_open"
    end = horizon_end(TIANHE, calendar, today)
    assert end == today + timedelta(days=14)
    assert day_opens_at(TIANHE, calendar, end) == at(today, "12:00")


# --- G10 on-site --------------------------------------------------------------------------------


@FAST
@given(calendars, nows(), st.integers(-1, 2), slot_hours, st.sampled_from([CITY, TIANHE, MEDICAL]))
def test_g10_onsite_books_todays_slots_from_9_on_working_days(
    calendar: WorkCalendar, now: datetime, ahead: int, hour: time, knobs: Knobs
) -> None:
    """G10: on-site booking takes today's slots, from 09:00 on working days, until the slot ends."""
    day = now.date() + timedelta(days=ahead)
    start = datetime.combine(day, hour, tzinfo=TZ)
    end = start + timedelta(hours=1)
    if now >= end:
        expected = "past"
    elif ahead == 0 and ref_working(day, calendar) and now.time() >= time(9, 0):
        expected = "open"
    else:
        expected = "not_yet_open"
    assert onsite_status(knobs, calendar, day, end, now) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 9, 24, 8, 59, tzinfo=TZ), "not_yet_open"),
        (datetime(2026, 9, 24, 9, 0, tzinfo=TZ), "open"),
        (datetime(2026, 9, 24, 16, 59, tzinfo=TZ), "open"),
        (datetime(2026, 9, 24, 17, 0, tzinfo=TZ), "past"),
        (datetime(2026, 10, 10, 9, 30, tzinfo=TZ), "open"),  # swapped working Saturday
        (datetime(2026, 10, 2, 9, 30, tzinfo=TZ), "not_yet_open"),  # National Day
    ],
)
def test_g10_onsite_edges(now: datetime, expected: str) -> None:
    end = at(now.date(), "17:00")  # the 16:00–17:00 slot of that day
    assert onsite_status(CITY, NATIONAL, now.date(), end, now) == expected
