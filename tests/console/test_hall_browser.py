"""A clerk's morning in a real browser (issue 10 items 1-3): Playwright driving Debian's Chromium
against a live `yuyue serve` (fresh SQLite, Guangzhou demo, clock at Tue 2026-12-01 10:00).

The clerk logs in, checks a booked citizen in at the desk, issues a green-channel ticket, prints it,
and calls next with the keyboard shortcut on the counter screen, while the hall display, open in a
second window, shows the call live (no reload). Every page is screenshotted under
test-artefacts/console/ and checked with axe-core (no serious or critical violation)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser import Browser, Page, check_page, chromium, serve_live
from tests.ids import resident_id

HALL = "tianhe-hall"
HALL_NAME = "天河区政务服务中心"
CLERK, CLERK_PASSWORD = "th-clerk-1", "counter-clerk-2026"
DESKTOP = {"width": 1280, "height": 900}
SCREEN = {"width": 1920, "height": 1080}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_live(tmp_path_factory.mktemp("hall-live")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(live: str) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _setup(live: str) -> dict[str, Any]:
    """Through the API: a clerk account at the Tianhe hall (demo admin), and a citizen booked on
    site into today's 10:00 slot of 居民身份证申领."""
    admin = httpx.post(
        f"{live}/api/v1/admin/login", json={"username": "admin", "password": "yuyue-admin-2026"}
    ).json()["token"]
    made = httpx.post(
        f"{live}/api/v1/admin/halls/{HALL}/staff",
        json={"username": CLERK, "password": CLERK_PASSWORD, "name": "王窗口", "counter_id": None},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert made.status_code == 201, made.text
    services = httpx.get(f"{live}/api/v1/halls/{HALL}/services").json()
    service = next(s for s in services if s["name"] == "居民身份证申领")
    id_number = resident_id(301)
    citizen = httpx.post(
        f"{live}/api/v1/auth/dev/login",
        json={"name": "李市民", "id_type": "resident_id", "id_number": id_number, "phone": "13912345678"},
    ).json()["token"]
    assert citizen
    staff = httpx.post(f"{live}/api/v1/staff/login", json={"username": CLERK, "password": CLERK_PASSWORD})
    booked = httpx.post(  # rule G10: on site is booked at the desk, not with the citizen's own token
        f"{live}/api/v1/halls/{HALL}/bookings",
        json={
            "slot_id": f"{service['id']}-202612011000",
            "name": "李市民",
            "id_type": "resident_id",
            "id_number": id_number,
            "phone": "13912345678",
        },
        headers={"Authorization": f"Bearer {staff.json()['token']}"},
    )
    assert booked.status_code == 201, booked.text
    return {
        "service": service,
        "id_number": id_number,
        "booking": booked.json()["number"],
        "staff": {"Authorization": f"Bearer {staff.json()['token']}"},
    }


def _errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_a_clerks_morning(browser: Browser, live: str) -> None:
    from playwright.sync_api import expect  # the dev extra (tests.browser skips without it)

    data = _setup(live)
    clerk_context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = clerk_context.new_page()
    errors = _errors(page)

    # log in as 窗口工作人员
    page.goto(f"{live}/admin/login")
    page.get_by_label("窗口工作人员").check()
    page.get_by_label("用户名").fill(CLERK)
    page.get_by_label("密码").fill(CLERK_PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r"/admin$"))
    assert HALL_NAME in page.locator("main").inner_text()

    # the desk: check the booked citizen in (rules T3, M7)
    page.get_by_role("link", name=re.compile("取号台")).click()
    page.wait_for_url(re.compile(rf"/admin/halls/{HALL}/desk"))
    check_page(page, "console", "hall-desk")
    page.locator("#checkin-id-number").fill(data["id_number"])
    page.get_by_role("button", name="签到取号").click()
    page.wait_for_url(re.compile(r"done=checkin"))
    issued = page.locator(".issued").inner_text()
    assert "A001" in issued and data["id_number"] not in page.content()

    # a green-channel ticket for an elderly citizen (rules G10, M3)
    page.get_by_label("办理事项").select_option(str(data["service"]["id"]))
    page.get_by_label(re.compile("绿色通道 · 老年人")).check()
    page.locator("#ticket-id-number").fill(resident_id(302, birth="19480302"))
    page.get_by_role("button", name="出号").click()
    page.wait_for_url(re.compile(r"done=ticket"))
    assert "G001" in page.locator(".issued").inner_text()
    check_page(page, "console", "hall-desk-issued")

    # the printable ticket
    page.get_by_role("link", name="打印号票 G001").click()
    page.wait_for_url(re.compile(r"/tickets/\w+G001$"))
    assert page.get_by_role("button", name="打印号票").is_visible()  # console.js shows it
    page.emulate_media(media="print")
    check_page(page, "console", "hall-ticket-print")
    text = page.locator("main").inner_text()
    for expected in ("G001", "居民身份证申领", HALL_NAME, "前面还有", "取号时间"):
        assert expected in text, expected
    assert not page.get_by_role("button", name="打印号票").is_visible()
    assert not page.locator("header.bar").is_visible()
    page.emulate_media(media="screen")

    # the hall display, open on the big screen (public, no login)
    screen_context = browser.new_context(viewport=SCREEN, locale="zh-CN")
    display = screen_context.new_page()
    display_errors = _errors(display)
    display.goto(f"{live}/halls/{HALL}/display")
    display.wait_for_selector("body[data-live=on]")
    assert display.locator("h1").inner_text() == HALL_NAME
    assert display.locator("#waiting").inner_text().split() == ["G001", "A001"]  # rule T4 order
    check_page(display, "console", "hall-display-waiting")
    display.evaluate("window.__notReloaded = true")
    # the same screen with voice (?voice=1): what speechSynthesis is asked to say, recorded
    spoken = screen_context.new_page()
    spoken_errors = _errors(spoken)
    spoken.add_init_script(
        "window.__said = []; if (window.speechSynthesis) "
        "window.speechSynthesis.speak = function (u) { window.__said.push(u.text + '|' + u.lang); };"
    )
    spoken.goto(f"{live}/halls/{HALL}/display?voice=1")
    spoken.wait_for_selector("body[data-live=on]")

    # the counter screen: the line in call order, then N calls the next one
    counters = httpx.get(f"{live}/api/v1/halls/{HALL}/counters", headers=data["staff"]).json()
    page.goto(f"{live}/admin/halls/{HALL}/counters/{counters[0]['id']}")
    page.wait_for_selector("[data-live-hall][data-live=on]")
    rows = page.locator("#line tbody tr").all_inner_texts()
    assert [r.split()[1] for r in rows] == ["G001", "A001"]
    assert (
        page.locator("#line .tag.green").count() == 1 and page.locator("#line .tag.appointment").count() == 1
    )
    check_page(page, "console", "hall-counter")
    with page.expect_navigation():
        page.keyboard.press("n")
    assert page.locator(".big-number").inner_text() == "G001"

    # the display shows the call live, without a reload, with the announcement text
    expect(display.locator("#latest .latest-number")).to_have_text("G001", timeout=10_000)
    announce = display.locator("#announce")
    assert announce.inner_text() == f"请 G001 号到 {counters[0]['name']} 办理"
    assert announce.get_attribute("aria-live") == "polite"
    assert display.evaluate("window.__notReloaded") is True
    expect(spoken.locator("#announce")).to_have_text(announce.inner_text())
    assert spoken.evaluate("window.__said") == [f"请 G001 号到 {counters[0]['name']} 办理|zh-CN"]
    expect(display.locator("#waiting li")).to_have_text(["A001"])
    check_page(display, "console", "hall-display")

    # next: the booked citizen, masked until the clerk asks (and that is audited)
    with page.expect_navigation():
        page.keyboard.press("n")
    assert page.locator(".big-number").inner_text() == "A001"
    facts = page.locator(".facts").inner_text()
    assert data["booking"] in facts and data["id_number"] not in facts and "李*" in facts
    check_page(page, "console", "hall-counter-serving")
    expect(display.locator("#latest .latest-number")).to_have_text("A001", timeout=10_000)

    with page.expect_navigation():
        page.get_by_role("button", name="查看完整信息").click()
    assert data["id_number"] in page.locator(".facts").inner_text()
    assert "已记入操作日志" in page.locator("main").inner_text()

    # the counter's line updates live (also on this posted page) when the desk issues a walk-in;
    # the revealed details stay as they are
    page.wait_for_selector("[data-live-hall][data-live=on]")
    walk = httpx.post(
        f"{live}/api/v1/halls/{HALL}/tickets",
        json={"service_id": data["service"]["id"], "id_type": "resident_id", "id_number": resident_id(303)},
        headers=data["staff"],
    )
    assert walk.status_code == 201, walk.text
    expect(page.locator("#line")).to_contain_text("W001", timeout=10_000)
    expect(display.locator("#waiting")).to_contain_text("W001", timeout=10_000)

    assert data["id_number"] in page.locator(".facts").inner_text()
    check_page(page, "console", "hall-counter-live")

    assert not errors, errors
    assert not display_errors, display_errors
    assert not spoken_errors, spoken_errors
    screen_context.close()
    clerk_context.close()


def test_the_display_says_a_same_day_closure_without_a_reload(browser: Browser, live: str) -> None:
    """Issue 18: a closure set for today (a power cut) shows 今日闭厅 on the open display at once,
    the same notice a fresh page renders, and goes when the closure is removed; no reload. (Runs
    after the clerk's morning: the closure cancels what is still booked today.)"""
    from playwright.sync_api import expect

    token = httpx.post(
        f"{live}/api/v1/admin/login", json={"username": "admin", "password": "yuyue-admin-2026"}
    ).json()["token"]
    admin = {"Authorization": f"Bearer {token}"}
    context = browser.new_context(viewport=SCREEN, locale="zh-CN")
    display = context.new_page()
    errors = _errors(display)
    display.goto(f"{live}/halls/{HALL}/display")
    display.wait_for_selector("body[data-live=on]")
    notice = display.locator(".display-closed")
    assert notice.count() == 0
    display.evaluate("window.__notReloaded = true")

    closed = httpx.put(
        f"{live}/api/v1/admin/units/{HALL}/closures/2026-12-01", json={"note": "停电检修"}, headers=admin
    )
    assert closed.status_code == 200, closed.text
    expect(notice.locator("h2")).to_have_text("今日闭厅", timeout=5_000)
    expect(notice.locator("p")).to_have_text("停电检修：今天不再取号。已取号的市民请留意叫号。")
    assert notice.get_attribute("role") == "alert"
    fresh = context.new_page()
    fresh.goto(f"{live}/halls/{HALL}/display")
    assert fresh.locator(".display-closed").inner_text() == notice.inner_text()  # what the page renders
    fresh.close()
    check_page(display, "console", "hall-display-closed")

    reopened = httpx.delete(f"{live}/api/v1/admin/units/{HALL}/closures/2026-12-01", headers=admin)
    assert reopened.status_code == 204, reopened.text
    expect(notice).to_have_count(0, timeout=5_000)
    assert display.evaluate("window.__notReloaded") is True
    assert not errors, errors
    context.close()
