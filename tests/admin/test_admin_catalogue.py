"""Administration through HTTP (docs/api.md "Administration": units, policy, services, calendar), with the
scope rules G3–G6 as docs/rules.md "Who approves" reads them. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD, Api, raw
from tests.ids import resident_id
from yuyue.admin.accounts import create_admin

DAY = "2026-12-03"  # Thursday, inside the city horizon seen from START (Tue 2026-12-01 10:00)
HALL_FIELDS = {
    "address": "广州市天河区测试路1号",
    "hotline": "020-12345",
    "mode": "appointment_priority",
    "hours": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
}
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def problem(response: httpx.Response, status: int, code: str) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/problem+json"), where
    body = response.json()
    assert PROBLEM_KEYS <= set(body) and body["code"] == code and body["status"] == status, (where, body)


async def add_unit(
    api: Api, unit_id: str, kind: str, parent: str, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {"id": unit_id, "name": f"单位 {unit_id}", "kind": kind, "parent_id": parent}
    if kind.endswith("_hall"):
        body.update(HALL_FIELDS)
    body.update(extra)
    return await api.client.post("/api/v1/admin/units", json=body, headers=headers or api.admin())


async def new_admin(api: Api, username: str, unit_id: str, level: int) -> dict[str, str]:
    """An admin made the way the CLI makes one, logged in over HTTP."""
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
    response = await api.client.post("/api/v1/admin/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    assert response.json()["admin"]["unit_id"] == unit_id and response.json()["admin"]["level"] == level
    return api.admin(response.json()["token"])


async def audit_of(api: Api, username: str) -> list[tuple[str, str]]:
    rows = await raw(
        api,
        "SELECT a.action, a.target FROM audit_log a JOIN admins m ON m.id = a.admin_id "
        "WHERE m.username = :u ORDER BY a.id",
        u=username,
    )
    return [(row.action, row.target) for row in rows]


async def count(api: Api, table: str) -> int:
    return int((await raw(api, f"SELECT count(*) FROM {table}"))[0][0])


async def day_of(api: Api, service_id: int, day: str) -> dict[str, Any]:
    response = await api.client.get(
        f"/api/v1/services/{service_id}/availability", params={"from": day, "to": day}
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["days"][0])


# --- login and tokens ------------------------------------------------------------------------------


async def test_admin_login_and_tokens(api: Api) -> None:
    for body in (
        {"username": "root", "password": "wrong-password-2026"},
        {"username": "nobody", "password": ADMIN_PASSWORD},
        {"username": "ROOT", "password": ADMIN_PASSWORD},
    ):
        problem(await api.client.post("/api/v1/admin/login", json=body), 401, "unauthenticated")
    ok = await api.client.post("/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD})
    assert ok.status_code == 200
    assert ok.json()["admin"]["username"] == "root" and ok.json()["admin"]["unit_id"] == "platform"
    assert "password" not in ok.text and ADMIN_PASSWORD not in ok.text

    await api.hall()
    citizen = await api.login(resident_id(1))
    routes: list[tuple[str, str, Any]] = [
        ("GET", "/api/v1/admin/units/platform", None),
        (
            "POST",
            "/api/v1/admin/units",
            {"id": "d1", "name": "区", "kind": "district", "parent_id": "platform"},
        ),
        ("PATCH", "/api/v1/admin/units/hall-a", {"name": "x"}),
        (
            "POST",
            "/api/v1/admin/services",
            {"hall_id": "hall-a", "department": "d", "name": "n", "daily_capacity": 7},
        ),
        ("PUT", "/api/v1/admin/units/hall-a/policy", {"preset": "tianhe", "overrides": {}}),
        ("PUT", "/api/v1/admin/calendar/2026-12-03", {"working_day": False, "note": "x"}),
        ("PUT", "/api/v1/admin/units/hall-a/closures/2026-12-04", {"note": "x"}),
        ("DELETE", "/api/v1/admin/units/hall-a/closures/2026-12-04", None),
    ]
    before = [
        await count(api, t)
        for t in ("units", "services", "policies", "calendar_days", "closures", "audit_log")
    ]
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {api.admin_token}"},
        {"Authorization": f"Bearer {api.admin_token}x"},
        citizen,  # a citizen token is not an admin token
    ):
        for method, path, body in routes:
            problem(
                await api.client.request(method, path, json=body, headers=headers), 401, "unauthenticated"
            )
    after = [
        await count(api, t)
        for t in ("units", "services", "policies", "calendar_days", "closures", "audit_log")
    ]
    assert after == before
    assert (await api.client.get("/api/v1/admin/units/platform", headers=api.admin())).status_code == 200


# --- the unit tree ---------------------------------------------------------------------------------


async def test_unit_tree_kinds_codes_and_listing(api: Api) -> None:
    allowed = [
        ("d_1", "district", "platform"),
        ("dx1", "district", "platform"),
        ("bureau", "city_department", "platform"),
        ("sub-bureau", "city_department", "bureau"),
        ("bureau-hall", "city_hall", "bureau"),
        ("city-hall", "city_hall", "platform"),
        ("d1-hall", "district_hall", "d_1"),
        ("street", "street_hall", "d_1"),
        ("village", "village_hall", "street"),
        ("dx1-street", "street_hall", "dx1"),
    ]
    for unit_id, kind, parent in allowed:
        response = await add_unit(api, unit_id, kind, parent)
        assert response.status_code == 201, (unit_id, response.text)
        assert response.json()["kind"] == kind and response.json()["parent_id"] == parent
    units = await count(api, "units")
    not_allowed = [
        ("village_hall", "d_1"),
        ("city_hall", "d_1"),
        ("district", "d_1"),
        ("city_department", "d_1"),
        ("street_hall", "platform"),
        ("district_hall", "platform"),
        ("village_hall", "platform"),
        ("district", "bureau"),
        ("street_hall", "bureau"),
        ("village_hall", "village"),
        ("village_hall", "d1-hall"),
        ("street_hall", "street"),
        ("district_hall", "city-hall"),
        ("city_hall", "bureau-hall"),
    ]
    for i, (kind, parent) in enumerate(not_allowed):
        problem(await add_unit(api, f"x{i}", kind, parent), 422, "validation_error")
    problem(await add_unit(api, "d_1", "district", "platform"), 409, "conflict")
    problem(await add_unit(api, "platform", "city_hall", "platform"), 409, "conflict")
    problem(await add_unit(api, "street", "district_hall", "dx1"), 409, "conflict")
    for field in HALL_FIELDS:
        problem(
            await add_unit(api, "no-" + field, "district_hall", "d_1", **{field: None}),
            422,
            "validation_error",
        )
    problem(await add_unit(api, "no-hours", "district_hall", "d_1", hours=[]), 422, "validation_error")
    assert await count(api, "units") == units

    # rule M12: hall codes are assigned in order; a given code must be free
    codes = {r.id: r.code for r in await raw(api, "SELECT id, code FROM units WHERE code IS NOT NULL")}
    assert codes == {
        "bureau-hall": "01",
        "city-hall": "02",
        "d1-hall": "03",
        "street": "04",
        "village": "05",
        "dx1-street": "06",
    }
    problem(await add_unit(api, "taken", "district_hall", "d_1", code="03"), 409, "conflict")
    given = await add_unit(api, "given", "district_hall", "d_1", code="42")
    assert given.status_code == 201 and given.json()["code"] == "42"
    assert (await add_unit(api, "next", "district_hall", "dx1")).json()["code"] == "07"

    tree = (await api.client.get("/api/v1/units")).json()

    def shape(node: dict[str, Any]) -> dict[str, Any]:
        assert set(node) == {"id", "name", "kind", "parent_id", "children"}
        return {child["id"]: shape(child) for child in node["children"]}

    assert [node["id"] for node in tree] == ["platform"] and tree[0]["parent_id"] is None
    assert shape(tree[0]) == {
        "bureau": {"bureau-hall": {}, "sub-bureau": {}},
        "city-hall": {},
        "d_1": {"d1-hall": {}, "given": {}, "street": {"village": {}}},
        "dx1": {"dx1-street": {}, "next": {}},
    }

    async def halls(under: str) -> dict[str, dict[str, Any]]:
        response = await api.client.get("/api/v1/halls", params={"under": under})
        assert response.status_code == 200, response.text
        return {hall["id"]: hall for hall in response.json()}

    # the subtree of d_1 is not the subtree of dx1, though "d_1" read as a LIKE pattern matches "dx1"
    assert set(await halls("d_1")) == {"d1-hall", "given", "street", "village"}
    assert set(await halls("dx1")) == {"dx1-street", "next"}
    assert set(await halls("street")) == {"street", "village"}
    assert set(await halls("bureau")) == {"bureau-hall"}
    everything = await halls("platform")
    assert len(everything) == 8
    assert everything["village"] == {
        "id": "village",
        "name": "单位 village",
        "kind": "village_hall",
        "code": "05",
        "address": HALL_FIELDS["address"],
        "hotline": HALL_FIELDS["hotline"],
        "mode": HALL_FIELDS["mode"],
    }
    created = await raw(api, "SELECT target FROM audit_log WHERE action = 'unit.create' ORDER BY id")
    assert [r.target for r in created] == [u for u, _, _ in allowed] + ["given", "next"]


# --- scope (rules G3–G6) ----------------------------------------------------------------------------


async def test_district_l1_configures_only_its_district(api: Api) -> None:
    for unit_id, kind, parent in (("d1", "district", "platform"), ("d2", "district", "platform")):
        assert (await add_unit(api, unit_id, kind, parent)).status_code == 201
    assert (await add_unit(api, "d2-hall", "district_hall", "d2")).status_code == 201
    other_service = await api.service("d2-hall")
    district = await new_admin(api, "d1-admin", "d1", 1)

    created = await add_unit(api, "s1", "street_hall", "d1", district)
    assert created.status_code == 201 and created.json()["code"] is not None
    patched = await api.client.patch(
        "/api/v1/admin/units/s1", json={"counters": 4, "mode": "appointment_first"}, headers=district
    )
    assert patched.status_code == 200 and patched.json()["counters"] == 4
    assert (await add_unit(api, "v1", "village_hall", "s1", district)).status_code == 201
    service = await api.client.post(
        "/api/v1/admin/services",
        json={"hall_id": "s1", "department": "民政", "name": "婚姻登记", "daily_capacity": 14},
        headers=district,
    )
    assert service.status_code == 201
    policy = await api.client.put(
        "/api/v1/admin/units/d1/policy", json={"preset": "tianhe", "overrides": {}}, headers=district
    )
    assert policy.status_code == 200
    closure = await api.client.put("/api/v1/admin/units/s1/closures/2026-12-04", json={}, headers=district)
    assert closure.status_code == 200
    assert (await api.client.get("/api/v1/admin/units/v1", headers=district)).status_code == 200

    tables = ("units", "services", "policies", "calendar_days", "closures", "audit_log")
    before = [await count(api, t) for t in tables]
    forbidden: list[tuple[str, str, Any]] = [
        (
            "POST",
            "/api/v1/admin/units",
            {"id": "s2", "name": "街", "kind": "street_hall", "parent_id": "d2", **HALL_FIELDS},
        ),
        (
            "POST",
            "/api/v1/admin/units",
            {"id": "d3", "name": "区", "kind": "district", "parent_id": "platform"},
        ),
        ("PATCH", "/api/v1/admin/units/d2-hall", {"name": "别人的大厅"}),
        ("PATCH", "/api/v1/admin/units/d2", {"name": "别人的区"}),
        ("PATCH", "/api/v1/admin/units/platform", {"name": "平台"}),
        ("GET", "/api/v1/admin/units/d2-hall", None),
        (
            "POST",
            "/api/v1/admin/services",
            {"hall_id": "d2-hall", "department": "d", "name": "n", "daily_capacity": 7},
        ),
        ("PATCH", f"/api/v1/admin/services/{other_service['id']}", {"daily_capacity": 1}),
        ("PUT", "/api/v1/admin/units/d2/policy", {"preset": "tianhe", "overrides": {}}),
        ("PUT", "/api/v1/admin/units/platform/policy", {"preset": "tianhe", "overrides": {}}),
        ("PUT", "/api/v1/admin/calendar/2026-12-03", {"working_day": False, "note": "x"}),
        ("PUT", "/api/v1/admin/units/d2-hall/closures/2026-12-04", {"note": "x"}),
    ]
    for method, path, body in forbidden:
        problem(await api.client.request(method, path, json=body, headers=district), 403, "forbidden")
    assert [await count(api, t) for t in tables] == before
    assert await audit_of(api, "d1-admin") == [
        ("unit.create", "s1"),
        ("unit.update", "s1"),
        ("unit.create", "v1"),
        ("service.create", str(service.json()["id"])),
        ("policy.set", "d1"),
        ("closure.set", "2026-12-04"),
    ]


async def test_platform_l2_street_l2_and_village_l3(api: Api) -> None:
    assert (await add_unit(api, "d1", "district", "platform")).status_code == 201
    for unit_id, kind, parent in (
        ("s1", "street_hall", "d1"),
        ("v1", "village_hall", "s1"),
        ("v2", "village_hall", "s1"),
    ):
        assert (await add_unit(api, unit_id, kind, parent)).status_code == 201
    service = await api.service("v1")
    overseer = await new_admin(api, "platform-l2", "platform", 2)
    street = await new_admin(api, "s1-l2", "s1", 2)
    village = await new_admin(api, "v1-l3", "v1", 3)

    # rule G4: platform L2 oversees and proposes; it never configures
    assert (await api.client.get("/api/v1/admin/units/v1", headers=overseer)).status_code == 200
    assert (
        await api.client.get(f"/api/v1/admin/services/{service['id']}", headers=overseer)
    ).status_code == 200
    for method, path, body in (
        (
            "POST",
            "/api/v1/admin/units",
            {"id": "d2", "name": "区", "kind": "district", "parent_id": "platform"},
        ),
        (
            "POST",
            "/api/v1/admin/units",
            {"id": "v3", "name": "村", "kind": "village_hall", "parent_id": "s1", **HALL_FIELDS},
        ),
        ("PATCH", "/api/v1/admin/units/v1", {"name": "x"}),
        (
            "POST",
            "/api/v1/admin/services",
            {"hall_id": "v1", "department": "d", "name": "n", "daily_capacity": 7},
        ),
        ("PATCH", f"/api/v1/admin/services/{service['id']}", {"daily_capacity": 1}),
        ("PUT", "/api/v1/admin/units/d1/policy", {"preset": "tianhe", "overrides": {}}),
        ("PUT", "/api/v1/admin/units/v1/closures/2026-12-04", {"note": "x"}),
        ("PUT", "/api/v1/admin/calendar/2026-12-03", {"working_day": False, "note": "x"}),
    ):
        problem(await api.client.request(method, path, json=body, headers=overseer), 403, "forbidden")
    assert await count(api, "calendar_days") == 0

    # rule G6: a street hall's L2 runs its hall and the village halls below
    assert (
        await api.client.patch("/api/v1/admin/units/s1", json={"counters": 3}, headers=street)
    ).status_code == 200
    assert (
        await api.client.patch("/api/v1/admin/units/v2", json={"counters": 2}, headers=street)
    ).status_code == 200
    problem(
        await api.client.patch("/api/v1/admin/units/d1", json={"name": "x"}, headers=street), 403, "forbidden"
    )

    # rule G6: a village L3 configures its own hall, and nothing else
    own = await api.client.patch("/api/v1/admin/units/v1", json={"hotline": "020-66666"}, headers=village)
    assert own.status_code == 200 and own.json()["hotline"] == "020-66666"
    changed = await api.client.patch(
        f"/api/v1/admin/services/{service['id']}", json={"max_batch": 2}, headers=village
    )
    assert changed.status_code == 200 and changed.json()["max_batch"] == 2
    assert (
        await api.client.put("/api/v1/admin/units/v1/closures/2026-12-04", json={}, headers=village)
    ).status_code == 200
    for method, path, body in (
        ("PATCH", "/api/v1/admin/units/v2", {"name": "x"}),
        ("PATCH", "/api/v1/admin/units/s1", {"name": "x"}),
        ("GET", "/api/v1/admin/units/s1", None),
        ("PUT", "/api/v1/admin/units/v2/closures/2026-12-04", {"note": "x"}),
        ("PUT", "/api/v1/admin/calendar/2026-12-03", {"working_day": False, "note": "x"}),
    ):
        problem(await api.client.request(method, path, json=body, headers=village), 403, "forbidden")

    assert await audit_of(api, "platform-l2") == []
    assert await audit_of(api, "s1-l2") == [("unit.update", "s1"), ("unit.update", "v2")]
    assert await audit_of(api, "v1-l3") == [
        ("unit.update", "v1"),
        ("service.update", str(service["id"])),
        ("closure.set", "2026-12-04"),
    ]


# --- policy ---------------------------------------------------------------------------------------


async def test_policy_inheritance_and_tianhe_horizon(api: Api) -> None:
    platform = (await api.client.get("/api/v1/units/platform/policy")).json()
    assert platform["unit_id"] == "platform" and platform["preset"] == "guangzhou-2021"
    assert {knob["from"] for knob in platform["knobs"].values()} == {"platform"}
    assert {
        name: platform["knobs"][name]["value"] for name in ("horizon_rule", "horizon_days", "release_time")
    } == {
        "horizon_rule": "working_days_from_release",
        "horizon_days": 10,
        "release_time": "18:00",
    }
    assert (await add_unit(api, "d1", "district", "platform")).status_code == 201
    assert (await add_unit(api, "h1", "district_hall", "d1")).status_code == 201
    fresh = (await api.client.get("/api/v1/units/h1/policy")).json()
    assert fresh["unit_id"] == "h1" and fresh["preset"] == "guangzhou-2021"
    assert fresh["knobs"] == platform["knobs"]

    district = await api.client.put(
        "/api/v1/admin/units/d1/policy", json={"preset": "tianhe", "overrides": {}}, headers=api.admin()
    )
    assert district.status_code == 200 and district.json()["preset"] == "tianhe"
    hall = (await api.client.get("/api/v1/units/h1/policy")).json()
    assert hall["preset"] == "tianhe"
    assert hall["knobs"]["horizon_rule"] == {"value": "calendar_days", "from": "d1"}
    assert hall["knobs"]["horizon_days"] == {"value": 14, "from": "d1"}
    assert hall["knobs"]["release_time"] == {"value": "12:00", "from": "d1"}
    assert hall["knobs"]["cancel_rule"] == {"value": "before_slot_start", "from": "d1"}
    assert hall["knobs"]["onsite_share_pct"] == {"value": 10, "from": "platform"}
    assert hall["knobs"]["penalty"] == {"value": "city", "from": "platform"}

    own = await api.policy("h1", None, onsite_share_pct=5)
    assert own["preset"] == "tianhe"  # the nearest unit up the tree that sets one
    assert own["knobs"]["onsite_share_pct"] == {"value": 5, "from": "h1"}
    assert {k: v for k, v in own["knobs"].items() if k != "onsite_share_pct"} == {
        k: v for k, v in hall["knobs"].items() if k != "onsite_share_pct"
    }
    assert (await api.client.get("/api/v1/units/d1/policy")).json()["knobs"]["onsite_share_pct"][
        "from"
    ] == "platform"

    rows = [
        tuple(r)
        for r in await raw(
            api, "SELECT unit_id, preset, CAST(overrides AS TEXT) FROM policies ORDER BY unit_id"
        )
    ]
    audits = await count(api, "audit_log")
    for body in (
        {"preset": "shenzhen", "overrides": {}},
        {"preset": None, "overrides": {"no_such_knob": 1}},
        {"preset": None, "overrides": {"horizon_days": "ten"}},
        {"preset": None, "overrides": {"release_time": "25:00"}},
        {"preset": "tianhe", "overrides": {"onsite_share_pct": 5, "cancel_rule": "never"}},
        {"preset": None, "overrides": {"onsite_share_pct": 11}},  # rule G10: at most 10 %
    ):
        response = await api.client.put("/api/v1/admin/units/h1/policy", json=body, headers=api.admin())
        problem(response, 422, "validation_error")
    assert [
        tuple(r)
        for r in await raw(
            api, "SELECT unit_id, preset, CAST(overrides AS TEXT) FROM policies ORDER BY unit_id"
        )
    ] == rows
    assert await count(api, "audit_log") == audits
    assert (await api.client.get("/api/v1/units/h1/policy")).json() == own
    targets = await raw(api, "SELECT target FROM audit_log WHERE action = 'policy.set' ORDER BY id")
    assert [r.target for r in targets] == ["d1", "h1"]

    # rule T6 (Tianhe): calendar days 1–13 open, day 14 from 12:00 today
    service = await api.service("h1")
    response = await api.client.get(f"/api/v1/services/{service['id']}/availability")
    days = response.json()["days"]
    assert [d["date"] for d in days] == [f"2026-12-{n:02d}" for n in range(2, 16)]
    assert [d["working_day"] for d in days if d["date"] in ("2026-12-05", "2026-12-06")] == [False, False]
    assert {s["status"] for s in days[-2]["slots"]} == {"open"}  # day 13, Monday 12-14
    assert {s["status"] for s in days[-1]["slots"]} == {"not_yet_open"}  # day 14, Tuesday 12-15
    await api.set_clock("2026-12-01T12:00:30+08:00")
    assert {s["status"] for s in (await day_of(api, service["id"], "2026-12-15"))["slots"]} == {"open"}


# --- services -------------------------------------------------------------------------------------


async def test_services_departments_bundles_and_capacity(api: Api) -> None:
    await api.hall()
    await api.hall("hall-b")
    one = await api.service(max_batch=3)
    assert (
        one["department"] == "公安户政"
        and one["business_types"] == ["换领", "补领"]
        and one["bundle_of"] is None
    )
    two = await api.service(name="户口迁移")
    assert await count(api, "departments") == 1  # created on first use, then reused
    three = await api.service(name="社会保障卡申领", department="人社", business_types=[])
    elsewhere = await api.service("hall-b")
    assert await count(api, "departments") == 3  # departments are per hall

    # rule G17: a bundle lists at least two services of the same hall
    body = {"hall_id": "hall-a", "department": "综合窗口", "name": "出生一件事", "daily_capacity": 14}
    for members in (
        [one["id"]],
        [one["id"], one["id"]],
        [one["id"], elsewhere["id"]],
        [one["id"], 999_999],
        [],
    ):
        response = await api.client.post(
            "/api/v1/admin/services", json={**body, "bundle_of": members}, headers=api.admin()
        )
        problem(response, 422, "validation_error")
    assert await count(api, "services") == 4 and await count(api, "departments") == 3
    bundle = await api.service(**body, bundle_of=[one["id"], two["id"]])
    assert bundle["bundle_of"] == [one["id"], two["id"]]
    nested = await api.client.post(
        "/api/v1/admin/services",
        json={**body, "name": "套娃", "bundle_of": [bundle["id"], three["id"]]},
        headers=api.admin(),
    )
    problem(nested, 422, "validation_error")

    listed = {s["id"]: s for s in (await api.client.get("/api/v1/halls/hall-a/services")).json()}
    assert set(listed) == {one["id"], two["id"], three["id"], bundle["id"]}
    assert all(
        {"id", "name", "department", "business_types", "max_batch", "walk_in_allowed", "bundle_of"} <= set(s)
        for s in listed.values()
    )
    assert listed[one["id"]]["department"] == "公安户政" and listed[one["id"]]["max_batch"] == 3
    assert listed[one["id"]]["business_types"] == ["换领", "补领"]
    assert listed[three["id"]]["department"] == "人社" and listed[three["id"]]["business_types"] == []
    assert listed[bundle["id"]]["bundle_of"] == [one["id"], two["id"]]
    moved = await api.client.patch(
        f"/api/v1/admin/services/{three['id']}", json={"department": "出入境"}, headers=api.admin()
    )
    assert moved.status_code == 200 and moved.json()["department"] == "出入境"
    assert await count(api, "departments") == 5  # 出入境 at hall-a, 综合窗口 for the bundle

    # rule G20: once a service exists its capacity changes only by capacity request: a PATCH that
    # names it is refused whole (the other fields it carries are not applied either)
    slots = await api.slots(one["id"], DAY)
    assert [s["capacity"] for s in slots] == [9] * 7  # 70 / 7 = 10, one held back for on site
    citizen = await api.login(resident_id(1))
    assert (await api.book(citizen, slots[0]["id"], quantity=3)).status_code == 201
    for body in ({"daily_capacity": 7}, {"daily_capacity": 70}, {"daily_capacity": 140, "max_batch": 1}):
        refused = await api.client.patch(
            f"/api/v1/admin/services/{one['id']}", json=body, headers=api.admin()
        )
        problem(refused, 422, "capacity_by_request")
    kept = await api.client.get(f"/api/v1/admin/services/{one['id']}", headers=api.admin())
    assert kept.json()["daily_capacity"] == 70 and kept.json()["max_batch"] == 3
    assert [s["capacity"] for s in await api.slots(one["id"], DAY)] == [9] * 7
    stored = await raw(api, "SELECT capacity, booked FROM slots WHERE id = :id", id=slots[0]["id"])
    assert (stored[0].capacity, stored[0].booked) == (10, 3)
    updates = await raw(api, "SELECT target FROM audit_log WHERE action = 'service.update' ORDER BY id")
    assert [r.target for r in updates] == [str(three["id"])]


async def test_a_bundle_member_cannot_become_a_bundle(api: Api) -> None:
    await api.hall()
    one, two, three = [await api.service(name=name) for name in ("甲", "乙", "丙")]
    await api.service(name="一件事", department="综合窗口", bundle_of=[one["id"], two["id"]])
    response = await api.client.patch(
        f"/api/v1/admin/services/{one['id']}",
        json={"bundle_of": [two["id"], three["id"]]},
        headers=api.admin(),
    )
    problem(response, 422, "validation_error")
    stored = await raw(api, "SELECT bundle_of FROM services WHERE id = :id", id=one["id"])
    assert stored[0].bundle_of is None


async def test_a_self_service_hall_takes_no_bookings(api: Api) -> None:
    await api.hall("kiosk", mode="self_service")
    service = await api.service("kiosk")
    citizen = await api.login(resident_id(2))
    response = await api.book(citizen, f"{service['id']}-202612030900")  # Thursday 09:00–10:00
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await count(api, "bookings") == 0


# --- calendar -------------------------------------------------------------------------------------


async def test_calendar_overrides_closures_and_2027(api: Api) -> None:
    await api.hall()
    await api.hall("hall-b")
    mine = await api.service()
    theirs = await api.service("hall-b")
    admin = api.admin()

    national = await api.client.put(
        "/api/v1/admin/calendar/2026-12-03", json={"working_day": False, "note": "test"}, headers=admin
    )
    assert national.status_code == 200
    assert national.json() == {"date": "2026-12-03", "working_day": False, "note": "test", "cancelled": 0}
    for service in (mine, theirs):
        day = await day_of(api, service["id"], "2026-12-03")
        assert day["working_day"] is False and day["slots"] == []
    swapped = await api.client.put(
        "/api/v1/admin/calendar/2026-12-05", json={"working_day": True, "note": "调休"}, headers=admin
    )
    assert swapped.status_code == 200
    saturday = await day_of(api, mine["id"], "2026-12-05")
    assert saturday["working_day"] is True and len(saturday["slots"]) == 7

    closed = await api.client.put(
        "/api/v1/admin/units/hall-a/closures/2026-12-04", json={"note": "装修"}, headers=admin
    )
    assert closed.status_code == 200
    day = await day_of(api, mine["id"], "2026-12-04")
    assert day["working_day"] is False and day["slots"] == []
    other = await day_of(api, theirs["id"], "2026-12-04")
    assert other["working_day"] is True and len(other["slots"]) == 7
    deleted = await api.client.delete("/api/v1/admin/units/hall-a/closures/2026-12-04", headers=admin)
    assert deleted.status_code == 204
    day = await day_of(api, mine["id"], "2026-12-04")
    assert day["working_day"] is True and len(day["slots"]) == 7

    # beyond chinese-calendar's data (2026): Monday–Friday work, never an error; overrides honoured
    url = f"/api/v1/services/{mine['id']}/availability"
    response = await api.client.get(url, params={"from": "2027-01-04", "to": "2027-01-10"})
    assert response.status_code == 200, response.text
    assert [d["working_day"] for d in response.json()["days"]] == [True] * 5 + [False] * 2
    assert [len(d["slots"]) for d in response.json()["days"]] == [7] * 5 + [0] * 2
    override = await api.client.put(
        "/api/v1/admin/calendar/2027-01-04", json={"working_day": False, "note": "元旦调休"}, headers=admin
    )
    assert override.status_code == 200
    response = await api.client.get(url, params={"from": "2027-01-04", "to": "2027-01-10"})
    assert [d["working_day"] for d in response.json()["days"]] == [False] + [True] * 4 + [False] * 2

    assert await count(api, "calendar_days") == 3 and await count(api, "closures") == 0
    actions = await raw(api, "SELECT action, target FROM audit_log ORDER BY id")
    assert [(r.action, r.target) for r in actions][-5:] == [
        ("calendar.set", "2026-12-03"),
        ("calendar.set", "2026-12-05"),
        ("closure.set", "2026-12-04"),
        ("closure.delete", "2026-12-04"),
        ("calendar.set", "2027-01-04"),
    ]


# --- test clock -----------------------------------------------------------------------------------


async def test_test_clock_runs_the_calendar_check_once(api: Api) -> None:
    url = "/api/v1/test/clock"
    assert (await api.client.get(url)).json()["now"].startswith("2026-12-01T10:0")
    moved = await api.set_clock("2026-12-01T11:00:00+08:00")
    assert moved["now"].startswith("2026-12-01T11:0")
    assert (await api.client.get(url)).json()["now"].startswith("2026-12-01T11:0")

    async def alerts() -> list[Any]:
        return await raw(
            api, "SELECT unit_id, dedup_key, raised_at FROM alerts WHERE kind = 'calendar_missing'"
        )

    async def checks() -> int:
        return len(await raw(api, "SELECT due_at FROM job_runs WHERE job = 'calendar_check'"))

    assert await alerts() == [] and await checks() == 0
    await api.set_clock("2026-12-02T02:00:00+08:00")  # over 01:00; the next 60 days reach 2027
    raised = await alerts()
    assert len(raised) == 1 and await checks() == 1
    assert raised[0].unit_id == "platform" and "2027" in raised[0].dedup_key
    assert str(raised[0].raised_at).startswith("2026-12-02 01:00")
    await api.set_clock("2026-12-03T02:00:00+08:00")
    assert len(await alerts()) == 1 and await checks() == 2
    back = await api.set_clock("2026-12-03T00:30:00+08:00")  # backwards: accepted, runs nothing
    assert back["now"].startswith("2026-12-03T00:3")
    assert (await api.client.get(url)).json()["now"].startswith("2026-12-03T00:3")
    await api.set_clock("2026-12-03T02:00:00+08:00")  # over 01:00 again: a due time never runs twice
    assert len(await alerts()) == 1 and await checks() == 2
