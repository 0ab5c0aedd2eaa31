"""In-transaction domain events: one package announces what happened, others react in the same
transaction (so a reaction commits or rolls back with the change it reacts to).

    @subscribe("booking.cancelled")
    async def allocate(session, event): ...

    await emit(session, Event("booking.cancelled", {"booking": row}))

Handlers run in subscription order; an exception in one aborts the whole transaction.

`collect` runs the handlers without writing: the outbox rows they would write are returned, so that
the caller writes them in its own single statement (a booking on PostgreSQL, decisions 0014, 0015). A
handler of such an event writes only through `write` or `notify.outbox.enqueue`, which honour
`collecting`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


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


_COLLECT = "yuyue.events.collect"


async def collect(session: AsyncSession, event: Event) -> list[tuple[Any, dict[str, Any]]]:
    """Run the event's handlers and return the rows they would have written, as (table, row)."""
    rows: list[tuple[Any, dict[str, Any]]] = []
    session.info[_COLLECT] = rows
    try:
        await emit(session, event)
    finally:
        session.info.pop(_COLLECT, None)
    return rows


async def write(session: AsyncSession, table: Any, row: dict[str, Any]) -> None:
    """Insert one row of `table` in the caller's transaction, or, while `collect` runs, hand it to
    `collect`'s caller (a row whose key exists is then skipped, as `ON CONFLICT DO NOTHING`)."""
    rows = collecting(session)
    if rows is not None:
        rows.append((table, row))
        return
    await session.execute(table.insert(), row)


def collecting(session: AsyncSession) -> list[tuple[Any, dict[str, Any]]] | None:
    """The list to append rows to instead of writing them, while `collect` runs; None otherwise."""
    rows: list[tuple[Any, dict[str, Any]]] | None = session.info.get(_COLLECT)
    return rows
