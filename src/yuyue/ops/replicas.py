"""Reads that may be a little behind go to a PostgreSQL streaming replica (decision 0090).

`ReadDb` is the session of the reads whose answer may lag the primary by a bounded time:
availability, the portal's catalogue pages, the public queue, figures and exports. Everything that
books, changes, or must see its own write uses `Db` (the primary). With no replica configured, or
none fresh enough, `ReadDb` is the request's primary session itself.

How fresh a replica is, without any write: every `YUYUE_REPLICA_PROBE_S` each process reads the
primary's WAL position (`pg_current_wal_lsn()`) and remembers when it read it, then each replica's
replayed position (`pg_last_wal_replay_lsn()`). A replica that has replayed up to a position the
primary had at time t has every transaction acknowledged before t; its lag is `now - t`, growing
between probes. A replica whose lag exceeds `YUYUE_REPLICA_MAX_LAG` (default 0.5 s), whose probe
fails, or whose connection fails when a request takes it, is skipped until a probe finds it caught
up. If the probe itself stops, every replica's lag grows past the bound and reads return to the
primary: the failure is towards fresh answers, never towards stale ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypeVar

from fastapi import Depends, Request
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from yuyue.config import Settings
from yuyue.db import DATABASE_UNAVAILABLE, Db, async_url, make_sessionmaker
from yuyue.errors import DomainError
from yuyue.ops.logging import log

T = TypeVar("T")

READS = Counter("yuyue_read_sessions_total", "Sessions of lag-tolerant reads by target", ["target"])
LAG = Gauge("yuyue_replica_lag_seconds", "Measured lag of each replica", ["replica"], multiprocess_mode="max")
UP = Gauge(
    "yuyue_replica_up",
    "1 while the replica answers its probe as a replica",
    ["replica"],
    multiprocess_mode="min",
)

PRIMARY_LSN = text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
REPLAY_LSN = text("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
REPLICA_KEY = "yuyue.replica"
UNREACHABLE: tuple[type[Exception], ...] = (*DATABASE_UNAVAILABLE, OSError)
HISTORY_S = 30.0  # primary positions older than this are forgotten (a replica further behind is "very")


@dataclass
class Replica:
    name: str  # host:port/db, no password: for logs and metrics
    engine: AsyncEngine
    maker: async_sessionmaker[AsyncSession]
    fresh_at: float | None = None  # monotonic time of the newest primary position it has replayed
    down: bool = False
    usable: bool = field(default=False)  # as of the last probe or failure

    def lag(self, now: float) -> float:
        return float("inf") if self.fresh_at is None or self.down else now - self.fresh_at


@dataclass(frozen=True)
class ReplicaState:
    """One replica as `/readyz` reports it: `replica` is its position in YUYUE_DATABASE_REPLICA_URLS
    (1-based; no address, the answer is public); `lag_s` is None when down or unknown (never probed,
    or further behind than the primary positions kept)."""

    replica: int
    state: Literal["fresh", "lagging", "down"]
    lag_s: float | None


class Replicas:
    """The replicas of one process, their measured lag, and the choice of one for a read."""

    def __init__(self, primary: AsyncEngine, settings: Settings) -> None:
        self.primary = primary
        self.max_lag = settings.replica_max_lag
        self.probe_s = settings.replica_probe_s
        self.replicas: list[Replica] = []
        for url in settings.replica_url_list:
            engine = create_async_engine(
                async_url(url),
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_pre_ping=True,  # a replica stopped since a connection was pooled fails at checkout
                connect_args={
                    "timeout": 2,
                    "server_settings": {"application_name": "yuyue-read", "timezone": "Asia/Shanghai"},
                },
            )
            name = engine.url.render_as_string(hide_password=True).split("@")[-1]
            self.replicas.append(Replica(name, engine, make_sessionmaker(engine)))
        self.positions: deque[tuple[float, int]] = deque()  # (monotonic time, primary WAL position)
        self._next = 0

    def __bool__(self) -> bool:
        return bool(self.replicas)

    async def probe(self) -> None:
        """One measurement: the primary's position now, then how far each replica has replayed."""
        now = time.monotonic()
        async with self.primary.connect() as conn:
            position = int((await conn.execute(PRIMARY_LSN)).scalar_one())
        self.positions.append((now, position))
        while self.positions and self.positions[0][0] < now - HISTORY_S:
            self.positions.popleft()
        await asyncio.gather(*(self._probe_one(replica) for replica in self.replicas))

    async def _probe_one(self, replica: Replica) -> None:
        try:
            async with asyncio.timeout(max(1.0, self.probe_s * 5)):
                async with replica.engine.connect() as conn:
                    replayed = (await conn.execute(REPLAY_LSN)).scalar_one_or_none()
        except UNREACHABLE as exc:
            self._mark_down(replica, type(exc).__name__)
            return
        if replayed is None:  # not in recovery: a promoted replica is no longer one
            self._mark_down(replica, "not_in_recovery")
            return
        fresh = [at for at, position in self.positions if position <= int(replayed)]
        replica.fresh_at = max(fresh) if fresh else None
        replica.down = False
        usable = replica.lag(time.monotonic()) <= self.max_lag
        if usable != replica.usable:
            log.info("replica_usable" if usable else "replica_behind", replica=replica.name)
        replica.usable = usable
        LAG.labels(replica=replica.name).set(min(replica.lag(time.monotonic()), HISTORY_S))
        UP.labels(replica=replica.name).set(1)

    def _mark_down(self, replica: Replica, reason: str) -> None:
        if not replica.down:
            log.warning("replica_down", replica=replica.name, reason=reason)
        replica.down, replica.usable, replica.fresh_at = True, False, None
        LAG.labels(replica=replica.name).set(HISTORY_S)
        UP.labels(replica=replica.name).set(0)

    def states(self) -> list[ReplicaState]:
        """Each replica's state now, from the probes (no query): fresh (in use), lagging (skipped
        while its lag exceeds the bound) or down (skipped until a probe reaches it)."""
        now = time.monotonic()
        found = []
        for position, replica in enumerate(self.replicas, start=1):
            lag = replica.lag(now)
            if replica.down:
                found.append(ReplicaState(position, "down", None))
            else:
                # rounded up to the millisecond: a lagging replica never shows a lag within the bound
                known = math.ceil(lag * 1000) / 1000 if lag <= HISTORY_S else None
                found.append(ReplicaState(position, "fresh" if lag <= self.max_lag else "lagging", known))
        return found

    async def loop(self) -> None:
        """Probe for ever (the app's lifespan runs it); a failing primary just skips a round."""
        while True:
            try:
                await self.probe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the primary is unreachable: replicas keep ageing, then go unused
                log.warning("replica_probe_failed", error=type(exc).__name__)
            await asyncio.sleep(self.probe_s)

    def fresh(self) -> list[Replica]:
        """The replicas within the lag bound now, starting with the next in turn (round robin)."""
        now = time.monotonic()
        ready = [r for r in self.replicas if not r.down and r.lag(now) <= self.max_lag]
        if not ready:
            return []
        self._next = (self._next + 1) % len(ready)
        return ready[self._next :] + ready[: self._next]

    async def session(self) -> AsyncSession | None:
        """A session on a fresh replica, its connection already taken (so a stopped replica is found
        out here, not in the middle of a route); None when no replica will do."""
        for replica in self.fresh():
            session = replica.maker()
            try:
                await session.connection()
            except UNREACHABLE as exc:
                await session.close()
                self._mark_down(replica, type(exc).__name__)
                continue
            session.info[REPLICA_KEY] = replica.name
            return session
        return None

    def failed(self, name: str, reason: str) -> None:
        """A request found the replica `name` unreachable: skip it until a probe finds it back."""
        for replica in self.replicas:
            if replica.name == name:
                self._mark_down(replica, reason)

    async def dispose(self) -> None:
        for replica in self.replicas:
            await replica.engine.dispose()


@contextlib.asynccontextmanager
async def probing(replicas: Replicas | None) -> AsyncIterator[None]:
    """Run the probe while the app runs (first measurement before the first request)."""
    if not replicas:
        yield
        return
    with contextlib.suppress(Exception):
        await replicas.probe()
    task = asyncio.create_task(replicas.loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await replicas.dispose()


async def get_read_db(request: Request, primary: Db) -> AsyncIterator[AsyncSession]:
    """The session of a lag-tolerant read: a fresh replica's, else the request's primary session."""
    replicas: Replicas | None = getattr(request.app.state, "replicas", None)
    session = await replicas.session() if replicas else None
    if session is None:
        READS.labels(target="primary").inc()
        yield primary
        return
    READS.labels(target="replica").inc()
    name = session.info[REPLICA_KEY]
    try:
        yield session
    finally:
        try:
            await session.close()  # its rollback runs on the replica's connection
        except UNREACHABLE as exc:  # the replica went away after the read: the answer stands
            if replicas is not None:
                replicas.failed(name, type(exc).__name__)


ReadDb = Annotated[AsyncSession, Depends(get_read_db, scope="function")]


def is_replica(session: AsyncSession) -> bool:
    """Whether a read session is a replica's."""
    return REPLICA_KEY in session.info


async def read_or_primary(
    request: Request,
    reads: AsyncSession,
    primary: AsyncSession,
    work: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """`work(reads)`; when `reads` is a replica's and it fails on the way (the replica stopped while
    the request held its connection) or does not know the thing asked for yet (`not_found`: made on
    the primary within the lag bound), `work(primary)` instead. For the hottest read, availability,
    so that losing a replica costs no request; other reads answer 503 with Retry-After in that window."""
    if not is_replica(reads):
        return await work(reads)
    try:
        return await work(reads)
    except UNREACHABLE as exc:
        replicas: Replicas | None = getattr(request.app.state, "replicas", None)
        if replicas is not None:
            replicas.failed(reads.info[REPLICA_KEY], type(exc).__name__)
    except DomainError as exc:
        if exc.code != "not_found":
            raise
    READS.labels(target="primary").inc()
    return await work(primary)
