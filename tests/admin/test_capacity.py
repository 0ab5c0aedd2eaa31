"""Capacity changes (rule G20) and alerts: requests ahead of time, approval by the level above
(never the requester), applied at once never below seats sold, `approval_overdue` once."""

from __future__ import annotations

from tests.admin.support import fill_day, new_admin, problem, unit
from tests.conftest import Api, raw
from tests.ids import resident_id

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


async def test_new_daily_capacity_keeps_approved_days_and_feeds_the_waiting_list(api: Api) -> None:
    """A service's new daily capacity re-spreads stored future slots, but never a day an approved
    request set (rule G20), and seats it adds go to the waiting list first (rule G11)."""
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat a slot
    l1 = await new_admin(api, "p1b", "platform", 1)
    made = await request(api, api.admin(), service["id"])  # DAY: two a slot
    ok = await api.client.post(f"/api/v1/admin/capacity-requests/{made['id']}/approve", headers=l1)
    assert ok.status_code == 200
    other_day = "2026-12-04"
    await fill_day(api, service["id"], other_day)
    waiting = await api.login(resident_id(40, birth="19880101"))
    joined = await api.client.post(
        "/api/v1/waitlist",
        json={"service_id": service["id"], "dates": [other_day], "channel": "app"},
        headers=waiting,
    )
    assert joined.status_code == 201, joined.text

    patched = await api.client.patch(
        f"/api/v1/admin/services/{service['id']}", json={"daily_capacity": 21}, headers=api.admin()
    )
    assert patched.status_code == 200, patched.text
    assert [s["capacity"] for s in await api.slots(service["id"], DAY)] == [2] * 7  # the approved figure
    assert [s["capacity"] for s in await api.slots(service["id"], other_day)] == [3] * 7
    entry = (await api.client.get("/api/v1/waitlist", headers=waiting)).json()[0]
    assert entry["status"] == "allocated" and entry["number"]
