"""The console shell (issue 10): login form for admins and clerks, cookie session, logout, CSRF."""

from __future__ import annotations

from tests.conftest import Api
from tests.console.conftest import console_login, csrf, post
from tests.onsite.conftest import STAFF_PASSWORD, staff


async def test_admin_page_asks_for_login_first(api: Api) -> None:
    page = await api.client.get("/admin")
    assert page.status_code == 303
    assert page.headers["location"] == "/admin/login"
    form = await api.client.get("/admin/login")
    assert form.status_code == 200
    assert '<form method="post" action="/admin/login"' in form.text
    assert 'lang="zh-CN"' in form.text


async def test_admin_logs_in_and_out(api: Api) -> None:
    answer = await console_login(api)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin"
    cookie = answer.headers["set-cookie"]
    assert "yuyue_console=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    home = await api.client.get("/admin")
    assert home.status_code == 200 and "机构与大厅" in home.text and "root" in home.text
    token = api.client.cookies["yuyue_console"]
    out = await post(api, "/admin/logout")
    assert out.status_code == 303
    # the session is revoked, not only the cookie dropped: the same token is refused by the API
    refused = await api.client.get("/api/v1/admin/alerts", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    api.client.cookies.set("yuyue_console", token)
    again = await api.client.get("/admin")
    assert again.status_code == 303


async def test_wrong_password_is_a_page_not_json(api: Api) -> None:
    answer = await console_login(api, password="not-the-password-1")
    assert answer.status_code == 401
    assert "text/html" in answer.headers["content-type"]
    assert 'data-code="unauthenticated"' in answer.text
    assert "yuyue_console" not in api.client.cookies


async def test_login_without_csrf_changes_nothing(api: Api) -> None:
    await csrf(api)
    answer = await api.client.post(
        "/admin/login", data={"role": "admin", "username": "root", "password": "x", "next": "/admin"}
    )
    assert answer.status_code == 403 and 'data-code="csrf_failed"' in answer.text


async def test_clerk_logs_in_and_sees_their_hall_only(api: Api) -> None:
    await api.hall("hall-a")
    await staff(api, "hall-a", username="clerk1")
    answer = await console_login(api, "clerk1", STAFF_PASSWORD, role="staff")
    assert answer.status_code == 303
    home = await api.client.get("/admin")
    assert home.status_code == 200 and "取号台" in home.text and "机构与大厅" not in home.text


async def test_open_redirect_is_refused(api: Api) -> None:
    answer = await console_login(api, next_path="//evil.example/x")
    assert answer.headers["location"] == "/admin"
