"""Bureaus' own booking systems (issue 6 item 7, rules G5, G6, G18; decision 0080): an API client
bound to a district pushes its slots and bookings and pulls the platform's, with signed requests,
inside its unit's subtree only; the figures of the district cover both."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.admin.support import new_admin, problem, unit
from tests.channels.conftest import Partner, register
from tests.conftest import Api, raw
from tests.ids import resident_id
from yuyue.stats.service import fill_by_hour, roll_up

DAY = "2026-12-03"  # a Thursday; the clock stands at Tuesday 2026-12-01 10:00
CLIENT = "tianhe-sys"


async def _world(api: Api) -> dict[str, Any]:
    """Two districts, a hall in each with a service, and Tianhe's own booking system."""
    await unit(api, "tianhe", "district", "platform")
    await unit(api, "yuexiu", "district", "platform")
    await api.hall("th-hall", parent="tianhe", kind="district_hall")
    await api.hall("yx-hall", parent="yuexiu", kind="district_hall")
    th = (await api.service("th-hall", daily_capacity=7))["id"]
    yx = (await api.service("yx-hall", daily_capacity=7))["id"]
    system = await register(
        api, CLIENT, "bureau", name="天河区自建预约系统", scopes=["bureau:sync"], unit_id="tianhe"
    )
    return {"th": th, "yx": yx, "system": system}


def slot(ext: str, service_id: int, hall_id: str = "th-hall", **extra: Any) -> dict[str, Any]:
    return {
        "external_id": ext,
        "hall_id": hall_id,
        "service_id": service_id,
        "day": DAY,
        "start": "09:00",
        "end": "10:00",
        "capacity": 5,
        "booked": 3,
        **extra,
    }


def booking(ext: str, slot_ext: str, status: str = "booked", **extra: Any) -> dict[str, Any]:
    return {
        "external_id": ext,
        "slot_external_id": slot_ext,
        "status": status,
        "channel": "天河区政务服务网",
        "created_at": "2026-11-28T10:00:00+08:00",
        "updated_at": "2026-11-30T09:00:00+08:00",
        **extra,
    }


async def push(system: Partner, kind: str, rows: list[dict[str, Any]]) -> httpx.Response:
    return await system.call("PUT", f"/api/v1/channel/bureau/{kind}", {kind: rows})


async def pull(system: Partner, kind: str, **params: Any) -> httpx.Response:
    path = f"/api/v1/channel/bureau/platform/{kind}"
    query = urlencode(params)
    headers = system.headers("GET", path, b"", query=query)
    return await system.api.client.get(f"{path}?{query}", headers=headers)


async def _pushed(api: Api, w: dict[str, Any]) -> None:
    """Two slots (10 seats, 4 sold) and five bookings of the Tianhe system, one platform booking."""
    slots = [slot("S1", w["th"]), slot("S2", w["th"], start="10:00", end="11:00", booked=1)]
    answer = await push(w["system"], "slots", slots)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 2, "created": 2, "updated": 0, "unchanged": 0, "stale": 0}
    rows = [
        booking("B1", "S1"),
        booking("B2", "S1", "cancelled"),
        booking("B3", "S1", "served"),
        booking("B4", "S1", "no_show"),
        booking("B5", "S2", "checked_in"),
    ]
    answer = await push(w["system"], "bookings", rows)
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] == 5
    citizen = await api.login(resident_id(1, birth="19850101"))
    first = (await api.slots(w["th"], DAY))[0]["id"]
    assert (await api.book(citizen, first)).status_code == 201


async def _stats(api: Api, headers: dict[str, str], group_by: str) -> dict[str, dict[str, Any]]:
    response = await api.client.get(
        "/api/v1/admin/stats", params={"from": DAY, "to": DAY, "group_by": group_by}, headers=headers
    )
    assert response.status_code == 200, response.text
    return {row["key"]: row for row in response.json()}


async def test_registration_is_a_platform_action_bound_to_a_unit_and_audited(api: Api) -> None:
    w = await _world(api)
    listed = await api.client.get("/api/v1/admin/api-clients", headers=api.admin())
    view = next(c for c in listed.json() if c["id"] == CLIENT)
    assert view["unit_id"] == "tianhe" and view["channel"] == "bureau" and view["scopes"] == ["bureau:sync"]
    district = await new_admin(api, "th1", "tianhe", 1)
    audit = await api.client.get("/api/v1/admin/audit", headers=district)
    assert [a["target"] for a in audit.json() if a["action"] == "api_client.create"] == [CLIENT]
    body = {"id": "x-sys", "name": "x", "channel": "bureau", "scopes": ["bureau:sync"]}
    admin = api.admin()
    refused = [
        body,  # no unit
        {**body, "unit_id": "th-hall"},  # a hall is not a bureau or district
        {**body, "unit_id": "nowhere"},
        {**body, "unit_id": "tianhe", "channel": "wechat"},
        {**body, "unit_id": "tianhe", "scopes": ["bureau:sync", "bookings:write"]},
        {**body, "channel": "wechat", "scopes": ["bureau:read"]},
    ]
    for each in refused:
        answer = await api.client.post("/api/v1/admin/api-clients", json=each, headers=admin)
        problem(answer, 422, "validation_error")
    not_platform = await api.client.post(
        "/api/v1/admin/api-clients", json={**body, "unit_id": "tianhe"}, headers=district
    )
    problem(not_platform, 403, "forbidden")
    # a partner channel may not use the bureau routes, nor a read-only system push
    wechat = await register(api, "wechat-gz", "wechat")
    problem(await push(wechat, "slots", [slot("S1", w["th"])]), 403, "forbidden")
    reader = await register(api, "th-read", "bureau", scopes=["bureau:read"], unit_id="tianhe")
    problem(await push(reader, "slots", [slot("S1", w["th"])]), 403, "forbidden")
    assert (await pull(reader, "bookings", **{"from": DAY, "to": DAY})).status_code == 200


async def test_pushed_data_counts_in_the_districts_figures(api: Api) -> None:
    w = await _world(api)
    await _pushed(api, w)
    district = await new_admin(api, "th1", "tianhe", 1)
    channels = await _stats(api, district, "channel")
    assert set(channels) == {"web", f"bureau:{CLIENT}"}
    bureau = channels[f"bureau:{CLIENT}"]
    assert (bureau["booked"], bureau["cancelled"], bureau["checked_in"], bureau["served"]) == (5, 1, 2, 1)
    assert bureau["no_show"] == 1 and bureau["released"] is None
    services = await _stats(api, district, "service")
    both = services[str(w["th"])]
    # the platform's 7 seats and the system's 10; 1 seat sold on the platform, 4 by the system
    assert (both["released"], both["booked"], both["utilisation"]) == (17, 6, round(5 / 17, 4))
    halls = await _stats(api, district, "hall")
    assert set(halls) == {"th-hall"} and halls["th-hall"]["released"] == 17
    other = await _stats(api, await new_admin(api, "yx1", "yuexiu", 1), "channel")
    assert other == {}  # Yuexiu's figures do not see Tianhe's system
    async with api.app.state.sessionmaker() as session:  # the dashboard's heat map adds up too
        cells = await fill_by_hour(session, "platform/tianhe/", date(2026, 12, 3), date(2026, 12, 3))
    assert (sum(c["released"] for c in cells), sum(c["seats"] for c in cells)) == (17, 5)
    city = await _stats(api, api.admin(), "day")
    assert city[DAY]["released"] == 7 + 17 and city[DAY]["booked"] == 6
    # after the nightly rollup of that day the figures are the same (pushed data is never rolled up)
    async with api.app.state.sessionmaker() as session:
        await roll_up(session, date.fromisoformat(DAY))
        await session.commit()
    assert await _stats(api, district, "service") == services
    assert await _stats(api, district, "channel") == channels


async def test_re_push_changes_nothing_and_later_states_win(api: Api) -> None:
    w = await _world(api)
    await _pushed(api, w)
    district = await new_admin(api, "th1", "tianhe", 1)
    before = await _stats(api, district, "channel")
    tables = "SELECT * FROM bureau_slots ORDER BY external_id"
    snapshot = (await raw(api, tables), await raw(api, "SELECT * FROM bureau_bookings ORDER BY external_id"))
    slots = [slot("S1", w["th"]), slot("S2", w["th"], start="10:00", end="11:00", booked=1)]
    again = await push(w["system"], "slots", slots)
    assert again.json() == {"received": 2, "created": 0, "updated": 0, "unchanged": 2, "stale": 0}
    again = await push(w["system"], "bookings", [booking("B1", "S1"), booking("B5", "S2", "checked_in")])
    assert again.json() == {"received": 2, "created": 0, "updated": 0, "unchanged": 2, "stale": 0}
    assert (
        await raw(api, tables),
        await raw(api, "SELECT * FROM bureau_bookings ORDER BY external_id"),
    ) == snapshot
    assert await _stats(api, district, "channel") == before
    # B1 is served later; an older delivery of B1 arriving afterwards is ignored
    served = booking("B1", "S1", "served", updated_at="2026-12-01T09:30:00+08:00")
    assert (await push(w["system"], "bookings", [served])).json()["updated"] == 1
    late = booking("B1", "S1", "cancelled", updated_at="2026-11-30T12:00:00+08:00")
    assert (await push(w["system"], "bookings", [late])).json()["stale"] == 1
    after = (await _stats(api, district, "channel"))[f"bureau:{CLIENT}"]
    assert (after["served"], after["checked_in"], after["cancelled"]) == (2, 3, 1)
    # a slot moved to another hour and resized: the figures follow
    moved = await push(w["system"], "slots", [slot("S2", w["th"], start="15:00", end="16:00", capacity=9)])
    assert moved.json()["updated"] == 1
    services = await _stats(api, district, "service")
    assert services[str(w["th"])]["released"] == 7 + 5 + 9


async def test_out_of_scope_hall_is_forbidden_and_nothing_written(api: Api) -> None:
    w = await _world(api)
    answer = await push(w["system"], "slots", [slot("S1", w["th"]), slot("S9", w["yx"], "yx-hall")])
    body = problem(answer, 403, "forbidden")
    assert (body["index"], body["external_id"]) == (1, "S9")
    assert (await raw(api, "SELECT count(*) FROM bureau_slots"))[0][0] == 0
    outside = await pull(w["system"], "bookings", **{"from": DAY, "to": DAY, "unit_id": "yuexiu"})
    problem(outside, 403, "forbidden")


async def test_a_bad_row_rejects_the_whole_batch(api: Api) -> None:
    w = await _world(api)
    good = slot("S1", w["th"])
    cases = [
        ([good, slot("S2", w["th"], booked=6)], 1, "invalid_row"),  # more sold than the capacity
        ([good, slot("S2", w["th"], start="10:00", end="09:00")], 1, "invalid_row"),
        ([good, slot("S2", w["yx"])], 1, "unknown_service"),  # Yuexiu's service at a Tianhe hall
        ([good, slot("S2", w["th"], "no-hall")], 1, "unknown_hall"),
        ([good, slot("S2", w["th"], day="2028-12-03")], 1, "invalid_row"),
        ([good, good], 1, "duplicate_row"),
    ]
    for rows, index, code in cases:
        body = problem(await push(w["system"], "slots", rows), 422, code)
        assert body["index"] == index, body
    schema = problem(
        await push(w["system"], "slots", [good, {**good, "capacity": -1}]), 422, "validation_error"
    )
    assert "slots.1.capacity" in schema["detail"]
    problem(await push(w["system"], "slots", [{**good, "name": "张三"}]), 422, "validation_error")
    too_many = [slot(f"S{i}", w["th"]) for i in range(201)]
    problem(await push(w["system"], "slots", too_many), 422, "validation_error")
    assert (await raw(api, "SELECT count(*) FROM bureau_slots"))[0][0] == 0
    assert (await push(w["system"], "slots", [good])).status_code == 200
    bookings = [
        ([booking("B1", "S1"), booking("B2", "S-unknown")], 1, "unknown_slot"),
        (
            [booking("B1", "S1"), booking("B2", "S1", updated_at="2026-11-27T00:00:00+08:00")],
            1,
            "invalid_row",
        ),
        (
            [booking("B1", "S1"), booking("B2", "S1", updated_at="2027-01-01T00:00:00+08:00")],
            1,
            "invalid_row",
        ),
    ]
    for rows, index, code in bookings:
        body = problem(await push(w["system"], "bookings", rows), 422, code)
        assert body["index"] == index, body
    problem(await push(w["system"], "bookings", [booking("B1", "S1", "lost")]), 422, "validation_error")
    naive = booking("B1", "S1", created_at="2026-11-28T10:00:00")
    problem(await push(w["system"], "bookings", [naive]), 422, "validation_error")
    assert (await raw(api, "SELECT count(*) FROM bureau_bookings"))[0][0] == 0
    figures = await raw(api, "SELECT released, seats, booked FROM bureau_figures")
    assert [tuple(r) for r in figures] == [(5, 3, 0)]  # only the one good slot


async def test_pull_returns_only_the_subtree_without_personal_data(api: Api) -> None:
    w = await _world(api)
    numbers = {}
    for n, service_id in enumerate((w["th"], w["yx"], w["th"]), start=1):
        citizen = await api.login(resident_id(n, birth="19850101"), phone=f"1380013800{n}")
        chosen = (await api.slots(service_id, DAY))[n]["id"]
        made = await api.book(citizen, chosen)
        assert made.status_code == 201, made.text
        numbers.setdefault(service_id, []).append(made.json()["number"])
    first = await pull(w["system"], "bookings", **{"from": DAY, "to": DAY, "limit": 1})
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 1 and first.json()["next"]
    second = await pull(w["system"], "bookings", **{"from": DAY, "to": DAY, "after": first.json()["next"]})
    assert second.json()["next"] is None
    items = first.json()["items"] + second.json()["items"]
    assert [b["number"] for b in items] == numbers[w["th"]]
    assert {b["hall_id"] for b in items} == {"th-hall"} and items[0]["channel"] == "web"
    assert set(items[0]) == {
        "number",
        "service_id",
        "hall_id",
        "slot_id",
        "slot",
        "quantity",
        "status",
        "channel",
        "created_at",
        "updated_at",
    }
    text = first.text + second.text
    ids = [resident_id(n, birth="19850101") for n in (1, 2, 3)]
    assert "张" not in text and "1380013800" not in text and "138****" not in text
    assert not any(i in text or i[:4] + "**" in text for i in ids)  # the ID numbers, plain or masked
    # the platform's slots: Tianhe's service only, 7 hourly slots on the day, paginated
    pages, after = [], None
    while True:
        params: dict[str, Any] = {"from": DAY, "to": DAY, "limit": 3}
        if after:
            params["after"] = after
        page = await pull(w["system"], "slots", **params)
        assert page.status_code == 200, page.text
        pages.append(page.json()["items"])
        after = page.json()["next"]
        if after is None:
            break
    slots = [s for items in pages for s in items]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert {s["service_id"] for s in slots} == {w["th"]} and len({s["id"] for s in slots}) == 7
    assert sum(s["capacity"] for s in slots) == 7 and sum(s["booked"] for s in slots) == 2
    hall_only = await pull(w["system"], "slots", **{"from": DAY, "to": DAY, "unit_id": "th-hall"})
    assert len(hall_only.json()["items"]) == 7
    problem(await pull(w["system"], "slots", **{"from": DAY, "to": "2026-12-01"}), 422, "validation_error")
    problem(
        await pull(w["system"], "slots", **{"from": DAY, "to": DAY, "after": "x"}), 422, "validation_error"
    )


async def test_replayed_nonce_is_refused(api: Api) -> None:
    w = await _world(api)
    path = "/api/v1/channel/bureau/slots"
    body = httpx.Request("PUT", "http://x", json={"slots": [slot("S1", w["th"])]}).content
    headers = w["system"].headers("PUT", path, body, nonce="bureau-nonce-0123456789")
    assert (await api.client.put(path, content=body, headers=headers)).status_code == 200
    replay = await api.client.put(path, content=body, headers=headers)
    problem(replay, 401, "replayed_request")
    unsigned = await api.client.put(path, content=body, headers={"Content-Type": "application/json"})
    problem(unsigned, 401, "unauthenticated")
