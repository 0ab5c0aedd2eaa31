"""Property tests of the penalty rules (rules G15, M9) against docs/rules.md "Penalties" and "Items"."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.penalties.rules import Decision, Miss, add_months, evaluate

START = date(2026, 12, 1)
days = st.integers(min_value=0, max_value=60).map(lambda n: START + timedelta(days=n))


def replay(rule: str, misses: list[Miss]) -> list[Decision]:
    """Mark misses in order, as the sweep does; a ban uses its misses up for its own count only."""
    pool: list[Miss] = []
    out: list[Decision] = []
    for miss in misses:
        pool.append(miss)
        for decision in evaluate(rule, pool, pool[-1]):
            out.append(decision)
            pool = [replace(m, used=m.used | {decision.count}) if m.key in decision.used else m for m in pool]
    return out


@st.composite
def history(draw: st.DrawFn) -> list[Miss]:
    picked = draw(st.lists(st.tuples(days, st.sampled_from("ABCD")), max_size=20))
    return [Miss(i, item, day) for i, (day, item) in enumerate(sorted(picked, key=lambda p: p[0]))]


def test_examples_of_rules_md() -> None:
    d = date(2026, 12, 3)
    ban = evaluate("city", [Miss(1, "A", d)], Miss(2, "B", d))
    assert [(b.until, b.used, b.count) for b in ban] == [
        (date(2026, 12, 13), (1, 2), "day")
    ]  # 12-03 -> 12-13
    same = [Miss(1, "A", date(2026, 12, 1)), Miss(2, "A", date(2026, 12, 5))]
    assert [b.until for b in evaluate("city", same, Miss(3, "A", date(2026, 12, 9)))] == [date(2027, 1, 9)]
    medical = [Miss(1, "A", date(2026, 12, 1)), Miss(2, "B", date(2026, 12, 2))]
    assert [b.until for b in evaluate("medical_insurance", medical, Miss(3, "A", date(2026, 12, 9)))] == [
        date(2027, 3, 9)
    ]
    assert evaluate("none", medical, Miss(3, "A", date(2026, 12, 9))) == []
    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    # 10 days means both ends within ten calendar days: 12-01 and 12-10 count, 12-11 does not reach 12-01
    ten = [Miss(1, "A", date(2026, 12, 1)), Miss(2, "A", date(2026, 12, 5))]
    assert evaluate("city", ten, Miss(3, "A", date(2026, 12, 10))) != []
    assert evaluate("city", ten, Miss(3, "A", date(2026, 12, 11))) == []
    # one item at two halls is one item (docs/rules.md "Items"): not "different items" in one day
    assert evaluate("city", [Miss(1, "i:440100-GA-0001", d)], Miss(2, "i:440100-GA-0001", d)) == []


def test_the_issue_example_both_orders() -> None:
    """A on 12-01 and 12-02, then on 12-03 B and A: both bans, whichever is marked first."""
    a1, a2 = Miss(1, "A", date(2026, 12, 1)), Miss(2, "A", date(2026, 12, 2))
    b3, a3 = Miss(3, "B", date(2026, 12, 3)), Miss(4, "A", date(2026, 12, 3))
    for order in ([a1, a2, b3, a3], [a1, a2, a3, b3]):
        bans = replay("city", order)
        assert sorted((b.count, b.until) for b in bans) == [
            ("day", date(2026, 12, 13)),
            ("item", date(2027, 1, 3)),
        ]


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
def test_city_bans_are_justified_and_use_each_miss_once_per_count(misses: list[Miss]) -> None:
    by_key = {m.key: m for m in misses}
    used: dict[str, list[int]] = {"day": [], "item": []}
    for ban in replay("city", misses):
        group = [by_key[k] for k in ban.used]
        used[ban.count].extend(ban.used)
        if ban.count == "day":  # rule G15 (a): one day, 2+ items, 10 days after it
            assert len({m.day for m in group}) == 1 and len({m.item for m in group}) >= 2
            assert ban.until == group[0].day + timedelta(days=10)
        else:  # rule G15 (b): one item, 3+ within 10 days, a month from the last
            assert ban.count == "item"
            assert len({m.item for m in group}) == 1 and len(group) >= 3
            last = max(m.day for m in group)
            assert (last - min(m.day for m in group)).days <= 9
            assert ban.until == add_months(last, 1)
    for keys in used.values():
        assert len(keys) == len(set(keys))  # a no-show is used up by one ban at most per count


@settings(max_examples=300, deadline=None)
@given(history())
def test_city_leaves_no_unpunished_pattern(misses: list[Miss]) -> None:
    """After replaying, the misses no one-day ban used up hold no day with 2+ items, and those no
    one-item ban used up no item with 3 within 10 days that ends on a marked miss."""
    bans = replay("city", misses)
    day_used = {k for ban in bans if ban.count == "day" for k in ban.used}
    item_used = {k for ban in bans if ban.count == "item" for k in ban.used}
    for m in misses:
        if m.key not in day_used:
            assert len({x.item for x in misses if x.day == m.day and x.key not in day_used}) < 2
        if m.key not in item_used:
            window = [
                x
                for x in misses
                if x.key not in item_used and x.item == m.item and m.day - timedelta(days=9) <= x.day <= m.day
            ]
            assert len(window) < 3


@st.composite
def history_and_reordering(draw: st.DrawFn) -> tuple[list[Miss], list[Miss]]:
    """A history in day order, and the same history with each day's no-shows marked in another
    order (the sweep marks one day's no-shows in slot order, which policy knobs can change)."""
    misses = draw(history())
    reordered: list[Miss] = []
    for day in sorted({m.day for m in misses}):
        reordered.extend(draw(st.permutations([m for m in misses if m.day == day])))
    return misses, reordered


@settings(max_examples=500, deadline=None)
@given(history_and_reordering(), st.sampled_from(["city", "medical_insurance"]))
def test_the_outcome_does_not_depend_on_the_marking_order(
    orders: tuple[list[Miss], list[Miss]], rule: str
) -> None:
    """docs/rules.md "Penalties": each rule keeps its own count, so the bans (which counts ban, until
    when) are the same whatever order one day's no-shows are marked in."""
    one, other = orders
    assert {(b.count, b.until) for b in replay(rule, one)} == {
        (b.count, b.until) for b in replay(rule, other)
    }
