"""The console's alerts page says every alert kind in one plain Chinese sentence (issue 20), built
from the alert's stored fields, with the remedy as a link; the API keeps its English `detail`.

`calendar_missing` and `approval_overdue` are raised by their jobs (the test clock runs them), the
others by the service that raises them (`raise_alert`, as `watch_figures` and `check_over_release`
call it; their figures are those jobs' shapes, rules G12, G19)."""

from __future__ import annotations

import html
import re
from datetime import datetime

from tests.admin.support import new_admin
from tests.conftest import Api
from tests.console.conftest import console_login
from tests.console.test_console_words import latin_words
from yuyue.admin.alerts import raise_alert
from yuyue.clock import clock
from yuyue.models import ApiClient

NOW = "2026-12-02T10:00:00+08:00"


async def _raise_figure_alerts(api: Api, service_id: int) -> None:
    async with api.app.state.sessionmaker() as session:
        session.add(
            ApiClient(
                id="bureau-estate",
                name="不动产登记预约系统",
                channel="api",
                scopes=[],
                rate_per_minute=60,
                created_at=clock.now().replace(tzinfo=None),
                unit_id="hall-a",
            )
        )
        suggestion = {"daily_capacity": 1200, "date_from": "2026-12-04"}
        figure_alerts = [
            ("sold_out_fast", service_id, {"name": "sold_out_minutes", "value": 3.5, "threshold": 10}),
            ("low_utilisation", service_id, {"name": "utilisation", "value": 0.1234, "threshold": 0.3}),
            ("waitlist_growing", service_id, {"name": "waitlist_growth_days", "value": 6, "threshold": 5}),
            ("no_show_high", None, {"name": "no_show_rate", "value": 0.1875, "threshold": 0.15}),
            ("channel_surge", None, {"name": "channel_share", "value": 0.62, "threshold": 0.4}),
            ("bureau_silent", None, {"name": "hours_silent", "value": 1234.5, "threshold": 24}),
        ]
        keys = {
            "channel_surge": "channel_surge:hall-a:wechat",
            "bureau_silent": "bureau_silent:bureau-estate",
        }
        for kind, sid, figure in figure_alerts:
            assert await raise_alert(
                session,
                kind,
                "hall-a",
                sid,
                keys.get(kind, f"{kind}:{sid or 'hall-a'}"),
                f"service {sid}: English detail for the API",
                figure=figure,
                suggestion=suggestion if sid else None,
            )
        assert await raise_alert(
            session,
            "waitlist_over_release",
            "hall-a",
            service_id,
            f"waitlist_over_release:{service_id}",
            "12345 waiting entries, 1200 off-site seats released for the next 10 working days: add "
            "supply (5+X, longer hours) or steer citizens to online and self-service handling (rule G12)",
            raised_at=datetime.fromisoformat(NOW),
        )
        await session.commit()


SENTENCES = {
    "calendar_missing": "尚未录入2027年的全国节假日安排：录入前，该年周一至周五一律按工作日计算。",
    "approval_overdue": "天河区政务服务中心“居民身份证申领”的号源调整申请（2026年12月7日（周一），"
    "每日 1,400 个）未在2026年12月3日（周四） 00:00前审批，请尽快审批。",
    "sold_out_fast": "天河区政务服务中心“居民身份证申领”最近几天放出的网上号源在 4 分钟内就被约满"
    "（预警线 10 分钟）。建议从2026年12月4日（周五）起把每日号源调整为 1,200 个。",
    "low_utilisation": "“居民身份证申领”的号源使用率只有 12%，连续几周低于 30%。",
    "waitlist_growing": "“居民身份证申领”的排队候补人数已连续 6 天增加（预警线 5 天）。",
    "no_show_high": "天河区政务服务中心上周的爽约率为 18.8%，达到预警线 15.0%",
    "channel_surge": "天河区政务服务中心上周经“微信”的预约占 62%，超过平常占比的预警线 40%。",
    "bureau_silent": "天河区政务服务中心的“不动产登记预约系统”已 1,234.5 小时没有传来任何数据"
    "（预警线 24 小时）。",
    "waitlist_over_release": "“居民身份证申领”排队候补 12,345 人，"
    "多于今后 10 个工作日已放出的网上号源 1,200 个。",
}


def rows(page: str) -> dict[str, str]:
    """The alerts page's rows by kind: the sentence cell's text and links."""
    found = re.findall(r'data-kind="([a-z_]+)">(.*?)</tr>', page, flags=re.S)
    return {kind: html.unescape(re.sub(r"\s+", " ", body)) for kind, body in found}


async def test_every_alert_kind_reads_as_one_chinese_sentence(api: Api) -> None:
    await api.hall("hall-a", name="天河区政务服务中心")
    service = await api.service("hall-a", daily_capacity=700)
    body = {"service_id": service["id"], "date_from": "2026-12-07", "date_to": "2026-12-07"}
    body |= {"daily_capacity": 1400, "reason": "延时服务"}
    hall_admin = await new_admin(api, "tianhe", "hall-a", 2)
    made = await api.client.post("/api/v1/admin/capacity-requests", json=body, headers=hall_admin)
    assert made.status_code == 201, made.text
    await api.set_clock(NOW)  # over 01:00 (calendar_check) and 00:00 of the next working day (G20)
    await api.set_clock("2026-12-03T09:00:00+08:00")
    await _raise_figure_alerts(api, service["id"])
    alerts = (await api.client.get("/api/v1/admin/alerts", headers=api.admin())).json()
    assert {a["kind"] for a in alerts} == set(SENTENCES)
    assert any("No national calendar data" in a["detail"] for a in alerts)  # the API keeps English

    for username, password in (("root", None), ("tianhe", "tianhe-password-2026")):
        await api.client.post("/admin/logout")
        api.client.cookies.clear()
        login = await console_login(api, username, *([password] if password else []))
        assert login.status_code == 303, login.text
        page = await api.client.get("/admin/alerts")
        assert page.status_code == 200
        shown = rows(page.text)
        kinds = set(SENTENCES) - ({"calendar_missing"} if username == "tianhe" else set())
        assert set(shown) == kinds  # a hall admin sees the hall's alerts, not the platform's
        for kind in kinds:
            assert SENTENCES[kind] in shown[kind], (kind, shown[kind])
        assert not latin_words(page.text), latin_words(page.text)
        assert "service " not in page.text and "hall-a" not in re.sub(r'href="[^"]*"', "", page.text)

    # the remedies: a capacity request pre-filled with the suggestion, the calendar, the chart
    sold = rows(page.text)["sold_out_fast"]
    link = re.search(r'href="(/admin/capacity\?[^"]+)" data-remedy>按建议申请调整号源', sold)
    assert link and "daily_capacity=1200" in link.group(1) and "date_from=2026-12-04" in link.group(1)
    form = await api.client.get(html.unescape(link.group(1)))
    assert form.status_code == 200
    assert 'name="daily_capacity" type="number" min="0" max="100000" required value="1200"' in form.text
    assert 'name="date_from" type="date" required value="2026-12-04"' in form.text
    assert re.search(rf'<option value="{service["id"]}" selected>', form.text)
    assert "data-chart>查看统计图表" in sold and "/admin/dashboard?unit_id=hall-a" in sold
    assert '/admin/capacity" data-remedy>去审批号源调整' in rows(page.text)["approval_overdue"]
    await api.client.post("/admin/logout")
    api.client.cookies.clear()
    assert (await console_login(api)).status_code == 303
    platform = rows((await api.client.get("/admin/alerts")).text)
    assert 'href="/admin/calendar" data-remedy>录入工作日日历' in platform["calendar_missing"]
    home = await api.client.get("/admin")
    assert 'href="/admin/alerts"' in home.text and "数据异常" in home.text


async def test_a_bad_prefill_is_refused_with_a_chinese_page(api: Api) -> None:
    await api.hall("hall-a", name="天河区政务服务中心")
    assert (await console_login(api)).status_code == 303
    for query in ("daily_capacity=-1", "daily_capacity=100001", "date_from=2026-13-01"):
        page = await api.client.get(f"/admin/capacity?{query}")
        assert page.status_code == 422, (query, page.status_code)
        assert not latin_words(page.text), (query, latin_words(page.text))
