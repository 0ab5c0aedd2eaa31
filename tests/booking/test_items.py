"""Items (docs/rules.md "Items", "One live booking"): a service's `item_code`; rule T5 limits one live
booking per ID and item across the halls under the unit that set the policy, personal business
only. Through HTTP on SQLite and PostgreSQL; the clock starts at Tue 2026-12-01 10:00."""

from __future__ import annotations

from tests.conftest import Api, raw
from tests.ids import resident_id, uscc

DAY = "2026-12-03"


async def slot(api: Api, service_id: int, index: int = 0) -> str:
    return str((await api.slots(service_id, DAY))[index]["id"])


async def test_item_code_is_set_shown_changed_and_checked(api: Api) -> None:
    await api.hall()
    made = await api.service(item_code="440100-GA-0001")
    assert made["item_code"] == "440100-GA-0001"
    plain = await api.service(name="户籍证明")
    assert plain["item_code"] is None
    listed = (await api.client.get("/api/v1/halls/hall-a/services")).json()
    assert {s["id"]: s["item_code"] for s in listed} == {made["id"]: "440100-GA-0001", plain["id"]: None}
    one = await api.client.get(f"/api/v1/admin/services/{made['id']}", headers=api.admin())
    assert one.json()["item_code"] == "440100-GA-0001"
    path = f"/api/v1/admin/services/{plain['id']}"
    patched = await api.client.patch(path, json={"item_code": "440100-GA-0009"}, headers=api.admin())
    assert patched.status_code == 200 and patched.json()["item_code"] == "440100-GA-0009"
    cleared = await api.client.patch(path, json={"item_code": None}, headers=api.admin())
    assert cleared.status_code == 200 and cleared.json()["item_code"] is None
    for bad in ("", "有中文", "a b", "x" * 65, 12):
        refused = await api.client.patch(path, json={"item_code": bad}, headers=api.admin())
        assert refused.status_code == 422 and refused.json()["code"] == "validation_error", bad
        body = {"hall_id": "hall-a", "department": "户政", "name": "x", "daily_capacity": 7, "item_code": bad}
        created = await api.client.post("/api/v1/admin/services", json=body, headers=api.admin())
        assert created.status_code == 422 and created.json()["code"] == "validation_error", bad
    assert len(await raw(api, "SELECT id FROM services")) == 2


async def test_one_live_booking_per_item_across_halls_t5(api: Api) -> None:
    """The same item at two halls under the city policy is one item: one live booking of it; a
    service without a code, or with another code, is another item; cancelling frees it at once."""
    await api.hall("hall-a")
    await api.hall("hall-b")
    at_a = await api.service("hall-a", item_code="440100-GA-0001")
    at_b = await api.service("hall-b", item_code="440100-GA-0001")
    own = await api.service("hall-b", name="户籍证明")  # no code: an item of its own
    other = await api.service("hall-b", name="居住证办理", item_code="440100-GA-0003")
    citizen = await api.login(resident_id(1))
    held = await api.book(citizen, await slot(api, at_a["id"]))
    assert held.status_code == 201, held.text
    again = await api.book(citizen, await slot(api, at_b["id"], 2))
    assert again.status_code == 409 and again.json()["code"] == "already_booked", again.text
    assert (await api.book(citizen, await slot(api, own["id"], 3))).status_code == 201
    assert (await api.book(citizen, await slot(api, other["id"], 4))).status_code == 201
    assert len(await raw(api, "SELECT id FROM bookings")) == 3
    cancelled = await api.client.post(f"/api/v1/appointments/{held.json()['number']}/cancel", headers=citizen)
    assert cancelled.status_code == 200
    assert (await api.book(citizen, await slot(api, at_b["id"], 2))).status_code == 201
    # another citizen is not limited by the first one's booking
    assert (await api.book(await api.login(resident_id(2)), await slot(api, at_a["id"]))).status_code == 201


async def test_t5_counts_under_the_unit_that_set_the_policy(api: Api) -> None:
    """A district that sets the knob itself counts among its own halls: the same item booked at a
    hall of the city and at a hall of that district are two keys."""
    district = await api.client.post(
        "/api/v1/admin/units",
        headers=api.admin(),
        json={"id": "d1", "name": "测试区", "kind": "district", "parent_id": "platform"},
    )
    assert district.status_code == 201, district.text
    await api.policy("d1", None, one_live_per="service")
    await api.hall("hall-a")
    await api.hall("hall-d", parent="d1", kind="district_hall")
    city = await api.service("hall-a", item_code="440100-GA-0001")
    in_district = await api.service("hall-d", item_code="440100-GA-0001")
    citizen = await api.login(resident_id(3))
    assert (await api.book(citizen, await slot(api, city["id"]))).status_code == 201
    assert (await api.book(citizen, await slot(api, in_district["id"]))).status_code == 201


async def test_a_company_agent_is_not_limited_by_t5(api: Api) -> None:
    """Rule T5 limits personal business only: a company agent's bookings (with `company`) of one
    item are not limited by it; the citizen's personal booking still is."""
    await api.hall()
    service = await api.service(max_batch=3)
    citizen = await api.login(resident_id(4))
    company = {"uscc": uscc(1), "name": "广州某某有限公司"}
    first = await api.book(citizen, await slot(api, service["id"]), company=company)
    second = await api.book(citizen, await slot(api, service["id"], 1), company=company)
    assert first.status_code == 201 and second.status_code == 201, second.text
    personal = await api.book(citizen, await slot(api, service["id"], 2))
    assert personal.status_code == 201, personal.text
    again = await api.book(citizen, await slot(api, service["id"], 3))
    assert again.status_code == 409 and again.json()["code"] == "already_booked"
    # a company agent's booking moves like any other (its key stays its own)
    moved = await api.client.post(
        f"/api/v1/appointments/{second.json()['number']}/reschedule",
        json={"slot_id": await slot(api, service["id"], 4)},
        headers=citizen,
    )
    assert moved.status_code == 200, moved.text
    keys = [r[0] for r in await raw(api, "SELECT live_key FROM bookings ORDER BY id")]
    assert len(set(keys)) == 3


async def test_m10_per_uscc_and_date_stays(api: Api) -> None:
    """Rule M10: under the medical-insurance policy a company agent is limited per USCC and date."""
    await api.hall()
    await api.policy("hall-a", "gz-medical-insurance")
    one = await api.service(name="单位参保登记", item_code="440100-YB-0003")
    two = await api.service(name="单位信息变更", item_code="440100-YB-0004")
    citizen = await api.login(resident_id(5))
    company = {"uscc": uscc(2), "name": "广州某某有限公司"}
    day = "2026-12-02"
    first = (await api.slots(one["id"], day))[0]["id"]
    second = (await api.slots(two["id"], day))[1]["id"]
    assert (await api.book(citizen, first, company=company)).status_code == 201
    refused = await api.book(citizen, second, company=company)
    assert refused.status_code == 409 and refused.json()["code"] == "daily_limit"
