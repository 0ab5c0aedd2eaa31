"""Every console page in both modes (standard, 长辈模式) at 360 and 1280 px (issue 20), in Debian's
Chromium (Playwright, never a downloaded browser) against a live `yuyue serve` with the Guangzhou
demo: the platform admin walks every console page reachable from the home page (one page of each
kind: one unit, one hall, one counter …), each screenshotted under test-artefacts/console/tour-*
and checked with axe-core (no serious or critical violation), with no script error."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import pytest

from tests.browser import Browser, check_page, chromium, serve_live

SKIP = ("/admin/logout", "/admin/login")
DOWNLOADS = (".csv", ".xlsx", ".pdf")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_live(tmp_path_factory.mktemp("tour-live")) as base:
        yield base


@pytest.fixture(scope="module")
def browser(live: str) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def kind_of(path: str) -> str:
    """One page of each kind: ids (numbers, unit ids) in the path do not make a new kind."""
    parts = path.split("?")[0].strip("/").split("/")
    shape = [
        "#" if part.isdigit() else ("*" if i == 2 and parts[1] in ("units", "halls") else part)
        for i, part in enumerate(parts)
    ]
    return "/".join(shape)


def name_of(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", kind_of(path).replace("*", "x").replace("#", "n")).strip("-")


@pytest.mark.parametrize("elder", [False, True], ids=["standard", "elder"])
@pytest.mark.parametrize("width", [360, 1280])
def test_every_console_page_in_both_modes_at_360_and_1280(
    live: str, browser: Browser, elder: bool, width: int
) -> None:
    mode = "elder" if elder else "standard"
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    context.add_cookies([{"name": "yuyue_elder", "value": "1" if elder else "0", "url": live}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: msg.type == "error" and "status of 4" not in msg.text and errors.append(msg.text),
    )
    page.goto(f"{live}/admin/login")
    check_page(page, "console", f"tour-{mode}-{width}-login")
    page.get_by_label("用户名").fill("admin")
    page.get_by_label("密码").fill("yuyue-admin-2026")
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_url(f"{live}/admin")
    assert (page.locator("html").get_attribute("class") or "") == ("elder" if elder else "")
    seen_kinds: set[str] = set()
    queue = ["/admin"]
    visited = []
    while queue:
        path = queue.pop(0)
        kind = kind_of(path)
        if kind in seen_kinds:
            continue
        seen_kinds.add(kind)
        answer = page.goto(live + path)
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        visited.append(path)
        check_page(page, "console", f"tour-{mode}-{width}-{name_of(path)}")
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            target = urlsplit(urljoin(path, html.unescape(href)))
            if target.netloc or not target.path.startswith("/admin") or target.path.startswith(SKIP):
                continue
            if target.path.endswith(DOWNLOADS) or ".csv" in target.path or ".xlsx" in target.path:
                continue
            queue.append(target.path + (f"?{target.query}" if target.query else ""))
    kinds = {kind_of(p) for p in visited}
    for expected in (
        "admin",
        "admin/units",
        "admin/units/*",
        "admin/halls",
        "admin/halls/*",
        "admin/capacity",
        "admin/waitlist",
        "admin/alerts",
        "admin/bans",
        "admin/admins",
        "admin/audit",
        "admin/dashboard",
        "admin/synonyms",
    ):
        assert expected in kinds, (expected, sorted(kinds))
    assert not errors, errors
    context.close()
