"""Idempotency-Key (docs/api.md): the same key and body from the same citizen answers the first
answer again and changes nothing; another body is `idempotency_key_reused` (decision 0015).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.clock import clock
from yuyue.db import in_autocommit, on_postgres
from yuyue.errors import Conflict, DomainError, Unprocessable, ValidationFailed
from yuyue.models import IdempotencyKey

IDEMPOTENCY_TTL = timedelta(hours=24)


def request_hash(method_path: str, body: Any) -> str:
    canonical = json.dumps({"p": method_path, "b": body}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Keyed:
    """The Idempotency-Key of the request `idempotent` is running. A booking made under it on
    PostgreSQL inserts the key's row, its view as the answer, in its own statement, and leaves that
    answer here. `idempotent` hands it to its work, which passes it on explicitly (`Caller.keyed`)."""

    citizen_id: int
    key: str
    request_hash: str
    at: datetime
    answered: str | None = None  # the answer's JSON as the statement wrote it


async def idempotent(
    session: AsyncSession,
    citizen_id: int,
    key: str | None,
    fingerprint: str,
    work: Callable[[Keyed | None], Awaitable[tuple[int, dict[str, Any]]]],
) -> tuple[int, dict[str, Any]]:
    """docs/api.md: the same key and body from the same citizen answers the first answer again and
    changes nothing; another body is `idempotency_key_reused`.

    Optimistic (decision 0015): `work` runs, then the key's row is inserted with its answer in the
    same transaction, by the booking's own statement when `work` made one with the `Keyed` it is
    given (so a booking with a key can be one autocommit statement too). Two requests with one key
    at once: the primary key (or the booking's live key, rule T5) lets one commit; the other is
    refused by the database, finds the row, and answers the first answer again (or
    `idempotency_key_reused`). A refusal stores nothing."""
    if key is None:
        return await work(None)
    if not key or len(key) > 200:
        raise ValidationFailed("Idempotency-Key must be 1 to 200 characters")
    now = clock.now()
    existing = await session.get(IdempotencyKey, (citizen_id, key))
    if existing is not None and existing.created_at < now - IDEMPOTENCY_TTL:
        await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.citizen_id == citizen_id, IdempotencyKey.key == key)
        )
        existing = None
    if existing is not None:
        return _replay(existing, fingerprint)
    keyed = Keyed(citizen_id, key, fingerprint, now)
    try:
        status, body = await work(keyed)
    except DomainError:
        # Refused, perhaps because the same request with this key got in first: its answer, if so.
        winner = await _committed_key(session, citizen_id, key)
        if winner is None:
            raise
        return _replay(winner, fingerprint)
    encoded = json.dumps(body, ensure_ascii=False)
    if keyed.answered is not None:  # `book` wrote the row with the booking (decision 0015)
        if status != 201 or keyed.answered != encoded:  # `work` answered more than the booking
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.citizen_id == citizen_id, IdempotencyKey.key == key)
                .values(status_code=status, body=encoded)
                .execution_options(synchronize_session=False)
            )
        return status, body
    try:
        async with session.begin_nested():
            session.add(
                IdempotencyKey(
                    citizen_id=citizen_id,
                    key=key,
                    request_hash=fingerprint,
                    status_code=status,
                    body=encoded,
                    created_at=now,
                )
            )
    except IntegrityError:
        await session.rollback()  # the same key got in first: this request's work is undone
        winner = await _committed_key(session, citizen_id, key)
        if winner is None:
            raise Conflict(
                "a request with this Idempotency-Key is in progress; retry", code="conflict"
            ) from None
        return _replay(winner, fingerprint)
    return status, body


async def _committed_key(session: AsyncSession, citizen_id: int, key: str) -> IdempotencyKey | None:
    """The key's row as committed now, read in the caller's session: a refused request's
    transaction on PostgreSQL (perhaps aborted by the failed statement) is rolled back first; in
    autocommit or on SQLite (a failed statement leaves the transaction usable) it is read as is.
    Never on a second connection: a request holding one while waiting for another could empty the
    pool under load."""
    if on_postgres(session) and not in_autocommit(session):
        await session.rollback()
    return await session.get(IdempotencyKey, (citizen_id, key), populate_existing=True)


def _replay(row: IdempotencyKey, fingerprint: str) -> tuple[int, dict[str, Any]]:
    if row.request_hash != fingerprint:
        raise Unprocessable(
            "this Idempotency-Key was used with another request", code="idempotency_key_reused"
        )
    if row.status_code is None or row.body is None:
        raise Conflict("a request with this Idempotency-Key is in progress; retry", code="conflict")
    return row.status_code, json.loads(row.body)
