"""Operations basics and the published contract: health, readiness, metrics, OpenAPI, headers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from tests.conftest import Api
from tests.ids import resident_id
from yuyue.app import create_app
from yuyue.config import Settings
from yuyue.migrate import upgrade

CORE_ROUTES = {
    ("post", "/api/v1/auth/dev/login"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/units"),
    ("get", "/api/v1/halls"),
    ("get", "/api/v1/halls/{hall_id}/services"),
    ("get", "/api/v1/units/{unit_id}/policy"),
    ("get", "/api/v1/services/{service_id}/availability"),
    ("post", "/api/v1/appointments"),
    ("get", "/api/v1/appointments"),
    ("get", "/api/v1/appointments/{number}"),
    ("post", "/api/v1/appointments/{number}/cancel"),
    ("post", "/api/v1/appointments/{number}/reschedule"),
    ("post", "/api/v1/appointments/{number}/rebook"),
    ("get", "/api/v1/appointments/{number}/receipt"),
    ("post", "/api/v1/admin/login"),
    ("post", "/api/v1/admin/units"),
    ("get", "/api/v1/admin/units/{unit_id}"),
    ("patch", "/api/v1/admin/units/{unit_id}"),
    ("put", "/api/v1/admin/units/{unit_id}/policy"),
    ("post", "/api/v1/admin/services"),
    ("get", "/api/v1/admin/services/{service_id}"),
    ("patch", "/api/v1/admin/services/{service_id}"),
    ("put", "/api/v1/admin/calendar/{day}"),
    ("put", "/api/v1/admin/units/{unit_id}/closures/{day}"),
    ("get", "/api/v1/test/clock"),
    ("put", "/api/v1/test/clock"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}


async def test_openapi_describes_the_core_contract(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    published = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert CORE_ROUTES <= published, CORE_ROUTES - published
    booking = spec["paths"]["/api/v1/appointments"]["post"]
    assert "201" in booking["responses"] and "409" in booking["responses"]
    assert "application/problem+json" in booking["responses"]["409"]["content"]


async def test_health_ready_and_metrics(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ok"}
    await api.hall()
    service = await api.service(daily_capacity=7)
    slot = (await api.slots(service["id"], "2026-12-03"))[0]
    await api.book(await api.login(resident_id(1)), slot["id"])
    await api.book(await api.login(resident_id(2)), slot["id"])
    text = (await api.client.get("/metrics")).text
    assert 'yuyue_bookings_total{action="book",outcome="ok"}' in text
    assert 'yuyue_bookings_total{action="book",outcome="slot_full"}' in text
    assert 'route="/api/v1/appointments"' in text
    assert resident_id(1) not in text


async def test_security_headers_everywhere(api: Api) -> None:
    for path in ("/", "/healthz", "/api/v1/units", "/api/v1/nowhere", "/openapi.json"):
        response = await api.client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
    missing = await api.client.get("/api/v1/nowhere")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


CITIZEN_PAGES = ("/", "/halls", "/login", "/bookings")
NEVER_FRAMED = ("/admin/login", "/kiosk", "/halls/hall-a/display", "/api/v1/units", "/healthz", "/nowhere")


def frame_ancestors(answer: httpx.Response | httpx.Headers) -> str:
    policy = (answer.headers if isinstance(answer, httpx.Response) else answer)["content-security-policy"]
    return next(d for d in policy.split("; ") if d.startswith("frame-ancestors ")).removeprefix(
        "frame-ancestors "
    )


async def test_frame_options_citizen_pages_same_origin_consoles_never(api: Api) -> None:
    """Issue 9 item 6: with no partner origins set, citizen pages may be framed by our own pages only
    (CSP and X-Frame-Options SAMEORIGIN); consoles, the kiosk, the hall display and the API never.
    No HSTS outside production."""
    await api.hall()
    for path in CITIZEN_PAGES:
        response = await api.client.get(path)
        assert frame_ancestors(response) == "'self'", path
        assert response.headers["x-frame-options"] == "SAMEORIGIN", path
        assert "strict-transport-security" not in response.headers, path
    for path in NEVER_FRAMED:
        response = await api.client.get(path)
        assert frame_ancestors(response) == "'none'", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert "strict-transport-security" not in response.headers, path


async def headers_of(settings: Settings, paths: tuple[str, ...]) -> dict[str, httpx.Headers]:
    app = create_app(settings, run_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return {path: (await client.get(path)).headers for path in paths}


async def test_partner_origins_may_frame_citizen_pages_only(settings: Settings) -> None:
    partners = Settings(
        **{
            **settings.model_dump(),
            "frame_ancestors": "https://app.gz.gov.cn, HTTPS://*.Portal.example:8443/",
        }
    )
    seen = await headers_of(partners, ("/", "/login", "/admin/login", "/api/v1/units"))
    for path in ("/", "/login"):
        expected = "'self' https://app.gz.gov.cn https://*.portal.example:8443"
        assert frame_ancestors(seen[path]) == expected, path
        assert "x-frame-options" not in seen[path], path  # it cannot name the partners: CSP decides
    for path in ("/admin/login", "/api/v1/units"):
        assert frame_ancestors(seen[path]) == "'none'", path
        assert seen[path]["x-frame-options"] == "DENY", path


# What production asks for besides these tests' subject (tests/test_production_settings.py).
PRODUCTION = {
    "env": "production",
    "secret_key": "s" * 40,
    "metrics_token": "m" * 32,
    "allow_console_sms_in_production": True,
}


async def test_hsts_in_production_only_on_every_answer(settings: Settings) -> None:
    production = Settings(**{**settings.model_dump(), **PRODUCTION, "identity_providers": ""})
    seen = await headers_of(production, ("/", "/admin/login", "/api/v1/units", "/api/v1/test/clock"))
    for path, headers in seen.items():
        assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains", path
        assert headers["x-content-type-options"] == "nosniff", path


@pytest.mark.parametrize(
    "origins",
    ["*", "https://a.example; script-src *", "'unsafe-inline'", "https://a.example/path", "ftp://a.example"],
)
def test_frame_ancestors_refuses_anything_but_origins(origins: str) -> None:
    with pytest.raises(ValidationError):
        Settings(env="test", frame_ancestors=origins)


def test_frame_ancestors_in_production_are_https() -> None:
    with pytest.raises(ValidationError):
        Settings(**PRODUCTION, frame_ancestors="http://app.gz.gov.cn")
    assert Settings(**PRODUCTION, frame_ancestors="https://app.gz.gov.cn")


async def test_index_page_is_chinese_html(api: Api) -> None:
    page = await api.client.get("/")
    assert page.status_code == 200 and 'lang="zh-CN"' in page.text and "viewport" in page.text


async def test_database_down_is_a_503_with_retry_after_never_a_500() -> None:
    """PostgreSQL refusing connections (down, or restarting after a crash: bench/crash.py) is told as
    `503 unavailable` with Retry-After, from the routes and from the test clock's read alike."""
    down = Settings(env="test", database_url="postgresql://postgres@127.0.0.1:9/nowhere", log_level="ERROR")
    app = create_app(down, run_jobs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        login = {"username": "nobody", "password": "wrong-password-1"}
        tried = (
            ("GET", "/api/v1/units", None),
            ("GET", "/api/v1/halls", None),
            ("POST", "/api/v1/admin/login", login),
        )
        for method, path, body in tried:
            response = await client.request(method, path, json=body)
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert response.json()["code"] == "unavailable" and response.headers["retry-after"] == "1"
    await app.state.engine.dispose()


@pytest.mark.parametrize("path", ["/", "/halls", "/admin", "/api/v1/halls", "/healthz"])
async def test_head_answers_like_get_without_a_body(api: Api, path: str) -> None:
    """Link checkers, monitors and proxies send HEAD: it answers as GET would, with no body."""
    await api.hall()
    got = await api.client.get(path)
    head = await api.client.head(path)
    assert got.status_code in (200, 303), got.text
    assert head.status_code == got.status_code
    assert head.content == b""
    assert head.headers.get("content-type") == got.headers.get("content-type")
    assert head.headers.get("location") == got.headers.get("location")
    assert head.headers["x-content-type-options"] == "nosniff"


async def test_head_of_an_unknown_page_is_404_and_other_methods_still_405(api: Api) -> None:
    assert (await api.client.head("/no-such-page")).status_code == 404
    assert (await api.client.delete("/halls")).status_code == 405


def test_migrations_create_the_sqlite_folder(tmp_path: Path) -> None:
    """A fresh clone has no var/: `yuyue db upgrade` on the default SQLite file makes it."""
    target = tmp_path / "var" / "nested" / "yuyue.sqlite3"
    upgrade(f"sqlite:///{target}")
    assert target.exists()
