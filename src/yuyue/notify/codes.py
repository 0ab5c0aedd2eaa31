"""SMS verification codes (rule M6): a 6-digit code per number, valid 5 minutes, rate-limited per
number and per client address; sent through the outbox.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.clock import clock
from yuyue.db import dialect_insert as _insert
from yuyue.errors import DomainError
from yuyue.errors import ValidationFailed as ValidationFailedError
from yuyue.identity.service import MOBILE
from yuyue.kit import crypto
from yuyue.kit.masking import mask_phone
from yuyue.models import PhoneCode, RateCounter
from yuyue.notify.outbox import Draft, enqueue


class RateLimited(DomainError):
    code, status = "rate_limited", 429


CODE_TTL = timedelta(minutes=5)
CODE_MAX_TRIES = 5
# (window, length in seconds, most codes in one window), per number and per client address.
CODE_LIMITS = (("minute", 60, 1), ("hour", 3600, 5), ("day", 86400, 10))


def _window_start(now: datetime, window: str) -> datetime:
    if window == "minute":
        return now.replace(second=0, microsecond=0)
    if window == "hour":
        return now.replace(minute=0, second=0, microsecond=0)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def _count(session: AsyncSession, key: str, limit: int, expires_at: datetime) -> bool:
    """One conditional upsert: the window's counter goes up unless it already reached `limit`."""
    insert = _insert(session, RateCounter).values(key=key, n=1, expires_at=expires_at)
    statement = insert.on_conflict_do_update(
        index_elements=["key"], set_={"n": RateCounter.n + 1}, where=RateCounter.n < limit
    ).returning(RateCounter.n)
    return (await session.execute(statement)).first() is not None


def _code_hash(secret: str, phone: str, code: str) -> str:
    return crypto.lookup_hash(secret, f"code:{phone}:{code}")


async def request_code(session: AsyncSession, secret: str, phone: str, client: str) -> dict[str, Any]:
    """Rule M6: a 6-digit code for the number, valid 5 minutes; at most 1 a minute, 5 an hour and 10
    a day per number and per client address (fixed windows of the platform clock)."""
    if not MOBILE.match(phone):
        raise ValidationFailedError("phone must be a mainland mobile number of 11 digits")
    now = clock.now()
    phone_hash = crypto.lookup_hash(secret, f"phone:{phone}")
    client_hash = crypto.lookup_hash(secret, f"client:{client}")
    for scope, subject in (("p", phone_hash), ("c", client_hash)):
        for window, length, limit in CODE_LIMITS:
            start = _window_start(now, window)
            end = start + timedelta(seconds=length)
            if not await _count(session, f"code:{scope}:{subject}:{window}:{start:%Y%m%d%H%M}", limit, end):
                retry = max(1, int((end - now).total_seconds()) + 1)
                raise RateLimited(
                    f"at most {limit} code(s) per {window} for this "
                    + ("number" if scope == "p" else "client"),
                    retry_after_s=retry,
                )
    # A new code replaces the number's earlier ones.
    await session.execute(
        update(PhoneCode)
        .where(PhoneCode.phone_hash == phone_hash, PhoneCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        PhoneCode(
            phone_hash=phone_hash,
            client_hash=client_hash,
            code_hash=_code_hash(secret, phone, code),
            created_at=now,
            expires_at=now + CODE_TTL,
            tries=0,
        )
    )
    draft = Draft(
        kind="code",
        params={"code_enc": crypto.encrypt(secret, code)},
        phone_enc=crypto.encrypt(secret, phone),
        phone_masked=mask_phone(phone),
        unit_path="platform/",
    )
    await enqueue(session, [draft])
    return {"phone": mask_phone(phone), "expires_at": (now + CODE_TTL).isoformat(), "length": 6}


async def check_code(session: AsyncSession, secret: str, phone: str, code: str) -> bool:
    """True when `code` is the number's live code (then used up). A wrong code counts a try;
    the 5th wrong try burns the code. The caller commits either way."""
    now = clock.now()
    phone_hash = crypto.lookup_hash(secret, f"phone:{phone}")
    row = (
        await session.execute(
            select(PhoneCode)
            .where(
                PhoneCode.phone_hash == phone_hash, PhoneCode.used_at.is_(None), PhoneCode.expires_at > now
            )
            .order_by(PhoneCode.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    live = and_(PhoneCode.id == row.id, PhoneCode.used_at.is_(None), PhoneCode.tries < CODE_MAX_TRIES)
    if hmac.compare_digest(row.code_hash, _code_hash(secret, phone, code)):
        used = await session.execute(
            update(PhoneCode).where(live).values(used_at=now).execution_options(synchronize_session=False)
        )
        return bool(getattr(used, "rowcount", 0))
    await session.execute(
        update(PhoneCode)
        .where(live)
        .values(
            tries=PhoneCode.tries + 1,
            used_at=case((PhoneCode.tries + 1 >= CODE_MAX_TRIES, now), else_=None),
        )
        .execution_options(synchronize_session=False)
    )
    return False
