"""Operations basics and the published contract: health, readiness, metrics, OpenAPI, headers."""

from __future__ import annotations

import httpx

from tests.conftest import Api
from tests.ids import resident_id
from yuyue.app import create_app
from yuyue.config import Settings

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
