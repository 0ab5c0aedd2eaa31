"""Capacity changes (rule G20) and alerts: requests ahead of time, approval by the level above
(never the requester), applied at once never below seats sold, `approval_overdue` once."""

from __future__ import annotations

from tests.admin.support import fill_day, new_admin, problem, unit
from tests.conftest import ADMIN_PASSWORD, Api, raw
from tests.console.conftest import console_login, post
from tests.ids import resident_id
from yuyue.admin.accounts import create_admin

DAY = "2026-12-03"  # Thu: the 2nd working day after Tue 2026-12-01


async def request(api: Api, headers: dict[str, str], service_id: int, **extra: object) -> dict:
    body = {"service_id": service_id, "date_from": DAY, "date_to": DAY, "daily_capacity": 14, "reason": "5+X"}
    response = await api.client.post(
        "/api/v1/admin/capacity-requests", json={**body, **extra}, headers=headers
    )
    return {"http": response.status_code, **response.json()}


async def test_request_approve_apply_never_below_sold(api: Api) -> None:
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    service = await api.service("s1", daily_capacity=14)  # 2 a slot over 7 slots
    street = await new_admin(api, "s1-2", "s1", 2)
    district = await new_admin(api, "d1-1", "d1", 1)
    overseer = await new_admin(api, "p2", "platform", 2)

    # rule G20: at least the 2nd working day after today
    early = await request(api, street, service["id"], date_from="2026-12-02", date_to="2026-12-02")
    assert early["http"] == 422 and early["code"] == "too_late_for_change"
    assert early["earliest"] == DAY

    first = (await api.slots(service["id"], DAY))[0]
    for n in range(2):  # the 09:00 slot sells both seats
        assert (await api.book(await api.login(resident_id(n + 1)), first["id"])).status_code == 201

    made = await request(api, street, service["id"], daily_capacity=7)  # down to 1 a slot
    assert made["http"] == 201 and made["status"] == "pending"
    assert made["approval_due"] == "2026-12-03T00:00:00+08:00"  # 24:00 of the next working day
    rid = made["id"]
    # never the requester; the street L2 above a request is not an approver; platform L2 never
    problem(
        await api.client.post(f"/api/v1/admin/capacity-requests/{rid}/approve", headers=street),
        403,
        "forbidden",
    )
    problem(
        await api.client.post(f"/api/v1/admin/capacity-requests/{rid}/approve", headers=overseer),
        403,
        "forbidden",
    )
    approved = await api.client.post(
        f"/api/v1/admin/capacity-requests/{rid}/approve", json={"note": "同意"}, headers=district
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    problem(
        await api.client.post(f"/api/v1/admin/capacity-requests/{rid}/reject", headers=district),
        409,
        "already_decided",
    )

    rows = {r.id: (r.capacity, r.booked) for r in await raw(api, "SELECT id, capacity, booked FROM slots")}
    assert rows[first["id"]] == (2, 2)  # never below the seats already sold
    assert all(capacity == 1 for sid, (capacity, _) in rows.items() if sid != first["id"])
    day = await api.slots(service["id"], DAY)
    assert [s["capacity"] for s in day] == [2, 1, 1, 1, 1, 1, 1]
    audit = (await api.client.get("/api/v1/admin/audit", headers=district)).json()
    assert [e["action"] for e in audit[:2]] == ["capacity.approve", "capacity.request"]
    assert audit[0]["before"]["status"] == "pending" and audit[0]["after"]["status"] == "approved"


async def test_platform_l2_proposals_go_to_platform_l1(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    overseer = await new_admin(api, "p2", "platform", 2)
    other_l1 = await new_admin(api, "p1b", "platform", 1)
    made = await request(api, overseer, service["id"])
    assert made["http"] == 201
    rejected = await api.client.post(f"/api/v1/admin/capacity-requests/{made['id']}/reject", headers=other_l1)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert [s["capacity"] for s in await api.slots(service["id"], DAY)] == [1] * 7  # nothing applied
    mine = await request(api, api.admin(), service["id"])
    problem(
        await api.client.post(f"/api/v1/admin/capacity-requests/{mine['id']}/approve", headers=api.admin()),
        403,
        "forbidden",
    )
    ok = await api.client.post(f"/api/v1/admin/capacity-requests/{mine['id']}/approve", headers=other_l1)
    assert ok.status_code == 200
    assert [s["capacity"] for s in await api.slots(service["id"], DAY)] == [2] * 7


async def test_approval_overdue_alert_fires_once_and_resolves(api: Api) -> None:
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    await unit(api, "d2", "district", "platform")
    service = await api.service("s1", daily_capacity=7)
    street = await new_admin(api, "s1-2", "s1", 2)
    district = await new_admin(api, "d1-1", "d1", 1)
    stranger = await new_admin(api, "d2-1", "d2", 1)
    made = await request(api, street, service["id"], date_from="2026-12-07", date_to="2026-12-08")
    assert made["http"] == 201

    await api.set_clock("2026-12-02T23:59:00+08:00")
    assert (await api.client.get("/api/v1/admin/alerts", headers=district)).json() == []
    await api.set_clock("2026-12-03T00:00:00+08:00")  # 24:00 of the next working day
    for _ in range(3):
        await api.set_clock("2026-12-03T09:00:00+08:00")
    await api.set_clock("2026-12-05T09:00:00+08:00")
    alerts = (await api.client.get("/api/v1/admin/alerts", headers=district)).json()
    overdue = [a for a in alerts if a["kind"] == "approval_overdue"]
    assert len(overdue) == 1 and overdue[0]["unit_id"] == "s1" and overdue[0]["service_id"] == service["id"]
    assert overdue[0]["raised_at"] == "2026-12-03T00:00:00+08:00" and overdue[0]["resolved_at"] is None
    # every level above sees it; another district does not
    for headers in (street, api.admin()):
        assert any(
            a["id"] == overdue[0]["id"]
            for a in (await api.client.get("/api/v1/admin/alerts", headers=headers)).json()
        )
    assert (await api.client.get("/api/v1/admin/alerts", headers=stranger)).json() == []
    problem(
        await api.client.post(
            f"/api/v1/admin/alerts/{overdue[0]['id']}/resolve", json={"note": "x"}, headers=stranger
        ),
        403,
        "forbidden",
    )
    resolved = await api.client.post(
        f"/api/v1/admin/alerts/{overdue[0]['id']}/resolve", json={"note": "已催办"}, headers=district
    )
    assert (
        resolved.status_code == 200 and resolved.json()["note"] == "已催办" and resolved.json()["resolved_at"]
    )
    problem(
        await api.client.post(
            f"/api/v1/admin/alerts/{overdue[0]['id']}/resolve", json={"note": "x"}, headers=district
        ),
        422,
        "already_resolved",
    )
    await api.set_clock("2026-12-06T09:00:00+08:00")
    again = (await api.client.get("/api/v1/admin/alerts?resolved=false", headers=district)).json()
    assert [a for a in again if a["kind"] == "approval_overdue"] == []  # once, even while still pending


async def admin_with_phone(api: Api, username: str, unit_id: str, level: int, phone: str) -> dict[str, str]:
    """An admin with their own mobile number (to tell whose SMS is whose), logged in over HTTP."""
    password = f"{username}-password-2026"
    async with api.app.state.sessionmaker() as session:
        await create_admin(
            session,
            username=username,
            password=password,
            name="测试管理员",
            title=f"{unit_id} L{level}",
            phone=phone,
            unit_id=unit_id,
            level=level,
        )
        await session.commit()
    response = await api.client.post("/api/v1/admin/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return api.admin(response.json()["token"])


async def capacities(api: Api, service_id: int, day: str) -> list[int]:
    return [s["capacity"] for s in await api.slots(service_id, day)]


async def approve(api: Api, headers: dict[str, str], request_id: int) -> dict:
    response = await api.client.post(f"/api/v1/admin/capacity-requests/{request_id}/approve", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_service_capacity_changes_only_by_request(api: Api) -> None:
    """rule G20: a PATCH that names `daily_capacity` is `422 capacity_by_request` and changes
    nothing, however it is combined, whoever asks; the other fields still change by PATCH."""
    await api.hall()
    service = await api.service(daily_capacity=7)
    citizen = await api.login(resident_id(1))
    first = (await api.slots(service["id"], DAY))[0]
    assert (await api.book(citizen, first["id"])).status_code == 201
    before = await raw(api, "SELECT id, capacity, booked FROM slots ORDER BY id")
    url = f"/api/v1/admin/services/{service['id']}"
    for body in ({"daily_capacity": 21}, {"daily_capacity": 7}, {"daily_capacity": 0, "max_batch": 5}):
        problem(await api.client.patch(url, json=body, headers=api.admin()), 422, "capacity_by_request")
    shown = (await api.client.get(url, headers=api.admin())).json()
    assert shown["daily_capacity"] == 7 and shown["max_batch"] == 1
    assert await raw(api, "SELECT id, capacity, booked FROM slots ORDER BY id") == before
    assert await capacities(api, service["id"], DAY) == [1] * 7
    assert await raw(api, "SELECT id FROM audit_log WHERE action = 'service.update'") == []
    assert (await api.client.patch(url, json={"max_batch": 5}, headers=api.admin())).json()["max_batch"] == 5


async def test_a_standing_change_counts_from_its_first_day(api: Api) -> None:
    """rule G20, `date_to: null`: on approval the service's daily capacity is the new figure from
    `date_from` on, stored slots included (never below the seats sold); the days before keep the
    old figure, stored or not; a later approval wins for the days it covers; a pending or rejected
    request changes nothing."""
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat a slot
    l1 = await new_admin(api, "p1b", "platform", 1)
    url = f"/api/v1/admin/services/{service['id']}"
    before_day, thursday, friday, monday, tuesday = (
        "2026-12-02",
        DAY,
        "2026-12-04",
        "2026-12-07",
        "2026-12-08",
    )
    missing = await api.client.post(
        "/api/v1/admin/capacity-requests",
        json={"service_id": service["id"], "date_from": friday, "daily_capacity": 14, "reason": "x"},
        headers=api.admin(),
    )
    problem(missing, 422, "validation_error")  # `date_to` is required: null says "from date_from on"
    early = await request(api, api.admin(), service["id"], date_from="2026-12-02", date_to=None)
    assert early["http"] == 422 and early["code"] == "too_late_for_change"

    citizen = await api.login(resident_id(2))  # a stored slot before the change, one after it
    assert (await api.book(citizen, (await api.slots(service["id"], thursday))[0]["id"])).status_code == 201
    other = await api.login(resident_id(3))
    assert (await api.book(other, (await api.slots(service["id"], tuesday))[1]["id"])).status_code == 201

    made = await request(api, api.admin(), service["id"], date_from=friday, date_to=None, daily_capacity=14)
    assert made["http"] == 201 and made["date_to"] is None and made["status"] == "pending"
    assert await capacities(api, service["id"], friday) == [1] * 7  # pending: nothing yet
    rejected = await request(
        api, api.admin(), service["id"], date_from=friday, date_to=None, daily_capacity=70
    )
    no = await api.client.post(f"/api/v1/admin/capacity-requests/{rejected['id']}/reject", headers=l1)
    assert no.status_code == 200 and no.json()["status"] == "rejected"

    decided = await approve(api, l1, made["id"])
    assert decided["status"] == "approved" and decided["date_to"] is None
    assert (await api.client.get(url, headers=api.admin())).json()["daily_capacity"] == 14
    assert await capacities(api, service["id"], thursday) == [1] * 7  # before date_from: the old figure
    for day in (friday, monday, tuesday, "2026-12-14"):
        assert await capacities(api, service["id"], day) == [2] * 7, day
    stored = {r.id: (r.capacity, r.booked) for r in await raw(api, "SELECT id, capacity, booked FROM slots")}
    assert sorted(stored.values()) == [(1, 1), (2, 1)]  # Thursday's kept, Tuesday's re-spread
    assert await capacities(api, service["id"], before_day) == [1] * 7  # and the days already gone

    # a later standing change from Monday, down to 0: Friday keeps 14, the sold seat stays (G20 floor)
    down = await request(api, api.admin(), service["id"], date_from=monday, date_to=None, daily_capacity=0)
    await approve(api, l1, down["id"])
    assert await capacities(api, service["id"], thursday) == [1] * 7
    assert await capacities(api, service["id"], friday) == [2] * 7
    assert await capacities(api, service["id"], monday) == [0] * 7
    assert await capacities(api, service["id"], tuesday) == [0, 1, 0, 0, 0, 0, 0]
    # a later one from Thursday again wins over both for the days from Thursday on
    back = await request(api, api.admin(), service["id"], date_from=thursday, date_to=None, daily_capacity=21)
    await approve(api, l1, back["id"])
    for day in (thursday, friday, monday, tuesday):
        assert await capacities(api, service["id"], day) == [3] * 7, day
    assert (await api.client.get(url, headers=api.admin())).json()["daily_capacity"] == 21
    # a request for some days still only changes those days
    ranged = await request(
        api, api.admin(), service["id"], date_from=friday, date_to=friday, daily_capacity=7
    )
    await approve(api, l1, ranged["id"])
    assert await capacities(api, service["id"], friday) == [1] * 7
    assert await capacities(api, service["id"], monday) == [3] * 7


async def test_an_approved_increase_feeds_the_waiting_list(api: Api) -> None:
    """rule G11 at the seam of rule G20: the seats an approved standing increase adds go to the
    waiting list first, on a stored day and on a day not yet stored."""
    await api.hall()
    service = await api.service(daily_capacity=7)
    l1 = await new_admin(api, "p1b", "platform", 1)
    friday = "2026-12-04"
    await fill_day(api, service["id"], friday)
    waiting = await api.login(resident_id(40, birth="19880101"))
    joined = await api.client.post(
        "/api/v1/waitlist",
        json={"service_id": service["id"], "dates": [friday], "channel": "app"},
        headers=waiting,
    )
    assert joined.status_code == 201, joined.text
    made = await request(api, api.admin(), service["id"], date_from=friday, date_to=None, daily_capacity=14)
    await approve(api, l1, made["id"])
    entry = (await api.client.get("/api/v1/waitlist", headers=waiting)).json()[0]
    assert entry["status"] == "allocated" and entry["number"]
    assert sum(s["remaining"] for s in await api.slots(service["id"], friday)) == 6


async def test_an_approval_is_announced_to_the_halls_admins(api: Api) -> None:
    """rule G4 (Art. 8): an approved change goes to the administrators of the hall it concerns
    (SMS through the outbox, once each); a rejection sends nothing."""
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    await unit(api, "v1", "village_hall", "s1")
    service = await api.service("v1", daily_capacity=7)
    village = await admin_with_phone(api, "v1-3", "v1", 3, "13700000003")
    await admin_with_phone(api, "v1-3b", "v1", 3, "13700000004")
    street = await admin_with_phone(api, "s1-2", "s1", 2, "13700000002")
    before = len((await api.client.get("/api/v1/test/messages")).json())

    no = await request(api, village, service["id"], daily_capacity=21)
    rejected = await api.client.post(f"/api/v1/admin/capacity-requests/{no['id']}/reject", headers=street)
    assert rejected.status_code == 200
    assert len((await api.client.get("/api/v1/test/messages")).json()) == before

    made = await request(api, village, service["id"], date_to=None, daily_capacity=14)
    await approve(api, street, made["id"])  # rule G6: the street hall L2 approves for its villages
    sent = [
        m for m in (await api.client.get("/api/v1/test/messages")).json() if m["kind"] == "capacity_approved"
    ]
    assert sorted(m["phone"] for m in sent) == ["13700000003", "13700000004"]  # the hall's, not above
    assert all(
        f"号源调整申请（编号{made['id']}）已批准" in m["text"]
        and "：12月3日起每日14个" in m["text"]
        and len(m["text"]) <= 70
        for m in sent
    )


async def test_alerts_reach_every_level_above_the_hall(api: Api) -> None:
    """rules G12, G20: an alert at a hall reaches the admins of the hall and of every unit above it
    (SMS), and is listed for each of them; not an admin of another branch."""
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    await unit(api, "v1", "village_hall", "s1")
    await unit(api, "d2", "district", "platform")
    service = await api.service("v1", daily_capacity=7)
    village = await admin_with_phone(api, "v1-3", "v1", 3, "13700000003")
    street = await admin_with_phone(api, "s1-2", "s1", 2, "13700000002")
    district = await admin_with_phone(api, "d1-1", "d1", 1, "13700000001")
    overseer = await admin_with_phone(api, "p2", "platform", 2, "13700000009")
    stranger = await admin_with_phone(api, "d2-1", "d2", 1, "13700000005")
    made = await request(api, village, service["id"], date_from="2026-12-07", date_to="2026-12-08")
    assert made["http"] == 201
    await api.set_clock("2026-12-03T09:00:00+08:00")  # not decided by 24:00 of the next working day

    for headers in (village, street, district, overseer):
        listed = (await api.client.get("/api/v1/admin/alerts", headers=headers)).json()
        assert [a["unit_id"] for a in listed if a["kind"] == "approval_overdue"] == ["v1"]
    assert (await api.client.get("/api/v1/admin/alerts", headers=stranger)).json() == []
    sent = [m for m in (await api.client.get("/api/v1/test/messages")).json() if m["kind"] == "alert"]
    phones = sorted(m["phone"] for m in sent)
    assert phones == sorted(
        ["13700000003", "13700000002", "13700000001", "13700000009", "13800000000"]  # 13800000000: root
    )


async def test_who_approves_through_http(api: Api) -> None:
    """rules G5, G6 through HTTP: a street hall L2 approves its village halls' requests (not its own
    hall's, not one asked from above it); a city-level hall has an L1, who approves its L2's requests
    and does not configure."""
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    await unit(api, "v1", "village_hall", "s1")
    await unit(api, "city", "city_hall", "platform")
    village_service = await api.service("v1", daily_capacity=7)
    street_service = await api.service("s1", daily_capacity=7)
    city_service = await api.service("city", daily_capacity=7)
    village = await new_admin(api, "v1-3", "v1", 3)
    street = await new_admin(api, "s1-2", "s1", 2)
    street_b = await new_admin(api, "s1-2b", "s1", 2)
    district = await new_admin(api, "d1-1", "d1", 1)

    ok = await request(api, village, village_service["id"])
    assert (await approve(api, street, ok["id"]))["status"] == "approved"
    peer = await request(api, street_b, street_service["id"])
    from_above = await request(api, district, village_service["id"])
    for rid in (peer["id"], from_above["id"]):
        problem(
            await api.client.post(f"/api/v1/admin/capacity-requests/{rid}/approve", headers=street),
            403,
            "forbidden",
        )
    assert (await approve(api, district, peer["id"]))["status"] == "approved"

    opened = await api.client.post(
        "/api/v1/admin/admins",
        json={
            "username": "city-1",
            "password": "a-strong-password-1",
            "name": "王五",
            "title": "市级大厅一级管理员",
            "phone": "13900000001",
            "unit_id": "city",
            "level": 1,
        },
        headers=api.admin(),
    )
    assert opened.status_code == 201, opened.text
    login = await api.client.post(
        "/api/v1/admin/login", json={"username": "city-1", "password": "a-strong-password-1"}
    )
    city_l1 = api.admin(login.json()["token"])
    city_l2 = await new_admin(api, "city-2", "city", 2)
    asked = await request(api, city_l2, city_service["id"])
    problem(
        await api.client.post(f"/api/v1/admin/capacity-requests/{asked['id']}/approve", headers=city_l2),
        403,
        "forbidden",
    )
    assert (await approve(api, city_l1, asked["id"]))["status"] == "approved"
    problem(
        await api.client.patch("/api/v1/admin/units/city", json={"counters": 4}, headers=city_l1),
        403,
        "forbidden",
    )
    assert (
        await api.client.patch("/api/v1/admin/units/city", json={"counters": 4}, headers=city_l2)
    ).status_code == 200


async def test_the_console_asks_for_a_standing_change(api: Api) -> None:
    """The hall page links a service to the capacity request form (rule G20), which can ask for a
    standing change (`date_to` null) as the API does."""
    await api.hall()
    service = await api.service(daily_capacity=7)
    answer = await console_login(api, "root", ADMIN_PASSWORD)
    assert answer.status_code == 303, answer.text
    form = (await api.client.get(f"/admin/capacity?service_id={service['id']}")).text
    assert f'<option value="{service["id"]}" selected>' in form and 'name="standing"' in form
    made = await post(
        api,
        "/admin/capacity",
        {
            "service_id": str(service["id"]),
            "date_from": "2026-12-04",
            "date_to": "2026-12-04",
            "standing": "1",
            "daily_capacity": "14",
            "reason": "长期增加",
        },
    )
    assert made.status_code == 303, made.text
    [row] = await raw(api, "SELECT date_from, date_to, daily_capacity, status FROM capacity_requests")
    assert (str(row.date_from), row.date_to) == ("2026-12-04", None)  # "standing" wins over date_to
    assert (row.daily_capacity, row.status) == (14, "pending")
    assert "起长期" in (await api.client.get("/admin/capacity")).text
