"""Admin citizen lookup scoped to the admin's area (issue 19, docs/api.md "Penalties"): outside the
platform an admin finds only citizens with a booking, ticket or waiting entry in their subtree;
anyone else is `404 not_found`, the very answer an unknown number gets."""

from __future__ import annotations

from typing import Any

from tests.admin.support import new_admin, problem, unit
from tests.conftest import Api
from tests.ids import resident_id


async def _lookup(api: Api, headers: dict[str, str], n: int) -> Any:
    return await api.client.post(
        "/api/v1/admin/citizens/lookup",
        json={"id_type": "resident_id", "id_number": resident_id(n)},
        headers=headers,
    )


async def test_district_admin_finds_only_citizens_of_its_area(api: Api) -> None:
    await unit(api, "district-a", "district", "platform")
    await unit(api, "district-b", "district", "platform")
    await unit(api, "hall-in-a", "district_hall", "district-a")
    await unit(api, "hall-in-b", "district_hall", "district-b")
    in_a = await api.service("hall-in-a")
    in_b = await api.service("hall-in-b")
    admin_a = await new_admin(api, "admin-a", "district-a", 3)
    ours = await api.login(resident_id(1))
    theirs = await api.login(resident_id(2))
    assert (await api.book(ours, f"{in_a['id']}-202612030900")).status_code == 201
    assert (await api.book(theirs, f"{in_b['id']}-202612030900")).status_code == 201
    await api.login(resident_id(3))  # registered, no business anywhere

    found = await _lookup(api, admin_a, 1)
    assert found.status_code == 200 and found.json()["citizen"]["id_number"] == resident_id(1)
    unknown = problem(await _lookup(api, admin_a, 4), 404, "not_found")
    for n in (2, 3):  # another district's citizen, a citizen with no business: as if unknown
        assert problem(await _lookup(api, admin_a, n), 404, "not_found") == unknown
    # the platform finds everyone registered
    for n in (1, 2, 3):
        assert (await _lookup(api, api.admin(), n)).status_code == 200


async def test_a_waiting_list_entry_makes_the_citizen_visible(api: Api) -> None:
    await unit(api, "district-w", "district", "platform")
    await unit(api, "hall-w", "district_hall", "district-w")
    service = await api.service("hall-w", daily_capacity=1)
    admin_w = await new_admin(api, "admin-w", "district-w", 3)
    first = await api.login(resident_id(5))
    second = await api.login(resident_id(6))
    slots = await api.slots(service["id"], "2026-12-03")
    assert (await api.book(first, slots[0]["id"])).status_code == 201
    problem(await _lookup(api, admin_w, 6), 404, "not_found")
    joined = await api.client.post(
        "/api/v1/waitlist", json={"service_id": service["id"], "dates": ["2026-12-03"]}, headers=second
    )
    assert joined.status_code == 201, joined.text
    assert (await _lookup(api, admin_w, 6)).status_code == 200
