"""The lines the watch over the figures draws (rule G19), as pure functions of figures and knobs.

Each check returns a `Finding` (the figure, its value, the line it crossed) or None. The service
(`yuyue.watch.service`) gathers the figures and raises the alerts; docs/rules.md states each rule:

- sold_out_fast: on each of the last `watch_sold_out_days` days released, the off-site seats were
  all taken within `watch_sold_out_minutes` of the release moment.
- low_utilisation: in each of the last `watch_utilisation_weeks` weeks, seats booked ÷ seats
  released stayed under `watch_utilisation_floor_pct` %.
- no_show_high: last week's no-show rate of a hall (no-shows ÷ bookings not cancelled) is at least
  `watch_no_show_factor_pct` % of the hall's own rate over the 4 weeks before, with at least
  `watch_min_count` no-shows.
- waitlist_growing: the waiting list of a service was longer at the end of each of the last
  `watch_waitlist_days` days than the day before.
- channel_surge: one channel's share of a hall's bookings last week is at least
  `watch_channel_surge_factor_pct` % of its share over the 4 weeks before, with at least
  `watch_min_count` bookings.
- bureau_silent: a bureau's own booking system sent nothing for `watch_bureau_silent_hours`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any


@dataclass(frozen=True)
class Finding:
    name: str
    value: float
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "threshold": self.threshold}


def sold_out_minutes(release: datetime, events: Sequence[tuple[datetime, int]], seats: int) -> float | None:
    """Minutes from `release` until the seats held reached `seats` (None: never). `events` are
    (moment, +seats taken | -seats freed); moments before the release count at the release."""
    if seats <= 0:
        return None
    held = 0
    for moment, change in sorted(events):
        held += change
        if held >= seats:
            return max(0.0, (moment - release).total_seconds() / 60)
    return None


def sold_out_fast(minutes: Sequence[float | None], limit_min: int, days: int) -> Finding | None:
    """`minutes`: the sell-out time of each released day, oldest first (None: not sold out)."""
    last = list(minutes[-days:])
    if len(last) < days or any(m is None or m > limit_min for m in last):
        return None
    return Finding("sold_out_minutes", round(max(m for m in last if m is not None), 1), limit_min)


def low_utilisation(weeks: Sequence[tuple[int, int]], floor_pct: int, n_weeks: int) -> Finding | None:
    """`weeks`: (seats released, seats booked) per week, oldest first."""
    last = list(weeks[-n_weeks:])
    if len(last) < n_weeks or any(released <= 0 for released, _ in last):
        return None
    if any(booked * 100 >= floor_pct * released for released, booked in last):
        return None
    released = sum(r for r, _ in last)
    booked = sum(b for _, b in last)
    return Finding("utilisation", round(booked / released, 4), floor_pct / 100)


def capacity_for_floor(booked_per_day: float, floor_pct: int) -> int:
    """The daily capacity at which the seats booked would just reach the floor."""
    if floor_pct <= 0:
        return max(1, math.ceil(booked_per_day))
    return max(1, math.ceil(booked_per_day * 100 / floor_pct))


def no_show_high(
    recent: tuple[int, int], baseline: tuple[int, int], factor_pct: int, min_count: int
) -> Finding | None:
    """`recent`, `baseline`: (no-shows, bookings not cancelled)."""
    no_shows, attended = recent
    base_no_shows, base_attended = baseline
    if no_shows < min_count or attended <= 0 or base_attended <= 0:
        return None
    rate = no_shows / attended
    line = base_no_shows / base_attended * factor_pct / 100
    if rate < line or rate <= 0:
        return None
    return Finding("no_show_rate", round(rate, 4), round(line, 4))


def waitlist_growing(lengths: Sequence[int], days: int) -> Finding | None:
    """`lengths`: the waiting list at the end of each day, oldest first; grew on `days` days running."""
    run = 0
    for before, after in pairwise(lengths):
        run = run + 1 if after > before else 0
    if run < days:
        return None
    return Finding("waitlist_growth_days", run, days)


def channel_surge(
    recent: tuple[int, int], usual: tuple[int, int], factor_pct: int, min_count: int
) -> Finding | None:
    """`recent`, `usual`: (bookings through the channel, all bookings of the hall)."""
    count, total = recent
    usual_count, usual_total = usual
    if count < min_count or total <= 0 or usual_total <= 0:
        return None
    share = count / total
    line = usual_count / usual_total * factor_pct / 100
    if share < line or share <= usual_count / usual_total:
        return None
    return Finding("channel_share", round(share, 4), round(line, 4))


def bureau_silent(last_received: datetime, now: datetime, hours: int) -> Finding | None:
    silent = (now - last_received).total_seconds() / 3600
    if silent < hours:
        return None
    return Finding("hours_silent", round(silent, 1), hours)
