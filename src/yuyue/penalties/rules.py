"""The no-show penalty rules as one pure function (rules G15, M9; docs/rules.md "Penalties").

`evaluate(rule, unused, new)` answers which bans the marking of `new` triggers, given the no-shows
of the same citizen, scope and rule that no ban has used up yet (`new` among them). It is pure so
that Hypothesis can check it against the text.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

CITY_DAY_BAN_DAYS = 10  # rule G15: 2+ different services in one day -> no booking for 10 days
CITY_SAME_SERVICE_COUNT = 3  # rule G15: 3+ no-shows of one service ...
CITY_SAME_SERVICE_WINDOW = 10  # ... within 10 days (calendar days, both ends included)
CITY_SAME_SERVICE_MONTHS = 1  # ... -> no booking for a month
MEDICAL_COUNT = 3  # rule M9: every 3rd no-show in all ...
MEDICAL_MONTHS = 3  # ... -> no booking for 3 months


@dataclass(frozen=True)
class Miss:
    """One no-show: the booking it came from, its service and the slot's date."""

    key: int
    service_id: int
    day: date


@dataclass(frozen=True)
class Decision:
    """A ban to impose: its last banned date (inclusive) and the no-shows it uses up."""

    until: date
    used: tuple[int, ...]
    reason: str


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later, or that month's last day (01-31 -> 02-28)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def evaluate(rule: str, unused: Sequence[Miss], new: Miss) -> list[Decision]:
    """Bans triggered by marking `new`; `unused` holds every not-used-up no-show, `new` included."""
    pool = {miss.key: miss for miss in unused}
    pool[new.key] = new
    decisions: list[Decision] = []
    if rule == "city":
        # rule G15 (a): this day's no-shows cover 2 or more different services.
        same_day = sorted((m for m in pool.values() if m.day == new.day), key=lambda m: m.key)
        if len({m.service_id for m in same_day}) >= 2:
            decisions.append(
                Decision(
                    until=new.day + timedelta(days=CITY_DAY_BAN_DAYS),
                    used=tuple(m.key for m in same_day),
                    reason=f"rule G15: no-shows of {len({m.service_id for m in same_day})} services "
                    f"on {new.day.isoformat()}",
                )
            )
            for miss in same_day:
                del pool[miss.key]
        # rule G15 (b): one service gathers 3 or more no-shows within 10 days (ending with `new`).
        if new.key in pool:
            first = new.day - timedelta(days=CITY_SAME_SERVICE_WINDOW - 1)
            same_service = sorted(
                (m for m in pool.values() if m.service_id == new.service_id and first <= m.day <= new.day),
                key=lambda m: m.key,
            )
            if len(same_service) >= CITY_SAME_SERVICE_COUNT:
                last = max(m.day for m in same_service)
                decisions.append(
                    Decision(
                        until=add_months(last, CITY_SAME_SERVICE_MONTHS),
                        used=tuple(m.key for m in same_service),
                        reason=f"rule G15: {len(same_service)} no-shows of one service within "
                        f"{CITY_SAME_SERVICE_WINDOW} days",
                    )
                )
    elif rule == "medical_insurance" and len(pool) >= MEDICAL_COUNT:
        # rule M9: every 3rd no-show in all -> 3 calendar months from the day of that no-show.
        decisions.append(
            Decision(
                until=add_months(new.day, MEDICAL_MONTHS),
                used=tuple(sorted(pool)),
                reason=f"rule M9: {len(pool)} no-shows",
            )
        )
    return decisions
