"""Property tests of the penalty rules (rules G15, M9) against docs/rules.md "Penalties"."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.penalties.rules import Decision, Miss, add_months, evaluate

START = date(2026, 12, 1)
days = st.integers(min_value=0, max_value=60).map(lambda n: START + timedelta(days=n))


def replay(rule: str, misses: list[Miss]) -> list[Decision]:
    """Mark misses in order, as the sweep does; used-up misses leave the pool."""
    pool: list[Miss] = []
    out: list[Decision] = []
    for miss in misses:
        pool.append(miss)
        for decision in evaluate(rule, pool, miss):
            out.append(decision)
            pool = [m for m in pool if m.key not in decision.used]
    return out


@st.composite
def history(draw: st.DrawFn) -> list[Miss]:
    picked = draw(st.lists(st.tuples(days, st.integers(1, 4)), max_size=20))
    return [Miss(i, service, day) for i, (day, service) in enumerate(sorted(picked, key=lambda p: p[0]))]


def test_examples_of_rules_md() -> None:
    d = date(2026, 12, 3)
    ban = evaluate("city", [Miss(1, 1, d)], Miss(2, 2, d))
    assert [(b.until, b.used) for b in ban] == [(date(2026, 12, 13), (1, 2))]  # 12-03 -> through 12-13
    same = [Miss(1, 1, date(2026, 12, 1)), Miss(2, 1, date(2026, 12, 5))]
    assert [b.until for b in evaluate("city", same, Miss(3, 1, date(2026, 12, 9)))] == [date(2027, 1, 9)]
    medical = [Miss(1, 1, date(2026, 12, 1)), Miss(2, 2, date(2026, 12, 2))]
    assert [b.until for b in evaluate("medical_insurance", medical, Miss(3, 1, date(2026, 12, 9)))] == [
        date(2027, 3, 9)
    ]
    assert evaluate("none", medical, Miss(3, 1, date(2026, 12, 9))) == []
    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    # 10 days means both ends within ten calendar days: 12-01 and 12-10 count, 12-11 does not reach 12-01
    ten = [Miss(1, 1, date(2026, 12, 1)), Miss(2, 1, date(2026, 12, 5))]
    assert evaluate("city", ten, Miss(3, 1, date(2026, 12, 10))) != []
    assert evaluate("city", ten, Miss(3, 1, date(2026, 12, 11))) == []


@settings(max_examples=300, deadline=None)
@given(history())
def test_medical_every_third_no_show_bans_three_months(misses: list[Miss]) -> None:
    bans = replay("medical_insurance", misses)
    assert len(bans) == len(misses) // 3
    for n, ban in enumerate(bans):
        third = misses[3 * n + 2]
        assert ban.used == tuple(m.key for m in misses[3 * n : 3 * n + 3])
        assert ban.until == add_months(third.day, 3)


@settings(max_examples=300, deadline=None)
@given(history())
def test_city_bans_are_justified_and_use_each_miss_once(misses: list[Miss]) -> None:
    by_key = {m.key: m for m in misses}
    used: list[int] = []
    for ban in replay("city", misses):
        group = [by_key[k] for k in ban.used]
        used.extend(ban.used)
        if len({m.day for m in group}) == 1 and len({m.service_id for m in group}) >= 2:
            assert ban.until == group[0].day + timedelta(days=10)  # rule G15 (a)
        else:  # rule G15 (b): one service, 3+ within 10 days, a month from the last
            assert len({m.service_id for m in group}) == 1 and len(group) >= 3
            last = max(m.day for m in group)
            assert (last - min(m.day for m in group)).days <= 9
            assert ban.until == add_months(last, 1)
    assert len(used) == len(set(used))  # a no-show is used up by one ban at most


@settings(max_examples=300, deadline=None)
@given(history())
def test_city_leaves_no_unpunished_pattern(misses: list[Miss]) -> None:
    """After replaying, the misses no ban used up hold no day with 2+ services and no service
    with 3 within 10 days that ends on a marked miss."""
    used = {k for ban in replay("city", misses) for k in ban.used}
    left = [m for m in misses if m.key not in used]
    for m in left:
        same_day = {x.service_id for x in left if x.day == m.day}
        assert len(same_day) < 2
        window = [
            x for x in left if x.service_id == m.service_id and m.day - timedelta(days=9) <= x.day <= m.day
        ]
        assert len(window) < 3
