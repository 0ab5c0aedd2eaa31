"""The admin console's manage pages in a real browser (issue 10 item 4): Playwright driving Debian's
Chromium against a live `yuyue serve` (fresh SQLite, Guangzhou demo, clock at Tue 2026-12-01 10:00).

The Tianhe district hall's L2 admin asks for more capacity (rule G20) and logs out; the district's
L1 admin logs in, finds the request pending and approves it; then every manage page (unit tree,
hall page with its policy, capacity, waiting list, alerts, bans with a lookup, admins, audit) is
screenshotted at 1280×900 under test-artefacts/console/ and checked with axe-core (no serious or
critical violation)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.browser import Browser, Page, check_page, chromium, serve_live
from tests.ids import resident_id

DESKTOP = {"width": 1280, "height": 900}
HALL, HALL_NAME = "tianhe-hall", "天河区政务服务中心"
SERVICE = "居民身份证申领"
DAY = "2026-12-03"  # the 2nd working day after Tue 2026-12-01


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_live(tmp_path_factory.mktemp("manage-live")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(live: str) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def _login(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_url(f"{base}/admin")


def _check(page: Page, name: str) -> None:
    check_page(page, "console", name)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= DESKTOP["width"], f"{name}: {width}px wide"


def test_capacity_request_approved_by_the_superior_and_every_manage_page(live: str, browser: Browser) -> None:
    citizen = resident_id(401)
    made = httpx.post(
        f"{live}/api/v1/auth/dev/login",
        json={"name": "周市民", "id_type": "resident_id", "id_number": citizen, "phone": "13912345678"},
    )
    assert made.status_code == 200, made.text
    # a booking in Tianhe: outside the platform an admin finds only citizens with business in their
    # area (docs/api.md "Penalties")
    first = httpx.get(f"{live}/api/v1/halls/{HALL}/services").json()[0]
    week = httpx.get(
        f"{live}/api/v1/services/{first['id']}/availability",
        params={"from": "2026-12-04", "to": "2026-12-10"},
    ).json()
    open_slot = next(slot for day in week["days"] for slot in day["slots"] if slot["remaining"] > 0)
    booked = httpx.post(
        f"{live}/api/v1/appointments",
        json={"slot_id": open_slot["id"], "channel": "web"},
        headers={"Authorization": f"Bearer {made.json()['token']}"},
    )
    assert booked.status_code == 201, booked.text

    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    errors = _errors(page)

    # the hall's L2 admin asks for more seats on Thursday
    _login(page, live, "tianhehall", "yuyue-tianhehall-2026")
    page.get_by_role("link", name="号源调整", exact=True).click()
    page.wait_for_url(re.compile(r"/admin/capacity$"))
    _check(page, "manage-capacity-empty")
    option = page.locator("#req-service option", has_text=f"{HALL_NAME} · 公安户政 · {SERVICE}").first
    page.get_by_label("事项", exact=True).select_option(value=option.get_attribute("value"))
    page.get_by_label("开始日期", exact=True).fill(DAY)
    page.get_by_label("调整后的每日号源", exact=True).fill("84")
    page.get_by_label("原因", exact=True).fill("周四排队人数多，延时服务（5+X）")
    page.get_by_role("button", name="提交申请").click()
    page.wait_for_url(re.compile(r"/admin/capacity\?done=requested"))
    row = page.locator("tr[data-request]").first
    assert "待审批" in row.inner_text() and "等待上级审批" in row.inner_text()
    assert row.get_by_role("button", name="批准").count() == 0  # never the requester (G20)
    _check(page, "manage-capacity-requested")
    page.get_by_role("button", name="退出").click()
    page.wait_for_url(re.compile(r"/admin/login"))

    # the district's L1 admin sees it pending and approves it
    _login(page, live, "tianhe1", "yuyue-tianhe1-2026")
    page.get_by_role("link", name="号源调整", exact=True).click()
    row = page.locator("tr[data-request]").first
    assert row.get_attribute("data-status") == "pending"
    _check(page, "manage-capacity-pending")
    row.get_by_label("审批意见（可不填）").fill("同意，请做好现场引导")
    row.get_by_role("button", name="批准").click()
    page.wait_for_url(re.compile(r"/admin/capacity\?done=approved"))
    assert page.locator("tr[data-request]").first.get_attribute("data-status") == "approved"
    assert "已批准" in page.locator("[role=status]").first.inner_text()
    _check(page, "manage-capacity-approved")
    services = httpx.get(f"{live}/api/v1/halls/{HALL}/services").json()
    service = next(s for s in services if s["name"] == SERVICE)
    days = httpx.get(f"{live}/api/v1/services/{service['id']}/availability", params={"from": DAY, "to": DAY})
    seats = sum(slot["capacity"] for slot in days.json()["days"][0]["slots"])
    assert seats == 84 - sum(12 // 10 for _ in range(7))  # 12 a slot, 1 held back on site (G10)

    # every manage page, as the district admin sees it
    page.get_by_role("link", name="机构与大厅", exact=True).click()
    assert page.locator('[data-unit="yuexiu"]').count() == 0  # another district: not in the tree
    _check(page, "manage-units")
    page.get_by_role("link", name=HALL_NAME).first.click()
    page.wait_for_url(re.compile(rf"/admin/units/{HALL}$"))
    policy = page.locator('tr[data-knob="horizon_days"]')
    assert policy.get_attribute("data-where") == "inherited" and "继承自 天河区" in policy.inner_text()
    _check(page, "manage-hall")
    page.goto(f"{live}/admin/units/tianhe")
    assert page.locator('tr[data-knob="horizon_days"]').get_attribute("data-where") == "here"
    _check(page, "manage-district")
    page.get_by_role("link", name="排队", exact=True).click()
    _check(page, "manage-waitlist")
    page.goto(f"{live}/admin/waitlist?service_id={service['id']}")
    _check(page, "manage-waitlist-service")
    page.get_by_role("link", name="预警", exact=True).click()
    page.get_by_role("link", name="全部", exact=True).click()
    _check(page, "manage-alerts")
    page.get_by_role("link", name="限制预约", exact=True).click()
    _check(page, "manage-bans")
    page.get_by_label("证件号码").fill(citizen)
    page.get_by_role("button", name="查询").click()
    assert "周市民" in page.locator("main").inner_text()
    assert citizen not in page.url  # the ID number is posted, never put in a URL
    _check(page, "manage-bans-lookup")
    page.get_by_role("link", name="管理员", exact=True).click()
    page.get_by_text("登记管理员", exact=True).click()  # open the registration form
    _check(page, "manage-admins")
    page.get_by_role("link", name="操作日志", exact=True).click()
    actions = page.locator("tr[data-audit]").evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert actions[:3] == ["citizen.lookup", "capacity.approve", "capacity.request"]
    _check(page, "manage-audit")
    assert not errors, errors
    context.close()
