"""Property tests of the call order (rule T4) and the wait estimate: one pure function each."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.clock import TZ
from yuyue.onsite.order import GREEN, IN_SLOT, OTHERS, Desk, Waiting, call_order, estimates, tier

BASE = datetime(2026, 12, 3, 8, 0, tzinfo=TZ)
minutes = st.integers(min_value=0, max_value=600).map(lambda m: BASE + timedelta(minutes=m))


@st.composite
def tickets(draw: st.DrawFn) -> list[Waiting]:
    count = draw(st.integers(min_value=0, max_value=25))
    out = []
    for i in range(count):
        kind = draw(st.sampled_from(["appointment", "walk_in", "green"]))
        issued = draw(minutes)
        if kind == "appointment":
            start = BASE.replace(hour=draw(st.integers(min_value=9, max_value=16)))
            booked = BASE - timedelta(
                days=draw(st.integers(min_value=1, max_value=10)), minutes=draw(st.integers(0, 1440))
            )
            out.append(
                Waiting(
                    f"T{i:03d}",
                    kind,
                    draw(st.integers(1, 3)),
                    issued,
                    booked,
                    start,
                    start + timedelta(hours=1),
                )
            )
        else:
            out.append(Waiting(f"T{i:03d}", kind, draw(st.integers(1, 3)), issued))
    return out


@settings(max_examples=300, deadline=None)
@given(tickets(), minutes, st.randoms(use_true_random=False))
def test_order_is_a_permutation_independent_of_input_order(
    batch: list[Waiting], now: datetime, rnd: object
) -> None:
    ordered = call_order(batch, now)
    assert sorted(t.number for t in ordered) == sorted(t.number for t in batch)
    shuffled = list(batch)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert call_order(shuffled, now) == ordered


@settings(max_examples=300, deadline=None)
@given(tickets(), minutes)
def test_tiers_never_interleave_and_each_tier_is_sorted_as_t4_says(
    batch: list[Waiting], now: datetime
) -> None:
    ordered = call_order(batch, now)
    tiers = [tier(t, now) for t in ordered]
    assert tiers == sorted(tiers)  # green, then appointments in their slot, then everyone else
    green = [t for t in ordered if tier(t, now) == GREEN]
    assert all(t.kind == "green" for t in green)
    assert [t.issued_at for t in green] == sorted(t.issued_at for t in green)
    in_slot = [t for t in ordered if tier(t, now) == IN_SLOT]
    for t in in_slot:  # rule T4: inside its slot and checked in before its end
        assert t.kind == "appointment" and t.slot_start is not None and t.slot_end is not None
        assert t.slot_start <= now < t.slot_end and t.issued_at < t.slot_end
    assert [t.booked_at for t in in_slot] == sorted(
        t.booked_at for t in in_slot if t.booked_at
    )  # earlier booking
    others = [t for t in ordered if tier(t, now) == OTHERS]
    assert [t.issued_at for t in others] == sorted(t.issued_at for t in others)  # by ticket time


@settings(max_examples=200, deadline=None)
@given(tickets(), minutes)
def test_a_walk_in_never_passes_an_appointment_inside_its_slot(batch: list[Waiting], now: datetime) -> None:
    ordered = call_order(batch, now)
    seen_walk_in = False
    for ticket in ordered:
        if ticket.kind == "walk_in":
            seen_walk_in = True
        if seen_walk_in:
            assert tier(ticket, now) != IN_SLOT


def test_late_checkin_and_early_checkin_fall_back_to_ticket_time() -> None:
    start = BASE.replace(hour=9)
    late = Waiting(
        "A1", "appointment", 1, start + timedelta(hours=1, minutes=5), BASE, start, start + timedelta(hours=1)
    )
    walk = Waiting("W1", "walk_in", 1, start)
    now = start + timedelta(hours=1, minutes=10)
    assert [t.number for t in call_order([late, walk], now)] == ["W1", "A1"]
    early = Waiting(
        "A2", "appointment", 1, start - timedelta(minutes=30), BASE, start, start + timedelta(hours=1)
    )
    walk_first = Waiting("W2", "walk_in", 1, start - timedelta(minutes=40))
    before = start - timedelta(minutes=5)
    assert [t.number for t in call_order([early, walk_first], before)] == ["W2", "A2"]
    assert [t.number for t in call_order([early, walk_first], start)] == ["A2", "W2"]  # its slot began


@settings(max_examples=200, deadline=None)
@given(
    tickets(),
    minutes,
    st.lists(st.tuples(st.booleans(), st.none() | st.frozensets(st.integers(1, 3), min_size=1)), max_size=4),
    st.floats(min_value=1, max_value=3600),
)
def test_estimates_follow_the_formula(
    batch: list[Waiting], now: datetime, raw_desks: list, mean: float
) -> None:
    desks = [Desk(open_, ids) for open_, ids in raw_desks]
    ordered = call_order(batch, now)
    waits = estimates(ordered, desks, {1: mean, 2: mean, 3: mean})
    for index, (ticket, wait) in enumerate(zip(ordered, waits, strict=True)):
        able = [d for d in desks if d.open and (d.service_ids is None or ticket.service_id in d.service_ids)]
        if not able:
            assert wait is None
            continue
        assert wait is not None and wait >= 0
        assert wait <= round(index * mean / len(able)) + 1  # never more people ahead than before it
    served = [w for w in waits if w is not None]
    if served and all(d.open and d.service_ids is None for d in desks):
        assert served == sorted(served)  # with counters that serve all, waits grow along the queue
