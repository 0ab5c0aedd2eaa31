"""The portal's "用广东政务服务网登录" button (issues 8 item 2, 9 item 1): the page starts the configured
provider's flow, the callback finishes it through identity.service, and the session cookie is set.
The state is bound to the browser that started the login; a replay or a foreign callback fails."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.conftest import Api, raw
from tests.identity.conftest import IDP, FakeProvider
from tests.identity.test_providers import GD_USER


async def start(api: Api, next_path: str = "/bookings") -> tuple[str, str]:
    page = await api.client.get("/login", params={"next": next_path})
    assert page.status_code == 200
    assert '<a class="button primary wide" href="/login/provincial?next=' in page.text
    answer = await api.client.get("/login/provincial", params={"next": next_path})
    assert answer.status_code == 303, answer.text
    url = answer.headers["location"]
    assert url.startswith(f"{IDP}/gd/authorize?")
    state = parse_qs(urlparse(url).query)["state"][0]
    return url, state


async def callback(api: Api, code: str, state: str, **extra: Any) -> Any:
    return await api.client.get("/login/callback", params={"code": code, "state": state, **extra})


async def test_provincial_login_through_the_pages(api: Api, fake_idp: FakeProvider) -> None:
    url, state = await start(api, "/bookings?x=1")
    done = await callback(api, fake_idp.authorize(url, GD_USER), state)
    assert done.status_code == 303 and done.headers["location"] == "/bookings?x=1"
    assert "yuyue_session" in api.client.cookies
    mine = await api.client.get("/bookings")
    assert mine.status_code == 200 and "退出登录" in mine.text
    sessions = await raw(api, "SELECT provider FROM citizen_sessions")
    assert [s.provider for s in sessions] == ["guangdong"]
    # the same state again (a replay) is refused with a page, and no second session opens
    again = await callback(api, fake_idp.authorize(url, GD_USER), state)
    assert again.status_code == 401 and 'data-code="login_failed"' in again.text
    assert len(await raw(api, "SELECT id FROM citizen_sessions")) == 1


async def test_callback_from_another_browser_is_refused(api: Api, fake_idp: FakeProvider) -> None:
    url, state = await start(api)
    code = fake_idp.authorize(url, GD_USER)
    api.client.cookies.delete("yuyue_login")  # the victim's browser never started this login
    refused = await callback(api, code, state)
    assert refused.status_code == 401 and 'data-code="login_failed"' in refused.text
    assert await raw(api, "SELECT id FROM citizen_sessions") == []


async def test_not_real_name_and_cancelled(api: Api, fake_idp: FakeProvider) -> None:
    url, state = await start(api)
    unverified = {**GD_USER, "real_name_status": "0"}
    refused = await callback(api, fake_idp.authorize(url, unverified), state)
    assert refused.status_code == 403 and "还没有实名认证" in refused.text
    _, state = await start(api)
    cancelled = await callback(api, "", state, error="access_denied")
    assert cancelled.status_code == 401 and "登录没有完成" in cancelled.text
    assert await raw(api, "SELECT id FROM citizen_sessions") == []
