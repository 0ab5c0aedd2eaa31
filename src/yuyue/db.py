"""Engine and session factory for SQLite (embedded) and PostgreSQL (production).

One request, one transaction: routes get an `AsyncSession`, services `flush`, and the route
commits once at the end. On SQLite every transaction starts with `BEGIN IMMEDIATE`, so the
conditional seat UPDATE and the unique indexes behave as on PostgreSQL even with several
processes on one file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import Request
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from yuyue.config import Settings


def async_url(url: str) -> str:
    """Accept plain `sqlite:///…` and `postgresql://…` URLs and pick the async driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


# What "the database is unavailable right now" looks like: SQLAlchemy's wrapped errors, an exhausted
# pool, and what a connection attempt raises unwrapped while PostgreSQL is down or starting up
# (refused, reset, timed out, "the database system is starting up"). Answered 503 with Retry-After.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    DBAPIError,
    PoolTimeout,
    ConnectionError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
)


def prepare_sqlite_folder(url: str) -> None:
    """Create the folder of an SQLite database file (`var/` in a fresh clone) if it is missing; any
    other URL is left alone. Both the app's engine and the migrations call it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    path = parsed.database
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT with ON CONFLICT support (`on_conflict_do_nothing/_update`) for the session's database."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def on_postgres(session: AsyncSession) -> bool:
    """Whether `session` runs on PostgreSQL (else SQLite, the embedded database)."""
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    url = async_url(settings.database_url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        prepare_sqlite_folder(url)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = pool_size or settings.db_pool_size
        kwargs["max_overflow"] = settings.db_max_overflow
        kwargs["pool_pre_ping"] = False
        kwargs["connect_args"] = {
            "server_settings": {"application_name": "yuyue", "timezone": "Asia/Shanghai"}
        }
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    return engine


def _sqlite_setup(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged booking survives a power cut
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


_AUTOCOMMIT = "yuyue.autocommit"


async def autocommit(session: AsyncSession) -> None:
    """From here on, each statement of `session` commits by itself (PostgreSQL; a no-op on SQLite).

    For a request whose only write is one statement (a booking without an Idempotency-Key, decision
    0014): no BEGIN or COMMIT round trips, and the rows that statement locks are held only while the
    server runs and commits it, never while this process is busy with other requests. Call it before
    the session's first statement, or its transaction so far is committed first."""
    if session.info.get(_AUTOCOMMIT) or not on_postgres(session):
        return
    if session.in_transaction():
        await session.commit()
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    session.info[_AUTOCOMMIT] = True


def in_autocommit(session: AsyncSession) -> bool:
    """Whether `autocommit` put this session's statements in autocommit."""
    return bool(session.info.get(_AUTOCOMMIT))


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session; the route commits, anything uncommitted is rolled back."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        yield session
