"""Freed seats are not handed straight back to the fastest clicker (issue 9 item 5, decision 0081):
what a cancel or a reschedule frees goes to the waiting list first (rule G11); what it leaves stays
taken until a random moment of the policy's `freed_seat_delay_*` window, then the
`return_freed_seats` job gives it back, exactly once. Through HTTP with the test clock, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from tests.admin.support import fill_day
from tests.conftest import Api, raw
from tests.ids import resident_id
from yuyue.booking.tasks import return_freed_seats
from yuyue.clock import TZ
from yuyue.jobs.service import run_due

DAY = "2026-12-03"  # Thursday, inside the city horizon seen from START (Tue 2026-12-01 10:00)


async def slot_view(api: Api, service_id: int, slot_id: str) -> dict:
    return next(s for s in await api.slots(service_id, DAY) if s["id"] == slot_id)


async def cancel(api: Api, headers: dict[str, str], number: str) -> dict:
    answer = await api.client.post(f"/api/v1/appointments/{number}/cancel", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def now(api: Api) -> datetime:
    return datetime.fromisoformat((await api.client.get("/api/v1/test/clock")).json()["now"])


async def held(api: Api) -> list[tuple[str, int, datetime]]:
    rows = await raw(api, "SELECT slot_id, seats, due_at FROM seat_returns ORDER BY id")
    return [
        (r.slot_id, r.seats, r.due_at if isinstance(r.due_at, datetime) else datetime.fromisoformat(r.due_at))
        for r in rows
    ]


async def assert_ledger(api: Api) -> None:
    """Every slot counts its live bookings' seats plus the seats held for it, never below zero and
    never above its capacity."""
    wrong = await raw(
        api,
        "SELECT s.id FROM slots s "
        "LEFT JOIN (SELECT slot_id, sum(quantity) AS n FROM bookings "
        "           WHERE status IN ('booked', 'checked_in') GROUP BY slot_id) b ON b.slot_id = s.id "
        "LEFT JOIN (SELECT slot_id, sum(seats) AS n FROM seat_returns GROUP BY slot_id) r "
        "       ON r.slot_id = s.id "
        "WHERE s.booked <> coalesce(b.n, 0) + coalesce(r.n, 0) OR s.booked < 0 OR s.booked > s.capacity",
    )
    assert wrong == []


async def delay_on(api: Api) -> None:
    """The delay is off in the presets (decision 0081); a city turns it on for the platform."""
    await api.policy("platform", "guangzhou-2021", freed_seat_delay_min_s=60, freed_seat_delay_max_s=300)


def local(value: datetime) -> datetime:
    return value.replace(tzinfo=TZ) if value.tzinfo is None else value.astimezone(TZ)


async def test_a_cancelled_seat_is_held_for_a_random_moment_then_bookable(api: Api) -> None:
    await delay_on(api)
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat a slot
    slot = (await api.slots(service["id"], DAY))[0]
    holder = await api.login(resident_id(1))
    number = (await api.book(holder, slot["id"])).json()["number"]
    cancelled_at = await now(api)
    await cancel(api, holder, number)
    # not back in the pool right away: nobody can click it
    assert (await slot_view(api, service["id"], slot["id"]))["status"] == "full"
    fast = await api.login(resident_id(2))
    refused = await api.book(fast, slot["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "slot_full"
    [(slot_id, seats, due)] = await held(api)
    due = local(due)
    assert (slot_id, seats) == (slot["id"], 1)
    assert (
        cancelled_at + timedelta(seconds=60) <= due <= cancelled_at + timedelta(seconds=302)
    )  # city: 60–300 s
    await assert_ledger(api)
    await api.set_clock(due - timedelta(seconds=1))
    assert (await slot_view(api, service["id"], slot["id"]))["remaining"] == 0
    await api.set_clock(due)  # its own moment, not the next quarter hour
    returned = await slot_view(api, service["id"], slot["id"])
    assert (returned["status"], returned["remaining"]) == ("open", 1)
    assert await held(api) == []
    booked = await api.book(fast, slot["id"])
    assert booked.status_code == 201, booked.text
    await assert_ledger(api)


async def test_window_zero_frees_at_once_and_the_knobs_are_validated(api: Api) -> None:
    await delay_on(api)
    await api.hall()
    policy = (await api.client.get("/api/v1/units/hall-a/policy")).json()["knobs"]
    assert policy["freed_seat_delay_min_s"] == {"value": 60, "from": "platform"}
    assert policy["freed_seat_delay_max_s"] == {"value": 300, "from": "platform"}
    for bad in (
        {"freed_seat_delay_max_s": -1},
        {"freed_seat_delay_min_s": 3601},
        {"freed_seat_delay_max_s": "5"},
    ):
        answer = await api.client.put(
            "/api/v1/admin/units/hall-a/policy", json={"preset": None, "overrides": bad}, headers=api.admin()
        )
        assert answer.status_code == 422 and answer.json()["code"] == "validation_error", bad
    effective = await api.policy("hall-a", None, freed_seat_delay_max_s=0)
    assert effective["knobs"]["freed_seat_delay_max_s"] == {"value": 0, "from": "hall-a"}
    service = await api.service(daily_capacity=7)
    slot = (await api.slots(service["id"], DAY))[0]
    holder = await api.login(resident_id(3))
    number = (await api.book(holder, slot["id"])).json()["number"]
    await cancel(api, holder, number)
    assert (await slot_view(api, service["id"], slot["id"]))["remaining"] == 1
    assert await held(api) == []
    assert (await api.book(await api.login(resident_id(4)), slot["id"])).status_code == 201
    await assert_ledger(api)


async def test_a_min_above_an_inherited_max_is_capped_to_it(api: Api) -> None:
    await api.policy("platform", "guangzhou-2021", freed_seat_delay_max_s=5)
    await api.hall()
    await api.policy("hall-a", None, freed_seat_delay_min_s=600)  # above the max set above it
    service = await api.service(daily_capacity=7)
    slot = (await api.slots(service["id"], DAY))[0]
    holder = await api.login(resident_id(5))
    number = (await api.book(holder, slot["id"])).json()["number"]
    cancelled_at = await now(api)
    await cancel(api, holder, number)
    [(_, _, due)] = await held(api)
    assert local(due) <= cancelled_at + timedelta(seconds=7)


async def test_the_waiting_list_gets_freed_seats_first_and_only_the_rest_is_held(api: Api) -> None:
    """A batch of two is cancelled while one citizen waits: one seat goes to the entry at once, the
    other is held, then returned to open booking."""
    await delay_on(api)
    await api.hall()
    service = await api.service(daily_capacity=14, max_batch=2)  # two seats a slot
    slot = (await api.slots(service["id"], DAY))[0]
    batch = await api.login(resident_id(6))
    number = (await api.book(batch, slot["id"], quantity=2)).json()["number"]
    await fill_day(api, service["id"], DAY)
    waiting = await api.login(resident_id(7))
    joined = await api.client.post(
        "/api/v1/waitlist",
        json={"service_id": service["id"], "dates": [DAY], "channel": "app"},
        headers=waiting,
    )
    assert joined.status_code == 201, joined.text
    await cancel(api, batch, number)
    entry = (await api.client.get("/api/v1/waitlist", headers=waiting)).json()[0]
    assert entry["status"] == "allocated"
    allocated = (await api.client.get(f"/api/v1/appointments/{entry['number']}", headers=waiting)).json()
    assert allocated["slot_id"] == slot["id"]
    assert [(s, n) for s, n, _ in await held(api)] == [(slot["id"], 1)]
    assert (await slot_view(api, service["id"], slot["id"]))["remaining"] == 0
    await assert_ledger(api)
    await api.set_clock("2026-12-01T10:10:00+08:00")  # past the 60–300 s window
    assert (await slot_view(api, service["id"], slot["id"]))["remaining"] == 1
    assert await held(api) == []
    await assert_ledger(api)


async def test_an_entry_that_joins_while_a_seat_is_held_gets_it_when_it_returns(api: Api) -> None:
    await delay_on(api)
    await api.hall()
    service = await api.service(daily_capacity=7)
    booked = await fill_day(api, service["id"], DAY)
    holder, number = booked[2]
    freed = (await cancel(api, holder, number))["slot_id"]
    [(_, _, due)] = await held(api)
    # the day still shows full, so a citizen may queue for it (rule G11)
    waiting = await api.login(resident_id(8))
    joined = await api.client.post(
        "/api/v1/waitlist",
        json={"service_id": service["id"], "dates": [DAY], "channel": "wechat"},
        headers=waiting,
    )
    assert joined.status_code == 201, joined.text
    await api.set_clock(local(due))
    entry = (await api.client.get("/api/v1/waitlist", headers=waiting)).json()[0]
    assert entry["status"] == "allocated"
    allocated = (await api.client.get(f"/api/v1/appointments/{entry['number']}", headers=waiting)).json()
    assert (allocated["slot_id"], allocated["channel"]) == (freed, "wechat")
    assert (await slot_view(api, service["id"], freed))["remaining"] == 0  # never open to clickers
    assert await held(api) == []
    await assert_ledger(api)


async def test_a_reschedule_away_holds_the_old_seat(api: Api) -> None:
    await delay_on(api)
    await api.hall()
    service = await api.service(daily_capacity=7)
    first, second = (await api.slots(service["id"], DAY))[:2]
    citizen = await api.login(resident_id(9))
    number = (await api.book(citizen, first["id"])).json()["number"]
    moved = await api.client.post(
        f"/api/v1/appointments/{number}/reschedule", json={"slot_id": second["id"]}, headers=citizen
    )
    assert moved.status_code == 200, moved.text
    assert (await slot_view(api, service["id"], first["id"]))["remaining"] == 0
    assert [(s, n) for s, n, _ in await held(api)] == [(first["id"], 1)]
    await assert_ledger(api)
    await api.set_clock("2026-12-01T10:10:00+08:00")
    assert (await slot_view(api, service["id"], first["id"]))["remaining"] == 1
    await assert_ledger(api)


async def test_racing_returners_give_each_held_seat_back_once(api: Api) -> None:
    """Two job runners (separate engines, like two `yuyue worker` processes) over the same window,
    then two direct returns racing, then one more: every held seat is returned exactly once."""
    await delay_on(api)
    await api.hall()
    service = await api.service(daily_capacity=70)  # ten seats a slot
    slots = (await api.slots(service["id"], DAY))[:3]
    made = []
    for n in range(12):
        citizen = await api.login(resident_id(100 + n))
        answer = await api.book(citizen, slots[n % 3]["id"])
        assert answer.status_code == 201, answer.text
        made.append((citizen, answer.json()["number"]))
    for citizen, number in made[:9]:
        await cancel(api, citizen, number)
    assert sum(n for _, n, _ in await held(api)) == 9
    await assert_ledger(api)
    from yuyue.config import Settings
    from yuyue.db import make_engine, make_sessionmaker

    settings = api.app.state.settings
    engines = [make_engine(Settings(**{**settings.model_dump(), "db_pool_size": 5})) for _ in range(2)]
    try:
        makers = [make_sessionmaker(e) for e in engines]
        after = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
        until = datetime(2026, 12, 1, 10, 20, tzinfo=TZ)
        middle = min(local(d) for _, _, d in await held(api)) + timedelta(seconds=1)
        # one worker sweeps part of the window while two sweep all of it
        await asyncio.gather(run_due(makers[0], after, middle), *(run_due(m, after, until) for m in makers))

        async def direct(maker: object) -> int:
            async with maker() as session:  # type: ignore[operator]
                count = await return_freed_seats(session, until)
                await session.commit()
                return count

        assert await asyncio.gather(direct(makers[0]), direct(makers[1])) == [0, 0]
    finally:
        for engine in engines:
            await engine.dispose()
    assert await held(api) == []
    rows = {r.id: r.booked for r in await raw(api, "SELECT id, booked FROM slots")}
    assert rows == {s["id"]: 1 for s in slots}  # 12 booked, 9 cancelled and returned once
    await assert_ledger(api)
    async with api.app.state.sessionmaker() as session:
        assert await return_freed_seats(session, until + timedelta(days=1)) == 0
