"""The no-show penalty rules as one pure function (rules G15, M9; docs/rules.md "Penalties").

`evaluate(rule, misses, new)` answers which bans the marking of `new` triggers, given the citizen's
no-shows in the same scope and rule (`new` among them), each with the counts whose bans have used
it up. Each rule keeps its own count (docs/rules.md: "No-shows that triggered a ban are used up by it,
for that rule only"): the city rule has two, one per day (`day`, 2+ different items in one day) and
one per item (`item`, 3+ of one item within 10 days); medical insurance one (`all`, every 3rd). So a
no-show used up by the one-day ban still counts toward the one-item ban, and the outcome does not
depend on the order in which one day's no-shows are marked. Items are compared, not services
(docs/rules.md "Items": one item code at several halls is one item). It is pure so that Hypothesis can
check it against the text.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

CITY_DAY_BAN_DAYS = 10  # rule G15: 2+ different items in one day -> no booking for 10 days
CITY_SAME_ITEM_COUNT = 3  # rule G15: 3+ no-shows of one item ...
CITY_SAME_ITEM_WINDOW = 10  # ... within 10 days (calendar days, both ends included)
CITY_SAME_ITEM_MONTHS = 1  # ... -> no booking for a month
MEDICAL_COUNT = 3  # rule M9: every 3rd no-show in all ...
MEDICAL_MONTHS = 3  # ... -> no booking for 3 months

DAY, ITEM, ALL = "day", "item", "all"
COUNTS: dict[str, tuple[str, ...]] = {"city": (DAY, ITEM), "medical_insurance": (ALL,)}


@dataclass(frozen=True)
class Miss:
    """One no-show: the booking it came from, its item, the slot's date, and the counts whose bans
    have used it up."""

    key: int
    item: str
    day: date
    used: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decision:
    """A ban to impose: its last banned date (inclusive), the count it belongs to and the no-shows
    it uses up for that count."""

    until: date
    used: tuple[int, ...]
    reason: str
    count: str


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later, or that month's last day (01-31 -> 02-28)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def evaluate(rule: str, misses: Sequence[Miss], new: Miss) -> list[Decision]:
    """Bans triggered by marking `new`; `misses` holds the citizen's no-shows of this scope and rule
    marked so far, `new` included (those a count has used up say so in `used`)."""
    pool = {miss.key: miss for miss in misses}
    pool[new.key] = new
    new = pool[new.key]

    def unused(count: str) -> list[Miss]:
        return sorted((m for m in pool.values() if count not in m.used), key=lambda m: m.key)

    decisions: list[Decision] = []
    if rule == "city":
        # rule G15 (a): this day's no-shows, not yet used by a one-day ban, cover 2+ different items.
        if DAY not in new.used:
            same_day = [m for m in unused(DAY) if m.day == new.day]
            items = {m.item for m in same_day}
            if len(items) >= 2:
                decisions.append(
                    Decision(
                        until=new.day + timedelta(days=CITY_DAY_BAN_DAYS),
                        used=tuple(m.key for m in same_day),
                        reason=f"rule G15: no-shows of {len(items)} items on {new.day.isoformat()}",
                        count=DAY,
                    )
                )
        # rule G15 (b): one item gathers 3+ no-shows, not yet used by a one-item ban, within 10 days
        # ending with `new`.
        if ITEM not in new.used:
            first = new.day - timedelta(days=CITY_SAME_ITEM_WINDOW - 1)
            same_item = [m for m in unused(ITEM) if m.item == new.item and first <= m.day <= new.day]
            if len(same_item) >= CITY_SAME_ITEM_COUNT:
                last = max(m.day for m in same_item)
                decisions.append(
                    Decision(
                        until=add_months(last, CITY_SAME_ITEM_MONTHS),
                        used=tuple(m.key for m in same_item),
                        reason=f"rule G15: {len(same_item)} no-shows of one item within "
                        f"{CITY_SAME_ITEM_WINDOW} days",
                        count=ITEM,
                    )
                )
    elif rule == "medical_insurance" and ALL not in new.used:
        # rule M9: every 3rd no-show in all -> 3 calendar months from the day of that no-show.
        pool_all = unused(ALL)
        if len(pool_all) >= MEDICAL_COUNT:
            decisions.append(
                Decision(
                    until=add_months(new.day, MEDICAL_MONTHS),
                    used=tuple(m.key for m in pool_all),
                    reason=f"rule M9: {len(pool_all)} no-shows",
                    count=ALL,
                )
            )
    return decisions
