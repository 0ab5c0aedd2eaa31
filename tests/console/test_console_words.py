"""Console pages speak Chinese (issue 20): a walk over every console page an admin can reach from
the home page, after some real work (a hall with an item and a booking, a kiosk made and revoked in
the console, a capacity request, an audit log with entries), fails on any Latin word in the text a
person reads (not in markup, styles or scripts) other than the allow-list below; no unit ids, rule
codes, English alerts or audit codes."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

from tests.conftest import Api
from tests.console.conftest import console_login, post
from tests.ids import resident_id

# file formats; the admin's own user name; the example of a new unit's id (typed in Latin letters)
ALLOWED = {"PDF", "CSV", "Excel", "XLSX", "root", "tianhe", "xinghua"}
WORD = re.compile(r"[A-Za-z]{2,}")
SKIP = ("/admin/logout", "/admin/login", "/admin/dashboard/export")
DAY = "2026-12-03"


def visible_text(page: str) -> str:
    """What a person reads: the body without scripts, styles and tags, with aria-labels, titles,
    placeholders and button values (also read aloud or shown)."""
    page = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", page, flags=re.S | re.I)
    spoken = " ".join(re.findall(r'(?:aria-label|title|placeholder|data-confirm)="([^"]*)"', page))
    page = re.sub(r"<[^>]+>", " ", page)
    return html.unescape(page + " " + spoken)


RULE = re.compile(r"(?<![A-Za-z])[GTM]\d{1,2}(?!\d)")  # rule ids such as G15 belong in code, not on pages


def latin_words(page: str) -> set[str]:
    text = visible_text(page)
    return {w for w in WORD.findall(text) if w not in ALLOWED} | set(RULE.findall(text))


async def test_every_console_page_is_in_chinese(api: Api) -> None:
    await api.hall("hall-a", name="天河区政务服务中心")
    service = await api.service("hall-a")
    slot = next(s for s in await api.slots(service["id"], DAY) if s["status"] == "open")
    assert (await api.book(await api.login(resident_id(1)), slot["id"])).status_code == 201
    assert (await console_login(api, "root", "platform-admin-2026")).status_code == 303
    # a kiosk made and revoked in the console (issue 20): the audit log then has kiosk entries
    made = await post(api, "/admin/halls/hall-a/kiosks", {"name": "1号自助机"})
    assert made.status_code == 200 and "自助机令牌" in made.text
    kiosk_id = re.search(r"/admin/halls/hall-a/kiosks/(\d+)/revoke", made.text).group(1)
    revoked = await post(api, f"/admin/halls/hall-a/kiosks/{kiosk_id}/revoke")
    assert revoked.status_code == 303
    seen: set[str] = set()
    queue = ["/admin"]
    found: dict[str, set[str]] = {}
    while queue and len(seen) < 80:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        page = await api.client.get(path)
        assert page.status_code == 200, (path, page.status_code)
        if not page.headers["content-type"].startswith("text/html"):
            continue
        if words := latin_words(page.text):
            found[path] = words
        for href in re.findall(r'href="([^"#]+)', page.text):
            target = urlsplit(urljoin(path, html.unescape(href)))
            if target.netloc or not target.path.startswith("/admin") or target.path.startswith(SKIP):
                continue
            queue.append(target.path + (f"?{target.query}" if target.query else ""))
    assert {"/admin", "/admin/halls", "/admin/halls/hall-a", "/admin/audit", "/admin/alerts"} <= seen
    assert "/admin/halls/hall-a/desk" in seen and any("/counters/" in p for p in seen)
    assert not found, "\n".join(f"{k}: {sorted(v)}" for k, v in found.items())


async def test_kiosk_made_in_the_console_sets_up_the_machine(api: Api) -> None:
    await api.hall("hall-a")
    assert (await console_login(api, "root", "platform-admin-2026")).status_code == 303
    screens = await api.client.get("/admin/halls/hall-a")
    for link in ("/admin/halls/hall-a/desk", "/halls/hall-a/display", "/admin/halls/hall-a/counters/"):
        assert link in screens.text, link
    empty = await post(api, "/admin/halls/hall-a/kiosks", {"name": ""})
    assert empty.status_code == 422 and "请填写自助机名称" in empty.text
    assert 'aria-describedby="kiosk-name-hint kiosk-name-error"' in empty.text
    made = await post(api, "/admin/halls/hall-a/kiosks", {"name": "1号自助机"})
    token = html.unescape(
        re.search(r'<textarea id="kiosk-token"[^>]*>([^<]+)</textarea>', made.text).group(1)
    )
    setup = await post(api, "/kiosk/setup", {"token": token})
    assert setup.status_code == 303 and setup.headers["location"] == "/kiosk"
    assert (await api.client.get("/kiosk")).status_code == 200
    kiosk_id = re.search(r"/admin/halls/hall-a/kiosks/(\d+)/revoke", made.text).group(1)
    await post(api, f"/admin/halls/hall-a/kiosks/{kiosk_id}/revoke")
    assert (await api.client.get("/kiosk")).status_code == 401  # revoked: back to the set-up page
