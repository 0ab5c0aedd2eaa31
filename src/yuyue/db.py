"""Engine and session factory for SQLite (embedded) and PostgreSQL (production).

One request, one transaction: routes get an `AsyncSession` (`Db`), services `flush`, and `get_db`
commits once when the route has returned. On SQLite every transaction starts with `BEGIN IMMEDIATE`, so the
conditional seat UPDATE and the unique indexes behave as on PostgreSQL even with several
processes on one file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from yuyue.config import Settings
from yuyue.errors import DomainError


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


# One hot statement straight on the driver (issue 21, decision 0087): the booking's statement in
# autocommit is the request's only write and runs once per booking, so SQLAlchemy's work around it
# (cache lookup, parameter processing, the result object) is a fair part of a booking's CPU. Compiled
# once by the session's own dialect (same SQL, same bind processors), then run by asyncpg as a
# prepared statement from its own cache. Its errors come back as SQLAlchemy's: IntegrityError for a
# unique index, DBAPIError (answered 503) for the rest.
_Param = tuple[str, Callable[[Any], Any] | None, Any]  # name, bind processor, value of a literal
_Column = tuple[str, Callable[[Any], Any] | None]  # name, result processor
_GIVEN = object()  # a parameter the caller gives (not a literal of the statement)


@dataclass(frozen=True)
class _Direct:
    statement: Any  # kept, so its id is not reused
    sql: str
    params: tuple[_Param, ...]
    columns: tuple[_Column, ...]


_direct: dict[int, _Direct] = {}


def _compile_direct(statement: Any, dialect: Any) -> _Direct:
    """The SQL SQLAlchemy would send for `statement` on `dialect`, its parameters in order with their
    bind processors (and the values of the statement's own literals), its columns with their result
    processors. An `IN` of literal values (a "post-compile" parameter) is expanded here, once, as
    SQLAlchemy expands it on every execution."""
    compiled: Any = statement.compile(dialect=dialect)
    required = {name for name, bind in compiled.binds.items() if bind.required}
    expanded = compiled._process_parameters_for_postcompile(
        compiled.construct_params(dict.fromkeys(required)), _populate_self=False
    )
    processors = {**compiled._bind_processors, **expanded.processors}  # the latter: expanded names
    params = tuple(
        (name, processors.get(name), _GIVEN if name in required else expanded.parameters[name])
        for name in expanded.positiontup
    )
    columns = tuple(
        (entry.keyname, entry.type.dialect_impl(dialect).result_processor(dialect, None))
        for entry in compiled._result_columns
    )
    return _Direct(statement, expanded.statement, params, columns)


async def fetch_direct(
    session: AsyncSession, statement: Any, params: dict[str, Any], *, processed: bool = False
) -> Any:
    """The first row of `statement` (a statement built once and kept, as the booking path's are), or
    None: the asyncpg record, or with `processed` a tuple of its values as SQLAlchemy would return
    them (its result processors applied). PostgreSQL only, for a session in autocommit
    (`autocommit`), where no transaction of SQLAlchemy's has to be begun first."""
    assert on_postgres(session) and in_autocommit(session)
    direct = _direct.get(id(statement))
    if direct is None or direct.statement is not statement:
        assert session.bind is not None
        direct = _direct[id(statement)] = _compile_direct(statement, session.bind.dialect)
    args = []
    for name, process, literal in direct.params:
        value = params[name] if literal is _GIVEN else literal
        args.append(value if process is None else process(value))
    raw = await (await session.connection()).get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        row = await driver.fetchrow(direct.sql, *args)
    except asyncpg.exceptions.UniqueViolationError as exc:
        raise IntegrityError(direct.sql, None, exc) from exc
    except asyncpg.exceptions.PostgresError as exc:
        raise DBAPIError(direct.sql, None, exc) from exc
    if row is None or not processed:
        return row
    return tuple(
        value if process is None else process(value)
        for (_, process), value in zip(direct.columns, row, strict=True)
    )


# --- the request's transaction (one owner: `get_db`) -------------------------------------------
# A route takes `Db`, a session whose transaction `get_db` owns: it commits once when the route has
# returned (before the answer is sent: FastAPI's function scope), or rolls back when the route
# raised. Routes and services never commit; a service that needs something done only once its
# writes are committed (clear the caches, wake the hall screens) registers it with `after_commit`.
# The booking statement's autocommit (decisions 0014, 0015) is the one documented exception.

_AFTER_COMMIT = "yuyue.after_commit"


def after_commit(session: AsyncSession, hook: Callable[[], None]) -> None:
    """Run `hook` once the session's current transaction has committed; never if it rolls back.
    Works for every session (requests, jobs, the CLI), not only those of `get_db`."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


def committable(session: AsyncSession) -> bool:
    """Whether `commit` has anything to do for `session`: a transaction outside autocommit, objects
    to flush, or work waiting for the commit (`after_commit`). A session in autocommit that only
    ran statements has nothing left: the booking door then skips it (issue 21)."""
    return bool(
        not in_autocommit(session)
        or session.info.get(_AFTER_COMMIT)
        or session.new
        or session.dirty
        or session.deleted
    )


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for hook in session.info.pop(_AFTER_COMMIT, ()):
        hook()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session, closed (its connection back in the pool) after the answer is sent:
    returning the connection costs a round trip that the client need not wait for."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        request.state.session = session  # for the page routes' error boundary (`rollback_request`)
        yield session


async def get_db(
    session: Annotated[AsyncSession, Depends(_request_session)],
) -> AsyncIterator[AsyncSession]:
    """The request's one transaction (see above), decided before the answer is sent. A
    `DomainError` raised with `keep_writes=True` (a failed login's count) still commits what was
    written before it."""
    try:
        yield session
    except DomainError as exc:
        if exc.keep_writes:
            await session.commit()
        else:
            await session.rollback()
        raise
    except BaseException:
        await session.rollback()
        raise
    if committable(session):
        await session.commit()


async def rollback_request(request: Request) -> None:
    """Undo the request's writes when an error boundary answers instead of raising (the page routes
    turn a failure into an HTML page): `get_db` then commits nothing."""
    session: AsyncSession | None = getattr(request.state, "session", None)
    if session is not None:
        await session.rollback()


Db = Annotated[AsyncSession, Depends(get_db, scope="function")]
