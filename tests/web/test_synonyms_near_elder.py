"""Issue 20 item search, hall order and elder mode, through HTTP: synonyms kept by platform admins
(API and console, audited) widen the hall finder's item search; a logged-in citizen sees the halls of
the district of their latest booking first; elder mode chosen while logged in follows the account
to the next login in another browser."""

from __future__ import annotations

import re

from tests.admin.support import new_admin, unit
from tests.conftest import Api
from tests.console import conftest as console
from tests.ids import resident_id
from tests.web.conftest import form_login, post

DAY = "2026-12-03"


def names(page: str) -> list[str]:
    return re.findall(r'<span class="ds-choice-title">([^<]+)</span>', page)


async def districts(api: Api) -> None:
    """天河 (th-hall) and 越秀 (yx-hall), each offering 社会保障卡申领."""
    await unit(api, "th", "district", "platform")
    await unit(api, "yx", "district", "platform")
    await api.hall("th-hall", parent="th", kind="district_hall", name="天河区政务服务中心")
    await api.hall("yx-hall", parent="yx", kind="district_hall", name="越秀区政务服务中心")
    for hall in ("th-hall", "yx-hall"):
        await api.service(hall, name="社会保障卡申领", department="人社")


async def test_synonyms_are_kept_by_platform_admins_audited_and_used_by_search(api: Api) -> None:
    await districts(api)
    await api.client.get("/halls?agree=1")
    assert names((await api.client.get("/halls?item=医保卡")).text) == []  # not the name's characters
    added = await api.client.post(
        "/api/v1/admin/synonyms", json={"term": "医保卡", "means": "社会保障卡"}, headers=api.admin()
    )
    assert added.status_code == 201, added.text
    synonym = added.json()
    assert synonym["term"] == "医保卡" and synonym["means"] == "社会保障卡"
    for typed in ("医保卡", "医保"):  # the term, or a part of it
        found = (await api.client.get("/halls", params={"item": typed})).text
        assert names(found) == ["天河区政务服务中心", "越秀区政务服务中心"], typed
        assert "可办：社会保障卡申领" in found
    again = await api.client.post(
        "/api/v1/admin/synonyms", json={"term": "医保卡", "means": "别的"}, headers=api.admin()
    )
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    bad = await api.client.post(
        "/api/v1/admin/synonyms", json={"term": "", "means": "x", "extra": 1}, headers=api.admin()
    )
    assert bad.status_code == 422
    # a district's L1 may read them but not change them (platform level)
    district = await new_admin(api, "th1", "th", 1)
    listed = await api.client.get("/api/v1/admin/synonyms", headers=district)
    assert listed.status_code == 200 and [s["term"] for s in listed.json()] == ["医保卡"]
    refused = await api.client.post(
        "/api/v1/admin/synonyms", json={"term": "户口本", "means": "户籍"}, headers=district
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    gone = await api.client.delete(f"/api/v1/admin/synonyms/{synonym['id']}", headers=district)
    assert gone.status_code == 403
    removed = await api.client.delete(f"/api/v1/admin/synonyms/{synonym['id']}", headers=api.admin())
    assert removed.status_code == 204
    assert names((await api.client.get("/halls?item=医保卡")).text) == []
    audit = (await api.client.get("/api/v1/admin/audit", headers=api.admin())).json()
    actions = [(e["action"], e["target"]) for e in audit if e["action"].startswith("synonym.")]
    target = f"synonym:{synonym['id']}"
    assert actions == [("synonym.remove", target), ("synonym.add", target)]


async def test_synonyms_page_in_the_console(api: Api) -> None:
    await districts(api)
    assert (await console.console_login(api)).status_code == 303
    page = await api.client.get("/admin/synonyms")
    assert page.status_code == 200 and "事项简称" in page.text and 'href="/admin/synonyms"' in page.text
    empty = await console.post(api, "/admin/synonyms", {"term": "医保卡", "means": ""})
    assert empty.status_code == 422 and 'role="alert"' in empty.text
    assert 'value="医保卡"' in empty.text  # the form kept as typed
    made = await console.post(api, "/admin/synonyms", {"term": "医保卡", "means": "社会保障卡"})
    assert made.status_code == 303 and made.headers["location"] == "/admin/synonyms?done=synonym_added"
    listed = await api.client.get("/admin/synonyms")
    row = re.search(r'<tr data-synonym="(\d+)">', listed.text)
    assert row and "社会保障卡" in listed.text
    log = await api.client.get("/admin/audit")
    assert "新增事项简称" in log.text
    removed = await console.post(api, f"/admin/synonyms/{row.group(1)}/remove")
    assert removed.status_code == 303
    assert 'data-synonym="' not in (await api.client.get("/admin/synonyms")).text


async def test_halls_of_the_citizens_district_come_first(api: Api) -> None:
    await districts(api)
    services = {s["name"]: s["id"] for s in (await api.client.get("/api/v1/halls/yx-hall/services")).json()}
    await api.client.get("/halls?agree=1")
    assert names((await api.client.get("/halls")).text) == ["天河区政务服务中心", "越秀区政务服务中心"]
    assert (await form_login(api, resident_id(5))).status_code == 303
    # logged in, no booking yet: the tree's order
    assert names((await api.client.get("/halls")).text) == ["天河区政务服务中心", "越秀区政务服务中心"]
    citizen = await api.login(resident_id(5))
    slot = (await api.slots(services["社会保障卡申领"], DAY))[0]["id"]
    assert (await api.book(citizen, slot)).status_code == 201
    page = (await api.client.get("/halls")).text
    assert names(page) == ["越秀区政务服务中心", "天河区政务服务中心"]
    assert "您上次预约所在区的大厅排在前面。" in page
    searched = (await api.client.get("/halls", params={"item": "社保卡"})).text
    assert names(searched) == ["越秀区政务服务中心", "天河区政务服务中心"]


async def test_elder_mode_follows_the_account_to_another_browser(api: Api) -> None:
    assert (await form_login(api, resident_id(6))).status_code == 303
    on = await post(api, "/elder", {"on": "1", "next": "/bookings"})
    assert on.status_code == 303 and "yuyue_elder=1" in on.headers["set-cookie"]
    # another browser: no cookies at all; the login brings the account's choice along
    api.client.cookies.clear()
    assert 'class="elder"' not in (await api.client.get("/")).text
    login = await form_login(api, resident_id(6))
    assert login.status_code == 303 and "yuyue_elder=1" in login.headers["set-cookie"]
    assert '<html lang="zh-CN" class="elder">' in (await api.client.get("/")).text
    # turned off while logged in: the next login elsewhere starts without it
    off = await post(api, "/elder", {"on": "0", "next": "/"})
    assert "yuyue_elder=0" in off.headers["set-cookie"]
    api.client.cookies.clear()
    login = await form_login(api, resident_id(6))
    assert "yuyue_elder=0" in login.headers["set-cookie"]
    assert 'class="elder"' not in (await api.client.get("/")).text
    # a citizen who never chose: the browser's own cookie stays as it is
    api.client.cookies.clear()
    assert "yuyue_elder" not in (await form_login(api, resident_id(7))).headers.get("set-cookie", "")
