"""The rules of a booking, the same for every door: who asks and through which door (`Caller`),
what a service's rules read (`Context`: its hall, policy and calendar), the slot asked for, and the
checks `book`, `reschedule` and `rebook` make (rules T1, T2, T5, G8, G10, M9, M10, G15). No writes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.idempotency import Keyed
from yuyue.calendar.service import WorkCalendar, service_calendar
from yuyue.catalogue.service import ServiceInfo, SlotSpec, day_slots, parse_slot_id, service_info
from yuyue.clock import at
from yuyue.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable, ValidationFailed
from yuyue.identity.service import SessionCheck, SessionLogin
from yuyue.kit.cache import TTLCache
from yuyue.models import JobRun
from yuyue.policy.service import (
    EffectivePolicy,
    day_opens_at,
    effective_policy,
    offsite_status,
    onsite_status,
)

CHANNELS = ("web", "wechat", "app", "provincial_portal", "onsite", "api")

# Per-process caches keyed by what callers send are bounded by this many entries.
CACHE_MAX = 10_000


@dataclass(frozen=True)
class BookRequest:
    slot_id: str
    channel: str
    quantity: int = 1
    business_types: tuple[str, ...] = ()
    company_uscc: str | None = None
    company_name: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who places or changes a booking, through which door (docs/architecture.md "Owners"):
    every door (API, partner API, portal form, desk, waiting list, rebook) passes one to `book` and
    `reschedule`, which check the same rules for all of them; the doors differ only in how they
    parse and answer.

    `source`: "citizen" (the citizen's own token: API, portal), "channel" (a partner for its
    citizen; `client_id` names it), "rebook" (rules T9, G14), "waitlist" (an allocation), "staff"
    (hall staff at the desk) or "kiosk" (the hall's kiosk). It is also what subscribers of
    `booking.created` read.

    `session`: the citizen's session as the door checked it (decision 0014): the pre-check judges
    one still pending in its own read, and its login applies to a citizen's booking (rules T2, G8).
    `keyed`: the Idempotency-Key this request runs under (`idempotency.idempotent` hands it to its
    work); `book` writes the key's answer in its own statement (decision 0015). Neither travels in
    `session.info` (decision 0085)."""

    source: str = "citizen"
    client_id: str | None = None
    session: SessionCheck | None = None
    keyed: Keyed | None = None

    def login(self, citizen_id: int) -> SessionLogin | None:
        """How `citizen_id` logged in, when the logged-in citizen acts for themselves: None for a
        token without a session and for doors where no citizen's login applies."""
        check = self.session
        if not self.as_citizen or check is None or check.citizen_id != citizen_id:
            return None
        return check.login

    def session_ref(self, citizen_id: int) -> str | None:
        """What a booking records of the session it was made through (migration 0028; rule G15's
        hoarding evidence): `s:<tag>` the citizen's own login session, `p:<client id>:<tag>` one a
        partner obtained (`p:<client id>` without one), the door's name for the doors that act
        without the citizen's session (`staff`, `kiosk`, `waitlist`); None for a citizen's token
        without a session. `<tag>`: 16 hex digits of the session id's SHA-256, not the id."""
        check = self.session if self.as_citizen else None
        sid = check.sid if check is not None and check.citizen_id == citizen_id else None
        tag = hashlib.sha256(sid.encode()).hexdigest()[:16] if sid else None
        if self.source == "channel":
            return f"p:{self.client_id}:{tag}" if tag else f"p:{self.client_id}"
        if not self.as_citizen:
            return self.source
        return f"s:{tag}" if tag else None

    @property
    def as_citizen(self) -> bool:
        """The logged-in citizen acts (their session's login applies: rules T2, G8, decision 0065)."""
        return self.source in ("citizen", "channel", "rebook")

    @property
    def may_book_onsite(self) -> bool:
        """Rule G10, docs/rules.md "On-site booking": only people at the hall book channel `onsite`, through
        hall staff or the hall's kiosk; a special-reason rebook may take today's slots on site (rules
        T9, G14: the platform picks that channel, not the citizen)."""
        return self.source in ("staff", "kiosk", "rebook")


CITIZEN = Caller("citizen")


@dataclass(frozen=True)
class Context:
    """What every booking rule needs about a service: its hall, policy and calendar."""

    info: ServiceInfo
    policy: EffectivePolicy
    calendar: WorkCalendar


async def context(session: AsyncSession, service_id: int) -> Context:
    return await context_of(session, await service_info(session, service_id))


async def context_of(session: AsyncSession, info: ServiceInfo) -> Context:
    """The context of a service already loaded (`service_infos` of a pass over a whole city)."""
    return Context(info, await effective_policy(session, info.hall_id), await service_calendar(session, info))


_specs: dict[str, tuple[ServiceInfo, WorkCalendar, SlotSpec]] = {}


def slot_spec(ctx: Context, slot_id: str) -> SlotSpec:
    """The slot `slot_id` of the context's service (remembered while the service and calendar are
    the same objects: the booking rush asks for the same few slots again and again)."""
    hit = _specs.get(slot_id)
    if hit is not None and hit[0] is ctx.info and hit[1] is ctx.calendar:
        return hit[2]
    spec = _find_spec(ctx, slot_id)
    if len(_specs) > CACHE_MAX:
        _specs.clear()
    _specs[slot_id] = (ctx.info, ctx.calendar, spec)
    return spec


def _find_spec(ctx: Context, slot_id: str) -> SlotSpec:
    parsed = parse_slot_id(slot_id)
    if parsed is None or parsed[0] != ctx.info.id:
        raise NotFound(f"slot {slot_id!r} not found")
    start = parsed[1]
    if ctx.calendar.is_working(start.date()):
        for spec in day_slots(ctx.info, start.date()):
            if spec.start == start:
                return spec
    raise NotFound(f"slot {slot_id!r} not found")


async def resolve_slot(session: AsyncSession, slot_id: str) -> tuple[Context, SlotSpec]:
    parsed = parse_slot_id(slot_id)
    if parsed is None:
        raise NotFound(f"slot {slot_id!r} not found")
    try:
        ctx = await context(session, parsed[0])
    except NotFound:
        raise NotFound(f"slot {slot_id!r} not found") from None
    if not ctx.info.active:
        raise NotFound(f"slot {slot_id!r} not found")
    return ctx, slot_spec(ctx, slot_id)


def check_open(ctx: Context, spec: SlotSpec, channel: str, now: datetime) -> None:
    """Raise the docs/api.md error for a slot that this channel may not book now."""
    knobs = ctx.policy.knobs
    if channel == "onsite":
        status = onsite_status(knobs, ctx.calendar, spec.day, spec.end, now)  # rule G10
    else:
        status = offsite_status(knobs, ctx.calendar, spec.day, spec.start, spec.end, 1, now)
    if status in ("past", "closed_for_booking"):
        raise Unprocessable("booking of this slot has closed", code="booking_closed")
    if status == "not_yet_open":
        if channel == "onsite":
            raise Unprocessable(
                f"on-site booking takes today's slots from {knobs.onsite_opens} on working days",
                code="not_open_yet",
            )
        opens = day_opens_at(knobs, ctx.calendar, spec.day)
        raise Unprocessable(
            f"this day opens for booking at {opens.isoformat()}",
            code="not_open_yet",
            opens_at=opens.isoformat(),
        )


# --- release first to the waiting list (rules G10, G11; decision 0092) -----------------------------
# A newly released day's seats go to the waiting list in the transaction of the `waitlist_release`
# job's run for the release moment (`yuyue.waitlist.service`); that run's `job_runs` row commits with
# the allocation. Until it has committed, open booking of the day answers `not_open_yet`.

RELEASE_JOB = "waitlist_release"
RELEASE_EVERY_MIN = 15  # the job's grid: due at each quarter hour, covering opens in (due - 15 min, due]
# If the run has not committed this long after its due time (no job process running, a run that
# failed), the day opens anyway: the waiting list is late rather than the whole day never opening.
RELEASE_GRACE = timedelta(minutes=15)
_released = TTLCache(2.0)  # (database, due) whose run was seen committed; a committed run stays so


def release_due(opens: datetime) -> datetime:
    """The `waitlist_release` due time that serves a day opening at `opens`: the first quarter hour
    at or after it."""
    midnight = at(opens.date(), "00:00")
    step = timedelta(minutes=RELEASE_EVERY_MIN)
    return midnight + step * -((midnight - opens) // step)


async def released(session: AsyncSession, opens: datetime, now: datetime) -> bool:
    """Whether the waiting list has had the day opening at `opens` (its release run committed).
    Costs a query only between `opens` and the run's commit (or the grace's end)."""
    due = release_due(opens)
    if now < opens:
        return False
    if now >= due + RELEASE_GRACE:
        return True
    bind = session.bind
    key = (str(bind.engine.url) if bind is not None else "", due)
    if _released.get(key) is not None:
        return True
    found = await session.execute(
        select(JobRun.due_at).where(JobRun.job == RELEASE_JOB, JobRun.due_at == due).limit(1)
    )
    if found.first() is None:
        return False
    _released.put(key, True)
    return True


async def check_released(session: AsyncSession, ctx: Context, spec: SlotSpec, now: datetime) -> None:
    """docs/api.md "Waiting list": open booking of a newly released day answers `not_open_yet` until
    the release allocation to the waiting list has committed (rules G10, G11). Called after
    `check_open` passed for an off-site channel; never for the allocation itself."""
    opens = day_opens_at(ctx.policy.knobs, ctx.calendar, spec.day)
    if not await released(session, opens, now):
        raise Unprocessable(
            "this day's seats go to the waiting list first (rule G11): booking opens in a moment",
            code="not_open_yet",
            opens_at=opens.isoformat(),
        )


def check_channel(caller: Caller, channel: str) -> None:
    """The channel this caller may book on (rules T1, G10): a citizen's own token, or a partner's,
    asking for `onsite` is refused, so the on-site share cannot be taken from home."""
    if channel not in CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(CHANNELS)}")
    if channel == "onsite" and not caller.may_book_onsite:
        raise Forbidden(
            "channel onsite is booked only at the hall, by hall staff or the hall's kiosk (rule G10)"
        )


def check_not_banned(banned_until: date | None) -> None:
    """Rules M9, G15: a ban in force forbids booking anew (book, reschedule, rebook other than T9)."""
    if banned_until is not None:
        raise Forbidden(
            f"booking is banned until {banned_until.isoformat()}",
            code="banned",
            banned_until=banned_until.isoformat(),
        )


def live_key(ctx: Context, citizen_id: int, day: date, company_uscc: str | None) -> str | None:
    """The one-live-booking key (rules T5, M10; docs/rules.md "One live booking"), unique among live
    bookings by the partial index `uq_bookings_live_key`, or None when nothing limits this booking.

    Both count among the halls under the unit that set the knob. T5 (`one_live_per: service`): per
    ID and item (docs/rules.md "Items": one item code at several halls is one item), personal business
    only, so a company agent's booking is not limited by it. M10 (`day`): per ID, or per USCC for a
    company agent, and the slot's date, whatever the item."""
    scope = ctx.policy.sources["one_live_per"]  # among the halls under the unit that set it
    if ctx.policy.knobs.one_live_per == "day":
        who = f"co:{company_uscc}" if company_uscc else f"c:{citizen_id}"
        return f"{who}:d:{day.isoformat()}:u:{scope}"
    if company_uscc:
        return None
    return f"c:{citizen_id}:i:{ctx.info.item}:u:{scope}"


def unlimited_key() -> str:
    """The `live_key` of a booking no one-live-booking rule limits: unique, so it never collides."""
    return f"free:{secrets.token_hex(12)}"


def check_login_may_book(login: SessionLogin | None, info: ServiceInfo) -> None:
    """Rules T2/G8: the foreigner login (passport or permit, no provincial login) is for
    foreigner-related business only; every other login may book any service (decision 0065)."""
    if login is not None and login.foreigner and not info.foreigner_related:
        raise Forbidden(
            "this service is not foreigner-related business: log in through the provincial unified "
            "identity service (广东政务服务网) to book it (rules T2, G8)",
            code="provincial_login_required",
        )


def booking_company(
    login: SessionLogin | None, uscc: str | None, name: str | None
) -> tuple[str | None, str | None]:
    """The company (USCC, name) a booking records (rule M10 counts per USCC). A legal person's agent
    (decision 0061) books for the account's own company only: none given means that company, another
    USCC is refused. Personal accounts name a company or not, as they choose (decision 0065)."""
    if login is None or login.company_uscc is None:
        return (uscc, name) if uscc else (None, None)
    if uscc is not None and uscc != login.company_uscc:
        raise Unprocessable(
            "a legal person's agent books for the account's own company only: company.uscc is not "
            "the USCC of the account logged in",
            code="company_mismatch",
        )
    return login.company_uscc, login.company_name or name


def limit_error(ctx: Context) -> DomainError:
    if ctx.policy.knobs.one_live_per == "day":
        return Conflict(
            "one booking per person and day under this hall's policy (rule M10)", code="daily_limit"
        )
    return Conflict(
        "you already hold a live booking of this item, at this hall or another (rule T5)",
        code="already_booked",
    )
