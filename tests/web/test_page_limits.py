"""Rate limits on every door (issue 19): the page routes get the API's per-address and per-citizen
limits (page loads, booking and change forms), and the password and code doors a per-address
login limit, API and pages alike: `429` with `Retry-After` (an HTML page for the pages)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.conftest import Api
from tests.ids import resident_id
from tests.web.conftest import CSRF, form_login
from yuyue.config import Settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        log_level="WARNING",
        rate_limit_address="40/minute",
        rate_limit_citizen="5/minute",
        rate_limit_login="5/minute",
    )


@asynccontextmanager
async def from_address(api: Api, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def limited(response: httpx.Response) -> bool:
    return response.status_code == 429 and int(response.headers["retry-after"]) > 0


async def test_page_loads_per_address(api: Api) -> None:
    async with from_address(api, "203.0.113.20") as crawler, from_address(api, "198.51.100.20") as other:
        answers = [(await crawler.get("/")).status_code for _ in range(40)]
        assert answers == [200] * 40
        over = await crawler.get("/")
        assert limited(over) and over.headers["content-type"].startswith("text/html")
        assert "rate_limited" in over.text
        assert limited(await crawler.get("/api/v1/halls"))  # one budget for API and pages
        assert (await crawler.get("/static/app.css")).status_code != 429  # static files are free
        assert (await other.get("/")).status_code == 200


async def test_booking_and_change_forms_per_citizen(api: Api) -> None:
    """The citizen's session, whatever the address: the 6th booking-changing form post within a
    minute is refused before it runs."""
    assert (await form_login(api, resident_id(1))).status_code == 303
    cookies = dict(api.client.cookies)
    statuses = []
    for n in range(6):
        async with from_address(api, f"203.0.113.{30 + n}") as client:
            client.cookies.update(cookies)
            page = await client.get("/")
            token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
            path = ["/book", "/bookings/B1/cancel", "/bookings/B1/reschedule", "/waitlist/join"][n % 4]
            statuses.append((await client.post(path, data={"csrf": token, "slot": "x"})).status_code)
    assert 429 not in statuses[:5] and statuses[5] == 429, statuses


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/phone/code", {"json": {"phone": "1380013800{n}"}}),
        ("/api/v1/admin/login", {"json": {"username": "root", "password": "wrong-password-1"}}),
        ("/api/v1/staff/login", {"json": {"username": "nobody", "password": "wrong-password-1"}}),
        ("/admin/login", {"data": {"username": "root", "password": "wrong-password-1"}}),
    ],
)
async def test_login_and_code_doors_per_address(api: Api, path: str, body: dict[str, object]) -> None:
    async with from_address(api, "203.0.113.50") as guesser:
        answers = []
        for n in range(6):  # a new phone number each time: the per-number limit is not what is tested
            sent = {k: {f: str(v).format(n=n) for f, v in dict(b).items()} for k, b in body.items()}  # type: ignore[call-overload]
            answers.append(await guesser.post(path, **sent))
    if "code" not in path:  # SMS codes have a stricter per-address limit of their own (notify)
        assert not any(a.status_code == 429 for a in answers[:5]), [a.status_code for a in answers]
    assert limited(answers[5])
