"""OpenID Connect against a real provider (panva's certified `oidc-provider`, tests/identity/real_op.py):
discovery from the issuer, both claim placements (UserInfo only, as the specification's default,
and in the ID token), ID-type mapping, key rotation, RP-initiated logout from the portal, and the
provider's failures, each `401 login_failed` with the provider's error in the log."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx
import pytest
from joserfc import jwt

from tests.conftest import Api, raw
from tests.identity.real_op import (
    CLIENT_ID,
    CLIENT_SECRET,
    POST_LOGOUT_URI,
    REDIRECT_URI,
    RealProvider,
    install,
)
from tests.web.conftest import csrf
from yuyue.config import Settings
from yuyue.identity import providers
from yuyue.kit import crypto

ID = "440106199001011235"
USERS = {
    "alice": {
        "name": "李四",
        "id_type": "ID_CARD",  # the provider's code, mapped by YUYUE_OIDC_ID_TYPE_MAP
        "id_number": ID,
        "phone_number": "+8613800138001",
        "real_name_verified": True,
    },
    "bob": {
        "name": "王五",
        "id_type": "ID_CARD",
        "id_number": "440106198505055675",
        "phone_number": "+8613900139002",
        "real_name_verified": False,
    },
}


@pytest.fixture(scope="session")
def _op_installed() -> None:
    install()


@pytest.fixture(scope="session")
def op_userinfo(_op_installed: None) -> Iterator[RealProvider]:
    provider = RealProvider(USERS, conform=True)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def op_idtoken(_op_installed: None) -> Iterator[RealProvider]:
    provider = RealProvider(USERS, conform=False)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
def op(request: pytest.FixtureRequest, _op_installed: None) -> Iterator[RealProvider]:
    """The provider a test talks to: `userinfo` (default), `idtoken`, or `fresh` (its own process,
    for tests that restart or break it)."""
    kind = getattr(request, "param", "userinfo")
    providers.transport = None  # real network, not the fake's ASGI transport
    if kind == "fresh":
        provider = RealProvider(USERS, conform=True)
        provider.start()
        yield provider
        provider.stop()
    else:
        yield request.getfixturevalue(f"op_{kind}")


@pytest.fixture
def settings(database_url: str, op: RealProvider) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        log_level="WARNING",
        identity_providers="oidc,foreigner",
        oidc_issuer=op.issuer,  # everything else is discovered
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_scope="openid profile phone idcard",
        oidc_id_type_map={"ID_CARD": "resident_id", "PASSPORT": "passport"},
        oidc_post_logout_redirect_uri=POST_LOGOUT_URI,
        oidc_jwks_refetch_s=0,
        login_redirect_uri=REDIRECT_URI,
    )


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The citizen's browser as the provider sees it (its own cookies: the provider's session)."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def at_provider(browser: httpx.AsyncClient, url: str, hint: str | None) -> str | httpx.Response:
    """Follow the provider's redirects (its login step logs `hint` in): the URL it sends the browser
    back to us with, or the page it stops at (its login page when nobody is logged in)."""
    if hint:
        url += "&" + urlencode({"login_hint": hint})
    response = await browser.get(url)
    while response.is_redirect:
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith("http://test/"):
            return location
        response = await browser.get(location)
    return response


async def api_login(api: Api, browser: httpx.AsyncClient, hint: str = "alice") -> httpx.Response:
    started = await api.client.post("/api/v1/auth/oidc/start")
    assert started.status_code == 200, started.text
    back = await at_provider(browser, started.json()["authorize_url"], hint)
    assert isinstance(back, str), back.text[:300]
    query = parse_qs(urlparse(back).query)
    assert query["state"] == [started.json()["state"]]
    return await api.client.post(
        "/api/v1/auth/oidc/finish", json={"code": query["code"][0], "state": query["state"][0]}
    )


CITIZEN = {"id_type": "resident_id", "id_number": ID, "name": "李四", "phone": "13800138001"}


async def test_claims_only_in_userinfo(api: Api, browser: httpx.AsyncClient, op: RealProvider) -> None:
    """The specification's default: the ID token carries `sub` only; profile, phone and the
    provider's ID claims come from UserInfo. The provider's `ID_CARD` maps to `resident_id`."""
    response = await api_login(api, browser)
    assert response.status_code == 200, response.text
    assert response.json()["citizen"] == CITIZEN


@pytest.mark.parametrize("op", ["idtoken"], indirect=True)
async def test_claims_in_the_id_token_through_the_portal(
    api: Api, browser: httpx.AsyncClient, op: RealProvider
) -> None:
    """The portal's login button: /login/provincial → provider → /login/callback → /bookings."""
    started = await api.client.get("/login/provincial", params={"next": "/bookings"})
    assert started.status_code == 303
    back = await at_provider(browser, started.headers["location"], "alice")
    assert isinstance(back, str)
    done = await api.client.get(back.removeprefix("http://test"))
    assert done.status_code == 303 and done.headers["location"] == "/bookings", done.text
    assert (await api.client.get("/bookings")).status_code == 200
    # The ID token (kept encrypted for the end-session hint) carries the claims itself here.
    id_token = crypto.decrypt(api.app.state.settings.effective_secret, api.client.cookies["yuyue_idt"])
    claims = jwt.decode(id_token, providers._jwks_cache[f"{op.issuer}/jwks"][1]).claims
    assert claims["id_number"] == ID and claims["sub"] == "alice"
    rows = await raw(api, "SELECT count(*) FROM citizens")
    assert rows[0][0] == 1


async def test_not_real_name_verified_is_refused(
    api: Api, browser: httpx.AsyncClient, op: RealProvider
) -> None:
    response = await api_login(api, browser, "bob")
    assert response.status_code == 403 and response.json()["code"] == "not_real_name"


@pytest.mark.parametrize("op", ["fresh"], indirect=True)
async def test_key_rotation(api: Api, op: RealProvider) -> None:
    """The provider rotates its signing key: the next login's ID token names a key id we have not
    seen, we fetch the JWKS again and the login succeeds (no wait for the cache, no restart)."""
    async with httpx.AsyncClient(timeout=10) as first:
        assert (await api_login(api, first)).status_code == 200
    cached = providers._jwks_cache[f"{op.issuer}/jwks"][1]
    op.rotate()
    async with httpx.AsyncClient(timeout=10) as second:
        response = await api_login(api, second)
    assert response.status_code == 200, response.text
    assert providers._jwks_cache[f"{op.issuer}/jwks"][1] is not cached


@pytest.mark.parametrize("op", ["fresh"], indirect=True)
async def test_unknown_key_refetch_at_most_once_per_interval(api: Api, op: RealProvider) -> None:
    api.app.state.settings = api.app.state.settings.model_copy(update={"oidc_jwks_refetch_s": 3600})
    async with httpx.AsyncClient(timeout=10) as first:
        assert (await api_login(api, first)).status_code == 200
    op.rotate()
    async with httpx.AsyncClient(timeout=10) as second:
        response = await api_login(api, second)
    assert response.status_code == 401 and response.json()["code"] == "login_failed"


@pytest.mark.parametrize("op", ["fresh"], indirect=True)
@pytest.mark.parametrize("mode", ["html", "reset", "503"])
async def test_broken_jwks_is_login_failed(
    api: Api, browser: httpx.AsyncClient, op: RealProvider, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A JWKS answer that is a maintenance page, a dropped connection or an error: 401, logged."""
    op.jwks_mode(mode)
    with caplog.at_level(logging.WARNING, logger="yuyue.identity"):
        response = await api_login(api, browser)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "login_failed"
    assert any("oidc keys" in r.getMessage() for r in caplog.records)
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 0


async def test_refused_client_is_login_failed_and_logged_without_secrets(
    api: Api, browser: httpx.AsyncClient, op: RealProvider, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-client-secret-0123456789"
    api.app.state.settings = api.app.state.settings.model_copy(update={"oidc_client_secret": wrong})
    with caplog.at_level(logging.WARNING, logger="yuyue.identity"):
        response = await api_login(api, browser)
    assert response.status_code == 401 and response.json()["code"] == "login_failed"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "invalid_client" in logged  # the provider's own error code
    assert wrong not in logged and CLIENT_SECRET not in logged


async def test_reused_code_is_login_failed(api: Api, browser: httpx.AsyncClient, op: RealProvider) -> None:
    started = await api.client.post("/api/v1/auth/oidc/start")
    back = await at_provider(browser, started.json()["authorize_url"], "alice")
    assert isinstance(back, str)
    code = parse_qs(urlparse(back).query)["code"][0]
    ok = await api.client.post(
        "/api/v1/auth/oidc/finish", json={"code": code, "state": started.json()["state"]}
    )
    assert ok.status_code == 200
    again = await api.client.post("/api/v1/auth/oidc/start")
    replay = await api.client.post(
        "/api/v1/auth/oidc/finish", json={"code": code, "state": again.json()["state"]}
    )
    assert replay.status_code == 401 and replay.json()["code"] == "login_failed"


@pytest.mark.parametrize("op", ["fresh"], indirect=True)
async def test_provider_down_is_login_failed(api: Api, op: RealProvider) -> None:
    op.stop()
    response = await api.client.post("/api/v1/auth/oidc/start")
    assert response.status_code == 401 and response.json()["code"] == "login_failed"
    page = await api.client.get("/login/provincial")
    assert page.status_code == 401


async def test_logout_ends_the_provider_session(
    api: Api, browser: httpx.AsyncClient, op: RealProvider
) -> None:
    """退出登录 on a shared computer: our session ends and the browser goes on to the provider's
    end-session endpoint, so the next person pressing the login button meets the provider's login
    page instead of being let in as the previous citizen."""
    started = await api.client.get("/login/provincial")
    back = await at_provider(browser, started.headers["location"], "alice")
    assert isinstance(back, str)
    assert (await api.client.get(back.removeprefix("http://test"))).status_code == 303
    # While the provider's session lives, a login without typing anything goes straight through.
    silent = await at_provider(
        browser, (await api.client.post("/api/v1/auth/oidc/start")).json()["authorize_url"], None
    )
    assert isinstance(silent, str) and "code=" in silent

    logout = await api.client.post("/logout", data={"csrf": await csrf(api, "/")})
    assert logout.status_code == 303
    end_session = logout.headers["location"]
    assert end_session.startswith(f"{op.issuer}/session/end?")
    assert parse_qs(urlparse(end_session).query)["client_id"] == [CLIENT_ID]
    assert "yuyue_idt" not in api.client.cookies
    assert (await api.client.get("/bookings")).status_code == 303  # our session is gone
    confirm = await browser.get(end_session)  # the provider asks "sign out?"; the citizen says yes
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', confirm.text)
    assert xsrf, confirm.text[:300]
    done = await browser.post(
        f"{op.issuer}/session/end/confirm", data={"xsrf": xsrf.group(1), "logout": "yes"}
    )
    assert done.status_code == 303 and done.headers["location"].startswith(POST_LOGOUT_URI)

    after = await at_provider(
        browser, (await api.client.post("/api/v1/auth/oidc/start")).json()["authorize_url"], None
    )
    assert isinstance(after, httpx.Response) and "please log in" in after.text


async def test_discovered_issuer_must_match(api: Api, op: RealProvider) -> None:
    """Discovery 1.0 §4.3: the document must name exactly the configured issuer."""
    settings = api.app.state.settings
    api.app.state.settings = settings.model_copy(update={"oidc_issuer": op.issuer + "/"})
    response = await api.client.post("/api/v1/auth/oidc/start")
    assert response.status_code == 401 and response.json()["code"] == "login_failed"
