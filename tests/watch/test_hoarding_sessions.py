"""Rule G15, last clause (issue 23): "many bookings created in seconds through one session or
partner". Each booking records the login session it was made through (migration 0028), as a tag of
the session id, never the id; the hoarding evidence counts a burst per session of the citizen's
own, and per partner for the bookings a partner made. Through HTTP."""

from __future__ import annotations

import hashlib

from tests.channels.conftest import register
from tests.conftest import Api, raw
from tests.console.conftest import console_login
from tests.ids import resident_id
from tests.watch.test_hoarding_and_report import DAY
from tests.watch.test_watch_console import hoarding

PARTNER_CITIZEN = {"name": "李四", "id_type": "resident_id", "id_number": resident_id(2)}
PARTNER_CITIZEN["phone"] = "13800138001"


async def book(api: Api, headers: dict[str, str], service: int) -> None:
    response = await api.book(headers, (await api.slots(service, DAY))[0]["id"])
    assert response.status_code == 201, response.text


async def test_g15_a_burst_is_counted_per_login_session_and_per_partner(api: Api) -> None:
    await api.hall()
    services = [(await api.service(name=f"事项{i}", department="户政"))["id"] for i in range(6)]
    # one citizen, two login sessions, two bookings through each within the same minute: no
    # session made 3 (the line, hoarding_burst_min), though the channel made 4
    first = await api.login(resident_id(1), name="王小明")
    second = await api.login(resident_id(1), name="王小明")
    for headers, service in ((first, 0), (second, 1), (second, 3), (first, 2)):
        await book(api, headers, services[service])
    assert await hoarding(api) == []
    # what is stored: a tag of each session id, never the id
    sessions = [row[0] for row in await raw(api, "SELECT id FROM citizen_sessions ORDER BY created_at")]
    refs = {row[0] for row in await raw(api, "SELECT session_ref FROM bookings")}
    assert refs == {f"s:{hashlib.sha256(sid.encode()).hexdigest()[:16]}" for sid in sessions}
    assert not any(sid in ref for sid in sessions for ref in refs)
    # a third through the first session within the minute: a burst, with that session as evidence
    await book(api, first, services[4])
    [burst] = await hoarding(api)
    assert burst["pattern"] == "burst" and len(burst["evidence"]) == 3
    assert {e["service_id"] for e in burst["evidence"]} == {services[0], services[2], services[4]}
    assert len({e["via"] for e in burst["evidence"]}) == 1 and burst["evidence"][0]["via"].startswith("s:")
    # a partner booking for its citizen: counted per partner, whichever session it logged in with
    partner = await register(api)
    for n, service in enumerate(services[:3]):
        login = await partner.call("POST", "/api/v1/channel/citizens/login", PARTNER_CITIZEN)
        assert login.status_code == 200, login.text
        partner.citizen_token = login.json()["token"]  # a new session each time
        slot = (await api.slots(service, DAY))[1 + n]["id"]
        made = await partner.call("POST", "/api/v1/channel/appointments", {"slot_id": slot})
        assert made.status_code == 201, made.text
    rows = await hoarding(api)
    partners = [row for row in rows if row["citizen"]["name"] == "李*"]
    assert [row["pattern"] for row in partners] == ["burst"]
    assert {e["via"] for e in partners[0]["evidence"]} == {"p:wechat-gz"}
    assert {e["channel"] for e in partners[0]["evidence"]} == {"wechat"}
    # the console's 限制预约 page says through what, in words
    assert (await console_login(api)).status_code == 303
    page = (await api.client.get("/admin/bans")).text
    assert "同一登录会话" in page and "同一合作方" in page
