"""The demo's past: 60 days of believable history over the demo halls, relative to `clock.now()`, so
the dashboard, figures, alerts and audit log show life on first look (`yuyue demo`).

Loaded once, into a demo that has no booking yet (running `yuyue demo` again adds nothing). The
past is written in bulk, keeping the invariants the booking path keeps:

- seats: one `slots` row per slot that had a booking, `booked` = the seats of its bookings not
  cancelled (a seat sold once: off-site bookings never take the on-site share, rule G10);
- numbers: `I` + hall code + slot date + a sequence per hall and date in the order the bookings were
  made, with `booking_counters` at the last number (rule M12); tickets likewise (`A001`…);
- the one-live-booking key of the hall's policy (`live_key`, rules T5, M10) is unique among live
  bookings, and no citizen holds more live bookings than the policy allows;
- states: a booking whose check-in window has closed is `served` (checked in, called, finished) or
  `no_show` (~6 %), one inside its window may be `checked_in` (a waiting ticket), later ones
  `booked`; ~10 % were cancelled before their deadline (seats given back);
- no-shows carry their `no_show_marks`, and the bans they trigger are the penalty rules' own
  (`penalties.rules.evaluate`, rules G15, M9), one citizen at least banned now;
- citizens have valid resident ID numbers (GB 11643), stored with the identity service's keyed hash
  and encryption.

What an administrator or a citizen does today goes through the domain functions: the waiting list
for full days (`waitlist.join`), a capacity request approved by an admin allowed to approve it and
one still pending past its deadline (`propose_capacity`, `decide_request`, audited), the overdue
alert (`flag_overdue_approvals`), and the figures of the past days (`stats.roll_up`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.alerts import flag_overdue_approvals
from yuyue.admin.capacity import decide_request, propose_capacity
from yuyue.auth.service import Acting
from yuyue.booking.rules import Context, context, live_key, unlimited_key
from yuyue.catalogue.service import SlotSpec, clear_caches, day_slots
from yuyue.clock import TZ, at, clock
from yuyue.errors import DomainError
from yuyue.identity.service import id_lookup_hash
from yuyue.kit import crypto
from yuyue.kit.idnumbers import gb11643_check_char, uscc_check_char
from yuyue.kit.masking import mask_id, mask_name, mask_phone
from yuyue.models import (
    Admin,
    AuditEntry,
    Ban,
    Booking,
    BookingCounter,
    CapacityRequest,
    Citizen,
    NoShowMark,
    Service,
    Slot,
    Ticket,
    TicketCounter,
    Unit,
    WaitlistEntry,
)
from yuyue.penalties.rules import Miss, evaluate
from yuyue.penalties.service import scope_of
from yuyue.policy.service import cancel_deadline, checkin_window, offsite_status, onsite_hold
from yuyue.stats.service import roll_up
from yuyue.waitlist.service import join

HISTORY_DAYS = 60
CITIZENS = 3000
COMPANIES = 150
NO_SHOW = 0.065  # of bookings not cancelled whose window closed
CANCELLED = 0.10  # of all bookings
# Fill of a slot's seats by weekday (Monday busiest), by kind of hall, by hour of the day.
WEEKDAY_FILL = {0: 0.46, 1: 0.38, 2: 0.35, 3: 0.33, 4: 0.41, 5: 0.25, 6: 0.2}
KIND_FILL = {"city_hall": 1.0, "district_hall": 0.95, "street_hall": 0.7, "village_hall": 0.5}
HOUR_FILL = {8: 0.9, 9: 1.15, 10: 1.25, 11: 1.0, 12: 0.6, 13: 0.7, 14: 0.95, 15: 0.9, 16: 0.7, 17: 0.5}
CHANNELS = {"wechat": 34, "provincial_portal": 26, "app": 18, "web": 14}
ONSITE_SHARE = 0.06  # bookings made at the hall (channel onsite), of those not cancelled
FULL_SERVICE = ("tianhe-shipai", "老年人优待证办理")  # full the next working days: citizens queue
WAITING = 6

SURNAMES = "陈李黄张梁林刘吴罗何郑杨谢郭许邓冯曾朱周彭蔡潘卢徐叶钟王赵孙胡高马苏江方余温廖欧杜莫"
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文斌宇浩凯俊嘉欣怡晓"
    "婷雪琳颖子轩梓涵诗雨思彤佳琪锦荣永健家乐伟雄淑仪少芬美玲国强丽珍慧敏晓东"
)
DISTRICT_CODES = ("440103", "440104", "440105", "440106", "440111", "440112", "440113", "440114", "440115")
COMPANY_WORDS = (
    "天盈",
    "穗联",
    "珠江",
    "羊城",
    "粤海",
    "越秀",
    "南沙",
    "花城",
    "云山",
    "东山",
    "岭南",
    "五羊",
)
COMPANY_TRADES = ("科技", "贸易", "餐饮", "物业管理", "建筑工程", "文化传播", "物流", "电子商务", "咨询")


@dataclass
class Person:
    id: int
    id_hash: str
    born: date


@dataclass
class Hall:
    unit: Unit
    services: list[Context]
    scope: str  # the unit whose policy sets the penalty (rules G15, M9)
    rule: str


@dataclass
class Plan:
    """What the history writes, gathered before the bulk inserts."""

    bookings: list[dict[str, Any]] = field(default_factory=list)
    live_keys: set[str] = field(default_factory=set)
    live_count: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    seen: set[tuple[int, int, date]] = field(default_factory=set)


def _id_number(rng: random.Random, born: date, male: bool) -> str:
    order = rng.randrange(0, 50) * 2 + (1 if male else 0)
    first17 = f"{rng.choice(DISTRICT_CODES)}{born:%Y%m%d}{rng.randrange(1, 10)}{order:02d}"
    return first17 + gb11643_check_char(first17)


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3578')}{rng.randrange(0, 10)}{rng.randrange(0, 10**8):08d}"


def _name(rng: random.Random) -> str:
    given = rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.8 else "")
    return rng.choice(SURNAMES) + given


def _uscc(rng: random.Random) -> str:
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    first17 = "91" + rng.choice(DISTRICT_CODES) + "".join(rng.choice(chars) for _ in range(9))
    return first17 + uscc_check_char(first17)


async def _citizens(session: AsyncSession, secret: str, rng: random.Random, today: date) -> list[Person]:
    now = clock.now()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    births: dict[str, date] = {}
    while len(rows) < CITIZENS:
        age = rng.choice((rng.randrange(18, 40), rng.randrange(25, 60), rng.randrange(60, 86)))
        born = date(today.year - age, rng.randrange(1, 13), rng.randrange(1, 29))
        male = rng.random() < 0.5
        number = _id_number(rng, born, male)
        if number in seen:
            continue
        seen.add(number)
        phone, name = _phone(rng), _name(rng)
        id_hash = id_lookup_hash(secret, "resident_id", number)
        births[id_hash] = born  # kept here only, for the ages below; no birth date is stored
        rows.append(
            {
                "id_type": "resident_id",
                "id_hash": id_hash,
                "id_enc": crypto.encrypt(secret, number),
                "id_masked": mask_id(number),
                "name_enc": crypto.encrypt(secret, name),
                "name_masked": mask_name(name),
                "phone_enc": crypto.encrypt(secret, phone),
                "phone_masked": mask_phone(phone),
                "gender": "M" if male else "F",
                "created_at": now - timedelta(days=HISTORY_DAYS + rng.randrange(1, 400)),
                "updated_at": now,
            }
        )
    await _chunks(session, Citizen, rows)
    found = await session.execute(select(Citizen.id, Citizen.id_hash).where(Citizen.id_type == "resident_id"))
    return sorted(
        (Person(int(r.id), str(r.id_hash), births[r.id_hash]) for r in found.all() if r.id_hash in births),
        key=lambda p: p.id,
    )


async def _halls(session: AsyncSession) -> list[Hall]:
    units = (
        (await session.execute(select(Unit).where(Unit.mode.is_not(None)).order_by(Unit.path)))
        .scalars()
        .all()
    )
    halls = []
    for unit in units:
        if unit.mode == "self_service":  # rule M2: takes no bookings
            continue
        ids = (
            await session.execute(
                select(Service.id).where(Service.hall_id == unit.id, Service.active).order_by(Service.id)
            )
        ).scalars()
        services = [await context(session, int(sid)) for sid in ids]
        if not services:
            continue
        policy = services[0].policy
        halls.append(Hall(unit, services, scope_of(policy.sources["penalty"]), policy.knobs.penalty))
    return halls


def _stamp(day: date, rng: random.Random, first: int = 7, last: int = 23) -> datetime:
    minute = rng.randrange(first * 60, last * 60)
    return datetime.combine(day, time(minute // 60, minute % 60, rng.randrange(60)), TZ)


class History:
    def __init__(self, session: AsyncSession, rng: random.Random, now: datetime) -> None:
        self.session, self.rng, self.now, self.today = session, rng, now, now.date()
        self.plan = Plan()
        self.people: list[Person] = []
        self.elderly: list[Person] = []
        self.companies: list[tuple[str, str]] = []
        self.banned: set[int] = set()
        self.sold: dict[str, int] = defaultdict(int)  # seats of each slot, cancelled bookings aside
        self.full_days: list[date] = []

    def pick(
        self, ctx: Context, spec: SlotSpec, live: bool, uscc: str | None, tries: int = 12
    ) -> Person | None:
        pool = self.elderly if ctx.info.name == "老年人优待证办理" else self.people
        for _ in range(tries):
            person = self.rng.choice(pool)
            if (person.id, ctx.info.id, spec.day) in self.plan.seen:
                continue
            if live:
                if person.id in self.banned:
                    continue
                key = live_key(ctx, person.id, spec.day, uscc)
                if key is not None and key in self.plan.live_keys:
                    continue
                if self.plan.live_count[person.id] >= ctx.policy.knobs.max_live_bookings:
                    continue
            return person
        return None

    def add(
        self,
        ctx: Context,
        spec: SlotSpec,
        person: Person,
        *,
        channel: str,
        created: datetime,
        status: str,
        updated: datetime,
        quantity: int = 1,
        uscc: str | None = None,
        company: str | None = None,
        checked_in_at: datetime | None = None,
        wait_s: int = 0,
    ) -> None:
        info = ctx.info
        key = live_key(ctx, person.id, spec.day, uscc) or unlimited_key()
        if status in ("booked", "checked_in"):
            self.plan.live_keys.add(key)
            self.plan.live_count[person.id] += 1
        self.plan.seen.add((person.id, info.id, spec.day))
        if status != "cancelled":
            self.sold[spec.id] += quantity
        types = list(info.business_types)
        chosen = [self.rng.choice(types)] if types else []
        if len(types) > 1 and info.hall_path.startswith("platform/gz-ybj/") and self.rng.random() < 0.15:
            chosen = types  # rule M11: several business types at once
        self.plan.bookings.append(
            {
                "citizen_id": person.id,
                "service_id": info.id,
                "hall_id": info.hall_id,
                "slot_id": spec.id,
                "slot_day": spec.day,
                "slot_start": spec.start,
                "slot_end": spec.end,
                "quantity": quantity,
                "channel": channel,
                "business_types": chosen,
                "company_uscc": uscc,
                "company_name": company,
                "status": status,
                "live_key": key,
                "rebook_of": None,
                "rebooked": False,
                "reason": None,
                "created_at": created,
                "updated_at": updated,
                # not columns: what the tickets and marks need
                "_hall_code": info.hall_code,
                "_id_hash": person.id_hash,
                "_checked_in_at": checked_in_at,
                "_wait_s": wait_s,
                "_bundle": info.bundle_of,
            }
        )

    def fill(self, ctx: Context, day: date, hall_kind: str) -> float:
        base = WEEKDAY_FILL[day.weekday()] * KIND_FILL.get(hall_kind, 0.7)
        if ctx.info.hall_path.startswith("platform/gz-ybj/"):
            base *= 1.05
        if day > self.today:  # the days ahead fill up as they come closer
            ahead = (day - self.today).days
            base *= max(0.15, 1.15 - 0.17 * ahead)
        return base * self.rng.uniform(0.85, 1.15)

    def day_of(self, ctx: Context, day: date, hall_kind: str, full: bool = False) -> None:
        """The bookings of one service on one working day."""
        knobs, rng, now = ctx.policy.knobs, self.rng, self.now
        fill = 1.0 if full else self.fill(ctx, day, hall_kind)
        for spec in day_slots(ctx.info, day):
            opens, closes = checkin_window(knobs, spec.start, spec.end)
            if day > self.today:
                status = offsite_status(knobs, ctx.calendar, day, spec.start, spec.end, 1, now)
                if status != "open":
                    continue  # not released yet: nobody could have booked it
            hold = onsite_hold(knobs, spec.capacity)
            offsite_seats = spec.capacity - hold
            wanted = (
                offsite_seats if full else round(offsite_seats * fill * HOUR_FILL.get(spec.start.hour, 0.8))
            )
            wanted = min(offsite_seats - self.sold[spec.id], max(0, wanted))
            taken = 0
            while taken < wanted:
                onsite = day <= self.today and rng.random() < ONSITE_SHARE and spec.start.hour >= 9
                quantity = 1
                if ctx.info.max_batch > 1 and rng.random() < 0.2:  # rule G16: a batch
                    quantity = rng.randint(2, ctx.info.max_batch)
                if taken + quantity > wanted:
                    quantity = 1
                uscc, company = None, None
                if ctx.info.name in ("单位参保登记及变更", "企业设立登记") and rng.random() < 0.8:
                    uscc, company = rng.choice(self.companies)
                live_now = closes > now  # it would still be live, whatever became of it
                person = self.pick(ctx, spec, live_now, uscc, 400 if full else 12)
                taken += quantity  # a citizen not found: the seat stays unsold
                if person is None:
                    continue
                if onsite:  # rule G10: booked at the hall on the day, from 9:00
                    created = at(day, "09:00") + timedelta(
                        minutes=rng.randrange(0, 60 * (spec.start.hour - 8))
                    )
                    channel = "onsite"
                    if created > now:
                        continue
                else:
                    lead = rng.choices(range(1, 10), (10, 16, 14, 11, 9, 7, 5, 4, 3))[0]
                    created = _stamp(day - timedelta(days=lead), rng)
                    channel = rng.choices(list(CHANNELS), list(CHANNELS.values()))[0]
                    if created > now:
                        created = now - timedelta(minutes=rng.randrange(1, 600))
                args: dict[str, Any] = {"channel": channel, "created": created, "quantity": quantity}
                args |= {"uscc": uscc, "company": company}
                deadline = min(cancel_deadline(knobs, ctx.calendar, day, spec.start, spec.end), now)
                if not full and rng.random() < CANCELLED and deadline > created and channel != "onsite":
                    cancelled = created + (deadline - created) * rng.random()
                    self.add(ctx, spec, person, status="cancelled", updated=cancelled, **args)
                    taken -= quantity  # the seat went back to the pool
                    wanted -= quantity if rng.random() < 0.5 else 0  # and was sold again, or not
                    continue
                if closes <= now:  # the window has closed: served or missed
                    if rng.random() < NO_SHOW:
                        self.add(ctx, spec, person, status="no_show", updated=closes, **args)
                        continue
                    arrive = max(opens, created) + timedelta(minutes=rng.randrange(0, 70))
                    arrive = min(arrive, spec.start + timedelta(minutes=rng.randrange(0, 20)))
                    busy = 1.4 if day.weekday() == 0 else 1.0
                    wait = int(rng.lognormvariate(6.4, 0.55) * busy)  # about 10 minutes, a long tail
                    served = arrive + timedelta(seconds=wait + rng.randrange(240, 1100))
                    self.add(
                        ctx,
                        spec,
                        person,
                        status="served",
                        updated=served,
                        checked_in_at=arrive,
                        wait_s=wait,
                        **args,
                    )
                elif opens <= now and rng.random() < 0.55:  # inside its window: some are here already
                    arrive = now - timedelta(
                        minutes=rng.randrange(0, max(1, int((now - opens).seconds / 60)))
                    )
                    arrive = max(arrive, created)
                    self.add(
                        ctx, spec, person, status="checked_in", updated=arrive, checked_in_at=arrive, **args
                    )
                else:
                    self.add(ctx, spec, person, status="booked", updated=created, **args)

    def hoarder(self, halls: list[Hall]) -> None:
        """Rule G15: a citizen who missed two different items on one day at a city-policy hall, on
        the last working day whose slots have all closed: banned for the 10 days after it."""
        hall = next(h for h in halls if h.rule == "city" and len(h.services) >= 2)
        first, second = hall.services[0], hall.services[1]
        day = first.calendar.previous_working_day(self.today)
        person = self.rng.choice(self.people)
        self.banned.add(person.id)
        for ctx, index in ((first, 0), (second, -1)):
            spec = day_slots(ctx.info, day)[index]
            _, closes = checkin_window(ctx.policy.knobs, spec.start, spec.end)
            created = _stamp(day - timedelta(days=3), self.rng)
            self.add(ctx, spec, person, channel="wechat", created=created, status="no_show", updated=closes)


async def _write(session: AsyncSession, plan: Plan, halls: list[Hall]) -> dict[str, int]:
    """Numbers, slots, bookings, tickets, no-show marks and bans, in bulk."""
    rows = plan.bookings
    by_hall_day: dict[tuple[str, date], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_hall_day[(row["hall_id"], row["slot_day"])].append(row)
    counters = []
    for (hall_id, day), of_day in by_hall_day.items():  # rule M12: in the order they were made
        of_day.sort(key=lambda r: r["created_at"])
        for n, row in enumerate(of_day, start=1):
            row["number"] = f"I{row['_hall_code']}{day:%Y%m%d}{n:05d}"
        counters.append({"hall_id": hall_id, "day": day, "n": len(of_day)})
    slots: dict[str, dict[str, Any]] = {}
    spec_of: dict[str, tuple[int, date, datetime, datetime]] = {}
    for row in rows:
        spec_of[row["slot_id"]] = (row["service_id"], row["slot_day"], row["slot_start"], row["slot_end"])
    capacity = {spec.id: spec.capacity for spec in _all_specs(halls, {r["slot_id"] for r in rows})}
    for slot_id, (service_id, day, start, end) in spec_of.items():
        slots[slot_id] = {
            "id": slot_id,
            "service_id": service_id,
            "day": day,
            "start": start,
            "end": end,
            "capacity": capacity[slot_id],
            "booked": 0,
        }
    for row in rows:
        if row["status"] != "cancelled":
            slots[row["slot_id"]]["booked"] += row["quantity"]
    assert all(s["booked"] <= s["capacity"] for s in slots.values()), "a seat sold twice"
    await _chunks(session, Slot, list(slots.values()))
    await _chunks(session, BookingCounter, counters)
    columns = {c.name for c in Booking.__table__.columns} - {"id"}
    await _chunks(session, Booking, [{k: v for k, v in row.items() if k in columns} for row in rows])
    ids = {
        str(r.number): int(r.id) for r in (await session.execute(select(Booking.number, Booking.id))).all()
    }
    for row in rows:
        row["id"] = ids[row["number"]]
    tickets, ticket_counters = _tickets(rows)
    await _chunks(session, TicketCounter, ticket_counters)
    await _chunks(session, Ticket, tickets)
    bans = await _marks_and_bans(session, rows, halls)
    return {"bookings": len(rows), "slots": len(slots), "tickets": len(tickets), "bans": bans}


def _all_specs(halls: list[Hall], wanted: set[str]) -> list[SlotSpec]:
    days: dict[int, set[date]] = defaultdict(set)
    for slot_id in wanted:
        service, _, stamp = slot_id.partition("-")
        days[int(service)].add(date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8])))
    specs = []
    for hall in halls:
        for ctx in hall.services:
            for day in days.get(ctx.info.id, ()):
                specs += [spec for spec in day_slots(ctx.info, day) if spec.id in wanted]
    return specs


def _tickets(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Appointment tickets of the bookings checked in (rules T3, T4): issued at check-in, called
    after the wait (the mean-wait figure), finished when the booking was served."""
    checked = [r for r in rows if r["_checked_in_at"] is not None]
    by_hall_day: dict[tuple[str, date], list[dict[str, Any]]] = defaultdict(list)
    for row in checked:
        by_hall_day[(row["hall_id"], row["slot_day"])].append(row)
    tickets, counters = [], []
    for (hall_id, day), of_day in by_hall_day.items():
        of_day.sort(key=lambda r: r["_checked_in_at"])
        for n, row in enumerate(of_day, start=1):
            issued: datetime = row["_checked_in_at"]
            served = row["status"] == "served"
            call_number = f"A{n:03d}"
            bundle = row["_bundle"]
            tickets.append(
                {
                    "number": f"{row['_hall_code']}{day:%Y%m%d}{call_number}",
                    "call_number": call_number,
                    "hall_id": hall_id,
                    "day": day,
                    "kind": "appointment",
                    "green": None,
                    "service_id": row["service_id"],
                    "booking_id": row["id"],
                    "booking_number": row["number"],
                    "booked_at": row["created_at"],
                    "slot_start": row["slot_start"],
                    "slot_end": row["slot_end"],
                    "id_hash": row["_id_hash"],
                    "status": "finished" if served else "waiting",
                    "counter_id": None,
                    "items": [{"service_id": sid, "finished": served} for sid in bundle] if bundle else None,
                    "issued_at": issued,
                    "called_at": issued + timedelta(seconds=row["_wait_s"]) if served else None,
                    "finished_at": row["updated_at"] if served else None,
                }
            )
        counters.append({"hall_id": hall_id, "day": day, "prefix": "A", "n": len(of_day)})
    return tickets, counters


async def _marks_and_bans(session: AsyncSession, rows: list[dict[str, Any]], halls: list[Hall]) -> int:
    """Each no-show's mark, and the bans the penalty rules impose, in the order they were marked
    (as the `mark_no_shows` sweep does, rules G13, G15, M9)."""
    of_hall = {h.unit.id: h for h in halls}
    misses = sorted((r for r in rows if r["status"] == "no_show"), key=lambda r: (r["updated_at"], r["id"]))
    marks: dict[int, dict[str, Any]] = {}
    unused: dict[tuple[int, str, str], dict[int, Miss]] = defaultdict(dict)
    bans = 0
    for row in misses:
        hall = of_hall[row["hall_id"]]
        marks[row["id"]] = {
            "booking_id": row["id"],
            "citizen_id": row["citizen_id"],
            "service_id": row["service_id"],
            "hall_id": row["hall_id"],
            "day": row["slot_day"],
            "scope_unit_id": hall.scope,
            "rule": hall.rule,
            "ban_id": None,
            "marked_at": row["updated_at"],
        }
        if hall.rule == "none":
            continue
        pool = unused[(row["citizen_id"], hall.scope, hall.rule)]
        new = Miss(row["id"], row["service_id"], row["slot_day"])
        pool[new.key] = new
        for decision in evaluate(hall.rule, list(pool.values()), new):
            ban = Ban(
                citizen_id=row["citizen_id"],
                unit_id=hall.scope,
                until=decision.until,
                reason=decision.reason,
                source="penalty",
                created_at=row["updated_at"],
                lifted_at=None,
            )
            session.add(ban)
            await session.flush()
            bans += 1
            for key in decision.used:
                marks[key]["ban_id"] = ban.id
                pool.pop(key, None)
    await _chunks(session, NoShowMark, list(marks.values()))
    return bans


async def _chunks(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """A Core executemany per 5000 rows (no RETURNING: one driver call, not one per row)."""
    table = cast(Table, model.__table__)
    for chunk in range(0, len(rows), 5000):
        if rows[chunk : chunk + 5000]:
            await session.execute(table.insert(), rows[chunk : chunk + 5000])


async def _past_waiting(session: AsyncSession, plan: Plan, rng: random.Random) -> int:
    """Waiting entries of the past (rule G11): citizens who queued for a full day and got a seat
    when one was freed (the booking is theirs, in the entry's channel), and some who gave up."""
    entries = []
    for row in plan.bookings:
        if row["channel"] == "onsite" or row["status"] == "cancelled" or rng.random() > 0.025:
            continue
        joined = row["created_at"] - timedelta(hours=rng.randrange(6, 60))
        entries.append(
            {
                "citizen_id": row["citizen_id"],
                "service_id": row["service_id"],
                "hall_id": row["hall_id"],
                "dates": [row["slot_day"].isoformat()],
                "channel": row["channel"],
                "status": "allocated",
                "booking_number": row["number"],
                "created_at": joined,
                "updated_at": row["created_at"],
            }
        )
        if rng.random() < 0.3:  # another citizen queued the same day and left
            entries.append(
                {
                    **entries[-1],
                    "citizen_id": rng.choice(plan.bookings)["citizen_id"],
                    "status": "left",
                    "booking_number": None,
                    "updated_at": joined + timedelta(hours=rng.randrange(1, 30)),
                }
            )
    await _chunks(session, WaitlistEntry, entries)
    return len(entries)


async def _acting(session: AsyncSession, username: str) -> Acting:
    admin, unit = (
        await session.execute(
            select(Admin, Unit).join(Unit, Unit.id == Admin.unit_id).where(Admin.username == username)
        )
    ).one()
    return Acting(admin.id, admin.username, unit.id, unit.path, unit.kind, admin.level)


async def _capacity_requests(session: AsyncSession, halls: list[Hall], today: date) -> list[str]:
    """Rule G20, through the admins' own functions (audited): the Tianhe hall asks for more
    identity-card seats and the district L1 approves; the Shipai street asks for more seats of the
    full service three working days ago, still pending past its deadline, which raises
    `approval_overdue`."""
    report = []
    services = {(h.unit.id, c.info.name): c for h in halls for c in h.services}
    ids_card = services.get(("tianhe-hall", "居民身份证申领"))
    full = services.get(FULL_SERVICE)
    if ids_card is not None:
        first = ids_card.calendar.nth_working_after(today, 2)
        last = ids_card.calendar.nth_working_after(today, 6)
        asked = await propose_capacity(
            session,
            await _acting(session, "tianhehall"),
            ids_card.info.id,
            first,
            last,
            ids_card.info.daily_capacity + 14,
            "换领高峰：每日加开两个窗口（5+X 延时服务）",
        )
        await decide_request(
            session, await _acting(session, "tianhe1"), asked.id, True, "同意，注意延时窗口人手"
        )
        report.append(f"capacity request {asked.id} approved (tianhe-hall {first}–{last})")
    if full is not None:
        made = full.calendar.nth_working_before(today, 3)
        asked = await propose_capacity(
            session,
            await _acting(session, "shipai"),
            full.info.id,
            full.calendar.nth_working_after(today, 2),
            full.calendar.nth_working_after(today, 11),
            full.info.daily_capacity + 6,
            "老年人优待证办理排队人数多，申请每日增加6个号",
        )
        # Made three working days ago: its time moves back with it (the request, its audit entry).
        requested_at = _stamp(made, random.Random(asked.id), 9, 17)
        overdue_at = at(full.calendar.nth_working_after(made, 1) + timedelta(days=1), "00:00")
        await session.execute(
            update(CapacityRequest)
            .where(CapacityRequest.id == asked.id)
            .values(requested_at=requested_at, overdue_at=overdue_at)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(AuditEntry)
            .where(AuditEntry.action == "capacity.request", AuditEntry.target == str(asked.id))
            .values(at=requested_at)
            .execution_options(synchronize_session=False)
        )
        session.expire_all()
        await flag_overdue_approvals(session, overdue_at)
        report.append(f"capacity request {asked.id} pending since {made} (approval overdue)")
    return report


async def _queue(session: AsyncSession, history: History, halls: list[Hall]) -> int:
    """Citizens queue (rule G11) for the full days of the full service, through `waitlist.join`."""
    ctx = next((c for h in halls for c in h.services if (h.unit.id, c.info.name) == FULL_SERVICE), None)
    if ctx is None:
        return 0
    days = history.full_days
    clear_caches()
    joined = 0
    for person in history.rng.sample(history.elderly, 3 * WAITING):
        if joined >= WAITING:
            break
        if person.id in history.banned:
            continue
        channel = history.rng.choice(list(CHANNELS))
        try:
            await join(session, person.id, ctx.info.id, days[: 1 + joined % len(days)], channel, login=None)
        except DomainError:
            continue  # already waiting, or the day is not full after all: the next citizen
        joined += 1
    return joined


async def load_history(session: AsyncSession, secret: str) -> list[str]:
    """Load the demo's past once (nothing when the demo halls have bookings already)."""
    if (await session.execute(select(Booking.id).limit(1))).first() is not None:
        return []
    halls = await _halls(session)
    if not halls:
        return []
    now = clock.now()
    today = now.date()
    rng = random.Random(f"yuyue-demo-{today.isoformat()}")
    history = History(session, rng, now)
    history.people = await _citizens(session, secret, rng, today)
    history.elderly = [p for p in history.people if p.born.year <= today.year - 60]
    history.companies = [
        (_uscc(rng), f"广州{rng.choice(COMPANY_WORDS)}{rng.choice(COMPANY_TRADES)}有限公司")
        for _ in range(COMPANIES)
    ]
    history.hoarder(halls)
    history.full_days = []
    for hall in halls:
        for ctx in hall.services:
            full = (hall.unit.id, ctx.info.name) == FULL_SERVICE
            full_days: list[date] = []
            if full:  # the next two working days it takes bookings for are full
                day = today
                while len(full_days) < 2 and day < today + timedelta(days=20):
                    day += timedelta(days=1)
                    if ctx.calendar.is_working(day) and any(
                        offsite_status(ctx.policy.knobs, ctx.calendar, day, s.start, s.end, 1, now) == "open"
                        for s in day_slots(ctx.info, day)
                    ):
                        full_days.append(day)
                history.full_days = full_days
            for offset in range(-HISTORY_DAYS, 15):
                day = today + timedelta(days=offset)
                if ctx.calendar.is_working(day):
                    history.day_of(ctx, day, hall.unit.kind, full=day in full_days)
    written = await _write(session, history.plan, halls)
    entries = await _past_waiting(session, history.plan, rng)
    await session.flush()
    clear_caches()
    queued = await _queue(session, history, halls)
    report = await _capacity_requests(session, halls, today)
    for offset in range(-HISTORY_DAYS, 0):  # the nightly rollup of each past day (rule G18)
        await roll_up(session, today + timedelta(days=offset))
    return [
        f"history: {len(history.people)} citizens, {written['bookings']} bookings over {HISTORY_DAYS} days "
        f"and the days ahead, {written['tickets']} tickets, {written['bans']} bans, "
        f"{entries} past waiting entries, {queued} citizens waiting now",
        *report,
        f"figures rolled up for {HISTORY_DAYS} days",
    ]
