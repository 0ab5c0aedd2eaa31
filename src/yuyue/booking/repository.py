"""The booking path's statements (docs/architecture.md "The booking path"). Integrity lives in the
database:
- a seat is taken by one conditional `UPDATE slots SET booked = booked + n WHERE … booked + n <=
  limit RETURNING`: whatever the number of processes, a slot is never sold past its limit;
- one live booking per ID and item (rule T5, personal business) or per ID (or USCC) and day (rule
  M10), among the halls under the unit that set the knob, is the partial unique index
  `uq_bookings_live_key` (`live_key`);
- booking numbers (rule M12) come from a per-hall-and-date counter row, updated last so its lock is
  held for the shortest time.
Everything happens in the caller's one transaction; nothing here commits.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Boolean,
    Date,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    case,
    column,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from yuyue.booking.availability import seats_changed
from yuyue.booking.rules import Context
from yuyue.catalogue.service import SlotSpec, parse_slot_id
from yuyue.clock import clock
from yuyue.db import dialect_insert as _dialect_insert
from yuyue.db import fetch_direct, in_autocommit, on_postgres
from yuyue.errors import Conflict, NotFound
from yuyue.identity.service import (
    SESSION_STATE_COLUMNS,
    SessionCheck,
    accept_judged,
    accept_session,
    as_date,
    ban_until_query,
    real_now,
    settle_session,
)
from yuyue.kit.http import rowcount
from yuyue.models import Booking, BookingCounter, Citizen, CitizenSession, IdempotencyKey, SeatReturn, Slot
from yuyue.models.booking import LIVE_STATUSES
from yuyue.policy.service import freed_seat_window

# Statements of the booking path are built once and run with parameters (decision 0013): building
# and keying a statement of this size costs more CPU than the database spends running it.
_precheck_statements: dict[tuple[date, bool], Select[Any]] = {}


def _live() -> Any:
    """`bookings.status IN ('booked', 'checked_in')` with the statuses written in the SQL, not bound:
    the booking statement's prepared generic plan can then use the partial index
    `uq_bookings_live_key` (same predicate), so PostgreSQL stops planning it afresh on every
    execution (0.66 ms of its 1.28 ms per booking in the rush, issue 21)."""
    return Booking.status.in_([literal_column(f"'{status}'") for status in LIVE_STATUSES])


def _precheck_statement(today: date, with_session: bool) -> Select[Any]:
    """The pre-check for bans in force on `today` (`ban_until_query` reads the date itself); with
    the session row of `sid` joined (`identity.service.defer_session_check`, decision 0014)."""
    statement = _precheck_statements.get((today, with_session))
    if statement is not None:
        return statement
    citizen_id = bindparam("citizen_id", type_=Integer)
    live = select(func.count()).where(Booking.citizen_id == citizen_id, _live()).scalar_subquery()
    statement = select(Citizen, live, _taken_query(), _banned_query(citizen_id))
    if with_session:
        sessions = CitizenSession.__table__
        joined = Citizen.__table__.outerjoin(sessions, sessions.c.id == bindparam("sid", type_=String))
        statement = statement.add_columns(*SESSION_STATE_COLUMNS).select_from(joined)
    statement = statement.where(Citizen.id == citizen_id)
    if clock.today() == today:  # not across midnight: then `ban_until_query` saw another day
        if len(_precheck_statements) > 8:
            _precheck_statements.clear()
        _precheck_statements[(today, with_session)] = statement
    return statement


def _taken_query() -> Any:
    """Whether the live key `live_key` is held by a live booking (rules T5, M10)."""
    return (
        select(func.count())
        .where(Booking.live_key == bindparam("live_key", type_=String), _live())
        .scalar_subquery()
    )


def _banned_query(citizen_id: Any) -> Any:
    # The same rule query as everywhere (rules M9, G15), with parameters in place of the values.
    hall_path = bindparam("hall_path", type_=String)
    return ban_until_query(cast(int, citizen_id), cast(str, hall_path)).scalar_subquery()


TAKEN = select(_taken_query())


@dataclass(frozen=True)
class Precheck:
    citizen: Citizen | None  # None: no such citizen (refused where the check used to stand)
    live_count: int
    taken: bool
    banned_until: date | None


async def precheck(
    session: AsyncSession, citizen_id: int, key: str, ctx: Context, check: SessionCheck | None = None
) -> Precheck:
    """One round trip: the citizen, their live-booking count, whether the live key is taken, and the
    last day of a ban in force over this hall (rules M9, G15). When the citizen's session (`check`)
    is still to be judged (decision 0014), its row comes in the same read and is judged first (401)."""
    pending = check is not None and check.pending and check.citizen_id == citizen_id
    sid = check.sid if check is not None and pending else None
    with_session = pending and sid is not None
    params = {"citizen_id": citizen_id, "live_key": key, "hall_path": ctx.info.hall_path}
    if with_session:
        params["sid"] = sid
    statement = _precheck_statement(clock.today(), with_session)
    judge = check if pending else None
    if in_autocommit(session) and identity_key(Citizen, citizen_id) not in session.identity_map:
        return await _precheck_direct(session, judge, with_session, params, statement)
    row = (await session.execute(statement, params)).first()
    if judge is not None:
        if row is None:
            await settle_session(session, judge)  # no citizen row to read it with: read it alone
        else:
            found = with_session and row.expires_at is not None  # NULL: the outer join found no row
            accept_session(judge, row if found else None)
    if row is None:
        return Precheck(None, 0, False, None)
    return Precheck(row[0], int(row[1]), bool(row[2]), as_date(row[3]))


_CITIZEN_COLUMNS = tuple(column.key for column in cast(Table, Citizen.__table__).columns)


class _SessionState(NamedTuple):
    """The session row's columns as the pre-check reads them (`SESSION_STATE_COLUMNS`' order)."""

    revoked_at: datetime | None
    expires_at: datetime | None
    provider: str | None
    company_uscc: str | None
    company_name: str | None
    client_id: str | None  # the partner that obtained the session (decision 0094)


_STATE_WIDTH = len(SESSION_STATE_COLUMNS)
# a column added to the session check must be read here too, or the direct path judges half a row
assert len(_SessionState._fields) == _STATE_WIDTH, "_SessionState out of step with SESSION_STATE_COLUMNS"


async def _precheck_direct(
    session: AsyncSession,
    judge: SessionCheck | None,
    with_session: bool,
    params: dict[str, Any],
    statement: Any,
) -> Precheck:
    """`precheck` of a booking in autocommit (decision 0087): the same statement, sent straight by
    asyncpg (`db.fetch_direct`); the citizen's row becomes the session's `Citizen` as if the query
    had loaded it (the SMS's `booking_draft` finds it there), and the session row (`judge`: the
    check still pending) is judged the same."""
    values = await fetch_direct(session, statement, params, processed=True)
    n = len(_CITIZEN_COLUMNS)
    if judge is not None:
        if values is None:
            await settle_session(session, judge)  # no citizen row to read it with: read it alone
        else:
            state = (
                _SessionState(*values[n + 3 : n + 3 + len(SESSION_STATE_COLUMNS)]) if with_session else None
            )
            found = state is not None and state.expires_at is not None  # NULL: no session row
            accept_session(judge, state if found else None)
    if values is None:
        return Precheck(None, 0, False, None)
    citizen = Citizen(**dict(zip(_CITIZEN_COLUMNS, values[:n], strict=True)))
    make_transient_to_detached(citizen)
    session.add(citizen)
    return Precheck(citizen, int(values[n]), bool(values[n + 1]), as_date(values[n + 2]))


_TAKE_SEATS = text(
    "UPDATE slots SET booked = booked + :n "
    "WHERE id = :id AND booked + :n <= capacity - (capacity * :pct) / 100 RETURNING booked"
)


async def take_seats(
    session: AsyncSession, ctx: Context, spec: SlotSpec, quantity: int, onsite: bool
) -> None:
    """The conditional UPDATE: never more than the slot's limit, whatever runs beside it."""
    share = 0 if onsite else ctx.policy.knobs.onsite_share_pct  # rule G10: on-site share held back
    statement = _TAKE_SEATS
    params = {"n": quantity, "id": spec.id, "pct": share}
    seats_changed(ctx.info.id)
    if (await session.execute(statement, params)).first() is not None:
        return
    # Missed: the slot may have no row yet. Create it (or wait for a concurrent creator to commit),
    # then ask again with a fresh snapshot; that second answer decides.
    await _materialise(session, ctx, spec)
    if (await session.execute(statement, params)).first() is not None:
        return
    raise Conflict("not enough seats left in this slot", code="slot_full")


async def _materialise(session: AsyncSession, ctx: Context, spec: SlotSpec) -> bool:
    """Create the slot's row on first use; False when it already existed."""
    insert = _dialect_insert(session, Slot).values(
        id=spec.id,
        service_id=ctx.info.id,
        day=spec.day,
        start=spec.start,
        end=spec.end,
        capacity=spec.capacity,
        booked=0,
    )
    result = await session.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
    return rowcount(result) > 0


_RELEASE_SEATS = (
    update(Slot)
    .where(Slot.id == bindparam("slot_id"))
    .values(booked=Slot.booked - bindparam("quantity", type_=Integer))
    .returning(Slot.booked)
    .execution_options(synchronize_session=False)
)


async def release_seats(session: AsyncSession, slot_id: str, quantity: int) -> int | None:
    """Free seats of a slot; returns its `booked` after (None: no row). The slot's row stays locked
    by this transaction until it ends."""
    parsed = parse_slot_id(slot_id)
    seats_changed(parsed[0] if parsed else None)
    left = (await session.execute(_RELEASE_SEATS, {"slot_id": slot_id, "quantity": quantity})).scalar()
    return None if left is None else int(left)


async def hold_what_the_waitlist_left(
    session: AsyncSession, ctx: Context, slot_id: str, freed: int, left: int | None, now: datetime
) -> int:
    """Issue 9 item 5 (decision 0081): after the waiting list had the `freed` seats first (`left` is
    the slot's `booked` just after they were freed), hold the seats it did not take until a random
    moment of the policy's window, so they never go straight to the fastest clicker. Returns the
    seats held. The slot's row is locked by this transaction since the release, so nothing else
    took seats in between."""
    window = freed_seat_window(ctx.policy.knobs)
    if window is None or left is None or freed <= 0:
        return 0
    booked = (await session.execute(select(Slot.booked).where(Slot.id == slot_id))).scalar_one()
    held = freed - max(0, int(booked) - left)  # seats the waiting list took came out of the freed ones
    if held <= 0:
        return 0
    low, high = window
    delay = low + secrets.randbelow(high - low + 1)  # not guessable by a bot watching the slot
    due = now.replace(microsecond=0) + timedelta(seconds=delay + (1 if now.microsecond else 0))
    seats_changed(ctx.info.id)
    await session.execute(
        update(Slot)
        .where(Slot.id == slot_id)
        .values(booked=Slot.booked + held)
        .execution_options(synchronize_session=False)
    )
    session.add(SeatReturn(slot_id=slot_id, service_id=ctx.info.id, seats=held, due_at=due, created_at=now))
    await session.flush()
    return held


async def _next_number(session: AsyncSession, ctx: Context, day: date) -> str:
    """Rule M12: I + hall code + slot date + 5-digit sequence within that hall and date."""
    insert = _dialect_insert(session, BookingCounter).values(hall_id=ctx.info.hall_id, day=day, n=1)
    statement = insert.on_conflict_do_update(
        index_elements=["hall_id", "day"], set_={"n": BookingCounter.n + 1}
    ).returning(BookingCounter.n)
    sequence = int((await session.execute(statement)).scalar_one())
    if sequence > 99_999:
        raise Conflict("this hall's booking numbers for the day are exhausted", code="slot_full")
    return f"I{ctx.info.hall_code}{day:%Y%m%d}{sequence:05d}"


# Rows that other domains write with a booking made in autocommit (kit/events.py `collect`): a
# table and its column names, and per column what its value carries: nothing (False), the
# booking's number (True), or a column of the citizen's row read by the same statement (its name).
_Extra = tuple[Table, tuple[tuple[str, bool | str], ...]]
_numbered_inserts: dict[tuple[Any, ...], Any] = {}

# What stands for the booking's number in the rows of `collect` until the statement draws it.
PENDING_NUMBER = "#booking-number#"

# The Idempotency-Key's row and answer in the booking's statement (decision 0015). Text, not
# `insert()`: a Core INSERT run with the booking's parameters would also take every column named
# like one of them (`citizen_id`, `created_at`). No ON CONFLICT: a key already taken fails the
# statement, so the booking is not made twice.
_ANSWER_TEXT = text(
    "INSERT INTO idempotency_keys (citizen_id, key, request_hash, status_code, body, created_at) "
    "SELECT CAST(:answer_citizen AS integer), CAST(:answer_key AS varchar), "
    "CAST(:answer_hash AS varchar), 201, "
    f"replace(CAST(:answer_body AS text), '{PENDING_NUMBER}', booked.number), "
    "CAST(:answer_at AS timestamp) FROM booked RETURNING 1"
).bindparams(bindparam("answer_at", type_=cast(Table, IdempotencyKey.__table__).c.created_at.type))
_ANSWER = _ANSWER_TEXT.columns(column("answered", Integer))


def _numbered_insert(
    names: tuple[str, ...],
    extras: tuple[_Extra, ...] = (),
    answered: bool = False,
    guard: tuple[date, bool] | None = None,
) -> Any:
    """PostgreSQL, one statement (decisions 0012, 0013, 0014, 0015):

        WITH [pre AS (SELECT citizens.* … WHERE every rule the pre-check reads holds),]
             seat AS (UPDATE slots … WHERE booked + n <= limit [AND EXISTS (pre)] RETURNING booked),
             counter AS (INSERT INTO booking_counters SELECT … FROM seat ON CONFLICT DO UPDATE … RETURNING n),
             booked AS (INSERT INTO bookings SELECT … FROM counter RETURNING id, number)
             [, x0 AS (INSERT INTO messages SELECT … FROM booked ON CONFLICT DO NOTHING) …]
             [, answer AS (INSERT INTO idempotency_keys SELECT … FROM booked)]
        SELECT id, number FROM booked  |  SELECT id, number, pre.* FROM pre LEFT JOIN booked

    No row back (or, with `guard`, NULL id and number): the seat UPDATE matched nothing, so nothing
    was numbered or written; with `guard`, no row back: a rule refused. Parameters: `n`, `id`
    (`seat_slot` with `guard`), `pct` (the seat UPDATE), `counter_hall`, `counter_day`, `prefix`,
    one per column in `names`, `x<i>_<column>` per column of each extra row, and with `answered`
    `answer_citizen`, `answer_key`, `answer_hash`, `answer_body`, `answer_at` (the Idempotency-Key's
    row); in the texts `PENDING_NUMBER` is replaced by the number drawn. With `guard` (the day of
    the ban check, whether a session row is judged): the pre-check folded in (`_guard`, decision
    0099), and its parameters."""
    statement = _numbered_inserts.get((names, extras, answered, guard))
    if statement is not None:
        return statement
    table = cast(Table, Booking.__table__)
    pre = None if guard is None else _guard(*guard)
    if pre is None:
        seat = _TAKE_SEATS.columns(column("booked", Integer)).cte("seat")
    else:
        n = bindparam("n", type_=Integer)
        limit = Slot.capacity - (Slot.capacity * bindparam("pct", type_=Integer)) // 100
        seat = (
            update(Slot)
            .where(
                Slot.id == bindparam("seat_slot", type_=String),
                Slot.booked + n <= limit,
                exists(pre.select()),
            )
            .values(booked=Slot.booked + n)
            .returning(Slot.booked)
            .cte("seat")
        )
    counter = (
        postgresql.insert(BookingCounter)
        .from_select(
            ["hall_id", "day", "n"],
            select(
                bindparam("counter_hall", type_=String),
                bindparam("counter_day", type_=Date),
                literal(1, Integer),
            ).select_from(seat),
        )
        .on_conflict_do_update(index_elements=["hall_id", "day"], set_={"n": BookingCounter.n + 1})
        .returning(BookingCounter.n)
        .cte("counter")
    )
    seq = counter.c.n
    digits = case((seq <= 99_999, func.lpad(sql_cast(seq, String), 5, "0")), else_=sql_cast(seq, String))
    numbered = bindparam("prefix", type_=String) + digits
    columns = [bindparam(name, type_=table.c[name].type).label(name) for name in names]
    booked = (
        table.insert()
        .from_select(["number", *names], select(numbered.label("number"), *columns).select_from(counter))
        .returning(table.c.id, table.c.number)
        .cte("booked")
    )
    source = booked if pre is None else booked.join(pre, true())
    statement = select(booked.c.id, booked.c.number)
    if pre is not None:  # a row whenever the rules hold: id and number NULL when no seat was taken
        statement = statement.add_columns(*pre.c).select_from(pre.outerjoin(booked, true()))
    for i, (other, shape) in enumerate(extras):
        values = []
        for name, carries in shape:
            kind = other.c[name].type
            if isinstance(carries, str):  # the citizen's own column, read by `pre`
                assert pre is not None, "a citizen's column is read only with the pre-check folded in"
                values.append(sql_cast(pre.c[carries], kind).label(name))
            elif carries:  # sent as text, the number put in, then read as the column's type
                sent = bindparam(f"x{i}_{name}", type_=Text)
                values.append(sql_cast(func.replace(sent, PENDING_NUMBER, booked.c.number), kind).label(name))
            else:
                values.append(bindparam(f"x{i}_{name}", type_=kind).label(name))
        insert = (
            postgresql.insert(other)
            .from_select([name for name, _ in shape], select(*values).select_from(source))
            .on_conflict_do_nothing()  # as `enqueue`: a row whose dedup key exists is skipped
        )
        statement = statement.add_cte(insert.cte(f"x{i}"))
    if answered:  # the Idempotency-Key's row with its answer (decision 0015)
        statement = statement.add_cte(_ANSWER.cte("answer"))
    if guard is not None and clock.today() != guard[0]:  # midnight passed: the ban check saw another day
        return statement
    if len(_numbered_inserts) > 64:  # a new day's guards: the old ones go
        _numbered_inserts.clear()
    _numbered_inserts[(names, extras, answered, guard)] = statement
    return statement


class NotFoldable(Exception):
    """A collected row uses the citizen's data in a way one statement cannot fill in (decision
    0099): the booking takes the pre-check's path."""


def _extra_params(
    rows: list[tuple[Any, dict[str, Any]]], with_citizen: bool = False
) -> tuple[tuple[_Extra, ...], dict[str, Any]]:
    """The shape and the parameters of the rows `collect` returned, for `_numbered_insert`. With
    `with_citizen`, a value that is a `PENDING_CITIZEN` stand-in is read from the citizen's row."""
    shapes: list[_Extra] = []
    params: dict[str, Any] = {}
    for i, (other, row) in enumerate(rows):
        shape: list[tuple[str, bool | str]] = []
        for name, value in row.items():
            carries: bool | str
            if isinstance(value, dict | list):  # JSON: the number goes into its text
                encoded = json.dumps(value, ensure_ascii=False)
                carries = PENDING_NUMBER in encoded
                value = encoded if carries else value
                if with_citizen and _CITIZEN_MARK in encoded:
                    raise NotFoldable(name)
            elif with_citizen and isinstance(value, str) and value in _PENDING_COLUMNS:
                carries, value = _PENDING_COLUMNS[value], None
            else:
                carries = value == PENDING_NUMBER
                if with_citizen and isinstance(value, str) and _CITIZEN_MARK in value:
                    raise NotFoldable(name)
            shape.append((name, carries))
            if not isinstance(carries, str):
                params[f"x{i}_{name}"] = value
        shapes.append((cast(Table, other), tuple(shape)))
    return tuple(shapes), params


# --- the pre-check folded into the booking's statement (issue 21, decision 0099) ----------------
# A citizen's booking in autocommit is one round trip: the statement itself reads what the
# pre-check read and takes the seat only when every rule holds (`_guard`). When it writes nothing,
# the booking takes the path it took before (`precheck`, then the statement again), which tells the
# refusals apart: a second query only on the failure path.

_CITIZEN_MARK = "#citizen."
# Stand-ins for the citizen's text columns in the rows `collect` returns before the row is read:
# the statement puts the citizen's own columns in their place.
PENDING_CITIZEN = {
    name: f"{_CITIZEN_MARK}{name}#"
    for name in _CITIZEN_COLUMNS
    if isinstance(cast(Table, Citizen.__table__).c[name].type, String)
}
_PENDING_COLUMNS = {mark: name for name, mark in PENDING_CITIZEN.items()}
_guards: dict[tuple[date, bool], Any] = {}


def _guard(today: date, with_session: bool) -> Any:
    """The CTE `pre`: the citizen's row, with the session's `provider` (`session_provider`), when
    every rule the pre-check reads holds (`precheck`, `commands.book`): a session neither ended nor
    a partner's (401), a personal login (a legal person's agent names the booking's company, so
    its key is another: that booking takes the pre-check's path), not a foreigner login for other
    business (rules T2, G8), fewer live bookings than the cap, the live key free (rules T5, M10),
    no ban in force over the hall on `today` (rules M9, G15)."""
    citizens = cast(Table, Citizen.__table__)
    citizen_id = bindparam("citizen_id", type_=Integer)
    live = select(func.count()).where(Booking.citizen_id == citizen_id, _live()).scalar_subquery()
    taken = exists().where(Booking.live_key == bindparam("live_key", type_=String), _live())
    conditions = [
        citizens.c.id == citizen_id,
        live < bindparam("max_live", type_=Integer),
        ~taken,
        _banned_query(citizen_id).is_(None),
    ]
    provider: Any = null()
    source: Any = citizens
    if with_session:
        sessions = cast(Table, CitizenSession.__table__)
        source = citizens.join(sessions, sessions.c.id == bindparam("sid", type_=String))
        conditions += [
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > bindparam("real_now", type_=sessions.c.expires_at.type),
            sessions.c.client_id.is_(None),
            sessions.c.company_uscc.is_(None),
            or_(bindparam("foreigner_ok", type_=Boolean), sessions.c.provider.is_distinct_from("foreigner")),
        ]
        provider = sessions.c.provider
    return (
        select(*citizens.c, provider.label("session_provider"))
        .select_from(source)
        .where(*conditions)
        .cte("pre")
    )


def placeholder_citizen(citizen_id: int) -> Citizen:
    """The citizen as `collect`'s subscribers see it before the statement reads the row: text
    columns are `PENDING_CITIZEN` stand-ins the statement fills in (`_extra_params`)."""
    citizen = Citizen(id=citizen_id, **PENDING_CITIZEN)
    make_transient_to_detached(citizen)
    return citizen


@dataclass(frozen=True, slots=True)
class CitizenMasks:
    """The applicant as a booking's answer shows it (`views.Masked`), from the statement's row."""

    name_masked: str
    id_masked: str
    phone_masked: str


@dataclass(frozen=True)
class OneTrip:
    """A booking the folded statement made: its id and number, and the citizen's masks it read."""

    booking_id: int
    number: str
    citizen: CitizenMasks


async def book_in_one_trip(
    session: AsyncSession,
    ctx: Context,
    spec: SlotSpec,
    quantity: int,
    values: dict[str, Any],
    extras: list[tuple[Any, dict[str, Any]]],
    check: SessionCheck | None,
) -> OneTrip | None:
    """The booking of `values` in one statement with its pre-check (decision 0099); None when a
    rule refused (nothing written): the caller then takes the pre-check's path, which tells which.
    Every rule held but no seat is left: `slot_full`, as the pre-check's path would answer.
    `check`: the citizen's session, still to be judged; judged here when the rules held.
    PostgreSQL, a session in autocommit, an off-site booking."""
    try:
        shape, extra_params = _extra_params(extras, with_citizen=True)
    except NotFoldable:
        return None
    sid = check.sid if check is not None else None
    with_session = sid is not None
    knobs = ctx.policy.knobs
    params: dict[str, Any] = {
        "n": quantity,
        "seat_slot": spec.id,
        "pct": knobs.onsite_share_pct,  # rule G10: on-site share held back
        "counter_hall": ctx.info.hall_id,
        "counter_day": spec.day,
        "prefix": f"I{ctx.info.hall_code}{spec.day:%Y%m%d}",
        **values,
        "max_live": knobs.max_live_bookings,
        "hall_path": ctx.info.hall_path,
        **extra_params,
    }
    if with_session:
        params |= {"sid": sid, "real_now": real_now(), "foreigner_ok": ctx.info.foreigner_related}
    statement = _numbered_insert(tuple(values), shape, False, (clock.today(), with_session))
    seats_changed(ctx.info.id)
    row = await fetch_direct(session, statement, params, processed=True)
    if row is not None and row[0] is None:
        # The rules hold, but no seat: the slot may have no row yet. Create it (or wait for a
        # concurrent creator to commit), then try again with a fresh snapshot; that answer decides.
        await _materialise(session, ctx, spec)
        row = await fetch_direct(session, statement, params, processed=True)
    if row is None:
        return None
    n = len(_CITIZEN_COLUMNS)
    if check is not None:  # judged by the statement: the session stands, a personal login
        accept_judged(check, row[2 + n])
    if row[0] is None:
        raise Conflict("not enough seats left in this slot", code="slot_full")
    read = dict(zip(_CITIZEN_COLUMNS, row[2 : 2 + n], strict=True))
    citizen = CitizenMasks(read["name_masked"], read["id_masked"], read["phone_masked"])
    number = str(row[1])
    if len(number) > len(params["prefix"]) + 5:
        raise Conflict("this hall's booking numbers for the day are exhausted", code="slot_full")
    return OneTrip(int(row[0]), number, citizen)


async def take_seats_and_insert(
    session: AsyncSession,
    ctx: Context,
    spec: SlotSpec,
    quantity: int,
    onsite: bool,
    values: dict[str, Any],
    extras: list[tuple[Any, dict[str, Any]]] | None = None,
    answer: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """Take the seats (the conditional UPDATE), number the booking (rule M12) and insert it; returns
    its id and number. A Core INSERT … RETURNING, not the ORM unit of work (decision 0011).

    PostgreSQL: one statement (`_numbered_insert`), so the hot slot and counter rows are locked for
    two round trips fewer (decisions 0012, 0013). With `extras` (rows of other domains, from
    `collect`), they go in the same statement, one round trip fewer again; in autocommit that
    statement is the whole transaction (decision 0014). With `answer` (the `answer_*` parameters),
    the Idempotency-Key's row and answer too (decision 0015).
    SQLite (it serialises writers anyway): the UPDATE, the counter upsert and the INSERT one after
    the other. A live key already taken raises IntegrityError either way (the partial unique index
    decides)."""
    if not on_postgres(session):
        assert not extras and not answer, "on SQLite other rows are written by their own statements"
        await take_seats(session, ctx, spec, quantity, onsite)
        number = await _next_number(session, ctx, spec.day)
        table = cast(Table, Booking.__table__)
        inserted = await session.execute(table.insert().returning(table.c.id), {"number": number, **values})
        return int(inserted.scalar_one()), number
    share = 0 if onsite else ctx.policy.knobs.onsite_share_pct  # rule G10: on-site share held back
    prefix = f"I{ctx.info.hall_code}{spec.day:%Y%m%d}"
    params = {"n": quantity, "id": spec.id, "pct": share}
    params |= {"counter_hall": ctx.info.hall_id, "counter_day": spec.day, "prefix": prefix, **values}
    shape, extra_params = _extra_params(extras or [])
    params |= extra_params | (answer or {})
    statement = _numbered_insert(tuple(values), shape, answer is not None)
    seats_changed(ctx.info.id)
    if in_autocommit(session):  # the citizen's booking without a key: straight on asyncpg (0087)
        row = await fetch_direct(session, statement, params)
    else:
        row = (await session.execute(statement, params)).first()
    if row is None:
        # No seat: the slot may have no row yet. Create it (or wait for a concurrent creator to
        # commit), then try again with a fresh snapshot; that second answer decides.
        await _materialise(session, ctx, spec)
        row = (await session.execute(statement, params)).first()
        if row is None:
            raise Conflict("not enough seats left in this slot", code="slot_full")
    booking_id, number = row[0], row[1]
    if len(number) > len(prefix) + 5:
        raise Conflict("this hall's booking numbers for the day are exhausted", code="slot_full")
    return int(booking_id), str(number)


async def own_booking(session: AsyncSession, citizen_id: int, number: str, *, lock: bool = False) -> Booking:
    query = select(Booking).where(Booking.number == number, Booking.citizen_id == citizen_id)
    if lock:
        query = query.with_for_update()
    booking = (await session.execute(query)).scalar_one_or_none()
    if booking is None:
        raise NotFound("booking not found")  # never a hint that another citizen's number exists
    return booking
