"""Citizens: real-name login through pluggable providers (rule T2/G8), revocable sessions behind
short-lived tokens, personal-data jobs (re-encryption, retention), and what a citizen may see of
themselves.

Providers (YUYUE_IDENTITY_PROVIDERS): `dev` (non-production), `oidc`, `guangdong`, `foreigner`.
The citizen pages and the API both log in with `start_login` / `finish_login` (external providers)
or `login` (a verified `Identity` in hand), which return a citizen id and a token.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import Select, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.clock import TZ, clock
from yuyue.config import Settings, get_settings
from yuyue.db import dialect_insert as _dialect_insert
from yuyue.errors import DomainError, Forbidden, NotFound, Unauthenticated, Unprocessable, ValidationFailed
from yuyue.identity import providers
from yuyue.jobs.service import Job, daily, every, register
from yuyue.kit import crypto, tokens
from yuyue.kit.http import rowcount
from yuyue.kit.idnumbers import ID_TYPES, normalise_id, parse_resident_id, valid_uscc
from yuyue.kit.masking import mask_id, mask_name, mask_phone
from yuyue.models import (
    Admin,
    ApiKey,
    Ban,
    Booking,
    Citizen,
    CitizenSession,
    ForeignerPhone,
    LoginState,
    Message,
    Unit,
)
from yuyue.models.booking import LIVE_STATUSES

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
    kind: str = "person"  # person | legal_person (then this is the acting agent, company below)
    company_uscc: str | None = None
    company_name: str | None = None


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


def id_lookup_hash(secret: str, id_type: str, id_number: str) -> str:
    """The keyed hash citizens are found by (`citizens.id_hash`, with `id_type`): one format for
    every lookup, so a record written at login is the one check-in and admins find."""
    return crypto.lookup_hash(secret, f"{id_type}:{id_number}")


async def upsert_citizen(session: AsyncSession, secret: str, who: Identity) -> int:
    """One citizen row per (ID type, ID number); a later login refreshes name and phone."""
    now = clock.now()
    values = {
        "id_type": who.id_type,
        "id_hash": id_lookup_hash(secret, who.id_type, who.id_number),
        "id_enc": crypto.encrypt(secret, who.id_number),
        "id_masked": mask_id(who.id_number),
        "name_enc": crypto.encrypt(secret, who.name),
        "name_masked": mask_name(who.name),
        "phone_enc": crypto.encrypt(secret, who.phone),
        "phone_masked": mask_phone(who.phone),
        "gender": who.gender,
        "created_at": now,
        "updated_at": now,
    }
    insert = _dialect_insert(session, Citizen)
    columns = ("name_enc", "name_masked", "phone_enc", "phone_masked", "id_enc", "updated_at")
    refreshed = {k: insert.excluded[k] for k in columns}
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


@dataclass(slots=True, kw_only=True)
class CitizenView:
    """The owner's own, unmasked data; checked by `CitizenOut`."""

    id_type: str
    id_number: str
    name: str
    phone: str


@dataclass(slots=True, kw_only=True)
class BanInForce:
    id: int
    until: str
    reason: str
    unit_id: str


@dataclass(slots=True, kw_only=True)
class MeView:
    """`GET /api/v1/me` (docs/api.md); checked by `MeOut`."""

    citizen: CitizenView
    bans: list[BanInForce]
    no_shows: int


@dataclass(slots=True, kw_only=True)
class LoginAnswer:
    """A login's answer: the token and the owner's data; checked by `LoginOut`."""

    token: str
    citizen: CitizenView


def citizen_view(secret: str, citizen: Citizen) -> CitizenView:
    """The owner's own, unmasked data (docs/api.md: GET /me and the login answer)."""
    return CitizenView(
        id_type=citizen.id_type,
        id_number=crypto.decrypt(secret, citizen.id_enc),
        name=crypto.decrypt(secret, citizen.name_enc),
        phone=crypto.decrypt(secret, citizen.phone_enc),
    )


async def login_answer(session: AsyncSession, secret: str, result: LoginResult) -> LoginAnswer:
    return LoginAnswer(
        token=result.token, citizen=citizen_view(secret, await get_citizen(session, result.citizen_id))
    )


async def me(session: AsyncSession, secret: str, citizen_id: int) -> MeView:
    """The owner's data unmasked, the bans in force and the no-shows on record (docs/api.md)."""
    citizen = await get_citizen(session, citizen_id)
    bans = await bans_in_force(session, citizen_id)
    return MeView(
        citizen=citizen_view(secret, citizen),
        bans=[
            BanInForce(id=b.id, until=b.until.isoformat(), reason=b.reason, unit_id=b.unit_id) for b in bans
        ],
        no_shows=await no_show_count(session, citizen_id),
    )


async def bans_in_force(session: AsyncSession, citizen_id: int) -> list[Ban]:
    today = clock.today()
    query = select(Ban).where(Ban.citizen_id == citizen_id, Ban.lifted_at.is_(None), Ban.until >= today)
    return list((await session.execute(query.order_by(Ban.until.desc()))).scalars())


def ban_until_query(citizen_id: int, hall_path: str) -> Select[date]:
    """SELECT the last banned date of any ban in force whose unit contains the hall (rules M9,
    G15); the booking path embeds it in its one pre-check round trip."""
    today = clock.today()
    return (
        select(func.max(Ban.until))
        .join(Unit, Unit.id == Ban.unit_id)
        .where(
            and_(Ban.citizen_id == citizen_id, Ban.lifted_at.is_(None), Ban.until >= today),
            func.substr(hall_path, 1, func.length(Unit.path)) == Unit.path,
        )
    )


def as_date(value: object) -> date | None:
    """A DATE column's value as read on PostgreSQL (date) or through an untyped SQLite path (text)."""
    return value if isinstance(value, date) or value is None else date.fromisoformat(str(value))


async def ban_covering(session: AsyncSession, citizen_id: int, hall_path: str) -> date | None:
    """The last banned date of any ban in force whose unit contains the hall (rules M9, G15)."""
    return as_date((await session.execute(ban_until_query(citizen_id, hall_path))).scalar_one_or_none())


async def no_show_count(session: AsyncSession, citizen_id: int) -> int:
    query = select(func.count()).where(Booking.citizen_id == citizen_id, Booking.status == "no_show")
    return int((await session.execute(query)).scalar_one())


# --- providers: external logins, foreigners, sessions (issue 9) ----------------------------------

EXTERNAL = ("oidc", "guangdong")
FOREIGN_ID_TYPES = ("passport", "hk_macao_permit", "taiwan_permit", "foreigner_permanent_id")


@dataclass(frozen=True)
class LoginStart:
    provider: str
    authorize_url: str
    state: str


@dataclass(frozen=True)
class LoginResult:
    citizen_id: int
    token: str
    session_id: str
    identity: Identity
    id_token: str | None = None  # OIDC: the hint for the provider's end-session request at logout


def real_now() -> datetime:
    """Sessions and login states run on real time, not the test clock (docs/api.md "Test clock")."""
    return datetime.now(TZ)


def _enabled(settings: Settings, provider: str) -> None:
    if provider not in settings.providers:
        raise NotFound(f"login provider {provider} is not enabled")


def identity_from_claims(claims: providers.Claims) -> Identity:
    """One citizen record whatever the provider; rule T2/G8: real-name verified accounts only."""
    if not claims.real_name:
        raise Forbidden("the account is not real-name verified", code="not_real_name")
    who = verify_identity(claims.name, claims.id_type, claims.id_number, claims.phone)
    if claims.kind == "legal_person":
        if claims.company_uscc is None or not valid_uscc(claims.company_uscc):
            raise Unprocessable("the legal person's USCC fails the GB 32100 check", code="invalid_uscc")
        who = replace(
            who,
            kind="legal_person",
            company_uscc=claims.company_uscc.upper(),
            company_name=(claims.company_name or "")[:200] or None,
        )
    return who


async def open_session(
    session: AsyncSession,
    settings: Settings,
    citizen_id: int,
    provider: str,
    who: Identity | None = None,
    *,
    client_id: str | None = None,
) -> tuple[str, str]:
    """A revocable session and a short-lived token naming it (`sid`): (session id, token)."""
    now = real_now()
    sid = secrets.token_urlsafe(24)
    ttl = min(settings.token_ttl_s, settings.session_ttl_s)
    session.add(
        CitizenSession(
            id=sid,
            citizen_id=citizen_id,
            provider=provider,
            client_id=client_id,
            company_uscc=who.company_uscc if who else None,
            company_name=who.company_name if who else None,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.session_ttl_s),
            revoked_at=None,
        )
    )
    await session.flush()
    token = tokens.issue(settings.effective_secret, CITIZEN, str(citizen_id), ttl, sid=sid)
    return sid, token


async def login(
    session: AsyncSession, settings: Settings, who: Identity, provider: str, *, client_id: str | None = None
) -> LoginResult:
    """A verified identity in hand: the citizen row (created or refreshed) and a new session."""
    citizen_id = await upsert_citizen(session, settings.effective_secret, who)
    sid, token = await open_session(session, settings, citizen_id, provider, who, client_id=client_id)
    return LoginResult(citizen_id=citizen_id, token=token, session_id=sid, identity=who)


async def start_login(settings: Settings, provider: str) -> LoginStart:
    """Begin an external login: the URL to send the citizen to, and the `state` to bring back.

    The state is an encrypted, expiring blob holding the provider, nonce and PKCE verifier (no
    database write before the provider answers); `finish_login` makes it single-use."""
    _enabled(settings, provider)
    if provider not in EXTERNAL:
        raise NotFound(f"{provider} has no external login")
    nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    blob = {"p": provider, "n": nonce, "v": verifier, "x": int(time.time()) + settings.login_state_ttl_s}
    state = crypto.encrypt(settings.effective_secret, json.dumps(blob))
    if provider == "oidc":
        url = await providers.oidc_authorize_url(settings, state, nonce, verifier)
    else:
        url = providers.gd_authorize_url(settings, state)
    return LoginStart(provider=provider, authorize_url=url, state=state)


def _open_state(settings: Settings, provider: str, state: str) -> dict[str, object]:
    try:
        blob = json.loads(crypto.decrypt(settings.effective_secret, state))
    except (InvalidToken, ValueError):
        raise Unauthenticated("unknown login state", code="login_failed") from None
    if not isinstance(blob, dict) or blob.get("p") != provider:
        raise Unauthenticated("the login state belongs to another provider", code="login_failed")
    if not isinstance(blob.get("x"), int) or blob["x"] < time.time():
        raise Unauthenticated("the login took too long; start again", code="login_failed")
    return blob


async def finish_login(
    session: AsyncSession, settings: Settings, provider: str, code: str, state: str
) -> LoginResult:
    """Finish an external login with the provider's `code` and our `state` (each state once)."""
    _enabled(settings, provider)
    if provider not in EXTERNAL:
        raise NotFound(f"{provider} has no external login")
    blob = _open_state(settings, provider, state)
    if provider == "oidc":
        claims = await providers.oidc_finish(settings, code, str(blob["n"]), str(blob["v"]))
    else:
        claims = await providers.gd_finish(settings, code)
    who = identity_from_claims(claims)
    # Only now, after the provider's I/O, the transaction begins: the state is used up by its key.
    used = _dialect_insert(session, LoginState).values(
        state_hash=crypto.lookup_hash(settings.effective_secret, f"state:{state}"),
        provider=provider,
        used_at=real_now(),
    )
    claimed = await session.execute(used.on_conflict_do_nothing(index_elements=["state_hash"]))
    if not rowcount(claimed):
        raise Unauthenticated("this login state was already used", code="login_failed")
    return replace(await login(session, settings, who, provider), id_token=claims.id_token)


# One answer for every refusal of a phone token: a bad, expired or used token, or a document held
# with another phone. Telling the last apart would tell anyone whether a document is registered.
_NOT_CONFIRMED = "phone_token does not confirm this phone number for this document"


async def foreigner_login(
    session: AsyncSession,
    settings: Settings,
    name: str,
    id_type: str,
    id_number: str,
    phone: str,
    phone_token: str,
) -> LoginResult:
    """Rule G8: foreigners' business without the provincial login, by passport or permit; the mobile
    number is confirmed by SMS code (rule M6) and the documents are checked on site.

    Issue 19: the phone token is single-use (its first login, refused or not, uses it up: a
    refusal keeps that write); a document already held with another phone gets the same
    `422 invalid_code` as a bad token; one phone holds at most YUYUE_FOREIGNER_DOCUMENTS_PER_PHONE
    documents (`422 phone_document_limit`); moving a document to another phone is done at a hall."""
    _enabled(settings, "foreigner")
    if id_type not in FOREIGN_ID_TYPES:
        raise ValidationFailed(f"id_type must be one of {', '.join(FOREIGN_ID_TYPES)} (rule G8)")
    secret = settings.effective_secret
    who = verify_identity(name, id_type, id_number, phone)  # bad input changes nothing
    if not phone_confirmed(secret, phone_token, who.phone):
        raise Unprocessable(_NOT_CONFIRMED, code="invalid_code")
    used = _dialect_insert(session, LoginState).values(
        state_hash=crypto.lookup_hash(secret, f"phone-token:{phone_token}"),
        provider="foreigner",
        used_at=real_now(),
    )
    if not rowcount(await session.execute(used.on_conflict_do_nothing(index_elements=["state_hash"]))):
        raise Unprocessable(_NOT_CONFIRMED, code="invalid_code")
    try:  # from here on the token is used up, whatever the answer: a refusal keeps that write
        if await held_with_another_phone(session, secret, who):
            raise Unprocessable(_NOT_CONFIRMED, code="invalid_code")
        await _bind_document(session, settings, who)
        return await login(session, settings, who, "foreigner")
    except DomainError as exc:
        exc.keep_writes = True
        raise


async def held_with_another_phone(session: AsyncSession, secret: str, who: Identity) -> bool:
    """A passport number cannot be checked online, only the phone: a record already held under
    that document with another phone is not handed to whoever types its number (they would see
    that person's bookings). The holder logs in with their own phone, or changes it at a hall."""
    row = (
        await session.execute(
            select(Citizen.phone_enc).where(
                Citizen.id_type == who.id_type,
                Citizen.id_hash == id_lookup_hash(secret, who.id_type, who.id_number),
            )
        )
    ).first()
    return row is not None and bool(row.phone_enc) and crypto.decrypt(secret, row.phone_enc) != who.phone


async def _bind_document(session: AsyncSession, settings: Settings, who: Identity) -> None:
    """Record that this phone holds this document; refuse a document beyond the phone's allowance."""
    secret = settings.effective_secret
    phone_hash = crypto.lookup_hash(secret, f"phone:{who.phone}")
    id_hash = id_lookup_hash(secret, who.id_type, who.id_number)
    held = select(ForeignerPhone.id_type, ForeignerPhone.id_hash).where(
        ForeignerPhone.phone_hash == phone_hash
    )
    documents = {(r.id_type, r.id_hash) for r in await session.execute(held)}
    if (who.id_type, id_hash) in documents:
        return
    if len(documents) >= settings.foreigner_documents_per_phone:
        raise Unprocessable(
            f"this phone number already holds {len(documents)} documents; further documents are "
            "registered at a service hall",
            code="phone_document_limit",
        )
    bind = _dialect_insert(session, ForeignerPhone).values(
        phone_hash=phone_hash, id_type=who.id_type, id_hash=id_hash, created_at=real_now()
    )
    await session.execute(bind.on_conflict_do_nothing(index_elements=["phone_hash", "id_type", "id_hash"]))


@dataclass(frozen=True)
class MovedDocument:
    """A foreigner's document moved to another phone (`move_document`): masked phones, before and
    after, and how many of the citizen's sessions that ended."""

    citizen_id: int
    id_masked: str
    name_masked: str
    phone_before: str
    phone_after: str
    sessions_ended: int


async def move_document(
    session: AsyncSession, settings: Settings, id_type: str, id_number: str, phone: str
) -> MovedDocument:
    """Issue 19: a passport or permit held with one phone moves to another, at a hall, where a clerk
    has seen the document and its holder (the only way: online, the number alone proves nothing).
    The record keeps its bookings; the new phone holds the document (beyond the per-phone allowance
    if need be: that allowance is for logins from anywhere), the old one no longer does, and every
    session of the record ends, so whoever held the old phone is logged out. `404 not_found` when
    no one has logged in with that document."""
    if id_type not in FOREIGN_ID_TYPES:
        raise ValidationFailed(f"id_type must be one of {', '.join(FOREIGN_ID_TYPES)} (rule G8)")
    number = normalise_id(id_type, id_number)
    if number is None:
        raise Unprocessable(f"id_number is not a valid {id_type}", code="invalid_id_number")
    if not MOBILE.match(phone):
        raise ValidationFailed("phone must be a mainland mobile number of 11 digits")
    secret = settings.effective_secret
    id_hash = id_lookup_hash(secret, id_type, number)
    citizen = (
        await session.execute(select(Citizen).where(Citizen.id_type == id_type, Citizen.id_hash == id_hash))
    ).scalar_one_or_none()
    if citizen is None:
        raise NotFound("no one has logged in with this document")
    before = citizen.phone_masked
    citizen.phone_enc = crypto.encrypt(secret, phone)
    citizen.phone_masked = mask_phone(phone)
    citizen.updated_at = clock.now()
    await session.flush()
    await session.execute(
        delete(ForeignerPhone).where(ForeignerPhone.id_type == id_type, ForeignerPhone.id_hash == id_hash)
    )
    bind = _dialect_insert(session, ForeignerPhone).values(
        phone_hash=crypto.lookup_hash(secret, f"phone:{phone}"),
        id_type=id_type,
        id_hash=id_hash,
        created_at=real_now(),
    )
    await session.execute(bind.on_conflict_do_nothing(index_elements=["phone_hash", "id_type", "id_hash"]))
    ended = await revoke_all(session, citizen.id)
    return MovedDocument(
        citizen.id, citizen.id_masked, citizen.name_masked, before, citizen.phone_masked, ended
    )


@dataclass(frozen=True)
class SessionLogin:
    """How the citizen of this request logged in, as their session records it (decision 0065): the
    provider (`foreigner`: passport or permit without the provincial login, rules T2/G8) and, for
    a legal person's agent, the company the account belongs to."""

    citizen_id: int
    provider: str
    company_uscc: str | None
    company_name: str | None

    @property
    def foreigner(self) -> bool:
        return self.provider == "foreigner"


@dataclass
class SessionCheck:
    """A citizen token checked, with its session row judged now or later (decision 0014): the
    door that read the token hands this to the booking use case (`booking.rules.Caller.session`),
    which judges a row still pending with its own first read. `login` is how that session logged
    in (None for a token without a session, or before it is judged)."""

    citizen_id: int
    sid: str | None
    judged: bool = False
    login: SessionLogin | None = None

    @property
    def pending(self) -> bool:
        """Whether the session row is still to be judged (`accept_session`/`settle_session`)."""
        return not self.judged


# Built once: every citizen request runs it (decision 0013).
_sessions = CitizenSession.__table__.c  # Core columns: no ORM work for a few columns
# What `accept_session` judges; `expires_at` is never NULL in a row, so NULL means "no such row".
SESSION_STATE_COLUMNS = (
    _sessions.revoked_at,
    _sessions.expires_at,
    _sessions.provider,
    _sessions.company_uscc,
    _sessions.company_name,
    _sessions.client_id,
)
_SESSION_STATE = select(*SESSION_STATE_COLUMNS).where(_sessions.id == bindparam("sid"))


def citizen_of_token(secret: str, token: str | None) -> tuple[int, str | None]:
    """The citizen id and the session id (None for a token without one) of a valid citizen token,
    from the token alone; 401 otherwise."""
    claims = tokens.verify(secret, CITIZEN, token) if token else None
    if claims is None:
        raise Unauthenticated("a valid citizen token is required")
    try:
        citizen_id = int(claims["sub"])
    except (TypeError, ValueError):
        raise Unauthenticated("a valid citizen token is required") from None
    sid = claims.get("sid")
    return citizen_id, None if sid is None else str(sid)


def accept_session(check: SessionCheck, row: Any, *, partner: str | None = None) -> None:
    """Judge the row `_SESSION_STATE` read for `sid` (None: no such row): 401 when the session is
    gone, revoked or expired, or belongs to another door: a session a partner obtained
    (`client_id`) is accepted only on that partner's signed requests (`partner`), never on the
    citizen's own routes (decision 0094); otherwise note how it logged in (`check.login`)."""
    check.judged = True
    if check.sid is None:
        return
    if row is None or row.revoked_at is not None or row.expires_at <= real_now():
        raise Unauthenticated("the session has ended; log in again")
    if row.client_id != partner:
        raise Unauthenticated("this token is accepted only on its partner's signed requests")
    check.login = SessionLogin(check.citizen_id, row.provider, row.company_uscc, row.company_name)


def accept_judged(check: SessionCheck, provider: str | None) -> None:
    """`accept_session` for a session row a statement judged itself with the same conditions (the
    booking's one statement, decision 0099): standing, not a partner's, a personal login (no
    company) that logged in through `provider`."""
    check.judged = True
    if check.sid is not None:
        check.login = SessionLogin(check.citizen_id, str(provider), None, None)


async def citizen_session(session: AsyncSession, secret: str, token: str | None) -> SessionCheck:
    """The citizen of a valid token whose session (if it names one) is neither revoked nor expired,
    judged now; the check carries how that session logged in (`login`), for the booking rules."""
    check = defer_session_check(secret, token)
    await settle_session(session, check)
    return check


async def citizen_from_session(session: AsyncSession, secret: str, token: str | None) -> int:
    """`citizen_session`'s citizen id."""
    return (await citizen_session(session, secret, token)).citizen_id


def defer_session_check(secret: str, token: str | None) -> SessionCheck:
    """`citizen_session` with the token checked now and the session row read later, by the
    caller's own first query (the booking pre-check reads it in the same round trip, decision
    0014). The caller must end with the check judged by `accept_session`, or call `settle_session`
    before answering anything else, so a revoked session still gets its 401."""
    citizen_id, sid = citizen_of_token(secret, token)
    return SessionCheck(citizen_id, sid)


async def settle_session(session: AsyncSession, check: SessionCheck) -> None:
    """Judge a deferred session now (401 when it has ended); nothing when it is judged already."""
    if not check.pending:
        return
    sid = check.sid
    row = None if sid is None else (await session.execute(_SESSION_STATE, {"sid": sid})).first()
    accept_session(check, row)


def session_id_of(secret: str, token: str | None) -> str | None:
    claims = tokens.verify(secret, CITIZEN, token) if token else None
    sid = claims.get("sid") if claims else None
    return str(sid) if sid is not None else None


async def logout(session: AsyncSession, secret: str, token: str | None) -> None:
    """Revoke the token's session (its tokens stop working at once)."""
    sid = session_id_of(secret, token)
    if sid is None:
        raise Unauthenticated("a valid session token is required")
    await session.execute(
        update(CitizenSession)
        .where(CitizenSession.id == sid, CitizenSession.revoked_at.is_(None))
        .values(revoked_at=real_now())
        .execution_options(synchronize_session=False)
    )


async def provider_logout_url(settings: Settings, id_token: str | None) -> str | None:
    """After an OIDC login: the provider's end-session URL (RP-initiated logout), if it has one."""
    return await providers.oidc_logout_url(settings, id_token)


async def revoke_all(session: AsyncSession, citizen_id: int) -> int:
    result = await session.execute(
        update(CitizenSession)
        .where(CitizenSession.citizen_id == citizen_id, CitizenSession.revoked_at.is_(None))
        .values(revoked_at=real_now())
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


# --- personal data jobs: key rotation and retention (issue 9) ------------------------------------

BATCH = 500
_job_secret: list[str] = []  # set by the app at start (jobs receive only a session and a time)
retention_days: list[int] = [3 * 365]
ANONYMISED = "anonymised"


def use_settings(settings: Settings) -> None:
    _job_secret[:] = [settings.effective_secret]
    retention_days[:] = [settings.retention_days]
    crypto.configure(settings.data_key_list)


def process_secret() -> str:
    """The secret of this process: set by create_app, else (`yuyue worker`) from the environment.
    Event handlers and jobs that have no request (notify's admin alerts, the personal-data jobs)
    use it."""
    if not _job_secret:
        use_settings(get_settings())
    return _job_secret[0]


# Every column that holds a ciphertext under the data key ring (decision 0062): citizens' ID, name
# and phone, admins' phone (decision 0095), the outbox's recipients (a reminder queued before a
# rotation must still be sendable after the retired key is dropped) and the partner clients'
# signing secrets.
ENCRYPTED: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (Citizen, ("id_enc", "name_enc", "phone_enc")),
    (Admin, ("phone_enc",)),
    (Message, ("phone_enc",)),
    (ApiKey, ("secret_enc",)),
)


async def reencrypt(session: AsyncSession, secret: str) -> int:
    """Re-encrypt every ciphertext not yet under the newest key; how many rows changed."""
    changed = 0
    for model, columns in ENCRYPTED:
        changed += await _reencrypt_table(session, secret, model, columns)
    return changed


async def _reencrypt_table(session: AsyncSession, secret: str, model: Any, columns: tuple[str, ...]) -> int:
    pk = model.id
    changed, last = 0, None
    while True:
        query = select(pk, *(getattr(model, c) for c in columns)).order_by(pk).limit(BATCH)
        if last is not None:
            query = query.where(pk > last)
        rows = (await session.execute(query)).all()
        if not rows:
            return changed
        for row in rows:
            last = row[0]
            values = dict(zip(columns, row[1:], strict=True))
            stale = {c: v for c, v in values.items() if v and not crypto.is_current(secret, v)}
            if not stale:
                continue
            await session.execute(
                update(model)
                .where(pk == row[0])
                .values({c: crypto.rotate(secret, v) for c, v in stale.items()})
                .execution_options(synchronize_session=False)
            )
            changed += 1


async def anonymise(session: AsyncSession, secret: str, today: date, keep_days: int) -> tuple[int, int]:
    """Retention: bookings whose slot date is more than `keep_days` before today lose their personal
    details (company, reason); citizens with no booking, session or ban inside the period are
    anonymised (name, ID and phone replaced). Returns (bookings, citizens) changed."""
    cutoff = today - timedelta(days=keep_days)
    bookings = await session.execute(
        update(Booking)
        .where(
            Booking.slot_day < cutoff,
            Booking.status.not_in(LIVE_STATUSES),
            or_(
                Booking.company_uscc.is_not(None),
                Booking.company_name.is_not(None),
                Booking.reason.is_not(None),
            ),
        )
        .values(company_uscc=None, company_name=None, reason=None)
        .execution_options(synchronize_session=False)
    )
    stamp = datetime.combine(cutoff, datetime.min.time(), TZ)
    recent_booking = select(Booking.id).where(Booking.citizen_id == Citizen.id, Booking.slot_day >= cutoff)
    recent_session = select(CitizenSession.id).where(
        CitizenSession.citizen_id == Citizen.id, CitizenSession.created_at >= stamp
    )
    recent_ban = select(Ban.id).where(Ban.citizen_id == Citizen.id, Ban.until >= cutoff)
    stale = (
        (
            await session.execute(
                select(Citizen.id).where(
                    Citizen.id_type != ANONYMISED,
                    Citizen.updated_at < stamp,
                    ~recent_booking.exists(),
                    ~recent_session.exists(),
                    ~recent_ban.exists(),
                )
            )
        )
        .scalars()
        .all()
    )
    blank = crypto.encrypt(secret, "")
    for citizen_id in stale:
        await session.execute(
            update(Citizen)
            .where(Citizen.id == citizen_id)
            .values(
                id_type=ANONYMISED,
                id_hash=f"anonymised:{citizen_id}",
                id_enc=blank,
                id_masked="",
                name_enc=blank,
                name_masked="*",
                phone_enc=blank,
                phone_masked="",
                gender=None,
                updated_at=clock.now(),
            )
            .execution_options(synchronize_session=False)
        )
    return rowcount(bookings), len(stale)


async def _reencrypt_job(session: AsyncSession, due: datetime) -> None:
    await reencrypt(session, process_secret())


async def _retention_job(session: AsyncSession, due: datetime) -> None:
    await anonymise(session, process_secret(), due.date(), retention_days[0])


async def _purge_job(session: AsyncSession, due: datetime) -> None:
    """Used login states outlive their own expiry by a day at most; ended sessions by 30 days."""
    now = real_now()
    await session.execute(delete(LoginState).where(LoginState.used_at < now - timedelta(days=1)))
    await session.execute(delete(CitizenSession).where(CitizenSession.expires_at < now - timedelta(days=30)))


register(Job("personal_data_reencrypt", daily("03:10"), _reencrypt_job, coalesce=True))
register(Job("personal_data_retention", daily("03:40"), _retention_job, coalesce=True))
register(Job("identity_purge", every(60), _purge_job, coalesce=True))


# --- proof that a phone number was confirmed by SMS code (rule M6) -------------------------------
# notify/ sends the code and checks it; the token it then hands out is identity's: the foreigner
# login (rule G8) accepts it as proof of the number.

PHONE_TOKEN = "phone"  # noqa: S105 - the audience of phone tokens, not a secret
PHONE_TOKEN_TTL_S = 15 * 60


def phone_token(secret: str, phone: str) -> str:
    """Proof, for 15 minutes, that the bearer confirmed this number by SMS (rule M6)."""
    return tokens.issue(secret, PHONE_TOKEN, crypto.lookup_hash(secret, f"phone:{phone}"), PHONE_TOKEN_TTL_S)


def phone_confirmed(secret: str, token: str, phone: str) -> bool:
    claims = tokens.verify(secret, PHONE_TOKEN, token)
    return claims is not None and claims.get("sub") == crypto.lookup_hash(secret, f"phone:{phone}")


# --- 长辈模式 per account (issue 20) ------------------------------------------------------------------


async def elder_mode_of(session: AsyncSession, citizen_id: int) -> bool | None:
    """The citizen's own choice of elder mode; None when never chosen on this account."""
    value = (
        await session.execute(select(Citizen.elder_mode).where(Citizen.id == citizen_id))
    ).scalar_one_or_none()
    return None if value is None else bool(value)


async def set_elder_mode(session: AsyncSession, citizen_id: int, on: bool) -> None:
    """Remember the choice on the account, so the next login (any browser) starts in it."""
    await session.execute(
        update(Citizen).where(Citizen.id == citizen_id).values(elder_mode=on, updated_at=clock.now())
    )
