"""Bans by hand (rule G15, docs/api.md "Administration") are authorised by the 2-2-3 table's own `penalise`
column: a city bureau L1 (who oversees and approves, never configures; rule G5) may still add and
lift a ban over its subtree; platform L2 (who oversees and proposes; rule G4) may not."""

from __future__ import annotations

from tests.admin.support import new_admin, problem, unit
from tests.conftest import Api, raw
from tests.ids import resident_id


async def test_bureau_l1_penalises_platform_l2_does_not(api: Api) -> None:
    await unit(api, "bureau", "city_department", "platform")
    await unit(api, "bureau-hall", "city_hall", "bureau")
    service = await api.service("bureau-hall")
    bureau_l1 = await new_admin(api, "bureau-l1", "bureau", 1)
    platform_l2 = await new_admin(api, "platform-l2", "platform", 2)
    citizen = await api.login(resident_id(1))
    # a booking under the bureau (another item) makes the citizen visible to its admins (docs/api.md)
    other = await api.service("bureau-hall", name="居住证申领")
    assert (await api.book(citizen, f"{other['id']}-202612031000")).status_code == 201
    lookup = await api.client.post(
        "/api/v1/admin/citizens/lookup",
        json={"id_type": "resident_id", "id_number": resident_id(1)},
        headers=bureau_l1,
    )
    assert lookup.status_code == 200, lookup.text
    ref = lookup.json()["id"]
    body = {"until": "2026-12-20", "reason": "恶意占号"}

    problem(
        await api.client.post(f"/api/v1/admin/citizens/{ref}/bans", json=body, headers=platform_l2),
        403,
        "forbidden",
    )
    added = await api.client.post(f"/api/v1/admin/citizens/{ref}/bans", json=body, headers=bureau_l1)
    assert added.status_code == 201, added.text
    assert added.json()["unit_id"] == "bureau"
    refused = await api.book(citizen, f"{service['id']}-202612030900")
    problem(refused, 403, "banned")

    path = f"/api/v1/admin/citizens/{ref}/bans/{added.json()['id']}"
    lift = {"reason": "误判"}
    problem(await api.client.request("DELETE", path, json=lift, headers=platform_l2), 403, "forbidden")
    assert (await api.client.request("DELETE", path, json=lift, headers=bureau_l1)).status_code == 204
    assert (await api.book(citizen, f"{service['id']}-202612030900")).status_code == 201
    actions = [r.action for r in await raw(api, "SELECT action FROM audit_log ORDER BY id")]
    assert actions[-3:] == ["citizen.lookup", "ban.add", "ban.lift"]
