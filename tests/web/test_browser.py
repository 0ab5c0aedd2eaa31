"""The citizen portal in a real browser (issue 8): Playwright driving Debian's Chromium
(/usr/bin/chromium, headless, never a downloaded browser) against a live `yuyue serve` on a
throwaway SQLite database with the Guangzhou demo loaded and the clock at Tue 2026-12-01 10:00.

Each step is screenshotted under test-artefacts/web/ and checked with axe-core: no serious or
critical violation on any page. In CI (CI=true) a missing Chromium fails these tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import ARTEFACTS_ROOT, Axe, Browser, Page, chromium, require_browser, serve_live
from tests.ids import resident_id

ARTEFACTS = ARTEFACTS_ROOT / "web"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    with serve_live(tmp_path_factory.mktemp("live")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(live: str) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Steps:
    """One browser page of one scenario: screenshots and axe checks at every step."""

    def __init__(self, page: Page, base: str, scenario: str) -> None:
        self.page, self.base, self.scenario = page, base, scenario
        self.count = 0
        self.confirm_url = ""
        self.console_errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        ARTEFACTS.mkdir(parents=True, exist_ok=True)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def check(self, name: str, *, error_page: bool = False) -> None:
        """Screenshot the page and run axe-core on it: no serious or critical violation (issue 8 item 5)."""
        self.count += 1
        self.page.screenshot(
            path=str(ARTEFACTS / f"{self.scenario}-{self.count:02d}-{name}.png"), full_page=True
        )
        results = Axe().run(self.page)
        bad = [
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, f"{name}: {bad}"
        if error_page:  # Chromium logs the page's own 4xx status as a console error
            self.console_errors[:] = [
                e for e in self.console_errors if "server responded with a status of 4" not in e
            ]
        assert not self.console_errors, self.console_errors  # CSP refusals, script errors
        # no page is wider than the screen (a 360 px phone must not scroll sideways)
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= self.page.viewport_size["width"], f"{name}: {width}px wide"

    def login(self, id_number: str, name: str = "李小明", phone: str = "13912345678") -> None:
        page = self.page
        page.get_by_label("姓名").fill(name)
        page.get_by_label("证件号码").fill(id_number)
        page.get_by_label("手机号码").fill(phone)
        page.get_by_role("button", name="登录", exact=True).click()


def _context(browser: Browser, viewport: dict[str, int], **extra: Any) -> Any:
    return browser.new_context(viewport=viewport, locale="zh-CN", **extra)


def _book(steps: Steps, id_number: str, *, search_item: bool) -> str:
    """Rule T10 end to end: notice → hall → department → item → date and slot → login → confirm →
    success page with number, address, hotline, check-in window, cancel deadline; receipt."""
    page = steps.page
    steps.go("/")
    steps.check("notice")
    page.get_by_label("我已阅读并同意预约须知").check()
    page.get_by_role("button", name="开始预约").click()
    steps.check("halls")
    if search_item:
        page.get_by_label("要办的事项").fill("身份证")
        page.get_by_role("button", name="查找").click()
    else:
        page.get_by_label("所在区域").select_option(label="天河区")  # portal.js submits on change
        page.wait_for_url(re.compile(r"under=tianhe"))
    page.get_by_role("link", name="天河区政务服务中心").click()
    steps.check("hall")
    page.get_by_role("link", name="居民身份证申领").click()
    page.wait_for_url(re.compile(r"/services/\d+"))
    steps.check("calendar")
    page.locator("a.slot.open").first.click()
    page.wait_for_url(re.compile(r"/login"))
    steps.check("login")
    steps.login(id_number)
    page.wait_for_url(re.compile(r"/confirm"))
    steps.confirm_url = page.url
    steps.check("confirm")
    body = page.locator("main").inner_text()
    assert "李**" in body and id_number[-4:] in body and id_number not in body and "139****5678" in body
    page.get_by_label("换领").check()
    page.get_by_role("button", name="提交预约").click()
    page.wait_for_url(re.compile(r"/bookings/I\d+\?done=booked"))
    steps.check("success")
    text = page.locator("main").inner_text()
    number = re.search(r"I\d{14,}", text).group(0)
    for expected in ("预约成功", "广州市天河区天河路242号", "020-38622345", "取号时间", "取消截止"):
        assert expected in text, expected
    return number


def _receipt(steps: Steps, number: str) -> None:
    page = steps.page
    page.get_by_role("link", name="打印回执").click()
    page.wait_for_url(re.compile(r"/receipt$"))
    steps.count += 1
    page.screenshot(path=str(ARTEFACTS / f"{steps.scenario}-{steps.count:02d}-receipt.png"), full_page=True)
    assert number in page.locator("main").inner_text() and page.locator("svg").count() == 1
    pdf = page.request.get(f"{steps.base}/bookings/{number}/receipt?format=pdf")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    page.go_back()
    steps.console_errors.clear()  # the receipt (booking/receipt.py's page) asks for /favicon.ico


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone-360", "desktop"])
def test_whole_booking_flow_and_cancel(browser: Browser, live: str, viewport: dict[str, int]) -> None:
    scenario = "phone" if viewport is PHONE else "desktop"
    context = _context(browser, viewport)
    steps = Steps(context.new_page(), live, scenario)
    number = _book(steps, resident_id(101 if viewport is PHONE else 102), search_item=viewport is PHONE)
    _receipt(steps, number)
    page = steps.page
    # my bookings → the booking → cancel, with the deadline and a confirmation (rules T8, G13)
    page.get_by_role("link", name="我的预约", exact=True).first.click()
    steps.check("my-bookings")
    page.get_by_role("link", name="居民身份证申领").first.click()
    page.get_by_role("link", name="取消预约").click()
    steps.check("cancel-confirm")
    assert "取消截止" in page.locator("main").inner_text()
    page.get_by_role("button", name="确定取消").click()
    page.wait_for_url(re.compile(r"done=cancelled"))
    steps.check("cancelled")
    assert "已取消预约" in page.locator("main").inner_text()
    context.close()


def test_errors_are_pages_in_plain_chinese(browser: Browser, live: str) -> None:
    """Booking the same item twice (rule T5): a page saying what happened and what to do next."""
    context = _context(browser, PHONE)
    steps = Steps(context.new_page(), live, "errors")
    _book(steps, resident_id(103), search_item=True)
    page = steps.page
    page.goto(steps.confirm_url)  # the same item again
    page.get_by_role("button", name="提交预约").click()
    steps.check("already-booked", error_page=True)
    text = page.locator("main").inner_text()
    assert "您已经有一个该事项的预约" in text and "下一步" in text and "{" not in text
    steps.go("/bookings/I999999999999999")
    steps.check("not-found", error_page=True)
    assert "没有找到" in page.locator("main").inner_text()
    context.close()


def test_elder_mode_sizes_and_targets(browser: Browser, live: str) -> None:
    """≥ 18 px base type, ≥ 24 px in elder mode, targets ≥ 48 px high (issue 8 item 5)."""
    context = _context(browser, PHONE)
    steps = Steps(context.new_page(), live, "elder")
    page = steps.page
    steps.go("/")

    def base_px() -> float:
        return float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))

    def small_targets() -> list[str]:
        return page.evaluate(
            """() => [...document.querySelectorAll(
                    'main button, main .button, main a.slot, main input:not([type=checkbox]), '
                    + 'main label.check, main select, header button')]
                .filter(e => e.offsetParent !== null)
                .filter(e => e.getBoundingClientRect().height < 48)
                .map(e => e.outerHTML.slice(0, 80))"""
        )

    assert base_px() >= 18
    assert small_targets() == []
    page.get_by_role("button", name="长辈模式").click()
    page.wait_for_load_state()
    assert base_px() >= 24
    assert page.get_by_role("button", name="长辈模式：开").get_attribute("aria-pressed") == "true"
    steps.check("home")
    page.get_by_label("我已阅读并同意预约须知").check()
    page.get_by_role("button", name="开始预约").click()
    page.get_by_label("要办的事项").fill("身份证")
    page.get_by_role("button", name="查找").click()
    steps.check("halls")
    page.get_by_role("link", name="天河区政务服务中心").click()
    page.get_by_role("link", name="居民身份证申领").click()
    page.wait_for_url(re.compile(r"/services/\d+"))
    steps.check("calendar")
    assert base_px() >= 24 and small_targets() == []
    # simpler steps: only days that can be booked are listed, without the step bar
    assert page.locator(".day-not_yet_open, .day-closed").count() == 0
    assert not page.locator(".steps").is_visible()
    page.get_by_role("button", name="长辈模式：开").click()
    page.wait_for_load_state()
    assert 18 <= base_px() < 24
    context.close()


def test_keyboard_only_booking(browser: Browser, live: str) -> None:
    """Tab, Space, Enter and typing only: the whole T10 flow, with a visible focus ring."""
    context = _context(browser, DESKTOP)
    steps = Steps(context.new_page(), live, "keyboard")
    page = steps.page
    keyboard = page.keyboard

    def tab_to(matches: str, limit: int = 80) -> None:
        for _ in range(limit):
            keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const e = document.activeElement; return {matches}; }})()"):
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", f"no focus ring on {matches}"
                return
        raise AssertionError(f"Tab never reached {matches}")

    steps.go("/")
    tab_to("e.name === 'agree'")
    keyboard.press("Space")
    tab_to("e.textContent.trim() === '开始预约'")
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/halls"))
    tab_to("e.id === 'item'")
    keyboard.type("身份证")
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"item="))
    tab_to("e.querySelector('.ds-choice-title')?.textContent.trim() === '天河区政务服务中心'")
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/halls/tianhe-hall"))
    tab_to("e.querySelector('.ds-choice-title')?.textContent.trim() === '居民身份证申领'")
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/services/\d+"))
    tab_to("e.classList.contains('slot') && e.classList.contains('open')")
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/login"))
    for field_id, value in (("name", "王五"), ("id_number", resident_id(104)), ("phone", "13700001111")):
        tab_to(f"e.id === '{field_id}'")
        keyboard.type(value)
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/confirm"))
    steps.check("confirm")
    tab_to("e.textContent.trim() === '提交预约'")
    keyboard.press("Enter")
    page.wait_for_url(re.compile(r"done=booked"))
    steps.check("success")
    assert "预约成功" in page.locator("main").inner_text()
    context.close()


def test_works_without_javascript(browser: Browser, live: str) -> None:
    """The core flow is plain HTML forms: with JavaScript off a citizen still books."""
    context = _context(browser, PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(live + "/")
    page.get_by_label("我已阅读并同意预约须知").check()
    page.get_by_role("button", name="开始预约").click()
    page.get_by_label("要办的事项").fill("社会保障卡")
    page.get_by_role("button", name="查找").click()
    page.get_by_role("link", name="越秀区政务服务中心").click()
    page.get_by_role("link", name="社会保障卡申领").click()
    page.locator("a.slot.open").first.click()
    Steps.login(Steps(page, live, "nojs"), resident_id(105))
    page.get_by_role("button", name="提交预约").click()
    page.wait_for_url(re.compile(r"done=booked"))
    page.screenshot(path=str(ARTEFACTS / "nojs-01-success.png"), full_page=True)
    assert "预约成功" in page.locator("main").inner_text()
    context.close()


def test_kiosk_walk_in_and_green(browser: Browser, live: str) -> None:
    """The hall's self-service machine (issue 8 item 6): set up with a kiosk token, a walk-in ticket
    and an elderly green-channel ticket, in elder sizes, printable."""
    import httpx

    admin = httpx.post(
        f"{live}/api/v1/admin/login", json={"username": "admin", "password": "yuyue-admin-2026"}
    ).json()["token"]
    made = httpx.post(
        f"{live}/api/v1/admin/halls/tianhe-hall/kiosks",
        json={"name": "1号自助机"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert made.status_code == 201, made.text
    context = _context(browser, {"width": 1080, "height": 1400})
    steps = Steps(context.new_page(), live, "kiosk")
    page = steps.page
    steps.go("/kiosk")
    steps.check("setup", error_page=True)  # not set up yet: 401 with the set-up form
    page.get_by_label("自助机令牌").fill(made.json()["token"])
    page.get_by_role("button", name="保存并启用").click()
    page.wait_for_url(re.compile(r"/kiosk$"))
    steps.check("home")
    assert float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")) >= 24
    page.get_by_role("link", name="没有预约：现场取号").click()
    steps.check("walk-in-form")
    assert page.locator("input[name=service_id]:checked").count() == 0  # nothing chosen for them
    radio_box = page.locator("label.ds-option").first.bounding_box()
    assert radio_box and radio_box["height"] >= 60  # a card at arm's length, not a 13 px radio
    page.locator("label.ds-option").first.click()
    page.get_by_label("证件号码").fill(resident_id(120))
    page.get_by_role("button", name="取号").click()
    steps.check("walk-in-ticket")
    assert "取号成功" in page.locator("main").inner_text()
    page.get_by_role("link", name="完成").click()
    page.get_by_role("link", name="60岁以上老人：绿色通道").click()
    page.locator("label.ds-option").first.click()
    page.get_by_label("证件号码").fill(resident_id(121, birth="19480302"))
    page.get_by_role("button", name="取号").click()
    steps.check("green-ticket")
    text = page.locator("main").inner_text()
    assert "（绿色通道）" in text and resident_id(121, birth="19480302") not in text
    page.emulate_media(media="print")
    steps.count += 1
    page.screenshot(path=str(ARTEFACTS / f"kiosk-{steps.count:02d}-print.png"), full_page=True)
    assert not page.get_by_role("button", name="打印号票").is_visible()
    context.close()


@pytest.mark.parametrize("elder", [False, True], ids=["standard", "elder"])
def test_every_page_at_360_and_1280(browser: Browser, live: str, elder: bool) -> None:
    """Issue 20: a screenshot of every citizen page at 360 px and 1280 px, in the chosen mode, into
    test-artefacts/web/tour-*; axe finds no serious or critical violation on any, the receipt
    included; on a phone "开始预约" is above the fold and main choices are at least 48 (60) px."""
    mode = "elder" if elder else "standard"
    target = 60 if elder else 48
    for width, height in ((360, 740), (1280, 900)):
        context = _context(browser, {"width": width, "height": height})
        context.add_cookies([{"name": "yuyue_elder", "value": "1" if elder else "0", "url": live}])
        steps = Steps(context.new_page(), live, f"tour-{mode}-{width}")
        page = steps.page
        steps.go("/")
        steps.check("home")
        start = page.get_by_role("button", name="开始预约").bounding_box()
        assert start and start["y"] + start["height"] <= height, "开始预约 below the fold"
        page.get_by_label("我已阅读并同意预约须知").check()
        page.get_by_role("button", name="开始预约").click()
        page.get_by_label("要办的事项").fill("社保")
        page.get_by_role("button", name="查找").click()
        steps.check("halls-search")
        small = page.evaluate(
            f"[...document.querySelectorAll('main .ds-choice, main .button, main button')]"
            f".filter(e => e.offsetParent && e.getBoundingClientRect().height < {target}).length"
        )
        assert small == 0, f"{small} targets under {target}px"
        page.locator(".ds-choice").first.click()
        steps.check("hall")
        assert "绿色通道" in page.locator("main").inner_text()
        page.locator("main .ds-choice").first.click()
        page.wait_for_url(re.compile(r"/services/\d+"))
        steps.check("calendar")
        page.locator("a.slot.open").first.click()
        page.wait_for_url(re.compile(r"/login"))
        page.get_by_role("button", name="登录", exact=True).click()  # empty form: every field flagged
        steps.check("login-errors", error_page=True)
        assert page.locator("[aria-invalid=true]").count() == 3
        steps.login(resident_id(150 + width // 100 + (7 if elder else 0)))
        page.wait_for_url(re.compile(r"/confirm"))
        steps.check("confirm")
        page.get_by_role("button", name="提交预约").click()
        page.wait_for_url(re.compile(r"done=booked"))
        steps.check("success")
        number = re.search(r"/bookings/(I\d+)", page.url).group(1)
        steps.go(f"/bookings/{number}/receipt")
        steps.check("receipt")
        assert page.get_by_role("button", name="打印回执").is_visible()
        assert (
            page.locator(".ds-number")
            .first.evaluate("e => getComputedStyle(e).fontFamily")
            .startswith('"DejaVu Sans Mono"')
        )
        steps.go("/bookings")
        steps.check("my-bookings")
        steps.go(f"/bookings/{number}/cancel")
        steps.check("cancel")
        page.get_by_role("button", name="确定取消").click()
        page.wait_for_url(re.compile(r"done=cancelled"))
        steps.go(f"/bookings/{number}/reschedule")  # cancelled: an error page in plain Chinese
        steps.check("error", error_page=True)
        context.close()
