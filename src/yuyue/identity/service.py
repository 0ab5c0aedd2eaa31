"""Citizens: real-name login (the development stand-in for the provincial identity service,
rule T2/G8), tokens, and what a citizen may see of themselves."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.clock import clock
from yuyue.errors import Unauthenticated, Unprocessable, ValidationFailed
from yuyue.kit import crypto, tokens
from yuyue.kit.idnumbers import ID_TYPES, normalise_id, parse_resident_id
from yuyue.kit.masking import mask_id, mask_phone
from yuyue.models import Ban, Booking, Citizen, Unit

CITIZEN = "citizen"
MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


@dataclass(frozen=True)
class Identity:
    """A normalised, verified identity as any identity provider hands it over."""

    id_type: str
    id_number: str
    name: str
    phone: str
    birth_date: date | None
    gender: str | None


def verify_identity(name: str, id_type: str, id_number: str, phone: str) -> Identity:
    if id_type not in ID_TYPES:
        raise ValidationFailed(f"id_type must be one of {', '.join(ID_TYPES)}")
    number = normalise_id(id_type, id_number)
    if number is None:
        raise Unprocessable(f"id_number is not a valid {id_type}", code="invalid_id_number")
    name = name.strip()
    if not name or any(ord(ch) < 32 for ch in name):
        raise ValidationFailed("name must not be empty")
    if not MOBILE.match(phone):
        raise ValidationFailed("phone must be a mainland mobile number of 11 digits")
    resident = parse_resident_id(number) if id_type == "resident_id" else None
    if resident and resident.birth_date > clock.today():
        raise Unprocessable("id_number carries a birth date in the future", code="invalid_id_number")
    return Identity(
        id_type=id_type,
        id_number=number,
        name=name,
        phone=phone,
        birth_date=resident.birth_date if resident else None,
        gender=resident.gender if resident else None,
    )


async def upsert_citizen(session: AsyncSession, secret: str, who: Identity) -> int:
    """One citizen row per (ID type, ID number); a later login refreshes name and phone."""
    now = clock.now()
    values = {
        "id_type": who.id_type,
        "id_hash": crypto.lookup_hash(secret, f"{who.id_type}:{who.id_number}"),
        "id_enc": crypto.encrypt(secret, who.id_number),
        "id_masked": mask_id(who.id_number),
        "name": who.name,
        "phone_enc": crypto.encrypt(secret, who.phone),
        "phone_masked": mask_phone(who.phone),
        "birth_date": who.birth_date,
        "gender": who.gender,
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql.insert(Citizen) if dialect == "postgresql" else sqlite.insert(Citizen)
    refreshed = {k: insert.excluded[k] for k in ("name", "phone_enc", "phone_masked", "id_enc", "updated_at")}
    statement = (
        insert.values(**values)
        .on_conflict_do_update(index_elements=["id_type", "id_hash"], set_=refreshed)
        .returning(Citizen.id)
    )
    return int((await session.execute(statement)).scalar_one())


def citizen_token(secret: str, citizen_id: int, ttl_s: int) -> str:
    return tokens.issue(secret, CITIZEN, str(citizen_id), ttl_s)


def citizen_from_token(secret: str, token: str | None) -> int:
    claims = tokens.verify(secret, CITIZEN, token) if token else None
    if claims is None:
        raise Unauthenticated("a valid citizen token is required")
    try:
        return int(claims["sub"])
    except (TypeError, ValueError):
        raise Unauthenticated("a valid citizen token is required") from None


async def get_citizen(session: AsyncSession, citizen_id: int) -> Citizen:
    citizen = await session.get(Citizen, citizen_id)
    if citizen is None:
        raise Unauthenticated("unknown citizen")
    return citizen


def citizen_view(secret: str, citizen: Citizen) -> dict[str, str]:
    """The owner's own, unmasked data (API.md: GET /me and the login answer)."""
    return {
        "id_type": citizen.id_type,
        "id_number": crypto.decrypt(secret, citizen.id_enc),
        "name": citizen.name,
        "phone": crypto.decrypt(secret, citizen.phone_enc),
    }


async def bans_in_force(session: AsyncSession, citizen_id: int) -> list[Ban]:
    today = clock.today()
    query = select(Ban).where(Ban.citizen_id == citizen_id, Ban.lifted_at.is_(None), Ban.until >= today)
    return list((await session.execute(query.order_by(Ban.until.desc()))).scalars())


async def ban_covering(session: AsyncSession, citizen_id: int, hall_path: str) -> date | None:
    """The last banned date of any ban in force whose unit contains the hall (rules M9, G15)."""
    today = clock.today()
    query = (
        select(func.max(Ban.until))
        .join(Unit, Unit.id == Ban.unit_id)
        .where(
            and_(Ban.citizen_id == citizen_id, Ban.lifted_at.is_(None), Ban.until >= today),
            func.substr(hall_path, 1, func.length(Unit.path)) == Unit.path,
        )
    )
    value = (await session.execute(query)).scalar_one_or_none()
    return value if isinstance(value, date) or value is None else date.fromisoformat(str(value))


async def no_show_count(session: AsyncSession, citizen_id: int) -> int:
    query = select(func.count()).where(Booking.citizen_id == citizen_id, Booking.status == "no_show")
    return int((await session.execute(query)).scalar_one())
