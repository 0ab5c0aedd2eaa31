"""长辈模式 in the console (issue 20): the portal's switch in the console's header too; every console
page the admin reaches carries it (html class "elder"), and switching it from a console page comes
back to that page. Through HTTP (the browser tour is test_console_tour_browser.py)."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

from tests.conftest import Api
from tests.console.conftest import console_login, csrf


async def test_elder_mode_switch_in_the_console(api: Api) -> None:
    await api.hall("hall-a", name="天河区政务服务中心")
    await api.service("hall-a")
    login = await api.client.get("/admin/login")
    assert '<html lang="zh-CN">' in login.text and 'action="/elder"' in login.text
    assert (await console_login(api, "root", "platform-admin-2026")).status_code == 303
    token = await csrf(api, "/admin/alerts")
    on = await api.client.post("/elder", data={"csrf": token, "on": "1", "next": "/admin/alerts"})
    assert on.status_code == 303 and on.headers["location"] == "/admin/alerts"
    assert "yuyue_elder=1" in on.headers["set-cookie"]
    seen: set[str] = set()
    queue = ["/admin"]
    while queue and len(seen) < 40:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        page = await api.client.get(path)
        assert page.status_code == 200, path
        if not page.headers["content-type"].startswith("text/html"):
            continue
        assert '<html lang="zh-CN" class="elder">' in page.text, path
        assert 'aria-pressed="true"' in page.text, path
        for href in re.findall(r'href="([^"#]+)', page.text):
            target = urlsplit(urljoin(path, html.unescape(href)))
            if target.netloc or not target.path.startswith("/admin") or "logout" in target.path:
                continue
            queue.append(target.path + (f"?{target.query}" if target.query else ""))
    assert {"/admin/synonyms", "/admin/bans", "/admin/dashboard"} <= seen
    token = await csrf(api, "/admin")
    off = await api.client.post("/elder", data={"csrf": token, "on": "0", "next": "/admin"})
    assert "yuyue_elder=0" in off.headers["set-cookie"]
    assert '<html lang="zh-CN">' in (await api.client.get("/admin")).text
