"""No-show marking (rules G13, M12), penalties (rules G15, M9), special-reason rebook (rules T9,
G14), admin bans; through HTTP with the test clock on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.onsite.conftest import book_at
from yuyue.clock import TZ
from yuyue.jobs.service import run_due
from yuyue.penalties.service import mark_no_shows

# The SMS a no-show or a ban owes the citizen, queued in the outbox once (dedup key) (rule G13).
OWED = "kind IN ('no_show', 'banned')"


async def me(api: Api, headers: dict[str, str]) -> dict:
    answer = await api.client.get("/api/v1/me", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_marked_once_when_the_window_closes_g13(api: Api) -> None:
    await api.hall()
    service = await api.service()
    one = await book_at(api, 1, service["id"], "2026-12-03T09:00")
    number = one["booking"]["number"]
    await api.set_clock("2026-12-03T09:59:00+08:00")
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "booked"
    await api.set_clock("2026-12-03T10:00:00+08:00")  # the city window closes at the slot's end
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "no_show"
    await api.set_clock("2026-12-03T18:00:00+08:00")
    owed = await raw(api, f"SELECT kind, dedup_key FROM messages WHERE {OWED} ORDER BY id")
    assert [(m.kind, m.dedup_key) for m in owed] == [("no_show", f"no_show:{number}")]
    mine = await me(api, one["headers"])
    assert mine["no_shows"] == 1 and mine["bans"] == []
    booking = (await api.client.get(f"/api/v1/appointments/{number}", headers=one["headers"])).json()
    assert booking["status"] == "no_show"


async def test_medical_insurance_window_closes_15_minutes_after_m7(api: Api) -> None:
    await api.hall()
    await api.policy("hall-a", "gz-medical-insurance")
    service = await api.service()
    await book_at(api, 1, service["id"], "2026-12-03T09:00")
    await api.set_clock("2026-12-03T10:14:00+08:00")
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "booked"
    await api.set_clock("2026-12-03T10:15:00+08:00")
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "no_show"


async def test_two_services_missed_in_one_day_ban_ten_days_g15(api: Api) -> None:
    await api.hall()
    one = await api.service()
    two = await api.service(name="社保卡补领", department="人社")
    three = await api.service(name="港澳通行证", department="出入境")
    first = await book_at(api, 1, one["id"], "2026-12-03T09:00")
    await book_at(api, 1, two["id"], "2026-12-03T14:00")
    await api.set_clock("2026-12-03T12:00:00+08:00")
    assert (await me(api, first["headers"]))["bans"] == []  # one miss so far
    await api.set_clock("2026-12-03T15:00:00+08:00")
    mine = await me(api, first["headers"])
    assert mine["no_shows"] == 2
    assert [(b["until"], b["unit_id"]) for b in mine["bans"]] == [("2026-12-13", "platform")]
    refused = await api.book(first["headers"], f"{three['id']}-202612040900")
    assert refused.status_code == 403 and refused.json()["code"] == "banned"
    assert refused.json()["banned_until"] == "2026-12-13"
    ban_id = (await raw(api, "SELECT id FROM bans"))[0][0]
    owed = await raw(api, f"SELECT kind, dedup_key FROM messages WHERE {OWED} ORDER BY id")
    assert [m.kind for m in owed] == ["no_show", "no_show", "banned"]
    assert owed[2].dedup_key == f"banned:{ban_id}"
    await api.set_clock("2026-12-13T18:00:00+08:00")
    still = await api.book(first["headers"], f"{three['id']}-202612140900")
    assert still.status_code == 403
    await api.set_clock("2026-12-14T00:00:00+08:00")
    assert (await me(api, first["headers"]))["bans"] == []
    assert (await api.book(first["headers"], f"{three['id']}-202612150900")).status_code == 201


async def test_three_of_one_service_within_ten_days_ban_a_month_g15(api: Api) -> None:
    await api.hall()
    service = await api.service()
    days = ["2026-12-03", "2026-12-04", "2026-12-07"]
    citizen = None
    for day in days:
        booked = await book_at(api, 1, service["id"], f"{day}T09:00")
        citizen = booked["headers"]
        await api.set_clock(f"{day}T10:00:00+08:00")
    assert citizen is not None
    mine = await me(api, citizen)
    assert mine["no_shows"] == 3
    assert [b["until"] for b in mine["bans"]] == ["2027-01-07"]  # a calendar month from the last
    used = await raw(api, "SELECT count(*) FROM no_show_marks WHERE item_ban_id IS NOT NULL")
    assert used[0][0] == 3  # used up by the one-item count only
    assert (await raw(api, "SELECT count(*) FROM no_show_marks WHERE ban_id IS NOT NULL"))[0][0] == 0


async def test_three_no_shows_spread_over_more_than_ten_days_no_ban(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = None
    for day in ["2026-12-03", "2026-12-04", "2026-12-14"]:  # 12-03 .. 12-14 spans 12 days
        booked = await book_at(api, 1, service["id"], f"{day}T09:00")
        citizen = booked["headers"]
        await api.set_clock(f"{day}T10:00:00+08:00")
    assert citizen is not None
    mine = await me(api, citizen)
    assert mine["no_shows"] == 3 and mine["bans"] == []


async def test_medical_insurance_every_third_no_show_three_months_m9(api: Api) -> None:
    await api.hall()
    await api.policy("hall-a", "gz-medical-insurance")
    one = await api.service()
    two = await api.service(name="异地就医备案", department="医保")
    citizen = None
    for day, service in [("2026-12-03", one), ("2026-12-04", two), ("2026-12-07", one)]:
        booked = await book_at(api, 1, service["id"], f"{day}T09:00")
        citizen = booked["headers"]
        await api.set_clock(f"{day}T10:15:00+08:00")
    assert citizen is not None
    mine = await me(api, citizen)
    assert [(b["until"], b["unit_id"]) for b in mine["bans"]] == [("2027-03-07", "hall-a")]
    # the ban covers the halls under the unit whose policy imposed it, not the rest of the city
    await api.hall("hall-b")
    elsewhere = await api.service("hall-b")
    assert (await api.book(citizen, f"{elsewhere['id']}-202612090900")).status_code == 201
    refused = await api.book(citizen, f"{two['id']}-202612090900")
    assert refused.status_code == 403 and refused.json()["banned_until"] == "2027-03-07"


async def test_special_reason_rebook_excuses_and_recomputes_the_ban_t9_g14(api: Api) -> None:
    await api.hall()
    one = await api.service()
    two = await api.service(name="社保卡补领", department="人社")
    first = await book_at(api, 1, one["id"], "2026-12-03T09:00")
    await book_at(api, 1, two["id"], "2026-12-03T10:00")
    await api.set_clock("2026-12-03T11:00:00+08:00")
    assert len((await me(api, first["headers"]))["bans"]) == 1
    # the ban this miss triggered never blocks its rebook
    rebook = await api.client.post(
        f"/api/v1/appointments/{first['booking']['number']}/rebook",
        json={"slot_id": f"{one['id']}-202612031300", "reason": "突发疾病"},
        headers=first["headers"],
    )
    assert rebook.status_code == 201, rebook.text
    assert rebook.json()["rebook_of"] == first["booking"]["number"]
    mine = await me(api, first["headers"])
    assert mine["no_shows"] == 1 and mine["bans"] == []
    lifted = await raw(api, "SELECT lifted_at FROM bans")
    assert lifted[0][0] is not None
    assert (await raw(api, "SELECT count(*) FROM no_show_marks"))[0][0] == 1


@pytest.mark.parametrize("b_first", [True, False], ids=["B-then-A", "A-then-B"])
async def test_g15_does_not_depend_on_the_order_of_marking(api: Api, b_first: bool) -> None:
    """docs/rules.md "Penalties": item A missed on 12-01 and 12-02, then on 12-03 B and A. Each rule keeps
    its own count, so whichever of the 12-03 no-shows the sweep marks first, both bans stand: 10
    days for two items in one day (through 12-13) and a month for three of A within 10 days
    (through 2027-01-03); the later `until` shows."""
    await api.hall()
    item_a = await api.service(item_code="440100-GA-0001")
    item_b = await api.service(name="社会保障卡申领", department="人社", item_code="440100-RS-0001")
    first = await book_at(api, 1, item_a["id"], "2026-12-01T11:00", channel="onsite")  # today: desk
    citizen = first["headers"]
    await api.set_clock("2026-12-01T12:00:00+08:00")
    assert (await api.book(citizen, f"{item_a['id']}-202612020900")).status_code == 201
    await api.set_clock("2026-12-02T10:00:00+08:00")
    a_at, b_at = ("1000", "0900") if b_first else ("0900", "1000")
    assert (await api.book(citizen, f"{item_a['id']}-20261203{a_at}")).status_code == 201
    assert (await api.book(citizen, f"{item_b['id']}-20261203{b_at}")).status_code == 201
    assert [b["until"] for b in (await me(api, citizen))["bans"]] == []
    await api.set_clock("2026-12-03T10:00:00+08:00")  # the 09:00 one is marked
    await api.set_clock("2026-12-03T11:00:00+08:00")  # then the 10:00 one
    mine = await me(api, citizen)
    assert mine["no_shows"] == 4
    assert sorted(b["until"] for b in mine["bans"]) == ["2026-12-13", "2027-01-03"]
    refused = await api.book(citizen, f"{item_b['id']}-202612070900")
    assert refused.status_code == 403 and refused.json()["banned_until"] == "2027-01-03"
    owed = await raw(api, "SELECT count(*) FROM messages WHERE kind = 'banned'")
    assert owed[0][0] == 2  # one SMS per ban


async def test_g15_compares_items_across_halls(api: Api) -> None:
    """docs/rules.md "Items": the same item code at two halls is one item for rule G15: two no-shows of it
    on one day are not "different items" (no 10-day ban), and they count toward its 3 within 10
    days wherever they were booked."""
    await api.hall("hall-a")
    await api.hall("hall-b")
    at_a = await api.service("hall-a", item_code="440100-GA-0001")
    at_b = await api.service("hall-b", item_code="440100-GA-0001")
    first = await book_at(api, 1, at_a["id"], "2026-12-03T09:00")
    citizen = first["headers"]
    await api.set_clock("2026-12-03T10:00:00+08:00")
    await book_at(api, 1, at_b["id"], "2026-12-03T14:00", channel="onsite")  # today, at hall B's desk
    await api.set_clock("2026-12-03T15:00:00+08:00")
    mine = await me(api, citizen)
    assert mine["no_shows"] == 2 and mine["bans"] == []
    assert (await api.book(citizen, f"{at_b['id']}-202612040900")).status_code == 201
    await api.set_clock("2026-12-04T10:00:00+08:00")
    assert [b["until"] for b in (await me(api, citizen))["bans"]] == ["2027-01-04"]


async def test_a_ban_from_other_misses_still_blocks_the_rebook_t9(api: Api) -> None:
    """docs/rules.md "Special-reason miss": only a ban that this miss triggered is recomputed away before
    the rebook is checked; a ban from other misses still forbids it (403 banned), and the refused
    rebook changes nothing."""
    await api.hall()
    one = await api.service(item_code="440100-GA-0001")
    two = await api.service(name="社会保障卡申领", department="人社", item_code="440100-RS-0001")
    three = await api.service(name="居住证办理", department="社会事务", item_code="440100-GA-0003")
    first = await book_at(api, 1, one["id"], "2026-12-03T09:00")
    citizen = first["headers"]
    await book_at(api, 1, two["id"], "2026-12-03T10:00")
    held = await book_at(api, 1, three["id"], "2026-12-04T09:00")  # held before the ban: it stays
    await api.set_clock("2026-12-03T11:00:00+08:00")  # two items missed on 12-03: banned to 12-13
    assert [b["until"] for b in (await me(api, citizen))["bans"]] == ["2026-12-13"]
    await api.set_clock("2026-12-04T09:30:00+08:00")  # the 12-04 slot has begun: rebookable
    number = held["booking"]["number"]
    rebook = await api.client.post(
        f"/api/v1/appointments/{number}/rebook",
        json={"slot_id": f"{three['id']}-202612041400", "reason": "突发疾病"},
        headers=citizen,
    )
    assert rebook.status_code == 403, rebook.text
    assert rebook.json()["code"] == "banned" and rebook.json()["banned_until"] == "2026-12-13"
    status = await raw(api, "SELECT status, rebooked FROM bookings WHERE number = :n", n=number)
    assert status[0][0] == "booked" and not status[0][1]  # refused: nothing changed
    assert (await api.client.get(f"/api/v1/appointments/{number}", headers=citizen)).json()[
        "status"
    ] == "booked"


async def test_two_workers_race_the_sweep_and_mark_once(api: Api) -> None:
    """Two job runners (separate engines, like two `yuyue worker` processes) over the same due
    times, and two sweeps of different due times at once: each booking marked and noticed once."""
    await api.hall()
    service = await api.service(daily_capacity=700)
    one = await api.service(name="社保卡补领", department="人社", daily_capacity=700)
    for n in range(20):
        await book_at(api, n, service["id"], "2026-12-03T09:00")
    for n in range(10):
        await book_at(api, n, one["id"], "2026-12-03T09:00")  # ten citizens miss two services: bans
    from yuyue.config import Settings
    from yuyue.db import make_engine, make_sessionmaker

    settings = api.app.state.settings
    engines = [make_engine(Settings(**{**settings.model_dump(), "db_pool_size": 5})) for _ in range(2)]
    try:
        makers = [make_sessionmaker(e) for e in engines]
        after = datetime(2026, 12, 3, 9, 50, tzinfo=TZ)
        until = datetime(2026, 12, 3, 10, 30, tzinfo=TZ)
        ran = await asyncio.gather(*(run_due(m, after, until) for m in makers))
        assert sum(ran) >= 3

        async def sweep(maker: object, minute: int) -> int:
            async with makers[0]() if maker is None else maker() as session:  # type: ignore[operator]
                count = await mark_no_shows(session, datetime(2026, 12, 3, 10, minute, tzinfo=TZ))
                await session.commit()
                return count

        assert await asyncio.gather(sweep(makers[0], 40), sweep(makers[1], 45)) == [0, 0]
    finally:
        for engine in engines:
            await engine.dispose()
    assert (await raw(api, "SELECT count(*) FROM bookings WHERE status = 'no_show'"))[0][0] == 30
    assert (await raw(api, "SELECT count(*) FROM messages WHERE kind = 'no_show'"))[0][0] == 30
    assert (await raw(api, "SELECT count(*) FROM no_show_marks"))[0][0] == 30
    assert (await raw(api, "SELECT count(*) FROM bans"))[0][0] == 10
    assert (await raw(api, "SELECT count(*) FROM messages WHERE kind = 'banned'"))[0][0] == 10
    runs = await raw(api, "SELECT count(*) FROM job_runs WHERE job = 'mark_no_shows'")
    assert runs[0][0] == 3  # 10:00, 10:15, 10:30, each once


async def test_racing_sweeps_over_fresh_bookings_mark_each_once(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=700)
    for n in range(25):
        await book_at(api, n, service["id"], "2026-12-03T09:00")
    from yuyue.config import Settings
    from yuyue.db import make_engine, make_sessionmaker

    settings = api.app.state.settings
    engines = [make_engine(Settings(**{**settings.model_dump(), "db_pool_size": 5})) for _ in range(2)]
    try:

        async def sweep(engine: object, minute: int) -> int:
            async with make_sessionmaker(engine)() as session:  # type: ignore[arg-type]
                count = await mark_no_shows(session, datetime(2026, 12, 3, 10, minute, tzinfo=TZ))
                await session.commit()
                return count

        counts = await asyncio.gather(sweep(engines[0], 0), sweep(engines[1], 15))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(counts) == 25  # split between the two sweeps, never both
    assert (await raw(api, f"SELECT count(*) FROM messages WHERE {OWED}"))[0][0] == 25
    assert (await raw(api, "SELECT count(*) FROM no_show_marks"))[0][0] == 25


async def test_admin_lookup_add_and_lift_ban_audited(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(1), name="张三丰", phone="13812345678")
    lookup = await api.client.post(
        "/api/v1/admin/citizens/lookup",
        json={"id_type": "resident_id", "id_number": resident_id(1)},
        headers=api.admin(),
    )
    assert lookup.status_code == 200, lookup.text
    ref = lookup.json()["id"]
    assert lookup.json()["citizen"]["id_number"] == resident_id(1) and lookup.json()["no_shows"] == 0
    assert resident_id(1) not in ref
    added = await api.client.post(
        f"/api/v1/admin/citizens/{ref}/bans",
        json={"until": "2026-12-20", "reason": "恶意占号"},
        headers=api.admin(),
    )
    assert added.status_code == 201, added.text
    ban = added.json()
    assert ban["until"] == "2026-12-20" and ban["unit_id"] == "platform" and ban["source"] == "admin"
    refused = await api.book(citizen, f"{service['id']}-202612030900")
    assert refused.status_code == 403 and refused.json()["banned_until"] == "2026-12-20"
    past = await api.client.post(
        f"/api/v1/admin/citizens/{ref}/bans", json={"until": "2026-11-30", "reason": "x"}, headers=api.admin()
    )
    assert past.status_code == 422
    forged = await api.client.post(
        f"/api/v1/admin/citizens/{ref[:-1]}0/bans",
        json={"until": "2026-12-20", "reason": "x"},
        headers=api.admin(),
    )
    assert forged.status_code == 404
    lift = await api.client.request(
        "DELETE",
        f"/api/v1/admin/citizens/{ref}/bans/{ban['id']}",
        json={"reason": "误判"},
        headers=api.admin(),
    )
    assert lift.status_code == 204
    again = await api.client.request(
        "DELETE",
        f"/api/v1/admin/citizens/{ref}/bans/{ban['id']}",
        json={"reason": "误判"},
        headers=api.admin(),
    )
    assert again.status_code == 409
    assert (await api.book(citizen, f"{service['id']}-202612030900")).status_code == 201
    actions = [r.action for r in await raw(api, "SELECT action FROM audit_log ORDER BY id")]
    assert actions[-3:] == ["citizen.lookup", "ban.add", "ban.lift"]
    unknown = await api.client.post(
        "/api/v1/admin/citizens/lookup", json={"id_number": resident_id(2)}, headers=api.admin()
    )
    assert unknown.status_code == 404
    anonymous = await api.client.post("/api/v1/admin/citizens/lookup", json={"id_number": resident_id(1)})
    assert anonymous.status_code == 401
