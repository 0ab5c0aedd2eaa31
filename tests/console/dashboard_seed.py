"""A month of bookings for the dashboard tests, made through the HTTP API as citizens and staff
would, with the platform clock moved along the way.

Every change of data goes through the API: booking (web, WeChat, app, provincial portal, partner
API, on site), cancelling, joining and leaving the waiting list (a cancel hands the seat to the
queue), checking in at the hall, calling and finishing tickets at a counter. The no-show sweep and
the nightly stats rollup run as the scheduled jobs they are (`PUT /api/v1/test/clock` across their
due times). Only the long idle stretches in between (nights, weekends) are skipped by storing the
clock directly (`clock.store`, as the test clock does) instead of running every 15-minute job of a
month through `PUT /api/v1/test/clock`, which would take minutes per database.

The plan is a plain list of intents (`Intent`); `expected_*` count what the figures must be from
that list alone, by the definitions of docs/api.md/decision 0043, independently of the stats service.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import chinese_calendar

from tests.conftest import Api
from tests.ids import resident_id
from yuyue.clock import TZ, clock

CHANNELS = ("web", "wechat", "app", "provincial_portal", "api")
FIRST = date(2026, 11, 2)  # the default period at the test clock (Tue 2026-12-01 10:00): 30 days
TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
HOURS = (9, 10, 11, 13, 14, 15, 16)  # the hall's hourly slots (09–12, 13–17)


def id_number(n: int) -> str:
    """A valid resident ID for citizen n (unique for n < 40 000)."""
    return resident_id(n % 1000, birth=f"19{50 + n // 1000:02d}0203")


@dataclass(frozen=True)
class Intent:
    n: int  # the citizen
    service: str  # "A" … "D", "W"
    day: date
    hour: int
    channel: str
    outcome: str  # cancel | no_show | checkin | serve


# service -> (hall, daily capacity). A: 2 seats an hour, B/C/D: 1, W: one seat at 09:00 only.
SERVICES = {
    "A": ("hall-a", 14),
    "B": ("hall-a", 7),
    "W": ("hall-a", 1),
    "C": ("street-a", 7),
    "D": ("hall-b", 7),
}
DISTRICT = {"hall-a": "dist-a", "street-a": "dist-a", "hall-b": "dist-b"}


def working_days(first: date, last: date) -> list[date]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [d for d in days if chinese_calendar.is_workday(d)]


def plan() -> list[Intent]:
    """The regular bookings: each working day 11-02 … 12-01 has A at 09, 10 and 14, B at 11, C at
    15 on every other day, D at 09 on every third; 12-02 has two more (outside the default period).
    Channels rotate; every 7th booking (from the 4th) is cancelled, every 5th not shown, every 3rd
    of the rest served, the others checked in."""
    intents: list[Intent] = []
    n = 0

    def add(service: str, day: date, hour: int) -> None:
        nonlocal n
        n += 1
        if n % 7 == 3:
            outcome = "cancel"
        elif n % 5 == 0:
            outcome = "no_show"
        elif n % 3 == 0:
            outcome = "serve"
        else:
            outcome = "checkin"
        channel = CHANNELS[(n + n // 5) % len(CHANNELS)]  # not in step with the outcomes
        intents.append(Intent(n, service, day, hour, channel, outcome))

    for i, day in enumerate([*working_days(FIRST, TODAY), date(2026, 12, 2)]):
        if day > TODAY:
            add("A", day, 9)
            add("B", day, 10)
            continue
        for hour in (9, 10, 14):
            add("A", day, hour)
        add("B", day, 11)
        if i % 2 == 0:
            add("C", day, 15)
        if i % 3 == 0:
            add("D", day, 9)
    return intents


# The on-site bookings (channel onsite, made at 09:30 on the day for the 16:00 slot of A) and the
# waiting-list story of W (see `seed`), with their citizens.
ONSITE_DAYS = (date(2026, 11, 3), date(2026, 11, 12), date(2026, 11, 24))
W_DAY_QUEUED = date(2026, 11, 4)  # W full; two citizens queue for it on 11-03 and stay
W_DAY_ALLOCATED = date(2026, 11, 6)  # W full; one queues on 11-05, the holder cancels: allocated
W_LEAVES_ON = date(2026, 11, 10)  # one of the two queued on 11-03 leaves the list


def final_status(intent: Intent) -> str:
    if intent.outcome == "cancel":
        return "cancelled"
    if intent.day > TODAY or (intent.day == TODAY and intent.hour >= NOW.hour):
        return "booked"  # its slot has not begun (or is under way) at the end
    return {"no_show": "no_show", "checkin": "checked_in", "serve": "served"}[intent.outcome]


def all_bookings() -> list[dict[str, Any]]:
    """Every booking the seed makes, with its final status: the plan, on site, and W's."""
    rows = [
        {"service": i.service, "day": i.day, "hour": i.hour, "channel": i.channel, "status": final_status(i)}
        for i in plan()
    ]
    rows += [
        {"service": "A", "day": d, "hour": 16, "channel": "onsite", "status": "checked_in"}
        for d in ONSITE_DAYS
    ]
    rows += [
        {"service": "W", "day": W_DAY_QUEUED, "hour": 9, "channel": "web", "status": "no_show"},
        {"service": "W", "day": W_DAY_ALLOCATED, "hour": 9, "channel": "app", "status": "cancelled"},
        # the seat freed by that cancel, allocated to the queued citizen (the entry's channel)
        {"service": "W", "day": W_DAY_ALLOCATED, "hour": 9, "channel": "wechat", "status": "checked_in"},
    ]
    for row in rows:
        row["hall"] = SERVICES[row["service"]][0]
    return rows


# Waiting entries: (made on, channel, left on or None).
WAITING = [
    (date(2026, 11, 3), "provincial_portal", W_LEAVES_ON),
    (date(2026, 11, 3), "web", None),
    (date(2026, 11, 5), "wechat", date(2026, 11, 5)),  # allocated at once by the cancel
]


def in_scope(hall: str, unit: str) -> bool:
    return unit == "platform" or unit == hall or DISTRICT.get(hall) == unit


def expected_by_day(unit: str, first: date, last: date) -> dict[str, dict[str, Any]]:
    """The figures per day, counted from the plan (mean waits aside)."""
    out: dict[str, dict[str, Any]] = {}
    released_per_day = sum(cap for hall, cap in SERVICES.values() if in_scope(hall, unit))
    for day in working_days(first, last):
        out[day.isoformat()] = {"released": released_per_day, **dict.fromkeys(COUNTED, 0), "seats": 0}
    for row in all_bookings():
        if not (first <= row["day"] <= last and in_scope(row["hall"], unit)):
            continue
        figures = out.setdefault(
            row["day"].isoformat(), {"released": 0, **dict.fromkeys(COUNTED, 0), "seats": 0}
        )
        count(figures, row["status"])
    for made, _, _ in WAITING:
        if first <= made <= last and in_scope("hall-a", unit):
            out[made.isoformat()]["waitlist"] += 1
    for figures in out.values():
        figures["utilisation"] = (
            round(figures["seats"] / figures["released"], 4) if figures["released"] else None
        )
    return out


COUNTED = ("booked", "cancelled", "checked_in", "served", "no_show", "waitlist")


def count(figures: dict[str, Any], status: str) -> None:
    figures["booked"] += 1
    if status == "cancelled":
        figures["cancelled"] += 1
    else:
        figures["seats"] += 1
    if status in ("checked_in", "served"):
        figures["checked_in"] += 1
    if status == "served":
        figures["served"] += 1
    if status == "no_show":
        figures["no_show"] += 1


def expected_by_channel(unit: str, first: date, last: date) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: {**dict.fromkeys(COUNTED, 0), "seats": 0})
    for row in all_bookings():
        if first <= row["day"] <= last and in_scope(row["hall"], unit):
            count(out[row["channel"]], row["status"])
    for made, channel, _ in WAITING:
        if first <= made <= last and in_scope("hall-a", unit):
            out[channel]["waitlist"] += 1
    return dict(out)


def expected_fill(unit: str, first: date, last: date) -> dict[tuple[int, int], tuple[int, int]]:
    """(weekday, hour) -> (released, seats)."""
    cells: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for day in working_days(first, last):
        for service, (hall, cap) in SERVICES.items():
            if not in_scope(hall, unit):
                continue
            base, extra = divmod(cap, len(HOURS))
            for k, hour in enumerate(HOURS):
                cells[(day.weekday(), hour)][0] += base + (1 if k < extra else 0)
    for row in all_bookings():
        if first <= row["day"] <= last and in_scope(row["hall"], unit) and row["status"] != "cancelled":
            cells[(row["day"].weekday(), row["hour"])][1] += 1
    return {key: (r, s) for key, (r, s) in cells.items()}


def expected_waiting(day: date) -> int:
    """Entries still waiting at the end of `day` (all at hall-a)."""
    return sum(1 for made, _, left in WAITING if made <= day and (left is None or left > day))


# --- making it happen through the API ---------------------------------------------------------------


async def move(api: Api, when: datetime) -> None:
    """Skip an idle stretch: the clock jumps without running the jobs in between (see the module
    docstring); the jobs that matter to the figures are run by `run_jobs`."""
    await clock.store(api.app.state.engine, when)


async def run_jobs(api: Api, start: datetime, end: datetime) -> None:
    """Run the scheduled jobs due in (start, end], as the test clock does."""
    await move(api, start)
    await api.set_clock(end)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


class Seeder:
    def __init__(self, api: Api, admin: dict[str, str], services: dict[str, int]) -> None:
        self.api = api
        self.admin = admin
        self.services = services
        self.citizens: dict[int, dict[str, str]] = {}
        self.numbers: dict[int, str] = {}
        self.counters: dict[str, int] = {}

    async def citizen(self, n: int) -> dict[str, str]:
        if n not in self.citizens:
            self.citizens[n] = await self.api.login(id_number(n))
        return self.citizens[n]

    async def book(self, n: int, service: str, day: date, hour: int, channel: str) -> str:
        slot = f"{self.services[service]}-{day:%Y%m%d}{hour:02d}00"
        if channel == "onsite":  # rule G10: on site only at the hall, here the desk (admin as staff)
            await self.citizen(n)
            body = {"slot_id": slot, "name": "张三", "id_number": id_number(n), "phone": "13800138000"}
            answer = await self.api.client.post(
                f"/api/v1/halls/{SERVICES[service][0]}/bookings", json=body, headers=self.admin
            )
        else:
            answer = await self.api.client.post(
                "/api/v1/appointments",
                json={"slot_id": slot, "channel": channel},
                headers=await self.citizen(n),
            )
        assert answer.status_code == 201, (n, service, day, hour, answer.text)
        self.numbers[n] = answer.json()["number"]
        return str(answer.json()["number"])

    async def cancel(self, n: int) -> None:
        answer = await self.api.client.post(
            f"/api/v1/appointments/{self.numbers[n]}/cancel", headers=await self.citizen(n)
        )
        assert answer.status_code == 200, answer.text

    async def checkin(self, n: int, hall: str) -> None:
        answer = await self.api.client.post(
            f"/api/v1/halls/{hall}/checkin",
            json={"id_type": "resident_id", "id_number": id_number(n)},
            headers=self.admin,
        )
        assert answer.status_code == 201, (n, hall, answer.text)

    async def serve_next(self, hall: str) -> None:
        if hall not in self.counters:
            listed = await self.api.client.get(f"/api/v1/halls/{hall}/counters", headers=self.admin)
            assert listed.status_code == 200, listed.text
            self.counters[hall] = int(listed.json()[0]["id"])
        called = await self.api.client.post(
            f"/api/v1/counters/{self.counters[hall]}/call-next", headers=self.admin
        )
        assert called.status_code == 200, called.text
        number = called.json()["ticket"]["number"]
        finished = await self.api.client.post(f"/api/v1/tickets/{number}/finish", headers=self.admin)
        assert finished.status_code == 200, finished.text

    async def wait_for(self, n: int, service: str, day: date, channel: str) -> int:
        answer = await self.api.client.post(
            "/api/v1/waitlist",
            json={"service_id": self.services[service], "dates": [day.isoformat()], "channel": channel},
            headers=await self.citizen(n),
        )
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    async def leave(self, n: int, entry: int) -> None:
        answer = await self.api.client.delete(f"/api/v1/waitlist/{entry}", headers=await self.citizen(n))
        assert answer.status_code == 204, answer.text


async def seed(api: Api, admin: dict[str, str], services: dict[str, int]) -> None:
    """Make the month (see `plan`, `ONSITE_DAYS`, `WAITING`). Ends at the test clock, 12-01 10:00."""
    s = Seeder(api, admin, services)
    intents = plan()
    by_day: dict[date, list[Intent]] = defaultdict(list)
    for intent in intents:
        by_day[intent.day].append(intent)
    queued: dict[int, int] = {}
    days = working_days(FIRST, TODAY)
    for index, day in enumerate(days):
        eve = at(day - timedelta(days=1), 19)
        await move(api, eve)
        if eve.date() == W_LEAVES_ON:  # one of the citizens queued since 11-03 leaves the list
            await s.leave(901, queued[901])
        for intent in by_day[day]:  # booked the evening before (the day opened at 18:00, rule G10)
            await s.book(intent.n, intent.service, intent.day, intent.hour, intent.channel)
            if intent.outcome == "cancel":
                await s.cancel(intent.n)
        if day == W_DAY_QUEUED:  # W's one seat taken; two citizens queue for the day
            await s.book(900, "W", day, 9, "web")
            queued[901] = await s.wait_for(901, "W", day, "provincial_portal")
            queued[902] = await s.wait_for(902, "W", day, "web")
        if day == W_DAY_ALLOCATED:  # W full, one queues, the holder cancels: the seat is allocated
            await s.book(903, "W", day, 9, "app")
            await s.wait_for(904, "W", day, "wechat")
            await s.cancel(903)
        if index % 5 == 4:  # the nightly rollup of the day before runs (some days rolled, some live)
            await run_jobs(api, at(day, 2, 55), at(day, 3, 5))
        if day in ONSITE_DAYS:  # an on-site booking of today's 16:00 slot (rule G10)
            await move(api, at(day, 9, 30))
            await s.book(800 + index, "A", day, 16, "onsite")
        # At the hall: each hour, first those to be served check in (09:05), a counter calls and
        # finishes them (09:20: 15 minutes' wait each), then the others check in (09:25).
        for hour in HOURS:
            if day == TODAY and hour >= NOW.hour:
                break
            of_hour = [i for i in by_day[day] if i.hour == hour]
            extra = [(800 + index, "hall-a")] if day in ONSITE_DAYS and hour == 16 else []
            if day == W_DAY_ALLOCATED and hour == 9:
                extra.append((904, "hall-a"))
            if not of_hour and not extra:
                continue
            serve = [i for i in of_hour if i.outcome == "serve"]
            await move(api, at(day, hour, 5))
            for intent in serve:
                await s.checkin(intent.n, SERVICES[intent.service][0])
            if serve:
                await move(api, at(day, hour, 20))
                for intent in serve:
                    await s.serve_next(SERVICES[intent.service][0])
            await move(api, at(day, hour, 25))
            for intent in of_hour:
                if intent.outcome == "checkin":
                    await s.checkin(intent.n, SERVICES[intent.service][0])
            for n, hall in extra:
                await s.checkin(n, hall)
        if day < TODAY:  # the no-show sweep after the last slot (rules G13, M12)
            await run_jobs(api, at(day, 17, 0), at(day, 17, 20))
    # 12-02's bookings, made on 12-01 before 10:00 (12-01 18:00 opens the 10th working day; 12-02
    # has been open for days), then the clock ends where the tests start: 12-01 10:00.
    for intent in by_day[date(2026, 12, 2)]:
        await s.book(intent.n, intent.service, intent.day, intent.hour, intent.channel)
        if intent.outcome == "cancel":
            await s.cancel(intent.n)
    await run_jobs(api, at(TODAY, 9, 40), NOW)  # marks 12-01's 09:00 no-shows at 10:00


def totals(rows: dict[str, dict[str, Any]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for figures in rows.values():
        for name in ("released", "seats", *COUNTED):
            total[name] += figures[name]
    return total
