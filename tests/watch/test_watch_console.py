"""Issue 23 in the console: the 限制预约 page ranks the hoarding suspects of the admin's subtree with
their evidence, masked, and bans from there (rule G15, last clause: audited, with a reason); the
`hoarding_*` thresholds are policy knobs inherited down the tree; an abnormal-figure alert (G19)
links to its chart, which opens the dashboard on that hall and service. Through HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.console.conftest import console_login, post
from tests.console.test_manage_pages import make_admin
from tests.ids import resident_id
from tests.watch.test_alerts import alerts, by_kind, history
from tests.watch.test_hoarding_and_report import DAY, plant_hoarder
from yuyue.config import get_settings


@pytest.fixture(autouse=True)
def test_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("YUYUE_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def hoarding(api: Api, headers: dict[str, str] | None = None) -> list[dict[str, object]]:
    response = await api.client.get(
        "/api/v1/admin/hoarding", params={"from": DAY, "to": DAY}, headers=headers or api.admin()
    )
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_g15_hoarding_thresholds_are_policy_knobs_inherited_down_the_tree(api: Api) -> None:
    await plant_hoarder(api)
    patterns = {row["pattern"] for row in await hoarding(api)}
    assert patterns == {"late_cancel", "many_halls", "no_show_districts", "burst"}
    # the platform's line raised: 3 late cancels and 3 halls no longer fit, 5 bookings in a burst still do
    set_policy = await api.client.put(
        "/api/v1/admin/units/platform/policy",
        json={
            "preset": "guangzhou-2021",
            "overrides": {"hoarding_late_cancel_min": 4, "hoarding_many_halls_min": 4},
        },
        headers=api.admin(),
    )
    assert set_policy.status_code == 200, set_policy.text
    knobs = set_policy.json()["knobs"]
    assert knobs["hoarding_late_cancel_min"] == {"value": 4, "from": "platform"}
    assert knobs["hoarding_burst_seconds"] == {"value": 60, "from": "platform"}
    assert {row["pattern"] for row in await hoarding(api)} == {"no_show_districts", "burst"}
    # inherited: hall-a's effective policy carries the platform's line
    hall = (await api.client.get("/api/v1/units/hall-a/policy")).json()
    assert hall["knobs"]["hoarding_late_cancel_min"] == {"value": 4, "from": "platform"}
    # a burst needs 6 within 60 s now; a line out of range is refused and changes nothing
    await api.policy(
        "platform",
        "guangzhou-2021",
        hoarding_late_cancel_min=4,
        hoarding_many_halls_min=4,
        hoarding_burst_min=6,
    )
    assert {row["pattern"] for row in await hoarding(api)} == {"no_show_districts"}
    bad = await api.client.put(
        "/api/v1/admin/units/platform/policy",
        json={"preset": "guangzhou-2021", "overrides": {"hoarding_burst_min": 1}},
        headers=api.admin(),
    )
    assert bad.status_code == 422
    assert {row["pattern"] for row in await hoarding(api)} == {"no_show_districts"}


async def test_g15_the_penalties_page_lists_suspects_masked_and_bans_from_there(api: Api) -> None:
    await plant_hoarder(api)
    rows = await hoarding(api)
    ref = str(rows[0]["id"])
    assert {row["id"] for row in rows} == {ref}  # one suspect, the opaque id of the ban endpoints
    await api.set_clock("2026-12-04T10:00:00+08:00")  # the ranking stored at 03:45 has every pattern
    assert (await console_login(api)).status_code == 303
    page = await api.client.get("/admin/bans")
    assert page.status_code == 200, page.text[:1000]
    text = page.text
    suspects = re.findall(r'data-suspect="([^"]+)"', text)
    assert suspects == [ref]
    for words in (
        "疑似恶意占号",
        "临近取消截止时间反复取消",
        "同一事项在多个大厅预约",
        "在多个区爽约",
        "短时间内集中预约",
    ):
        assert words in text, words
    assert (
        "王**" in text and resident_id(1) not in text and "李*" not in text
    )  # masked; the honest one absent
    assert "社保卡申领" in text and "2026年12月3日" in text  # names and Chinese dates, not ids
    assert f'action="/admin/bans/{ref}/add"' in text
    # the reason is required: refused with the page again, nothing banned
    refused = await post(api, f"/admin/bans/{ref}/add", {"until": "2027-03-03", "reason": ""})
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    assert 'data-suspect="' in refused.text
    citizen = await api.login(resident_id(1), name="王小明")
    assert (await api.client.get("/api/v1/me", headers=citizen)).json()["bans"] == []
    # with a reason: a ban over the admin's unit, audited
    added = await post(
        api, f"/admin/bans/{ref}/add", {"until": "2027-03-03", "reason": "反复临近截止取消占号"}
    )
    assert added.status_code == 303 and added.headers["location"] == "/admin/bans?done=ban_added"
    bans = (await api.client.get("/api/v1/me", headers=citizen)).json()["bans"]
    assert [(b["until"], b["reason"], b["unit_id"]) for b in bans] == [
        ("2027-03-03", "反复临近截止取消占号", "platform")
    ]
    audit = (await api.client.get("/api/v1/admin/audit", headers=api.admin())).json()
    assert any(e["action"] == "ban.add" and e["target"] == ref for e in audit)
    # a hall's admin sees the suspects of their own hall only (one booking at hall-b: none)
    password = await make_admin(api, "hallb", "hall-b", 2)
    api.client.cookies.clear()
    assert (await console_login(api, "hallb", password)).status_code == 303
    scoped = await api.client.get("/admin/bans")
    assert scoped.status_code == 200 and "data-suspect=" not in scoped.text
    assert "这段时间没有发现疑似恶意占号的市民。" in scoped.text


async def test_g19_an_alert_links_to_its_chart_on_the_dashboard(api: Api) -> None:
    await api.hall()
    quiet = (await api.service(daily_capacity=70))["id"]
    busy = (await api.service(name="社保卡", department="人社", daily_capacity=70))["id"]
    await history(api, quiet, busy)
    await api.set_clock("2026-12-02T03:31:00+08:00")  # the nightly pass
    raised = await alerts(api)
    low = by_kind(raised, "low_utilisation")[0]
    assert low["chart"] == f"/admin/dashboard?unit_id=hall-a&service_id={quiet}#service-{quiet}"
    no_show = by_kind(raised, "no_show_high")[0]  # a hall's figure: the hall's charts
    assert no_show["chart"] == "/admin/dashboard?unit_id=hall-a"
    assert (await console_login(api)).status_code == 303
    listed = await api.client.get("/admin/alerts")
    assert f'href="/admin/dashboard?unit_id=hall-a&amp;service_id={quiet}#service-{quiet}"' in listed.text
    chart = await api.client.get(low["chart"].split("#")[0])
    assert chart.status_code == 200
    assert re.search(rf'<tr data-key="{quiet}" id="service-{quiet}" class="focus">', chart.text)
    assert '<details class="panel" id="services" open>' in chart.text
    assert "预约统计 · " in chart.text


async def test_g15_the_penalties_page_reads_the_ranking_stored_at_night(api: Api) -> None:
    """Ranking a city's bookings takes seconds (docs/benchmarks.md): the job `hoarding_rankings`
    stores each admin's unit's ranking at 03:45 and the page reads it, saying when it was made;
    the API ranks on each call. A unit with no ranking of today is ranked on the visit."""
    await plant_hoarder(api)  # booked 12-01 10:00; cancelled late and missed after 03:45 on 12-03
    assert {row["pattern"] for row in await hoarding(api)} == {
        "late_cancel",
        "many_halls",
        "no_show_districts",
        "burst",
    }
    await api.set_clock(f"{DAY}T10:00:00+08:00")
    assert (await console_login(api)).status_code == 303
    page = (await api.client.get("/admin/bans")).text
    assert "以下为 2026年12月3日（周四） 03:45 的统计结果" in page
    assert "同一事项在多个大厅预约" in page and "短时间内集中预约" in page
    assert "临近取消截止时间反复取消" not in page and "在多个区爽约" not in page  # after 03:45
    await api.set_clock("2026-12-04T09:00:00+08:00")
    page = (await api.client.get("/admin/bans")).text
    assert "以下为 2026年12月4日（周五） 03:45 的统计结果" in page
    assert "临近取消截止时间反复取消" in page and "在多个区爽约" in page
    # an admin of a unit ranked at no night yet: ranked on the visit, no time given
    password = await make_admin(api, "hallb", "hall-b", 2)
    api.client.cookies.clear()
    assert (await console_login(api, "hallb", password)).status_code == 303
    scoped = (await api.client.get("/admin/bans")).text
    assert "的统计结果" not in scoped and "这段时间没有发现疑似恶意占号的市民。" in scoped
