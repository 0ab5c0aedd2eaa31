"""Hourly slots and their capacity (rules G11, M13; docs/rules.md "Slots"), and slot ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.catalogue.service import ServiceInfo, day_slots, hourly_starts, parse_slot_id, slot_id
from yuyue.clock import TZ, at

FAST = settings(max_examples=200, deadline=None)
DAY = date(2026, 10, 9)


def service(
    hours: tuple[tuple[str, str], ...], daily_capacity: int = 60, service_id: int = 42
) -> ServiceInfo:
    return ServiceInfo(
        id=service_id,
        name="社保卡补换",
        department="医保窗口",
        hall_id="th-hall",
        hall_name="天河区政务服务中心",
        hall_code="04",
        hall_path="platform/tianhe/th-hall/",
        hall_address="广州市天河区天府路1号",
        hall_hotline="020-12345",
        hall_mode="appointment_priority",
        hours=hours,
        business_types=("其他业务", "异地就医业务"),
        daily_capacity=daily_capacity,
        max_batch=1,
        walk_in_allowed=False,
        bundle_of=None,
        active=True,
    )


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def opening_hours(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    """1–3 disjoint opening periods of the day, in any order."""
    marks = draw(st.lists(st.integers(0, 24 * 60 - 1), min_size=2, max_size=6, unique=True))
    marks = sorted(marks[: len(marks) // 2 * 2])
    periods = [(hhmm(marks[i]), hhmm(marks[i + 1])) for i in range(0, len(marks), 2)]
    return tuple(draw(st.permutations(periods)))


def ref_starts(hours: tuple[tuple[str, str], ...], day: date) -> list[datetime]:
    found = []
    for opening, closing in hours:
        first = datetime.combine(day, time.fromisoformat(opening), tzinfo=TZ)
        last = datetime.combine(day, time.fromisoformat(closing), tzinfo=TZ)
        found += [first + timedelta(hours=k) for k in range(int((last - first) / timedelta(hours=1)))]
    return sorted(found)


# --- slot times ---------------------------------------------------------------------------------


def test_g11_whole_hours_inside_opening_periods() -> None:
    """G11/M13: hourly `[start, start + 1 h)`, only whole hours that fit inside an opening period."""
    info = service((("09:00", "12:00"), ("13:30", "17:00")), daily_capacity=20)
    slots = day_slots(info, DAY)
    assert [s.start.strftime("%H:%M") for s in slots] == [
        "09:00",
        "10:00",
        "11:00",
        "13:30",
        "14:30",
        "15:30",
    ]
    assert [s.capacity for s in slots] == [4, 4, 3, 3, 3, 3]
    assert all(s.end - s.start == timedelta(hours=1) and s.day == DAY for s in slots)
    assert slots[0].id == "42-202610090900"
    assert slots[0].start == at(DAY, "09:00") and slots[0].start.tzinfo is not None


def test_g11_periods_given_afternoon_first_are_sorted() -> None:
    info = service((("13:30", "17:00"), ("09:00", "12:00")))
    assert [s.start.strftime("%H:%M") for s in day_slots(info, DAY)] == [
        "09:00",
        "10:00",
        "11:00",
        "13:30",
        "14:30",
        "15:30",
    ]


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ((), []),
        ((("09:00", "09:59"),), []),
        ((("09:00", "10:00"),), ["09:00"]),
        ((("09:00", "12:00"), ("12:00", "13:00")), ["09:00", "10:00", "11:00", "12:00"]),
        ((("08:30", "12:00"),), ["08:30", "09:30", "10:30"]),
    ],
)
def test_g11_hourly_starts_examples(hours: tuple[tuple[str, str], ...], expected: list[str]) -> None:
    assert [s.strftime("%H:%M") for s in hourly_starts(hours, DAY)] == expected


def test_g11_no_opening_hours_no_slots() -> None:
    assert day_slots(service((), daily_capacity=50), DAY) == []


@FAST
@given(opening_hours(), st.dates(date(2026, 1, 1), date(2030, 12, 31)))
def test_g11_m13_slot_starts_match_reference(hours: tuple[tuple[str, str], ...], day: date) -> None:
    starts = hourly_starts(hours, day)
    assert starts == ref_starts(hours, day)
    for start in starts:
        inside = [
            (o, c) for o, c in hours if at(day, o) <= start and start + timedelta(hours=1) <= at(day, c)
        ]
        assert inside, start


# --- capacity spread ------------------------------------------------------------------------------


@FAST
@given(opening_hours(), st.integers(0, 5000), st.one_of(st.none(), st.integers(0, 5000)))
def test_g11_capacity_spread_evenly_remainder_to_earliest(
    hours: tuple[tuple[str, str], ...], capacity: int, override: int | None
) -> None:
    """G11: daily capacity spread evenly over the day's hourly slots, remainder to the earliest."""
    info = service(hours, daily_capacity=capacity)
    slots = day_slots(info, DAY, override)
    total = capacity if override is None else override
    assert [s.start for s in slots] == hourly_starts(hours, DAY)
    if not slots:
        return
    capacities = [s.capacity for s in slots]
    assert sum(capacities) == total
    assert max(capacities) - min(capacities) <= 1
    assert capacities == sorted(capacities, reverse=True)
    assert capacities.count(total // len(slots) + 1) == total % len(slots)
    assert [s.id for s in slots] == [slot_id(info.id, s.start) for s in slots]
    assert all(s.end == s.start + timedelta(hours=1) for s in slots)


def test_g11_capacity_override_argument_beats_service_capacity() -> None:
    info = service((("09:00", "12:00"),), daily_capacity=30)
    assert [s.capacity for s in day_slots(info, DAY, 4)] == [2, 1, 1]
    assert [s.capacity for s in day_slots(replace(info, daily_capacity=2), DAY)] == [1, 1, 0]


# --- slot ids -----------------------------------------------------------------------------------


@FAST
@given(
    st.integers(1, 999_999_999),  # service ids start at 1
    st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59)).map(
        lambda d: d.replace(second=0, microsecond=0, tzinfo=TZ)
    ),
)
def test_g11_slot_id_round_trips(service_id: int, start: datetime) -> None:
    value = slot_id(service_id, start)
    assert parse_slot_id(value) == (service_id, start)
    parsed = parse_slot_id(value)
    assert parsed is not None and parsed[1].tzinfo is not None
    assert slot_id(*parsed) == value


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "abc",
        "42",
        "42-",
        "-202610090900",
        "42-20261009090",  # 11 digits
        "42-2026100909000",  # 13 digits
        "42_202610090900",
        "42-2026-10-09T09:00",
        "x42-202610090900",
        "42-202610090900x",
        " 42-202610090900",
        "1234567890-202610090900",  # service id longer than 9 digits
        "42-202602300900",  # 30 February
        "42-202613090900",  # month 13
        "42-202610000900",  # day 0
        "42-202610092400",  # hour 24
        "42-202610090960",  # minute 60
        "42-000010090900",  # year 0
        "４２-２０２６１００９０９００",  # full-width digits
    ],
)
def test_g11_garbage_slot_ids_give_none(garbage: str) -> None:
    assert parse_slot_id(garbage) is None


def test_g11_slot_id_with_trailing_newline_gives_none() -> None:
    assert parse_slot_id("42-202610090900\n") is None


def test_g11_only_canonical_slot_ids_parse() -> None:
    value = "042-202610090900"
    parsed = parse_slot_id(value)
    assert parsed is None or slot_id(*parsed) == value


@FAST
@given(st.text(max_size=30))
def test_g11_anything_that_parses_is_shaped_like_a_slot_id(value: str) -> None:
    parsed = parse_slot_id(value)
    if parsed is not None:
        service_id, start = parsed
        assert value.rstrip("\n").endswith(f"{start:%Y%m%d%H%M}")
        assert int(value.split("-")[0]) == service_id
