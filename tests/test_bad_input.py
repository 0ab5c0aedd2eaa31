"""docs/api.md "Conventions": every bad input gets a clear RFC 9457 error with a stable code and changes
nothing; never a 500, never a stack trace. Runs on SQLite and PostgreSQL.

Each refused request is checked for: its status, `application/problem+json`, the problem keys, a
snake_case `code`, no traceback, the security headers, and an unchanged database (row counts and
the contents of the catalogue, policy, calendar, booking and citizen tables, before and after).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import ADMIN_PASSWORD, Api, raw
from tests.ids import resident_id, uscc
from tests.onsite.conftest import book_at

DAY = "2026-12-03"  # Thursday, inside the city horizon seen from START (Tue 2026-12-01 10:00)
HUGE = "x" * 10_000
TOO_BIG = "y" * 70_000  # a body above the 64 KiB limit
JSON = {"Content-Type": "application/json"}
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

STATE = (
    "SELECT (SELECT count(*) FROM bookings), (SELECT count(*) FROM slots), "
    "(SELECT coalesce(sum(booked), 0) FROM slots), (SELECT count(*) FROM units), "
    "(SELECT count(*) FROM services), (SELECT count(*) FROM departments), "
    "(SELECT count(*) FROM policies), (SELECT count(*) FROM calendar_days), "
    "(SELECT count(*) FROM closures), (SELECT count(*) FROM citizens), "
    "(SELECT count(*) FROM admins), (SELECT count(*) FROM audit_log), "
    "(SELECT count(*) FROM idempotency_keys)",
    "SELECT number, status, slot_id, quantity FROM bookings ORDER BY number",
    "SELECT id, capacity, booked FROM slots ORDER BY id",
    "SELECT id, name, kind, parent_id, address, hotline, mode, CAST(hours AS TEXT), counters, code "
    "FROM units ORDER BY id",
    "SELECT id, hall_id, department_id, name, CAST(business_types AS TEXT), daily_capacity, max_batch, "
    "walk_in_allowed, CAST(bundle_of AS TEXT), active FROM services ORDER BY id",
    "SELECT unit_id, preset, CAST(overrides AS TEXT) FROM policies ORDER BY unit_id",
    "SELECT day, working_day, note FROM calendar_days ORDER BY day",
    "SELECT unit_id, day, note FROM closures ORDER BY unit_id, day",
    "SELECT id, name_enc, name_masked, phone_masked, id_masked FROM citizens ORDER BY id",
)


async def state(api: Api) -> list[list[Any]]:
    """Everything a refused request must leave alone (one connection, read only)."""
    async with api.app.state.engine.connect() as conn:
        return [[tuple(row) for row in await conn.execute(text(sql))] for sql in STATE]


def assert_secure(response: Any) -> None:
    where = f"{response.request.method} {response.request.url.path[:60]}"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    csp = response.headers.get("content-security-policy", "")
    directives = {part.split()[0]: part for part in (p.strip() for p in csp.split(";")) if part}
    script = directives.get("script-src") or directives.get("default-src")
    assert script is not None and "'unsafe-inline'" not in script, (where, csp)


def assert_problem(response: Any, status: int, code: str, label: str = "") -> dict[str, Any]:
    where = f"{response.request.method} {response.request.url.path[:60]} {label}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/problem+json"), where
    body = response.json()
    assert isinstance(body, dict) and PROBLEM_KEYS <= set(body), (where, body)
    assert body["status"] == status and body["code"] == code, (where, body)
    assert all(isinstance(body[key], str) for key in ("type", "title", "detail", "code")), where
    assert SNAKE.fullmatch(body["code"]), where
    assert "Traceback" not in response.text and 'File "' not in response.text, where
    assert HUGE not in response.text, f"{where}: the oversized value is echoed back"
    assert_secure(response)
    return dict(body)


async def counts(api: Api) -> tuple[Any, ...]:
    async with api.app.state.engine.connect() as conn:
        return tuple((await conn.execute(text(STATE[0]))).one())


async def refused(
    api: Api,
    method: str,
    url: str,
    status: int = 422,
    code: str = "validation_error",
    *,
    label: str = "",
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Send one bad request: a problem+json answer, and no row added or removed (the callers compare
    the full contents of the tables around each batch with `unchanged`)."""
    before = await counts(api)
    response = await api.client.request(method, url, headers=headers, **kwargs)
    body = assert_problem(response, status, code, label)
    assert await counts(api) == before, f"{method} {url} {label}: the database changed"
    return body


@contextlib.asynccontextmanager
async def unchanged(api: Api) -> AsyncIterator[None]:
    """The contents of every table the API writes are the same at the end of the block."""
    before = await state(api)
    yield
    assert await state(api) == before, "a refused request changed the database"


def body_cases(
    valid: dict[str, Any], wrong: dict[str, list[Any]], required: tuple[str, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """Every malformed variant of a valid body: shape, wrong values per field, missing fields."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("unknown field", {"json": {**valid, "unexpected": 1}}),
        ("JSON array", {"json": [valid]}),
        ("JSON string", {"json": "valid"}),
        ("JSON null", {"content": b"null", "headers": JSON}),
        ("not JSON", {"content": b'{"broken": ', "headers": JSON}),
        ("not JSON, no type", {"content": b"name=x&id=y"}),
        ("empty body", {"content": b"", "headers": JSON}),
    ]
    if valid:  # issue 19: a key named twice (parsers disagree on which wins) is refused, not "last wins"
        first = next(iter(valid))
        twice = f"{{{json.dumps(first)}: {json.dumps(valid[first])}, {json.dumps(valid)[1:]}"
        cases.append(("duplicate key", {"content": twice.encode(), "headers": JSON}))
    for field, values in wrong.items():
        for value in values:
            cases.append((f"{field}={str(value)[:30]!r}", {"json": {**valid, field: value}}))
    for field in required:
        cases.append((f"without {field}", {"json": {k: v for k, v in valid.items() if k != field}}))
    return cases


async def bad_bodies(
    api: Api,
    method: str,
    url: str,
    headers: dict[str, str] | list[dict[str, str]],
    valid: dict[str, Any],
    wrong: dict[str, list[Any]],
    required: tuple[str, ...] = (),
) -> None:
    """Send every malformed variant of `valid`; a list of headers is used in turn (several citizens
    keep a long run of booking requests under the per-citizen rate limit of 30 a minute)."""
    rotation = headers if isinstance(headers, list) else [headers]
    async with unchanged(api):
        for i, (label, kwargs) in enumerate(body_cases(valid, wrong, required)):
            extra = kwargs.pop("headers", {})
            who = rotation[i % len(rotation)]
            await refused(api, method, url, label=label, headers={**who, **extra}, **kwargs)
        await refused(
            api,
            method,
            url,
            413,
            "payload_too_large",
            label=">64 KiB",
            headers=rotation[0],
            json={**valid, "x": TOO_BIG},
        )


# --- citizens -------------------------------------------------------------------------------------


async def test_dev_login_rejects_bad_bodies_ids_and_phones(api: Api) -> None:
    url = "/api/v1/auth/dev/login"
    valid = {"name": "张三", "id_type": "resident_id", "id_number": resident_id(1), "phone": "13800138000"}
    await bad_bodies(
        api,
        "POST",
        url,
        {},
        valid,
        {
            "name": [123, None, "", HUGE, ["张三"], {"n": "张三"}],
            "id_type": [1, True, None, "driving_licence"],
            "id_number": [44010619800101001, None, "", HUGE, ["x"], {"n": 1}],
            "phone": [13800138000, True, None, HUGE],
        },
        required=("name", "id_number", "phone"),
    )
    # the valid body is accepted: the refusals above were about the one thing each changed
    ok = await api.client.post(url, json=valid)
    assert ok.status_code == 200 and ok.json()["citizen"]["id_number"] == resident_id(1)
    assert_secure(ok)
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 1

    # docs/api.md Citizens: a resident_id passes the GB 11643 check digit and carries a real birth date
    good = resident_id(3)
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    invalid = {
        "bad check digit": wrong_check,
        "impossible birth date 1999-02-30": resident_id(3, birth="19990230"),
        "impossible birth date 1980-13-01": resident_id(3, birth="19801301"),
        "born in the future": resident_id(3, birth="20261202"),
        "17 characters": good[:17],
        "19 characters": good + "1",
        "15-digit first generation": "440106800101001",
        "letters": "44010619800101ABCD",
    }
    for label, number in invalid.items():
        body = await refused(
            api,
            "POST",
            url,
            422,
            "invalid_id_number",
            label=label,
            json={"name": "张三", "id_type": "resident_id", "id_number": number, "phone": "13800138000"},
        )
        assert number not in str(body), f"{label}: the ID number is echoed"
    # a resident ID is the default id_type
    default = await refused(
        api,
        "POST",
        url,
        422,
        "invalid_id_number",
        json={"name": "张三", "id_number": wrong_check, "phone": "13800138000"},
    )
    assert default["code"] == "invalid_id_number"
    for phone in (
        "12345678901",
        "1380013800",
        "138001380000",
        "138-0013-8000",
        "+8613800138000",
        "1380013800a",
    ):
        await refused(
            api,
            "POST",
            url,
            label=phone,
            json={"name": "张三", "id_type": "resident_id", "id_number": good, "phone": phone},
        )
    await refused(
        api, "POST", url, label="blank name", json={"name": "   ", "id_number": good, "phone": "13800138000"}
    )
    # born today is a real birth date; other document types are accepted by their shape
    accepted = [
        ("resident_id", resident_id(4, birth="20261201")),
        ("passport", "E12345678"),
        ("hk_macao_permit", "H12345678"),
    ]
    for id_type, number in accepted:
        response = await api.client.post(
            url, json={"name": "Anna", "id_type": id_type, "id_number": number, "phone": "13912345678"}
        )
        assert response.status_code == 200, (id_type, response.text)
        assert response.json()["citizen"] == {
            "id_type": id_type,
            "id_number": number,
            "name": "Anna",
            "phone": "13912345678",
        }
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 1 + len(accepted)


async def test_booking_endpoints_reject_bad_input(api: Api) -> None:
    """POST /appointments, reschedule, rebook, cancel. Each flow has its own citizens: booking-changing
    requests are rate-limited per citizen (30 a minute), and a refusal must be for the bad input."""
    await api.hall()
    service = await api.service(max_batch=3)
    other_service = await api.service(name="社会保障卡申领", department="人社")
    movers, missers, bookers = await api.login(resident_id(1)), await api.login(resident_id(2)), []
    for n in (3, 4):
        bookers.append(await api.login(resident_id(n)))
    stranger = await api.login(resident_id(5))
    slots = await api.slots(service["id"], DAY)
    moving = (await api.book(movers, slots[0]["id"])).json()["number"]
    running = (await api.slots(service["id"], "2026-12-01"))[1]  # today 10:00–11:00, under way at START
    on_site = await book_at(api, 2, service["id"], running["start"][:16], channel="onsite")  # at the desk
    missed = on_site["booking"]["number"]

    # POST /appointments, by citizens who could book the valid body
    valid = {
        "slot_id": slots[1]["id"],
        "channel": "web",
        "quantity": 1,
        "business_types": ["换领"],
        "company": None,
    }
    await bad_bodies(
        api,
        "POST",
        "/api/v1/appointments",
        bookers,
        valid,
        {
            "slot_id": [123, None, "", HUGE, [slots[1]["id"]]],
            "channel": ["fax", 1, None, ["web"]],
            "quantity": ["1", True, 1.5, 0, 100, None, -1],
            "business_types": ["换领", [HUGE], [1], [""], {"a": 1}, ["x"] * 21],
            "company": [
                [],
                "广州某某有限公司",
                5,
                {"uscc": uscc(1)},
                {"uscc": uscc(1), "name": "x", "extra": 1},
            ],
        },
        required=("slot_id",),
    )
    async with unchanged(api):
        for unknown in (
            "999-202612030900",
            f"{service['id']}-202612030930",
            f"{service['id']}-202612050900",
            HUGE[:40],
        ):
            await refused(
                api,
                "POST",
                "/api/v1/appointments",
                404,
                "not_found",
                headers=stranger,
                json={**valid, "slot_id": unknown},
            )
        await refused(
            api,
            "POST",
            "/api/v1/appointments",
            label="Idempotency-Key too long",
            headers={**stranger, "Idempotency-Key": "k" * 201},
            json=valid,
        )
    created = await api.client.post("/api/v1/appointments", json=valid, headers=stranger)
    assert created.status_code == 201, created.text

    # reschedule
    url = f"/api/v1/appointments/{moving}/reschedule"
    await bad_bodies(
        api,
        "POST",
        url,
        movers,
        {"slot_id": slots[2]["id"]},
        {"slot_id": [5, None, "", HUGE, {"id": slots[2]["id"]}, True]},
        required=("slot_id",),
    )
    other_slot = (await api.slots(other_service["id"], DAY))[2]["id"]
    async with unchanged(api):
        await refused(
            api, "POST", url, label="slot of another service", headers=movers, json={"slot_id": other_slot}
        )
        await refused(api, "POST", url, 404, "not_found", headers=movers, json={"slot_id": "nonsense"})
    moved = await api.client.post(url, json={"slot_id": slots[1]["id"]}, headers=movers)
    assert moved.status_code == 200 and moved.json()["slot_id"] == slots[1]["id"], moved.text

    # unknown numbers (or someone else's) on every booking action
    async with unchanged(api):
        for bad_number in ("I992026120300001", "nonsense", HUGE, moving):
            for action, body in (
                ("cancel", None),
                ("reschedule", {"slot_id": slots[3]["id"]}),
                ("rebook", {"slot_id": slots[3]["id"], "reason": "住院"}),
            ):
                await refused(
                    api,
                    "POST",
                    f"/api/v1/appointments/{bad_number}/{action}",
                    404,
                    "not_found",
                    headers=stranger,
                    json=body,
                )
        await refused(api, "POST", f"/api/v1/appointments/{moving}/cancel", 401, "unauthenticated")

    # rebook: the booking of the slot under way is rebookable (from its start), so only the input is wrong
    target = slots[4]["id"]
    url = f"/api/v1/appointments/{missed}/rebook"
    await bad_bodies(
        api,
        "POST",
        url,
        missers,
        {"slot_id": target, "reason": "住院"},
        {"slot_id": [5, None, "", HUGE], "reason": [None, "", 5, HUGE, ["住院"]]},
        required=("slot_id", "reason"),
    )
    # a rebook whose new slot does not exist is refused as a whole: the miss is not excused
    async with unchanged(api):
        await refused(
            api,
            "POST",
            url,
            404,
            "not_found",
            headers=missers,
            json={"slot_id": f"{service['id']}-202612040930", "reason": "x"},
        )
    rebooked = await api.client.post(url, json={"slot_id": target, "reason": "住院"}, headers=missers)
    assert rebooked.status_code == 201 and rebooked.json()["rebook_of"] == missed, rebooked.text


async def test_cancel_refuses_a_body_with_unknown_fields(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(5))
    number = (await api.book(citizen, (await api.slots(service["id"], DAY))[0]["id"])).json()["number"]
    url = f"/api/v1/appointments/{number}/cancel"
    await refused(api, "POST", url, headers=citizen, json={"unexpected": 1})
    await refused(api, "POST", url, headers=citizen, json=["cancel"])
    await refused(api, "POST", url, headers={**citizen, **JSON}, content=b'{"broken": ')
    cancelled = await api.client.post(url, headers=citizen)  # no body: the ordinary cancel
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


# --- administration --------------------------------------------------------------------------------


async def test_admin_login_and_units_reject_bad_input(api: Api) -> None:
    await bad_bodies(
        api,
        "POST",
        "/api/v1/admin/login",
        {},
        {"username": "root", "password": ADMIN_PASSWORD},
        {"username": [1, None, "", HUGE, ["root"]], "password": [123, True, None, HUGE, {"p": 1}]},
        required=("username", "password"),
    )
    ok = await api.client.post("/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD})
    assert ok.status_code == 200

    admin = api.admin()
    period = {"start": "09:00", "end": "12:00"}
    valid = {
        "id": "hall-x",
        "name": "测试大厅",
        "kind": "city_hall",
        "parent_id": "platform",
        "address": "广州市天河区测试路1号",
        "hotline": "020-12345",
        "mode": "appointment_first",
        "hours": [period, {"start": "13:00", "end": "17:00"}],
        "counters": 2,
        "code": None,
    }
    await bad_bodies(
        api,
        "POST",
        "/api/v1/admin/units",
        admin,
        valid,
        {
            "id": ["Hall X", "a/b", "", "-x", 5, None, HUGE, "platform/x"],
            "name": [5, None, "", HUGE],
            "kind": ["platform", "town_hall", None, 1],
            "parent_id": [None, 5, HUGE, ["platform"]],
            "address": [HUGE, 5, None, ""],
            "hotline": ["call me", 12345, HUGE, None],
            "mode": ["walk_in", None, 1],
            "hours": [
                period,
                [["09:00", "12:00"]],
                [],
                None,
                [{"start": "25:00", "end": "26:00"}],
                [{"start": "12:00", "end": "09:00"}],
                [period, {"start": "11:00", "end": "13:00"}],
                [{"start": "9:00", "end": "12:00"}],
                [{"start": 900, "end": 1200}],
                [{**period, "x": 1}],
                [{"start": "09:00"}],
                [period] * 9,
            ],
            "counters": ["2", True, -1, 501, 2.5],
            "code": ["1", "abcde", 1, "0a"],
        },
        required=("id", "name", "kind", "parent_id", "address", "hotline", "mode", "hours"),
    )
    await refused(
        api,
        "POST",
        "/api/v1/admin/units",
        404,
        "not_found",
        headers=admin,
        json={**valid, "parent_id": "nope"},
    )
    created = await api.client.post("/api/v1/admin/units", json=valid, headers=admin)
    assert created.status_code == 201, created.text
    await refused(
        api,
        "POST",
        "/api/v1/admin/units",
        label="under a city hall",
        headers=admin,
        json={**valid, "id": "y", "parent_id": "hall-x"},
    )

    await bad_bodies(
        api,
        "PATCH",
        "/api/v1/admin/units/hall-x",
        admin,
        {"name": "新名字"},
        {
            "name": [None, 5, "", HUGE],
            "counters": ["3", None, True, -1],
            "hours": [[], None, period, [{"start": "18:00", "end": "08:00"}]],
            "mode": ["x", None],
            "hotline": ["abc", None],
            "address": [None, HUGE],
            "kind": ["district"],
            "id": ["other"],
            "parent_id": ["platform"],
            "code": ["09"],
        },
    )
    await refused(
        api, "PATCH", "/api/v1/admin/units/nope", 404, "not_found", headers=admin, json={"name": "x"}
    )
    await refused(
        api,
        "PATCH",
        "/api/v1/admin/units/platform",
        label="hall field on the platform",
        headers=admin,
        json={"address": "x"},
    )
    patched = await api.client.patch("/api/v1/admin/units/hall-x", json={"name": "新名字"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["name"] == "新名字"


async def test_services_policy_calendar_and_closures_reject_bad_input(api: Api) -> None:
    admin = api.admin()
    await api.hall()
    await api.hall("hall-b")
    one = await api.service()
    two = await api.service(name="户口迁移")
    elsewhere = await api.service("hall-b")
    valid = {
        "hall_id": "hall-a",
        "department": "公安户政",
        "name": "新事项",
        "business_types": ["换领"],
        "daily_capacity": 70,
        "max_batch": 1,
        "walk_in_allowed": True,
        "bundle_of": None,
    }
    await bad_bodies(
        api,
        "POST",
        "/api/v1/admin/services",
        admin,
        valid,
        {
            "hall_id": [None, 5, "platform", HUGE],
            "department": [None, 5, "", HUGE],
            "name": [None, 5, "", HUGE, ["x"]],
            "business_types": ["换领", [HUGE], [1], None, ["x"] * 21],
            "daily_capacity": ["70", True, -1, 100_001, 7.5, None],
            "max_batch": [0, 100, "1", True, None],
            "walk_in_allowed": ["yes", 1, None],
            "bundle_of": [
                "1,2",
                [True, False],
                [one["id"]],
                [one["id"], one["id"]],
                [one["id"], 999_999],
                [one["id"], elsewhere["id"]],
                [str(one["id"]), str(two["id"])],
                {"a": 1},
            ],
        },
        required=("hall_id", "department", "name", "daily_capacity"),
    )
    await refused(
        api,
        "POST",
        "/api/v1/admin/services",
        404,
        "not_found",
        headers=admin,
        json={**valid, "hall_id": "nope"},
    )
    created = await api.client.post("/api/v1/admin/services", json=valid, headers=admin)
    assert created.status_code == 201, created.text

    url = f"/api/v1/admin/services/{one['id']}"
    await bad_bodies(
        api,
        "PATCH",
        url,
        admin,
        {"max_batch": 2},
        {
            "daily_capacity": [None, "7", True, -1, 100_001],
            "name": [None, 5, "", HUGE],
            "department": [None, HUGE],
            "max_batch": [0, None, "2"],
            "walk_in_allowed": [None, "no"],
            "active": [None, "no", 0],
            "bundle_of": [[one["id"], two["id"]], [two["id"]], "x"],
            "hall_id": ["hall-b"],
        },
    )
    for bad in ("abc", "1.5", "1e3", HUGE[:200]):
        await refused(
            api, "PATCH", f"/api/v1/admin/services/{bad}", headers=admin, json={"daily_capacity": 7}
        )
    await refused(
        api, "PATCH", "/api/v1/admin/services/999999", 404, "not_found", headers=admin, json={"name": "x"}
    )
    async with unchanged(api):  # rule G20: a well-formed capacity is refused too, by request only
        body = {"daily_capacity": 35}
        await refused(api, "PATCH", url, 422, "capacity_by_request", headers=admin, json=body)
    patched = await api.client.patch(url, json={"max_batch": 2}, headers=admin)
    assert patched.status_code == 200 and patched.json()["max_batch"] == 2

    # policy, national calendar, hall closures
    url = "/api/v1/admin/units/hall-a/policy"
    await bad_bodies(
        api,
        "PUT",
        url,
        admin,
        {"preset": "tianhe", "overrides": {}},
        {
            "preset": [5, "shenzhen", "", HUGE, ["tianhe"], True],
            "overrides": [
                [],
                None,
                "horizon_days=5",
                {"no_such_knob": 1},
                {"horizon_days": "ten"},
                {"horizon_days": True},
                {"horizon_days": 10.5},
                {"horizon_days": 0},
                {"horizon_days": 61},
                {"horizon_days": None},
                {"release_time": "25:00"},
                {"release_time": "9:00"},
                {"release_time": 1800},
                {"horizon_rule": "weeks"},
                {"onsite_share_pct": 101},
                {"penalty": "death"},
                {"cancel_time": HUGE},
                {"k" * 41: 1},
                {f"k{i}": i for i in range(41)},
            ],
        },
    )
    await refused(
        api, "PUT", "/api/v1/admin/units/nope/policy", 404, "not_found", headers=admin, json={"preset": None}
    )
    assert (
        await api.client.put(url, json={"preset": "tianhe", "overrides": {}}, headers=admin)
    ).status_code == 200

    url = "/api/v1/admin/calendar/2026-12-03"
    await bad_bodies(
        api,
        "PUT",
        url,
        admin,
        {"working_day": False, "note": "test"},
        {"working_day": ["false", 0, 1, None, [False]], "note": [5, None, HUGE, ["x"]]},
        required=("working_day",),
    )
    for bad_date in ("2026-13-01", "yesterday", "2026-02-30", "2026-12-3x", HUGE[:100]):
        await refused(
            api, "PUT", f"/api/v1/admin/calendar/{bad_date}", headers=admin, json={"working_day": False}
        )
    assert (
        await api.client.put(url, json={"working_day": False, "note": "test"}, headers=admin)
    ).status_code == 200

    url = "/api/v1/admin/units/hall-a/closures/2026-12-04"
    await bad_bodies(api, "PUT", url, admin, {"note": "装修"}, {"note": [5, None, HUGE, ["x"], True]})
    for bad_date in ("2026-13-01", "yesterday", "2026-02-30"):
        for method in ("PUT", "DELETE"):
            await refused(
                api,
                method,
                f"/api/v1/admin/units/hall-a/closures/{bad_date}",
                headers=admin,
                json={"note": ""},
            )
    await refused(
        api, "PUT", "/api/v1/admin/units/nope/closures/2026-12-04", 404, "not_found", headers=admin, json={}
    )
    await refused(
        api, "DELETE", "/api/v1/admin/units/nope/closures/2026-12-04", 404, "not_found", headers=admin
    )
    await refused(
        api,
        "PUT",
        "/api/v1/admin/units/platform/closures/2026-12-04",
        label="not a hall",
        headers=admin,
        json={},
    )
    assert (await api.client.put(url, json={"note": "装修"}, headers=admin)).status_code == 200


# --- query and path parameters ---------------------------------------------------------------------


async def test_query_path_params_routes_and_headers(api: Api) -> None:
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(6))
    url = f"/api/v1/services/{service['id']}/availability"
    for params in (
        {"from": "2026-13-01"},
        {"from": "yesterday"},
        {"to": "2026-02-30"},
        {"from": "2026-12-03", "to": "tomorrow"},
        {"from": "2026-12-10", "to": "2026-12-05"},  # from > to
        {"from": "2026-12-02", "to": "2027-03-04"},  # 93 days
        {"from": HUGE[:200]},
    ):
        assert_problem(await api.client.get(url, params=params), 422, "validation_error", str(params)[:60])
    widest = await api.client.get(url, params={"from": "2026-12-02", "to": "2027-03-03"})
    assert widest.status_code == 200 and len(widest.json()["days"]) == 92
    for bad in ("abc", "1.5", "1e3", "%20"):
        assert_problem(
            await api.client.get(f"/api/v1/services/{bad}/availability"), 422, "validation_error", bad
        )
    for path in (
        "/api/v1/services/999999/availability",
        "/api/v1/halls?under=nope",
        "/api/v1/halls/nope/services",
        "/api/v1/halls/platform/services",  # not a hall
        "/api/v1/units/nope/policy",
    ):
        assert_problem(await api.client.get(path), 404, "not_found", path)
    assert_problem(await api.client.get("/api/v1/halls", params={"under": HUGE}), 422, "validation_error")
    assert_problem(
        await api.client.get("/api/v1/appointments/I992026120300001", headers=citizen), 404, "not_found"
    )
    number = (await api.book(citizen, (await api.slots(service["id"], DAY))[0]["id"])).json()["number"]
    assert_problem(
        await api.client.get(f"/api/v1/appointments/{number}/receipt?format=docx", headers=citizen),
        422,
        "validation_error",
    )
    admin = api.admin()
    assert_problem(await api.client.get("/api/v1/admin/units/nope", headers=admin), 404, "not_found")
    assert_problem(await api.client.get("/api/v1/admin/services/999999", headers=admin), 404, "not_found")
    assert_problem(await api.client.get("/api/v1/admin/services/abc", headers=admin), 422, "validation_error")

    # the test clock (non-production) is strict too
    async with unchanged(api):
        for bad_clock in (
            {"now": "yesterday"},
            {"now": None},
            {},
            {"now": "2026-12-01T10:00:00+08:00", "x": 1},
            [],
        ):
            await refused(api, "PUT", "/api/v1/test/clock", json=bad_clock, label=str(bad_clock))
    assert (await api.client.get("/api/v1/test/clock")).json()["now"].startswith("2026-12-01T10:0")

    # every answer carries the security headers; unknown routes and wrong methods are problems too
    successes = [
        await api.client.get("/api/v1/units"),
        await api.client.get("/healthz"),
        await api.client.get("/"),
        await api.client.get("/openapi.json"),
        await api.client.post(
            "/api/v1/admin/units",
            headers=admin,
            json={"id": "d1", "name": "天河区", "kind": "district", "parent_id": "platform"},
        ),
        await api.client.put("/api/v1/admin/units/hall-a/closures/2026-12-04", headers=admin, json={}),
        await api.client.delete("/api/v1/admin/units/hall-a/closures/2026-12-04", headers=admin),
    ]
    assert [r.status_code for r in successes] == [200, 200, 200, 200, 201, 200, 204]
    for response in successes:
        assert_secure(response)
    for path in ("/api/v1/nope", "/nope", "/api/v1/units/platform/nope"):
        assert_problem(await api.client.get(path), 404, "not_found", path)
    for method, path in (
        ("DELETE", "/api/v1/units"),
        ("GET", "/api/v1/admin/login"),
        ("PUT", "/api/v1/appointments"),
        ("POST", "/api/v1/halls"),
    ):
        before = await state(api)
        response = await api.client.request(method, path, headers=admin)
        assert_problem(response, 405, "method_not_allowed", path)
        assert "allow" in response.headers, path
        assert await state(api) == before
    assert_problem(await api.client.get("/api/v1/appointments"), 401, "unauthenticated")
    assert_problem(
        await api.client.post("/api/v1/admin/units", headers=admin, json={"x": TOO_BIG}),
        413,
        "payload_too_large",
    )


async def test_ids_beyond_the_integer_range(api: Api) -> None:
    await api.hall()
    service = await api.service()
    admin = api.admin()
    for big in (2**31, 2**63, 10**20):
        assert_problem(
            await api.client.get(f"/api/v1/services/{big}/availability"), 404, "not_found", str(big)
        )
        assert_problem(await api.client.get(f"/api/v1/admin/services/{big}", headers=admin), 404, "not_found")
        await refused(
            api, "PATCH", f"/api/v1/admin/services/{big}", 404, "not_found", headers=admin, json={"name": "x"}
        )
        await refused(
            api,
            "POST",
            "/api/v1/admin/services",
            headers=admin,
            json={
                "hall_id": "hall-a",
                "department": "公安户政",
                "name": "一件事",
                "daily_capacity": 7,
                "bundle_of": [service["id"], big],
            },
        )


async def test_availability_at_the_ends_of_the_calendar(api: Api) -> None:
    await api.hall()
    service = await api.service()
    url = f"/api/v1/services/{service['id']}/availability"
    for params in ({"from": "0001-01-01", "to": "0001-01-05"}, {"from": "9999-12-30", "to": "9999-12-31"}):
        response = await api.client.get(url, params=params)
        assert response.status_code in (200, 422), (params, response.status_code)
        if response.status_code == 422:
            assert_problem(response, 422, "validation_error")


async def test_test_clock_refuses_what_is_not_a_sane_time(api: Api) -> None:
    await refused(api, "PUT", "/api/v1/test/clock", json={"now": 5})
    for moment in ("0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00+08:00"):
        response = await api.client.put("/api/v1/test/clock", json={"now": moment})
        assert response.status_code in (200, 422), (moment, response.status_code)
        if response.status_code == 422:
            assert_problem(response, 422, "validation_error")
            now = (await api.client.get("/api/v1/test/clock")).json()["now"]
            assert now.startswith("2026-12-01"), now


async def test_a_tree_deeper_than_the_path_column(api: Api) -> None:
    parent = "platform"
    for depth in range(30):  # units.path of the 30th: 9 + 30 × 65 = 1959 characters
        unit_id = f"{depth:02d}" + "a" * 62
        body = {"id": unit_id, "name": "局", "kind": "city_department", "parent_id": parent}
        assert (
            await api.client.post("/api/v1/admin/units", json=body, headers=api.admin())
        ).status_code == 201
        parent = unit_id
    body = {"id": "30" + "a" * 62, "name": "局", "kind": "city_department", "parent_id": parent}
    await refused(api, "POST", "/api/v1/admin/units", headers=api.admin(), json=body)


async def test_an_unexpected_error_is_a_problem_with_the_security_headers(api: Api) -> None:
    async def boom() -> None:
        raise RuntimeError("secret internals")

    api.app.add_api_route("/api/v1/boom-for-test", boom)  # this test's app instance only
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/api/v1/boom-for-test")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "internal_error" and "secret internals" not in response.text
    assert_secure(response)


async def test_chunked_body_over_the_limit(api: Api) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"z" * 8192

    await refused(
        api,
        "POST",
        "/api/v1/admin/units",
        413,
        "payload_too_large",
        headers={**api.admin(), **JSON},
        content=chunks(),
    )


async def test_duplicate_json_keys_are_refused_everywhere(api: Api) -> None:
    """Issue 19: a JSON body naming a key twice, at any depth and whatever the route, is `422
    validation_error` naming the key, before any route runs (one check in the edge middleware); a
    form post is not JSON and is left to its route."""
    await api.hall()
    async with unchanged(api):
        body = await refused(
            api,
            "POST",
            "/api/v1/auth/dev/login",
            content=b'{"name": "A", "id_type": "passport", "id_number": "E1", "id_number": "E2", '
            b'"phone": "13800138000"}',
            headers=JSON,
        )
        assert "'id_number'" in body["detail"]
        nested = b'{"name": "H", "kind": "district_hall", "hours": [{"start": "09:00", "start": "10:00"}]}'
        await refused(api, "POST", "/api/v1/admin/units", content=nested, headers={**api.admin(), **JSON})
        await refused(
            api,
            "POST",
            "/api/v1/admin/login",
            content=b'{"username": "admin", "password": "x", "password": "y"}',
            headers={"Content-Type": "application/merge-patch+json"},
        )
        await refused(
            api,
            "POST",
            "/api/v1/admin/login",
            content=b'{"username": "a", "username": "admin"}',  # no Content-Type: read as JSON too
        )
    ok = await api.client.post(
        "/api/v1/auth/dev/login",
        content=b'{"name": "A", "id_type": "passport", "id_number": "E1", "phone": "13800138000", "x": {}}',
        headers=JSON,
    )
    assert ok.status_code == 422 and "'id_number'" not in ok.json()["detail"]  # an ordinary refusal
