"""The call order (rule T4) and wait estimates as pure functions, property-tested with Hypothesis.

Call order, from first to last:
1. green-channel tickets (rules G10, M3), by ticket time;
2. appointment tickets whose slot is under way and that were checked in before the slot's end
   (rule T4: "only inside their slot, and only if checked in before or during it"), earlier
   booking first;
3. everyone else (walk-ins, appointments outside their slot or checked in late), by ticket time.
Ties fall back to the ticket time and then the ticket number, so the order is total.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

GREEN, IN_SLOT, OTHERS = 0, 1, 2


@dataclass(frozen=True)
class Waiting:
    """What the order needs of a waiting ticket."""

    number: str
    kind: str  # appointment | walk_in | green
    service_id: int
    issued_at: datetime
    booked_at: datetime | None = None
    slot_start: datetime | None = None
    slot_end: datetime | None = None


@dataclass(frozen=True)
class Desk:
    """What the estimate needs of a counter: open or not, and the services it calls (None: all)."""

    open: bool
    service_ids: frozenset[int] | None


def tier(ticket: Waiting, now: datetime) -> int:
    if ticket.kind == "green":
        return GREEN
    if (
        ticket.kind == "appointment"
        and ticket.slot_start is not None
        and ticket.slot_end is not None
        and ticket.slot_start <= now < ticket.slot_end  # the slot is under way
        and ticket.issued_at < ticket.slot_end  # checked in before (or during) it
    ):
        return IN_SLOT
    return OTHERS


def _key(ticket: Waiting, now: datetime) -> tuple[int, datetime, datetime, str]:
    rank = tier(ticket, now)
    first = ticket.booked_at if rank == IN_SLOT and ticket.booked_at is not None else ticket.issued_at
    return (rank, first, ticket.issued_at, ticket.number)


def call_order(tickets: Iterable[Waiting], now: datetime) -> list[Waiting]:
    """Waiting tickets in the order counters call them (rule T4)."""
    return sorted(tickets, key=lambda t: _key(t, now))


def serves(desk: Desk, service_id: int) -> bool:
    return desk.service_ids is None or service_id in desk.service_ids


def people_ahead(ordered: Sequence[Waiting], desks: Sequence[Desk]) -> list[int | None]:
    """Per ticket, in call order: the tickets earlier in the order that one of the open counters
    able to call this ticket could call instead; None when no open counter serves its service."""
    answers: list[int | None] = []
    for index, ticket in enumerate(ordered):
        able = [d for d in desks if d.open and serves(d, ticket.service_id)]
        if not able:
            answers.append(None)
            continue
        answers.append(sum(1 for other in ordered[:index] if any(serves(d, other.service_id) for d in able)))
    return answers


def estimates(
    ordered: Sequence[Waiting], desks: Sequence[Desk], mean_s: dict[int, float]
) -> list[int | None]:
    """Per ticket, in call order: people ahead × mean service time of its item ÷ open counters able
    to call it; None when no open counter serves the ticket's service."""
    answers: list[int | None] = []
    for ticket, ahead in zip(ordered, people_ahead(ordered, desks), strict=True):
        if ahead is None:
            answers.append(None)
            continue
        able = sum(1 for d in desks if d.open and serves(d, ticket.service_id))
        answers.append(round(ahead * mean_s.get(ticket.service_id, DEFAULT_SERVICE_S) / able))
    return answers


DEFAULT_SERVICE_S = 600.0  # choice: 10 minutes until a service has finished tickets to average
