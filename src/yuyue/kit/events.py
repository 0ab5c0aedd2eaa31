"""In-transaction domain events: one package announces what happened, others react in the same
transaction (so a reaction commits or rolls back with the change it reacts to).

    @subscribe("booking.cancelled")
    async def allocate(session, event): ...

    await emit(session, Event("booking.cancelled", {"booking": row}))

Handlers run in subscription order; an exception in one aborts the whole transaction.

`collect` runs the handlers without writing: the rows they would write are returned, so that the
caller writes them in its own single statement (a booking on PostgreSQL, decisions 0014, 0015). The
event it hands them carries the list (`event.into`); a handler of such an event writes only through
`write` or `notify.outbox.enqueue` with `into=event.into`, which append to it instead of writing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

Rows = list[tuple[Any, dict[str, Any]]]  # (table, row) to insert


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    into: Rows | None = None  # set by `collect`: where handlers put the rows instead of writing them


Handler = Callable[[AsyncSession, Event], Awaitable[None]]
_handlers: dict[str, list[Handler]] = {}


def subscribe(kind: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if handler not in _handlers.setdefault(kind, []):
            _handlers[kind].append(handler)
        return handler

    return register


async def emit(session: AsyncSession, event: Event) -> None:
    for handler in _handlers.get(event.kind, ()):
        await handler(session, event)


async def collect(session: AsyncSession, event: Event) -> Rows:
    """Run the event's handlers and return the rows they would have written, as (table, row)."""
    rows: Rows = []
    await emit(session, replace(event, into=rows))
    return rows


async def write(session: AsyncSession, table: Any, row: dict[str, Any], into: Rows | None = None) -> None:
    """Insert one row of `table` in the caller's transaction, or, with `into` (a collected event's
    `event.into`), hand it to `collect`'s caller (a row whose key exists is then skipped, as
    `ON CONFLICT DO NOTHING`)."""
    if into is not None:
        into.append((table, row))
        return
    await session.execute(table.insert(), row)
