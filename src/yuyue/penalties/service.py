"""No-show marking and bans (rules G13, M12, G15, M9, T9, G14; docs/rules.md "No-show", "Penalties",
"Special-reason miss").

- The job `mark_no_shows` turns every booking still `booked` whose check-in window has closed into
  `no_show`, once: one conditional `UPDATE … WHERE status = 'booked'` per booking decides, so two
  workers (or two overlapping due times) never mark or notify twice. In the same transaction it
  emits `booking.no_show` (the outbox queues the SMS once, dedup key `no_show:<number>`),
  evaluates the penalty of the hall's policy and imposes the bans it triggers (`ban.imposed`: one
  SMS, dedup key `banned:<ban id>`).
- A special-reason rebook excuses the miss (`booking.excused`): its mark goes, a ban it triggered
  is lifted and the remaining no-shows are evaluated again, before the rebook is checked.
- Administrators add a ban for deliberate hoarding, or lift one, with a reason (audited).

Events: `booking.no_show` {"booking"}, `ban.imposed` {"ban"}, `ban.lifted` {"ban"}.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, dataclass
from datetime import date, datetime

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.service import Acting, authorise, may
from yuyue.booking.closures import cancel_if_closed
from yuyue.booking.status import BookingStatus, move
from yuyue.booking.views import BookingView, read
from yuyue.catalogue.service import item_of, service_info
from yuyue.clock import clock
from yuyue.errors import Forbidden, NotFound, ValidationFailed
from yuyue.identity.service import CitizenView, bans_in_force, citizen_view, id_lookup_hash, no_show_count
from yuyue.jobs.service import Job, every, register
from yuyue.kit import crypto
from yuyue.kit.events import Event, emit, subscribe
from yuyue.kit.http import rowcount
from yuyue.kit.idnumbers import normalise_id
from yuyue.models import Ban, Booking, Citizen, NoShowMark, Ticket, Unit, WaitlistEntry
from yuyue.penalties.rules import ALL, COUNTS, DAY, ITEM, Decision, Miss, evaluate
from yuyue.policy.service import checkin_window, effective_policy

# The sweep runs every quarter of an hour: with the shipped knobs (windows close at a slot's end or
# 15 minutes after it, slots on whole or half hours) a booking is marked at the moment its window
# closes; a custom knob is marked at the first quarter-hour after.
SWEEP_MINUTES = 15


def scope_of(source: str) -> str:
    """The unit whose policy set the penalty knob ("default" is the platform's city policy)."""
    return "platform" if source == "default" else source


async def _lock_citizen(session: AsyncSession, citizen_id: int) -> None:
    """Serialise penalty evaluation per citizen (two no-shows marked at once see each other)."""
    await session.execute(select(Citizen.id).where(Citizen.id == citizen_id).with_for_update())


# --- marking ------------------------------------------------------------------------------------


def no_show_candidates(due: datetime) -> Select[Booking]:
    """The sweep's question: the bookings still `booked` whose slot has ended by `due` (migration
    0003's partial index `ix_bookings_booked_end` answers it; tests/penalties/test_no_show_index.py)."""
    return (
        select(Booking)
        .where(Booking.status == "booked", Booking.slot_end <= due)
        .order_by(Booking.slot_end, Booking.id)
    )


async def mark_no_shows(session: AsyncSession, due: datetime) -> int:
    """Rules G13, M12: every booking still `booked` when its check-in window closes becomes
    `no_show`, once. Returns how many this call marked."""
    candidates = (await session.execute(no_show_candidates(due))).scalars().all()
    marked = 0
    for booking in candidates:
        policy = await effective_policy(session, booking.hall_id)
        _, closes = checkin_window(policy.knobs, booking.slot_start, booking.slot_end)
        if closes > due:
            continue
        if await cancel_if_closed(session, booking, due):
            continue  # docs/rules.md "A closed day that has bookings": the hall's cancel, never a miss
        changed = await session.execute(move(booking.id, BookingStatus.NO_SHOW, due))
        if rowcount(changed) != 1:
            continue  # another worker marked it first
        booking.status, booking.updated_at = "no_show", due
        marked += 1
        await _lock_citizen(session, booking.citizen_id)
        scope, rule = scope_of(policy.sources["penalty"]), policy.knobs.penalty
        info = await service_info(session, booking.service_id)
        mark = NoShowMark(
            booking_id=booking.id,
            citizen_id=booking.citizen_id,
            service_id=booking.service_id,
            hall_id=booking.hall_id,
            day=booking.slot_day,
            scope_unit_id=scope,
            rule=rule,
            ban_id=None,
            marked_at=due,
            item=info.item,  # docs/rules.md "Items": rule G15 compares items across halls
            item_ban_id=None,
        )
        session.add(mark)
        await session.flush()
        # rule G13: an SMS tells the citizen (the outbox subscribes; dedup key `no_show:<number>`)
        await emit(session, Event("booking.no_show", {"booking": booking}))
        if rule != "none":
            await _apply(session, booking.citizen_id, scope, rule, mark, due)
    return marked


# The column of `no_show_marks` naming the ban that used a no-show up, per count (penalties.rules).
_USED_BY = {DAY: "ban_id", ALL: "ban_id", ITEM: "item_ban_id"}


def _miss(mark: NoShowMark, rule: str) -> Miss:
    used = frozenset(c for c in COUNTS.get(rule, ()) if getattr(mark, _USED_BY[c]) is not None)
    return Miss(mark.booking_id, mark.item or item_of(mark.service_id, None), mark.day, used)


async def _marks(session: AsyncSession, citizen_id: int, scope: str, rule: str) -> list[NoShowMark]:
    """The citizen's no-shows of this scope and rule, in the order they were marked."""
    query = (
        select(NoShowMark)
        .where(
            NoShowMark.citizen_id == citizen_id,
            NoShowMark.scope_unit_id == scope,
            NoShowMark.rule == rule,
        )
        .order_by(NoShowMark.marked_at, NoShowMark.day, NoShowMark.booking_id)
    )
    return list((await session.execute(query)).scalars())


async def _apply(
    session: AsyncSession, citizen_id: int, scope: str, rule: str, new: NoShowMark, now: datetime
) -> None:
    """Evaluate the rule for a new mark (rules G15, M9) and impose what it triggers."""
    marks = await _marks(session, citizen_id, scope, rule)
    pool = [_miss(m, rule) for m in marks]
    for decision in evaluate(rule, pool, _miss(new, rule)):
        await _impose(session, citizen_id, scope, decision, now)


async def _impose(
    session: AsyncSession, citizen_id: int, scope: str, decision: Decision, now: datetime
) -> Ban:
    ban = Ban(
        citizen_id=citizen_id,
        unit_id=scope,
        until=decision.until,
        reason=decision.reason,
        source="penalty",
        created_at=now,
        lifted_at=None,
    )
    session.add(ban)
    await session.flush()
    column = _USED_BY[decision.count]  # used up for this count only (docs/rules.md "Penalties")
    await session.execute(
        update(NoShowMark)
        .where(NoShowMark.booking_id.in_(decision.used))
        .values({column: ban.id})
        .execution_options(synchronize_session="evaluate")  # the marks read in this session see it
    )
    if decision.until >= now.date():  # a replayed ban already over is history: no SMS
        await emit(session, Event("ban.imposed", {"ban": ban}))
    return ban


# --- special-reason miss (rules T9, G14) --------------------------------------------------------


@subscribe("booking.excused")
async def _excused(session: AsyncSession, event: Event) -> None:
    """The miss counts toward no penalty: its mark goes; a ban it triggered is lifted and the
    remaining no-shows are evaluated again, in the order they were marked. This runs before the
    rebook is checked, so a ban this miss triggered never blocks its rebook."""
    booking: Booking = event.data["booking"]
    mark = await session.get(NoShowMark, booking.id)
    if mark is None:
        return  # excused before the sweep marked it
    await _lock_citizen(session, booking.citizen_id)
    scope, rule = mark.scope_unit_id, mark.rule
    ban_ids = [ban_id for ban_id in (mark.ban_id, mark.item_ban_id) if ban_id is not None]
    await session.delete(mark)
    await session.flush()
    if not ban_ids:
        return
    now = clock.now()
    for ban_id in ban_ids:
        ban = await session.get(Ban, ban_id)
        if ban is not None and ban.lifted_at is None:
            ban.lifted_at = now
            await session.flush()
            await emit(session, Event("ban.lifted", {"ban": ban}))
        for column in ("ban_id", "item_ban_id"):  # its no-shows count again for that count
            await session.execute(
                update(NoShowMark)
                .where(getattr(NoShowMark, column) == ban_id)
                .values({column: None})
                .execution_options(synchronize_session="evaluate")
            )
    marks = await _marks(session, booking.citizen_id, scope, rule)
    for i, new in enumerate(marks):  # evaluated again, each as it was marked, with those before it
        pool = [_miss(m, rule) for m in marks[: i + 1]]
        for decision in evaluate(rule, pool, _miss(new, rule)):
            await _impose(session, booking.citizen_id, scope, decision, now)


# --- what a citizen and an admin see -------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class BanView:
    """A ban as docs/api.md shows it; checked by `BanOut`."""

    id: int
    until: str
    reason: str
    unit_id: str
    source: str
    created_at: str
    lifted_at: str | None


@dataclass(slots=True, kw_only=True)
class Lookup:
    """An admin's citizen lookup: unmasked, with bookings in scope, no-shows and bans in force;
    checked by `LookupOut`."""

    id: str
    citizen: CitizenView
    bookings: list[BookingView]
    no_shows: int
    bans: list[BanView]


def ban_view(ban: Ban) -> BanView:
    return BanView(
        id=ban.id,
        until=ban.until.isoformat(),
        reason=ban.reason,
        unit_id=ban.unit_id,
        source=ban.source,
        created_at=ban.created_at.isoformat(),
        lifted_at=ban.lifted_at.isoformat() if ban.lifted_at else None,
    )


def citizen_ref(secret: str, citizen_id: int) -> str:
    """The opaque citizen id of the admin API: the row id with a keyed tag, so it cannot be guessed."""
    return f"c{citizen_id}.{crypto.lookup_hash(secret, f'citizen-ref:{citizen_id}')[:16]}"


def parse_ref(secret: str, ref: str) -> int:
    head = ref.partition(".")[0]
    if head.startswith("c") and head[1:].isdigit() and len(head) < 12:
        citizen_id = int(head[1:])
        if hmac.compare_digest(citizen_ref(secret, citizen_id), ref):
            return citizen_id
    raise NotFound("citizen not found")


async def find_citizen(session: AsyncSession, secret: str, id_type: str, id_number: str) -> Citizen:
    number = normalise_id(id_type, id_number)
    if number is None:
        raise ValidationFailed(f"id_number is not a valid {id_type}", code="invalid_id_number")
    id_hash = id_lookup_hash(secret, id_type, number)
    citizen = (
        await session.execute(select(Citizen).where(Citizen.id_type == id_type, Citizen.id_hash == id_hash))
    ).scalar_one_or_none()
    if citizen is None:
        raise NotFound("citizen not found")
    return citizen


async def _known_in_subtree(session: AsyncSession, citizen: Citizen, unit_path: str) -> bool:
    """Whether the citizen has a booking, a ticket or a waiting-list entry at a hall under `unit_path`."""
    in_subtree = Unit.path.startswith(unit_path, autoescape=True)
    probes = (
        select(Booking.id)
        .join(Unit, Unit.id == Booking.hall_id)
        .where(Booking.citizen_id == citizen.id, in_subtree),
        select(Ticket.id)
        .join(Unit, Unit.id == Ticket.hall_id)
        .where(Ticket.id_hash == citizen.id_hash, in_subtree),
        select(WaitlistEntry.id)
        .join(Unit, Unit.id == WaitlistEntry.hall_id)
        .where(WaitlistEntry.citizen_id == citizen.id, in_subtree),
    )
    for probe in probes:
        if (await session.execute(probe.limit(1))).first() is not None:
            return True
    return False


async def lookup(session: AsyncSession, secret: str, admin: Acting, id_type: str, id_number: str) -> Lookup:
    """An admin's explicit citizen lookup (docs/api.md: unmasked, audited). Outside the platform
    only citizens with a booking, ticket or waiting entry in the admin's subtree; anyone else is
    `404 not_found`, exactly as an unknown number (no telling who is registered)."""
    citizen = await find_citizen(session, secret, id_type, id_number)
    if not admin.platform and not await _known_in_subtree(session, citizen, admin.unit_path):
        raise NotFound("citizen not found")  # the same answer as an unknown number (docs/api.md)
    bookings = (
        (
            await session.execute(
                select(Booking)
                .join(Unit, Unit.id == Booking.hall_id)
                .where(
                    Booking.citizen_id == citizen.id, Unit.path.startswith(admin.unit_path, autoescape=True)
                )
                .order_by(Booking.created_at.desc(), Booking.id.desc())
                .limit(200)
            )
        )
        .scalars()
        .all()
    )
    ref = citizen_ref(secret, citizen.id)
    await audit(session, admin, admin.unit_id, admin.unit_path, "citizen.lookup", ref, None, None)
    return Lookup(
        id=ref,
        citizen=citizen_view(secret, citizen),
        bookings=[await read(session, b) for b in bookings],
        no_shows=await no_show_count(session, citizen.id),
        bans=[ban_view(b) for b in await bans_in_force(session, citizen.id)],
    )


async def add_ban(
    session: AsyncSession, secret: str, admin: Acting, ref: str, until: date, reason: str
) -> BanView:
    """Rule G15: an administrator may impose more on deliberate slot hoarding; the ban covers the
    halls under the admin's unit."""
    citizen_id = parse_ref(secret, ref)
    if await session.get(Citizen, citizen_id) is None:
        raise NotFound("citizen not found")
    authorise(admin, "penalise", admin.unit_path)  # the 2-2-3 table's own column for penalties
    if until < clock.today():
        raise ValidationFailed("until: the last banned date cannot be in the past")
    ban = Ban(
        citizen_id=citizen_id,
        unit_id=admin.unit_id,
        until=until,
        reason=reason,
        source="admin",
        created_at=clock.now(),
        lifted_at=None,
    )
    session.add(ban)
    await session.flush()
    view = ban_view(ban)
    await audit(session, admin, admin.unit_id, admin.unit_path, "ban.add", ref, None, asdict(view))
    await emit(session, Event("ban.imposed", {"ban": ban}))
    return view


async def lift_ban(
    session: AsyncSession, secret: str, admin: Acting, ref: str, ban_id: int, reason: str
) -> None:
    citizen_id = parse_ref(secret, ref)
    row = (
        await session.execute(
            select(Ban, Unit.path)
            .join(Unit, Unit.id == Ban.unit_id)
            .where(Ban.id == ban_id, Ban.citizen_id == citizen_id)
        )
    ).first()
    if row is None:
        raise NotFound("ban not found")
    ban, path = row
    if not may(admin, "penalise", path):
        raise Forbidden("this ban was imposed outside your unit")
    if ban.lifted_at is not None:
        raise ValidationFailed("this ban is already lifted", code="conflict", status=409)
    before = asdict(ban_view(ban))
    ban.lifted_at = clock.now()
    await session.flush()
    after = asdict(ban_view(ban)) | {"lift_reason": reason}
    await audit(session, admin, ban.unit_id, path, "ban.lift", f"{ref}/bans/{ban.id}", before, after)
    await emit(session, Event("ban.lifted", {"ban": ban}))


async def _sweep(session: AsyncSession, due: datetime) -> None:
    await mark_no_shows(session, due)


register(Job("mark_no_shows", every(SWEEP_MINUTES), _sweep))
