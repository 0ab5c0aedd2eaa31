"""Hall display stream: calls and queue changes pushed to any number of screens.

PostgreSQL: a change runs `pg_notify('yuyue_queue', …)` inside its own transaction, so the
notification leaves only if the change commits; every app process keeps one `LISTEN` connection
(opened with the first screen, closed with the last) and fans each notification out to its local
screens, so a call made by one process reaches screens served by any other.
SQLite (embedded, one process): events wait in the session until the route commits, then go to the
local screens directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.db import after_commit, on_postgres
from yuyue.ops.logging import log

CHANNEL = "yuyue_queue"
QUEUE_LIMIT = 256


class Broker:
    """The screens of this process, by hall; one LISTEN connection while any screen is open."""

    def __init__(self) -> None:
        self._screens: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._conn: Any = None
        self._url = ""
        self._lock = asyncio.Lock()
        self._reconnect: asyncio.Task[None] | None = None

    def screens(self, hall_id: str) -> int:
        return len(self._screens.get(hall_id, ()))

    async def subscribe(self, hall_id: str, database_url: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._screens.setdefault(hall_id, set()).add(queue)
        if make_url(database_url).get_backend_name() in ("postgresql", "postgres"):
            self._url = database_url
            async with self._lock:
                if self._conn is None:
                    await self._connect()
        return queue

    async def _connect(self) -> None:
        """Open the LISTEN connection (under the lock)."""
        dsn = make_url(self._url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        await conn.add_listener(CHANNEL, self._on_notify)
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_lost(self, conn: Any) -> None:
        """The LISTEN connection died (PostgreSQL restarted, a proxy cut it): reconnect in the
        background while screens are open; they are told to re-read the queue once it is back."""
        if conn is not self._conn:
            return  # closed on purpose by `unsubscribe`
        self._conn = None
        log.warning("queue_listen_lost")
        if self._screens and self._reconnect is None:
            self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self, first_delay: float = 0.2, max_delay: float = 10.0) -> None:
        delay = first_delay
        try:
            while self._screens:
                try:
                    async with self._lock:
                        if self._conn is None and self._screens:
                            await self._connect()
                except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                    log.warning("queue_listen_retry", error=type(exc).__name__, delay_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, max_delay)
                    continue
                log.info("queue_listen_back")
                for hall_id in list(self._screens):  # what was said while it was down is lost: re-read
                    self.deliver(hall_id, {"type": "change", "hall_id": hall_id})
                return
        finally:
            self._reconnect = None

    async def unsubscribe(self, hall_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        screens = self._screens.get(hall_id)
        if screens is not None:
            screens.discard(queue)
            if not screens:
                del self._screens[hall_id]
        async with self._lock:
            if not self._screens and self._conn is not None:
                conn, self._conn = self._conn, None
                with contextlib.suppress(Exception):
                    await conn.close()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        self.deliver(str(message.get("hall_id", "")), message)

    def deliver(self, hall_id: str, event: dict[str, Any]) -> None:
        for queue in list(self._screens.get(hall_id, ())):
            if queue.full():  # a stalled screen loses its oldest event, never blocks the others
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)


broker = Broker()


async def publish(session: AsyncSession, hall_id: str, event: dict[str, Any]) -> None:
    """Announce a queue event as part of the caller's transaction."""
    message = {**event, "hall_id": hall_id}
    if on_postgres(session):
        payload = json.dumps(message, ensure_ascii=False)
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )
    else:  # the embedded database: this process's screens hear it once the change is committed
        after_commit(session, lambda: broker.deliver(hall_id, message))
