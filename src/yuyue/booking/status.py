"""A booking's status and the one table of its transitions (docs/rules.md "Changing, cancelling,
missing", rule M12). Every change of `bookings.status` after the booking is placed goes through
`move`, whichever package asks: booking (cancel, rebook), onsite (check-in, served), penalties
(no-show). A move is one conditional UPDATE: it matches only a booking still in a status the
table allows to move from, so two racing changes never both apply (the caller checks the row
count)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Update, update

from yuyue.models import Booking


class BookingStatus(StrEnum):
    BOOKED = "booked"
    CHECKED_IN = "checked_in"  # 已取号 (rules T3, M7)
    SERVED = "served"
    CANCELLED = "cancelled"  # by the citizen, the hall or staff (`cancelled_by`)
    NO_SHOW = "no_show"  # 爽约 (rule G13)
    EXCUSED = "excused"  # a miss for a special reason, rebooked (rules T9, G14)


# To each status, the statuses a booking may reach it from.
FROM: dict[BookingStatus, tuple[BookingStatus, ...]] = {
    BookingStatus.CHECKED_IN: (BookingStatus.BOOKED,),  # inside the check-in window (T3, M7)
    BookingStatus.SERVED: (BookingStatus.CHECKED_IN,),  # its ticket finished at a counter
    # the citizen before the deadline (T8, M8, G13: `booked` only); the hall closing the day, live ones
    BookingStatus.CANCELLED: (BookingStatus.BOOKED, BookingStatus.CHECKED_IN),
    BookingStatus.NO_SHOW: (BookingStatus.BOOKED,),  # the check-in window closed (G13)
    BookingStatus.EXCUSED: (BookingStatus.BOOKED, BookingStatus.NO_SHOW),  # the day of the miss (T9)
}


def move(
    booking_id: int,
    to: BookingStatus,
    now: datetime,
    *,
    only_from: tuple[BookingStatus, ...] | None = None,
    **values: Any,
) -> Update:
    """The UPDATE that moves one booking to `to` if the table allows it from its current status;
    `only_from` narrows the table for one door (a citizen cancels only what is still `booked`)."""
    sources = FROM[to] if only_from is None else tuple(s for s in only_from if s in FROM[to])
    return (
        update(Booking)
        .where(Booking.id == booking_id, Booking.status.in_([str(s) for s in sources]))
        .values(status=str(to), updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
