"""The availability plan (decision 0013): an answer's layout and statuses are computed once and reused
while `now` stays before the plan's `until`. Property: for any moment in [since, until) the plan's
statuses are exactly what `offsite_status` says at that moment, for every policy preset."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.booking.availability import _plan
from yuyue.booking.rules import Context
from yuyue.calendar.service import WorkCalendar
from yuyue.catalogue.service import ServiceInfo, day_slots
from yuyue.clock import TZ
from yuyue.policy.presets import PRESETS
from yuyue.policy.service import offsite_status, resolve

INFO = ServiceInfo(
    id=7,
    name="居民身份证申领",
    department="公安户政",
    hall_id="hall-a",
    hall_name="测试大厅",
    hall_code="A1",
    hall_path="platform/hall-a/",
    hall_address="",
    hall_hotline="",
    hall_mode="appointment_priority",
    hours=(("09:00", "12:00"), ("13:00", "17:00")),
    business_types=(),
    daily_capacity=70,
    max_batch=1,
    walk_in_allowed=True,
    bundle_of=None,
    active=True,
)
CALENDAR = WorkCalendar(closures=frozenset({date(2026, 12, 9)}))
POLICIES = {
    name: Context(INFO, resolve("hall-a", ["hall-a"], {"hall-a": (name, {})}), CALENDAR) for name in PRESETS
}
MOMENTS = st.datetimes(min_value=datetime(2026, 11, 27), max_value=datetime(2026, 12, 12)).map(
    lambda moment: moment.replace(tzinfo=TZ)
)


@settings(max_examples=150, deadline=None)
@given(
    preset=st.sampled_from(sorted(PRESETS)),
    since=MOMENTS,
    later=st.floats(min_value=0, max_value=1),
    explicit=st.booleans(),
)
def test_plan_statuses_hold_until_until(preset: str, since: datetime, later: float, explicit: bool) -> None:
    ctx = POLICIES[preset]
    knobs = ctx.policy.knobs
    start = since.date() - timedelta(days=1) if explicit else None
    end = since.date() + timedelta(days=12) if explicit else None
    plan = _plan(ctx, INFO.id, start, end, since)
    assert plan.since == since < plan.until
    # any moment before `until`, with a bias towards the last microsecond before it
    now = min(since + (plan.until - since) * later, plan.until - timedelta(microseconds=1))
    if not explicit:  # the default range is the same seen from `now` (it only moves at midnight)
        assert _plan(ctx, INFO.id, None, None, now).days == plan.days
    for day in plan.days:
        specs = day_slots(INFO, date.fromisoformat(day.date)) if day.working_day else []
        assert [slot.id for slot in day.slots] == [spec.id for spec in specs]
        for slot, spec in zip(day.slots, specs, strict=True):
            for remaining, planned in ((1, slot.if_left), (0, slot.if_none)):
                expected = offsite_status(knobs, ctx.calendar, spec.day, spec.start, spec.end, remaining, now)
                assert planned == expected, (preset, since, now, slot.id, remaining)


def test_until_is_the_next_threshold() -> None:
    """City policy (rule G10), Tuesday 2026-12-01 17:00: the next change is 18:00, when a day opens."""
    ctx = POLICIES["guangzhou-2021"]
    plan = _plan(ctx, INFO.id, None, None, datetime(2026, 12, 1, 17, 0, tzinfo=TZ))
    assert plan.until == datetime(2026, 12, 1, 18, 0, tzinfo=TZ)
    after = _plan(ctx, INFO.id, None, None, plan.until)
    assert after.until == datetime(2026, 12, 2, 0, 0, tzinfo=TZ)  # midnight: tomorrow closes
    assert [d.slots[0].if_left for d in after.days if d.slots][-1] == "open"
    assert [d.slots[0].if_left for d in plan.days if d.slots][-1] == "not_yet_open"
