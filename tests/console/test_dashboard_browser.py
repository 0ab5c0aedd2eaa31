"""The dashboard in a real browser (issue 10 item 5): Debian's Chromium driven by Playwright against a
live `yuyue serve` on the Guangzhou demo, after a month of bookings.

The month is made through the HTTP API of an in-process app on the live server's database (the same
steps as dashboard_seed.py: bookings on every channel, cancels, the waiting list, check-ins, counters
calling and finishing, the no-show sweep), with the live server's own job runner off
(YUYUE_NO_JOBS=1) so that the clock can jump over idle nights. Screenshots (1280×900, full page) go
to test-artefacts/console/dashboard-*.png and every page passes axe-core (no serious or critical
violation) without a console error (the CSP refuses inline scripts).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.browser import Browser, Page, check_page, chromium, serve_live
from tests.conftest import Api
from tests.console.dashboard_seed import CHANNELS, FIRST, NOW, TODAY, Seeder, at, move, run_jobs, working_days
from yuyue.app import create_app
from yuyue.catalogue.service import clear_caches
from yuyue.config import Settings, get_settings

DESKTOP = {"width": 1280, "height": 900}
# (hall, service name, bookings on an ordinary day); the street hall is the busy one
VOLUME = [
    ("tianhe-shipai", "居住证办理", 7),
    ("tianhe-shipai", "灵活就业人员参保登记", 4),
    ("tianhe-shipai", "老年人优待证办理", 2),
    ("tianhe-hall", "居民身份证申领", 3),
    ("gz-hall", "往来港澳通行证签注", 2),
    ("yuexiu-hall", "社会保障卡申领", 2),
    ("panyu-hall", "发票领用", 2),
]
HOUR_WEIGHTS = {9: 5, 10: 6, 11: 4, 13: 1, 14: 3, 15: 3, 16: 2}
CHANNEL_WEIGHTS = {"provincial_portal": 8, "wechat": 6, "web": 3, "app": 3, "api": 1}
FULL_DAYS = (date(2026, 11, 18), date(2026, 11, 25))  # 老年人优待证办理 full: citizens queue


async def seed_demo(database_url: str) -> dict[str, int]:
    """A month of bookings in the demo halls, through the API of an in-process app."""
    settings = Settings(env="test", database_url=database_url, rate_limits="off", log_level="WARNING")
    clear_caches()
    app = create_app(settings, run_jobs=False)
    made: dict[str, int] = defaultdict(int)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            api = Api(client, app)
            login = await client.post(
                "/api/v1/admin/login", json={"username": "admin", "password": "yuyue-admin-2026"}
            )
            assert login.status_code == 200, login.text
            api.admin_token = login.json()["token"]
            services: dict[str, int] = {}
            seats_of: dict[str, dict[int, int]] = {}  # off-site seats per hour of an ordinary day
            for hall, name, _ in VOLUME:
                listed = (await client.get(f"/api/v1/halls/{hall}/services")).json()
                services[name] = next(s["id"] for s in listed if s["name"] == name)
                seats_of[name] = {
                    int(slot["start"][11:13]): slot["capacity"]
                    for slot in await api.slots(services[name], "2026-12-03")
                }
            seeder = Seeder(api, api.admin(), services)
            hall_of = {name: hall for hall, name, _ in VOLUME}
            rng = random.Random(2026)
            n = 0
            queued: list[tuple[int, int]] = []
            for day in working_days(FIRST, TODAY):
                await move(api, at(day - timedelta(days=1), 19))
                if queued and day in (date(2026, 11, 23), date(2026, 11, 30)):
                    for citizen, entry in queued[:2]:  # some queued citizens give up
                        await seeder.leave(citizen, entry)
                    del queued[:2]
                taken: dict[tuple[str, int], int] = defaultdict(int)
                plan: list[tuple[int, str, int, str]] = []
                keep: set[int] = set()  # the bookings of a full day: never cancelled
                busy = 1.3 if day.weekday() == 0 else 0.8 if day.weekday() == 4 else 1.0
                for _, name, volume in VOLUME:
                    hours = list(seats_of[name])
                    full = name == "老年人优待证办理" and day in FULL_DAYS
                    count = round(volume * busy * rng.uniform(0.7, 1.3))
                    if full:
                        count = sum(seats_of[name].values())
                    for k in range(count):
                        if full:  # every seat of the day
                            hour = hours[k % len(hours)]
                        else:
                            hour = rng.choices(hours, [HOUR_WEIGHTS[h] for h in hours])[0]
                        if taken[(name, hour)] >= seats_of[name][hour]:
                            continue  # that hour is full: not booked
                        taken[(name, hour)] += 1
                        n += 1
                        channel = rng.choices(list(CHANNEL_WEIGHTS), list(CHANNEL_WEIGHTS.values()))[0]
                        plan.append((n, name, hour, channel))
                        if full:
                            keep.add(n)
                outcomes: dict[int, str] = {}
                for citizen, name, hour, channel in plan:
                    await seeder.book(citizen, name, day, hour, channel)
                    made["booked"] += 1
                    roll = max(rng.random(), 0.08) if citizen in keep else rng.random()
                    if roll < 0.08:
                        await seeder.cancel(citizen)
                        outcomes[citizen] = "cancel"
                    elif roll < 0.17:
                        outcomes[citizen] = "no_show"
                    elif roll < 0.45:
                        outcomes[citizen] = "serve"
                    else:
                        outcomes[citizen] = "checkin"
                if day in FULL_DAYS:  # the day is full: citizens queue for it
                    for _ in range(4):
                        n += 1
                        entry = await seeder.wait_for(n, "老年人优待证办理", day, rng.choice(CHANNELS))
                        queued.append((n, entry))
                        made["queued"] += 1
                for hour in sorted(HOUR_WEIGHTS):
                    if day == TODAY and hour >= NOW.hour:
                        break
                    of_hour = [p for p in plan if p[2] == hour]
                    serve = [p for p in of_hour if outcomes[p[0]] == "serve"]
                    if not of_hour:
                        continue
                    await move(api, at(day, hour, 5))
                    for citizen, name, _, _ in serve:
                        await seeder.checkin(citizen, hall_of[name])
                    if serve:
                        await move(api, at(day, hour, 5 + rng.randint(5, 25)))
                        for _, name, _, _ in serve:
                            await seeder.serve_next(hall_of[name])
                    await move(api, at(day, hour, 35))
                    for citizen, name, _, _ in of_hour:
                        if outcomes[citizen] == "checkin":
                            await seeder.checkin(citizen, hall_of[name])
                if day < TODAY:
                    await run_jobs(api, at(day, 17, 0), at(day, 17, 20))
            await run_jobs(api, at(TODAY, 9, 40), NOW)
    clear_caches()
    return dict(made)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("dashboard")
    with serve_live(folder, YUYUE_NO_JOBS="1") as base:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("YUYUE_ENV", "test")
            get_settings.cache_clear()
            made = asyncio.run(seed_demo(f"sqlite:///{folder / 'live.sqlite3'}"))
            get_settings.cache_clear()
        assert made["booked"] > 350, made
        time.sleep(1.2)  # the live server re-reads the shared clock at most once a second
        yield base


@pytest.fixture(scope="module")
def browser(live: str) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def open_page(browser: Browser) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport=DESKTOP, locale="zh-CN")
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    return page, errors


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login?next=%2Fadmin%2Fdashboard")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/admin/dashboard")


def charts_drawn(page: Page) -> None:
    charts = page.locator("figure.chart svg")
    assert charts.count() == 4
    for i in range(4):
        chart = charts.nth(i)
        assert chart.get_attribute("role") == "img" and chart.get_attribute("aria-label")
        box = chart.bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 200
        assert chart.locator("text").count() > 5  # titles, labels, legends
    titles = page.locator("figure.chart svg g.titles text.plot_title").all_text_contents()
    assert titles == ["每日预约、取号、爽约与取消", "各大厅号源使用率", "预约渠道构成", "预约排队人数"]


def test_platform_admin_sees_the_month(live: str, browser: Browser) -> None:
    page, errors = open_page(browser)
    log_in(page, live, "admin", "yuyue-admin-2026")
    assert page.locator("h1").inner_text() == "预约统计 · 广州市统一预约平台"
    assert page.get_by_label("开始日期").input_value() == "2026-11-02"
    assert page.get_by_label("结束日期").input_value() == "2026-12-15"  # and the next 14 days (issue 20)
    charts_drawn(page)
    assert int(page.locator('[data-kpi="booked"]').inner_text()) > 350
    # x labels of 44 days are thinned: never all of them, none overlapping its neighbour
    labels = page.locator("figure.chart").first.locator("g.axis.x text").all()
    boxes = [b for b in (label.bounding_box() for label in labels) if b and b["width"] > 0]
    assert 10 <= len(boxes) <= 17
    for left, right in zip(boxes, boxes[1:]):
        assert left["x"] + left["width"] <= right["x"] + 1
    check_page(page, "console", "dashboard-platform")
    assert not errors, errors

    # a district from the unit list: its halls only
    page.get_by_label("单位（含下属单位）").select_option("tianhe")
    page.get_by_role("button", name="查看").click()
    page.wait_for_url("**unit_id=tianhe**")
    assert page.locator("h1").inner_text() == "预约统计 · 天河区"
    halls = page.locator("#table-hall tbody th").all_text_contents()
    assert set(halls) == {
        "天河区政务服务中心",
        "天河区石牌街政务服务中心",
        "天河区天河南街政务服务中心",
        "石牌村党群服务站",
    }
    charts_drawn(page)
    check_page(page, "console", "dashboard-tianhe")
    assert not errors, errors

    # a street hall over a shorter period, with the waiting list of its full days
    page.goto(f"{live}/admin/dashboard?unit_id=tianhe-shipai&from=2026-11-16&to=2026-11-30")
    charts_drawn(page)
    assert page.locator("#table-fill td.heat-2, #table-fill td.heat-3").count() > 0  # busy hours show
    waiting = page.locator('#table-day tr[data-key="2026-11-25"] td[data-col="waiting"]').inner_text()
    assert int(waiting) >= 4
    check_page(page, "console", "dashboard-street-hall")

    # the downloads answer from the page's links
    with page.expect_download() as download:
        page.get_by_role("link", name="下载 Excel（全部表格）").click()
    assert download.value.suggested_filename.endswith(".xlsx")

    # bad dates: the same page with the form and what to correct
    page.goto(f"{live}/admin/dashboard?from=2026-12-01&to=2026-11-01")
    alert = page.get_by_role("alert")
    assert alert.get_attribute("data-code") == "invalid_period"
    assert "结束日期早于开始日期" in alert.inner_text()
    check_page(page, "console", "dashboard-bad-dates")
    assert [e for e in errors if "status of 422" not in e] == []
    page.close()


def test_district_admin_cannot_look_elsewhere(live: str, browser: Browser) -> None:
    page, errors = open_page(browser)
    log_in(page, live, "tianhe1", "yuyue-tianhe1-2026")
    assert page.locator("h1").inner_text() == "预约统计 · 天河区"
    options = page.locator("#unit_id option").evaluate_all("(os) => os.map((o) => o.value)")
    assert options[0] == "tianhe" and "gz-hall" not in options and "yuexiu" not in options
    charts_drawn(page)
    answer = page.goto(f"{live}/admin/dashboard?unit_id=yuexiu")
    assert answer is not None and answer.status == 403
    assert page.get_by_role("alert").get_attribute("data-code") == "forbidden"
    check_page(page, "console", "dashboard-forbidden")
    page.close()
