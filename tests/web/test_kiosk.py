"""The kiosk page (issue 8 item 6): set up with a kiosk token, check in by ID number, walk-in and
elderly green-channel tickets, errors in plain Chinese, masked data only (rules T3, M2, M3, G10)."""

from __future__ import annotations

import re

from tests.conftest import Api, raw
from tests.ids import resident_id
from tests.onsite.conftest import book_at, kiosk
from tests.web.conftest import csrf

DAY = "2026-12-03"  # Thursday


async def setup_kiosk(api: Api) -> None:
    token = (await kiosk(api))["Authorization"].removeprefix("Bearer ")
    form = await api.client.get("/kiosk")
    assert form.status_code == 401 and "还没有设置为自助机" in form.text
    answer = await api.client.post("/kiosk/setup", data={"csrf": await csrf(api, "/kiosk"), "token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/kiosk"
    assert "HttpOnly" in answer.headers["set-cookie"]


async def submit(api: Api, step: str, **fields: str) -> str:
    page = await api.client.post(f"/kiosk/{step}", data={"csrf": await csrf(api, f"/kiosk/{step}"), **fields})
    return f"{page.status_code} {page.text}"


async def test_kiosk_checkin_and_tickets(api: Api) -> None:
    await api.hall()
    service = await api.service(walk_in_allowed=True)
    booked = await book_at(api, 1, service["id"], f"{DAY}T09:00")
    await setup_kiosk(api)
    await api.set_clock(f"{DAY}T08:30:00+08:00")
    home = await api.client.get("/kiosk")
    assert home.status_code == 200 and "签到取号" in home.text and 'class="elder kiosk"' in home.text

    page = await submit(api, "checkin", id_type="resident_id", id_number=booked["id_number"])
    assert page.startswith("200") and "取号成功" in page
    assert booked["booking"]["number"] in page
    assert booked["id_number"] not in page  # the machine is shared: masked only
    assert 'data-idle="60"' in page  # and it goes back to the start by itself (kiosk.js)
    statuses = await raw(api, "SELECT status FROM bookings")
    assert [s.status for s in statuses] == ["checked_in"]

    walk = await submit(
        api, "walk-in", id_type="resident_id", id_number=resident_id(2), service_id=str(service["id"])
    )
    assert walk.startswith("200") and "（现场）" in walk and "前面还有 1 人" in walk

    # an elderly ticket needs a birth date 60+ years back (rule G10); otherwise a plain refusal
    young = await submit(
        api, "green", id_type="resident_id", id_number=resident_id(3), service_id=str(service["id"])
    )
    assert young.startswith("422") and "不符合绿色通道的条件" in young
    old = resident_id(4, birth="19500101")
    green = await submit(api, "green", id_type="resident_id", id_number=old, service_id=str(service["id"]))
    assert green.startswith("200") and "（绿色通道）" in green and "前面还有 0 人" in green
    kinds = await raw(api, "SELECT kind FROM tickets ORDER BY id")
    assert [k.kind for k in kinds] == ["appointment", "walk_in", "green"]


async def test_kiosk_errors_change_nothing(api: Api) -> None:
    await api.hall()
    service = await api.service()
    await setup_kiosk(api)
    await api.set_clock(f"{DAY}T10:00:00+08:00")
    none = await submit(api, "checkin", id_type="resident_id", id_number=resident_id(9))
    assert none.startswith("404") and "没有找到您在本大厅可以取号的预约" in none
    bad = await submit(api, "walk-in", id_type="resident_id", id_number="123", service_id=str(service["id"]))
    assert bad.startswith("422") and "{" not in bad.split("<main", 1)[1]
    unchosen = await submit(api, "walk-in", id_type="resident_id", id_number=resident_id(6))
    assert unchosen.startswith("422") and "请先点选要办理的事项" in unchosen
    assert f'value="{resident_id(6)}"' in unchosen  # kept as typed
    forged = await api.client.post(
        "/kiosk/walk-in",
        data={"csrf": "0" * 64, "id_number": resident_id(5), "service_id": str(service["id"])},
    )
    assert forged.status_code == 403
    assert await raw(api, "SELECT id FROM tickets") == []


async def test_revoked_kiosk_stops_at_once(api: Api) -> None:
    await api.hall()
    await setup_kiosk(api)
    [row] = await raw(api, "SELECT id FROM kiosks")
    revoked = await api.client.delete(f"/api/v1/admin/kiosks/{row.id}", headers=api.admin())
    assert revoked.status_code == 204
    page = await api.client.get("/kiosk/checkin")
    assert page.status_code == 401 and re.search("还没有设置为自助机", page.text)


async def test_other_tokens_are_not_kiosks(api: Api) -> None:
    answer = await api.client.post(
        "/kiosk/setup", data={"csrf": await csrf(api, "/kiosk"), "token": api.admin_token}
    )
    assert answer.status_code == 401 and "yuyue_kiosk" not in api.client.cookies
