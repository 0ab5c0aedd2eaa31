"""Hoarding evidence (rule G15, last clause) and the monthly quality report (rule G18), through HTTP."""

from __future__ import annotations

import io
import zipfile

from tests.admin.support import execute
from tests.conftest import Api
from tests.ids import resident_id

DAY = "2026-12-03"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def plant_hoarder(api: Api) -> None:
    """Halls a, b, c; citizen 1 (王小明) fits all four patterns on 12-03, citizen 2 (李四) none."""
    for hall in ("hall-a", "hall-b", "hall-c"):
        await api.hall(hall)
    items = [
        (await api.service(hall, name="社保卡申领", department="人社", item_code="SB-001"))["id"]
        for hall in ("hall-a", "hall-b", "hall-c")
    ]
    others = [(await api.service("hall-a", name=f"事项{i}", department="户政"))["id"] for i in range(2)]
    hoarder = await api.login(resident_id(1), name="王小明")
    honest = await api.login(resident_id(2), name="李四")
    numbers = []
    # five bookings within seconds, one item at three halls (T5: each cancelled before the next)
    for n, service in enumerate((*items, *others)):
        response = await api.book(hoarder, (await api.slots(service, DAY))[0]["id"])
        assert response.status_code == 201, response.text
        numbers.append(response.json()["number"])
        if n < 2:
            cancel = await api.client.post(f"/api/v1/appointments/{numbers[-1]}/cancel", headers=hoarder)
            assert cancel.status_code == 200, cancel.text
    assert (await api.book(honest, (await api.slots(others[0], DAY))[1]["id"])).status_code == 201
    # 12-03 07:30: three cancels just before the 08:00 deadline of the 09:00 slots (G13: end − 2 h)
    await api.set_clock(f"{DAY}T07:30:00+08:00")
    for number in numbers[2:]:
        cancel = await api.client.post(f"/api/v1/appointments/{number}/cancel", headers=hoarder)
        assert cancel.status_code == 200, cancel.text
    # and no-shows at halls of two different areas (planted on the first two)
    for number in numbers[:2]:
        await execute(api, "UPDATE bookings SET status = 'no_show' WHERE number = :n", n=number)


async def test_g15_hoarding_patterns_are_ranked_with_masked_evidence(api: Api) -> None:
    await plant_hoarder(api)
    response = await api.client.get(
        "/api/v1/admin/hoarding", params={"from": DAY, "to": DAY}, headers=api.admin()
    )
    assert response.status_code == 200, response.text
    rows = response.json()
    assert {row["pattern"] for row in rows} == {"late_cancel", "many_halls", "no_show_districts", "burst"}
    assert len({row["citizen_id"] for row in rows}) == 1  # the honest citizen fits no pattern
    assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)
    assert rows[0]["pattern"] == "late_cancel" and len(rows[0]["evidence"]) == 3
    assert rows[0]["citizen"]["name"] == "王**" and "*" in rows[0]["citizen"]["id_number"]
    assert resident_id(1) not in response.text
    many = next(row for row in rows if row["pattern"] == "many_halls")
    assert sorted(e["hall_id"] for e in many["evidence"]) == ["hall-a", "hall-b", "hall-c"]
    # nobody was banned
    lookup = await api.client.post(
        "/api/v1/admin/citizens/lookup",
        json={"id_type": "resident_id", "id_number": resident_id(1)},
        headers=api.admin(),
    )
    assert lookup.status_code == 200 and lookup.json()["bans"] == []
    # a hall's admin sees the evidence of their own hall only
    made = await api.client.post(
        "/api/v1/admin/admins",
        json={
            "username": "hall-b-l2",
            "password": "hall-b-admin-2026",
            "name": "赵六",
            "title": "大厅管理员",
            "phone": "13900000001",
            "unit_id": "hall-b",
            "level": 2,
        },
        headers=api.admin(),
    )
    assert made.status_code == 201, made.text
    login = await api.client.post(
        "/api/v1/admin/login", json={"username": "hall-b-l2", "password": "hall-b-admin-2026"}
    )
    hall_admin = api.admin(login.json()["token"])
    scoped = await api.client.get(
        "/api/v1/admin/hoarding", params={"from": DAY, "to": DAY}, headers=hall_admin
    )
    assert scoped.status_code == 200 and scoped.json() == []  # one booking there: no pattern
    outside = await api.client.get("/api/v1/admin/hoarding", params={"unit_id": "hall-a"}, headers=hall_admin)
    assert outside.status_code == 403 and outside.json()["code"] == "forbidden"
    bad = await api.client.get(
        "/api/v1/admin/hoarding", params={"from": DAY, "to": "2026-12-01"}, headers=api.admin()
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"


async def test_g18_quality_report_per_child_unit_json_and_xlsx(api: Api) -> None:
    for hall in ("hall-a", "hall-b"):
        await api.hall(hall)
    a = (await api.service("hall-a", daily_capacity=7))["id"]
    await api.service("hall-b", daily_capacity=7)
    citizen = await api.login(resident_id(3))
    assert (await api.book(citizen, (await api.slots(a, DAY))[0]["id"])).status_code == 201
    response = await api.client.get(
        "/api/v1/admin/reports/quality", params={"month": "2026-12"}, headers=api.admin()
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["unit_id"] == "platform" and report["month"] == "2026-12"
    rows = {row["unit_id"]: row for row in report["rows"]}
    assert set(rows) == {"hall-a", "hall-b"}
    assert rows["hall-a"]["booked"] == 1 and rows["hall-b"]["booked"] == 0
    assert rows["hall-a"]["approvals_on_time"] is None and rows["hall-a"]["data_on_time"] is None
    assert 0 < rows["hall-a"]["utilisation"] < 0.02
    sheet = await api.client.get(
        "/api/v1/admin/reports/quality",
        params={"month": "2026-12"},
        headers={**api.admin(), "Accept": XLSX},
    )
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith(XLSX)
    with zipfile.ZipFile(io.BytesIO(sheet.content)) as book:
        assert "xl/worksheets/sheet1.xml" in book.namelist()
    for month in ("2026-13", "2026-1", "december"):
        bad = await api.client.get(
            "/api/v1/admin/reports/quality", params={"month": month}, headers=api.admin()
        )
        assert bad.status_code == 422 and bad.json()["code"] == "validation_error", month
