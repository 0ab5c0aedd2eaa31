"""The admin console's manage pages (issue 10 items 4 and 6) through HTML forms, on SQLite and
PostgreSQL: every change goes through the same services and authorisation as the API (rules G3–G7),
an admin never sees or changes anything outside their subtree, CSRF is checked before anything runs.
"""

from __future__ import annotations

import json
import re

from tests.admin.support import fill_day, unit
from tests.conftest import Api, raw
from tests.console.conftest import console_login, post
from tests.ids import resident_id
from yuyue.admin.accounts import create_admin

DAY = "2026-12-03"  # Thu: the 2nd working day after Tue 2026-12-01 (rule G20)


async def make_admin(api: Api, username: str, unit_id: str, level: int) -> str:
    """An admin made the way the CLI makes one; returns the password."""
    password = f"{username}-password-2026"
    async with api.app.state.sessionmaker() as session:
        await create_admin(
            session,
            username=username,
            password=password,
            name="测试管理员",
            title=f"{unit_id} L{level}",
            phone="13800000001",
            unit_id=unit_id,
            level=level,
        )
        await session.commit()
    return password


async def login_as(api: Api, username: str, password: str) -> None:
    answer = await console_login(api, username, password)
    assert answer.status_code == 303, answer.text


async def count(api: Api, sql: str, **params: object) -> int:
    return int((await raw(api, sql, **params))[0][0])


def row_of(page: str, attribute: str, value: object) -> str:
    """The HTML of the table row `<tr data-<attribute>="<value>" …>…</tr>`."""
    match = re.search(rf'<tr data-{attribute}="{value}"[^>]*>.*?</tr>', page, re.S)
    assert match, f"no row {attribute}={value}"
    return match.group(0)


async def test_service_closure_and_policy_through_the_pages(api: Api) -> None:
    await api.hall("hall-a")
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    await login_as(api, "root", "platform-admin-2026")

    made = await post(
        api,
        "/admin/units/hall-a/services",
        {
            "department": "公安户政",
            "name": "居民身份证申领",
            "business_types": "换领，补领",
            "daily_capacity": "35",
            "max_batch": "2",
            "walk_in_allowed": "1",
        },
    )
    assert made.status_code == 303 and made.headers["location"].startswith("/admin/units/hall-a?done=")
    page = await api.client.get("/admin/units/hall-a")
    assert page.status_code == 200 and "已新增事项" not in page.text  # the notice follows ?done= only
    assert "居民身份证申领" in page.text and 'lang="zh-CN"' in page.text
    listed = (await api.client.get("/api/v1/halls/hall-a/services")).json()
    assert [(s["name"], s["business_types"], s["max_batch"]) for s in listed] == [
        ("居民身份证申领", ["换领", "补领"], 2)
    ]
    service_id = listed[0]["id"]
    assert "已新增事项" in (await api.client.get(made.headers["location"])).text

    # edit batch and walk-ins (the unchecked box turns walk-ins off); the daily capacity is not
    # offered: it changes only by capacity request (rule G20), and the page links there
    row = row_of((await api.client.get("/admin/units/hall-a")).text, "service", service_id)
    assert 'name="daily_capacity"' not in row and f'href="/admin/capacity?service_id={service_id}"' in row
    edited = await post(
        api,
        f"/admin/services/{service_id}",
        {"max_batch": "3", "checkboxes": "walk_in_allowed active", "active": "1"},
    )
    assert edited.status_code == 303
    now = (await api.client.get(f"/api/v1/admin/services/{service_id}", headers=api.admin())).json()
    assert (now["daily_capacity"], now["max_batch"], now["walk_in_allowed"], now["active"]) == (
        35,
        3,
        False,
        True,
    )
    forced = await post(
        api, f"/admin/services/{service_id}", {"daily_capacity": "42", "max_batch": "1", "checkboxes": ""}
    )
    assert forced.status_code == 422 and 'data-code="capacity_by_request"' in forced.text
    again = (await api.client.get(f"/api/v1/admin/services/{service_id}", headers=api.admin())).json()
    assert (again["daily_capacity"], again["max_batch"]) == (35, 3)
    bad = await post(api, f"/admin/services/{service_id}", {"daily_capacity": "-5", "max_batch": "3"})
    assert bad.status_code == 422 and 'data-code="validation_error"' in bad.text and "每日号源" in bad.text

    # a closure: the day stops being a working day of the hall, and comes back when removed
    closed = await post(api, "/admin/units/hall-a/closures", {"date": "2026-12-04", "note": "设备检修"})
    assert closed.status_code == 303
    page = (await api.client.get("/admin/units/hall-a")).text
    assert 'data-closure="2026-12-04"' in page and "设备检修" in page
    assert await api.slots(service_id, "2026-12-04") == []
    removed = await post(api, "/admin/units/hall-a/closures/2026-12-04/remove")
    assert removed.status_code == 303
    assert 'data-closure="2026-12-04"' not in (await api.client.get("/admin/units/hall-a")).text
    assert len(await api.slots(service_id, "2026-12-04")) == 7

    # a policy override on the district: "set here" there, "inherited" on the street hall below
    policy = await post(api, "/admin/units/d1/policy", {"preset": "", "knob.horizon_days": "7"})
    assert policy.status_code == 303
    district = (await api.client.get("/admin/units/d1")).text
    assert 'data-knob="horizon_days" data-where="here"' in district
    assert "7 天" in row_of(district, "knob", "horizon_days")
    assert 'data-knob="horizon_rule" data-where="inherited"' in district  # from the platform's preset
    street = (await api.client.get("/admin/units/s1")).text
    inherited = row_of(street, "knob", "horizon_days")
    assert 'data-where="inherited"' in inherited and "继承自 单位 d1" in inherited and "7 天" in inherited
    effective = (await api.client.get("/api/v1/units/s1/policy")).json()
    assert effective["knobs"]["horizon_days"] == {"value": 7, "from": "d1"}
    wrong = await post(api, "/admin/units/d1/policy", {"knob.release_time": "25:00"})
    assert wrong.status_code == 422 and 'data-code="validation_error"' in wrong.text
    assert (await api.client.get("/api/v1/units/d1/policy")).json()["knobs"]["horizon_days"]["value"] == 7

    # a child unit made through the page
    child = await post(
        api,
        "/admin/units/s1/children",
        {
            "kind": "village_hall",
            "id": "s1-v1",
            "name": "一村服务站",
            "address": "一村1号",
            "hotline": "020-1234",
            "mode": "self_service",
            "hours": "09:00-12:00",
            "counters": "1",
        },
    )
    assert child.status_code == 303 and child.headers["location"].startswith("/admin/units/s1-v1")
    actions = [r.action for r in await raw(api, "SELECT action FROM audit_log ORDER BY id")]
    for action in ("service.create", "service.update", "closure.set", "closure.delete", "policy.set"):
        assert action in actions
    assert actions[-1] == "unit.create"


async def test_a_district_admin_sees_and_changes_only_their_subtree(api: Api) -> None:
    for unit_id, kind, parent in (
        ("d1", "district", "platform"),
        ("h1", "district_hall", "d1"),
        ("d2", "district", "platform"),
        ("h2", "district_hall", "d2"),
    ):
        await unit(api, unit_id, kind, parent)
    other = await api.service("h2", daily_capacity=14)
    password = await make_admin(api, "d1-1", "d1", 1)
    await login_as(api, "d1-1", password)

    tree = (await api.client.get("/admin/units")).text
    assert 'data-unit="d1"' in tree and 'data-unit="h1"' in tree
    assert (
        'data-unit="d2"' not in tree and 'data-unit="h2"' not in tree and 'data-unit="platform"' not in tree
    )
    assert (await api.client.get("/admin/units/h1")).status_code == 200

    before = {
        table: await count(api, f"SELECT count(*) FROM {table}")
        for table in ("units", "services", "policies", "closures", "audit_log")
    }
    refused = await api.client.get("/admin/units/h2")
    assert (
        refused.status_code == 403
        and 'data-code="forbidden"' in refused.text
        and "单位 h2" not in refused.text
    )
    for path, data in (
        ("/admin/units/h2", {"name": "改名"}),
        ("/admin/units/h2/services", {"department": "税务", "name": "发票", "daily_capacity": "7"}),
        ("/admin/units/h2/policy", {"knob.horizon_days": "5"}),
        ("/admin/units/h2/closures", {"date": "2026-12-04", "note": "x"}),
        ("/admin/units/d2/children", {"kind": "street_hall", "id": "d2-x", "name": "x"}),
        (f"/admin/services/{other['id']}", {"daily_capacity": "1", "max_batch": "1"}),
    ):
        answer = await post(api, path, data)
        assert answer.status_code == 403 and 'data-code="forbidden"' in answer.text, path
    for path in ("/admin/audit?unit_id=d2", f"/admin/waitlist?service_id={other['id']}"):
        assert (await api.client.get(path)).status_code == 403, path
    after = {table: await count(api, f"SELECT count(*) FROM {table}") for table in before}
    assert after == before  # nothing changed, nothing audited
    name = (await raw(api, "SELECT name FROM units WHERE id = 'h2'"))[0][0]
    assert name == "单位 h2"
    capacity = (await raw(api, "SELECT daily_capacity FROM services WHERE id = :id", id=other["id"]))[0][0]
    assert capacity == 14


async def test_a_capacity_request_is_approved_by_the_superior_through_the_pages(api: Api) -> None:
    await unit(api, "d1", "district", "platform")
    await unit(api, "s1", "street_hall", "d1")
    service = await api.service("s1", daily_capacity=14)
    street = await make_admin(api, "s1-2", "s1", 2)
    district = await make_admin(api, "d1-1", "d1", 1)

    await login_as(api, "s1-2", street)
    early = await post(
        api,
        "/admin/capacity",
        {
            "service_id": str(service["id"]),
            "date_from": "2026-12-02",
            "daily_capacity": "21",
            "reason": "5+X",
        },
    )
    assert early.status_code == 422 and 'data-code="too_late_for_change"' in early.text
    assert "2026年12月3日" in early.text  # the earliest date, in words
    made = await post(
        api,
        "/admin/capacity",
        {
            "service_id": str(service["id"]),
            "date_from": DAY,
            "date_to": DAY,
            "daily_capacity": "21",
            "reason": "排队人数多，延时服务",
        },
    )
    assert made.status_code == 303 and made.headers["location"] == "/admin/capacity?done=requested"
    request_id = (await raw(api, "SELECT id FROM capacity_requests"))[0][0]
    mine = (await api.client.get("/admin/capacity")).text
    assert 'data-status="pending"' in row_of(mine, "request", request_id)
    assert f'action="/admin/capacity/{request_id}/approve"' not in mine  # never the requester (G20)
    refused = await post(api, f"/admin/capacity/{request_id}/approve", {"note": "自己批"})
    assert refused.status_code == 403 and 'data-code="forbidden"' in refused.text
    assert (await raw(api, "SELECT status FROM capacity_requests"))[0][0] == "pending"
    assert (await post(api, "/admin/logout")).status_code == 303

    await login_as(api, "d1-1", district)
    seen = (await api.client.get("/admin/capacity")).text
    assert f'action="/admin/capacity/{request_id}/approve"' in row_of(seen, "request", request_id)
    approved = await post(api, f"/admin/capacity/{request_id}/approve", {"note": "同意"})
    assert approved.status_code == 303 and approved.headers["location"] == "/admin/capacity?done=approved"
    status, decided_by, note = (await raw(api, "SELECT status, decided_by, note FROM capacity_requests"))[0]
    assert status == "approved" and note == "同意"
    assert sum(s["capacity"] for s in await api.slots(service["id"], DAY)) == 21  # 3 a slot
    again = await post(api, f"/admin/capacity/{request_id}/reject")
    assert again.status_code == 409 and 'data-code="already_decided"' in again.text
    actions = [r.action for r in await raw(api, "SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["capacity.request", "capacity.approve"]

    # a pending request past its due moment is highlighted, and its alert can be resolved here
    await post(
        api,
        "/admin/capacity",
        {
            "service_id": str(service["id"]),
            "date_from": "2026-12-07",
            "daily_capacity": "7",
            "reason": "减号",
        },
    )
    late_id = max(r.id for r in await raw(api, "SELECT id FROM capacity_requests"))
    await api.set_clock("2026-12-03T00:30:00+08:00")  # 24:00 of the next working day has passed
    page = (await api.client.get("/admin/capacity")).text
    assert 'data-overdue="1"' in row_of(page, "request", late_id) and "审批逾期" in page
    alerts = (await api.client.get("/admin/alerts")).text
    alert_id = (await raw(api, "SELECT id FROM alerts WHERE kind = 'approval_overdue'"))[0][0]
    assert 'data-kind="approval_overdue"' in row_of(alerts, "alert", alert_id)
    resolved = await post(api, f"/admin/alerts/{alert_id}/resolve", {"note": "已电话督办"})
    assert resolved.status_code == 303
    assert (await raw(api, "SELECT note FROM alerts WHERE id = :id", id=alert_id))[0][0] == "已电话督办"
    assert f'data-alert="{alert_id}"' not in (await api.client.get("/admin/alerts")).text  # open ones only


async def test_register_and_retire_an_admin(api: Api) -> None:
    await unit(api, "d1", "district", "platform")
    await unit(api, "h1", "district_hall", "d1")
    await unit(api, "d2", "district", "platform")
    await login_as(api, "d1-1", await make_admin(api, "d1-1", "d1", 1))
    form = {
        "name": "李大厅",
        "title": "区中心二级管理员",
        "phone": "13912345678",
        "unit_id": "h1",
        "level": "2",
        "username": "h1-li",
        "password": "hall-password-2026",
    }
    wrong_level = await post(api, "/admin/admins", {**form, "level": "1"})
    assert wrong_level.status_code == 422 and "2-2-3" in wrong_level.text
    assert (
        'value="h1-li"' in wrong_level.text and "hall-password-2026" not in wrong_level.text
    )  # kept, no password
    outside = await post(api, "/admin/admins", {**form, "unit_id": "d2"})
    assert outside.status_code == 403
    assert await count(api, "SELECT count(*) FROM admins WHERE username = 'h1-li'") == 0

    made = await post(api, "/admin/admins", form)
    assert made.status_code == 303 and made.headers["location"] == "/admin/admins?done=registered"
    page = (await api.client.get("/admin/admins?done=registered")).text
    assert "已登记管理员" in page and "h1-li" in page and "139****5678" in page
    new_id = (await raw(api, "SELECT id FROM admins WHERE username = 'h1-li'"))[0][0]
    assert 'data-active="yes"' in row_of(page, "admin", new_id)
    login = await api.client.post(
        "/api/v1/admin/login", json={"username": "h1-li", "password": form["password"]}
    )
    assert login.status_code == 200

    retired = await post(api, f"/admin/admins/{new_id}/retire", {"reason": "人员调整"})
    assert retired.status_code == 303
    assert 'data-active="no"' in row_of((await api.client.get("/admin/admins")).text, "admin", new_id)
    refused = await api.client.post(
        "/api/v1/admin/login", json={"username": "h1-li", "password": form["password"]}
    )
    assert refused.status_code == 401
    again = await post(api, f"/admin/admins/{new_id}/retire", {"reason": "再次"})
    assert again.status_code == 422 and 'data-code="already_retired"' in again.text
    entry = (await raw(api, "SELECT after FROM audit_log WHERE action = 'admin.retire'"))[0][0]
    after = json.loads(entry) if isinstance(entry, str) else entry
    assert after["reason"] == "人员调整" and after["active"] is False


async def test_ban_lookup_is_audited_and_bans_are_added_and_lifted(api: Api) -> None:
    await api.hall()
    number = resident_id(7)
    citizen = await api.login(number, name="王五")
    await login_as(api, "root", "platform-admin-2026")
    assert await count(api, "SELECT count(*) FROM audit_log WHERE action = 'citizen.lookup'") == 0

    found = await post(api, "/admin/bans", {"id_type": "resident_id", "id_number": number})
    assert found.status_code == 200 and "王五" in found.text and number in found.text  # unmasked: explicit
    assert 'data-no-shows="0"' in found.text
    assert await count(api, "SELECT count(*) FROM audit_log WHERE action = 'citizen.lookup'") == 1
    assert number not in str(found.url)  # the ID number never travels in a URL
    ref = re.search(r'data-citizen="([^"]+)"', found.text).group(1)

    added = await post(api, f"/admin/bans/{ref}/add", {"until": "2026-12-20", "reason": "恶意占号"})
    assert added.status_code == 303 and added.headers["location"] == "/admin/bans?done=ban_added"
    bans = (await api.client.get("/api/v1/me", headers=citizen)).json()["bans"]
    assert [b["until"] for b in bans] == ["2026-12-20"]
    past = await post(api, f"/admin/bans/{ref}/add", {"until": "2026-11-01", "reason": "x"})
    assert past.status_code == 422

    again = await post(api, "/admin/bans", {"id_type": "resident_id", "id_number": number})
    assert f'data-ban="{bans[0]["id"]}"' in again.text
    lifted = await post(api, f"/admin/bans/{ref}/{bans[0]['id']}/lift", {"reason": "核实后误判"})
    assert lifted.status_code == 303
    assert (await api.client.get("/api/v1/me", headers=citizen)).json()["bans"] == []
    actions = [r.action for r in await raw(api, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["unit.create", "citizen.lookup", "ban.add", "citizen.lookup", "ban.lift"]

    unknown = await post(api, "/admin/bans", {"id_type": "resident_id", "id_number": resident_id(8)})
    assert unknown.status_code == 404 and "没有找到这个证件" in unknown.text
    wrong_check = number[:-1] + ("1" if number[-1] != "1" else "2")
    invalid = await post(api, "/admin/bans", {"id_type": "resident_id", "id_number": wrong_check})
    assert invalid.status_code == 422 and 'data-code="invalid_id_number"' in invalid.text


async def test_audit_filters(api: Api) -> None:
    await unit(api, "d1", "district", "platform")
    await unit(api, "d2", "district", "platform")
    await api.policy("d1", None, horizon_days=7)
    await api.policy("d2", None, horizon_days=8)
    await login_as(api, "root", "platform-admin-2026")
    everything = (await api.client.get("/admin/audit")).text
    assert (
        everything.count('data-action="unit.create"') == 2
        and everything.count('data-action="policy.set"') == 2
    )
    d1 = (await api.client.get("/admin/audit?unit_id=d1&from=&to=")).text
    rows = re.findall(r"<tr data-audit=.*?</tr>", d1, re.S)
    assert len(rows) == 2 and all("单位 d1" in row and "单位 d2" not in row for row in rows)
    today = (await api.client.get("/admin/audit?unit_id=&from=2026-12-01&to=2026-12-01")).text
    assert today.count("data-audit=") == 4
    later = (await api.client.get("/admin/audit?from=2026-12-02")).text
    assert "data-audit=" not in later and "没有符合条件的记录" in later
    bad = await api.client.get("/admin/audit?from=12/01/2026")
    assert bad.status_code == 422 and 'data-code="validation_error"' in bad.text


async def test_waiting_list_page_and_api(api: Api) -> None:
    await api.hall()
    service = await api.service(daily_capacity=7)
    await fill_day(api, service["id"], DAY)
    waiting = [await api.login(resident_id(n, birth="19880101"), name="赵六") for n in (1, 2)]
    for headers in waiting:
        joined = await api.client.post(
            "/api/v1/waitlist",
            json={"service_id": service["id"], "dates": [DAY], "channel": "app"},
            headers=headers,
        )
        assert joined.status_code == 201, joined.text
    listed = await api.client.get(f"/api/v1/admin/waitlist?service_id={service['id']}", headers=api.admin())
    assert listed.status_code == 200
    body = listed.json()
    assert [(e["position"], e["citizen"]["name"], e["dates"]) for e in body] == [
        (1, "赵*", [DAY]),
        (2, "赵*", [DAY]),
    ]
    assert "*" in body[0]["citizen"]["id_number"]

    await login_as(api, "root", "platform-admin-2026")
    page = (await api.client.get("/admin/waitlist")).text
    assert ">2</td>" in row_of(page, "service", service["id"])
    one = (await api.client.get(f"/admin/waitlist?service_id={service['id']}")).text
    assert one.count("data-entry=") == 2 and "赵*" in one and resident_id(1, birth="19880101") not in one


async def test_forms_without_csrf_change_nothing(api: Api) -> None:
    await api.hall()
    await login_as(api, "root", "platform-admin-2026")
    before = await count(api, "SELECT count(*) FROM audit_log")
    for path, data in (
        ("/admin/units/hall-a/services", {"department": "税务", "name": "发票", "daily_capacity": "7"}),
        ("/admin/units/hall-a/policy", {"knob.horizon_days": "5"}),
        (
            "/admin/admins",
            {
                "username": "x-admin",
                "password": "x-password-2026",
                "name": "x",
                "title": "x",
                "phone": "13800000009",
                "unit_id": "hall-a",
                "level": "2",
            },
        ),
    ):
        missing = await api.client.post(path, data=data)
        assert missing.status_code == 403 and 'data-code="csrf_failed"' in missing.text, path
        forged = await api.client.post(path, data={**data, "csrf": "0" * 64})
        assert forged.status_code == 403, path
    assert await count(api, "SELECT count(*) FROM services") == 0
    assert await count(api, "SELECT count(*) FROM policies WHERE unit_id = 'hall-a'") == 0
    assert await count(api, "SELECT count(*) FROM admins WHERE username = 'x-admin'") == 0
    assert await count(api, "SELECT count(*) FROM audit_log") == before


async def test_pages_need_an_admin_session(api: Api) -> None:
    for path in (
        "/admin/units",
        "/admin/capacity",
        "/admin/waitlist",
        "/admin/alerts",
        "/admin/bans",
        "/admin/admins",
        "/admin/audit",
    ):
        answer = await api.client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/admin/login?next="), path
    await login_as(api, "root", "platform-admin-2026")
    for path in (
        "/admin/units",
        "/admin/units/platform",
        "/admin/capacity",
        "/admin/waitlist",
        "/admin/alerts?show=all",
        "/admin/bans",
        "/admin/admins",
        "/admin/audit",
    ):
        answer = await api.client.get(path)
        assert answer.status_code == 200 and 'lang="zh-CN"' in answer.text, path


async def test_platform_l2_oversees_without_forms(api: Api) -> None:
    """Rule G4: platform L2 oversees and proposes, never configures or approves."""
    await api.hall()
    service = await api.service()
    await login_as(api, "p2", await make_admin(api, "p2", "platform", 2))
    page = (await api.client.get("/admin/units/hall-a")).text
    assert "居民身份证申领" in page and 'data-knob="horizon_days"' in page
    assert (
        'action="/admin/units/hall-a/services"' not in page
        and 'action="/admin/units/hall-a/policy"' not in page
    )
    refused = await post(api, f"/admin/services/{service['id']}", {"daily_capacity": "1", "max_batch": "1"})
    assert refused.status_code == 403
    proposed = await post(
        api,
        "/admin/capacity",
        {"service_id": str(service["id"]), "date_from": DAY, "daily_capacity": "7", "reason": "建议"},
    )
    assert proposed.status_code == 303
    request_id = (await raw(api, "SELECT id FROM capacity_requests"))[0][0]
    listing = (await api.client.get("/admin/capacity")).text
    assert f'action="/admin/capacity/{request_id}/approve"' not in listing
    assert "新增事项" not in (await api.client.get("/admin/units/hall-a")).text
