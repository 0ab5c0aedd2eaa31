"""Helpers of the notification tests: the console's messages, the outbox, settings overrides,
providers that fail on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import Api, raw
from tests.ids import resident_id
from yuyue.config import DEV_SECRET
from yuyue.notify import delivery, handlers, reminders
from yuyue.notify import outbox as outbox_module
from yuyue.notify.config import NotifySettings
from yuyue.notify.providers import ConsoleProvider, Outgoing, ProviderError, Receipt

DAY = "2026-12-03"  # Thursday, bookable from START (Tue 2026-12-01 10:00)
SECRET = DEV_SECRET  # the test app's effective secret (no YUYUE_SECRET_KEY in test)


async def sent(api: Api) -> list[dict[str, Any]]:
    """GET /api/v1/test/messages (delivers what is due first)."""
    response = await api.client.get("/api/v1/test/messages")
    assert response.status_code == 200, response.text
    return list(response.json())


async def outbox(api: Api) -> list[Any]:
    return await raw(api, "SELECT * FROM messages ORDER BY id")


async def setup_service(api: Api, **extra: Any) -> dict[str, Any]:
    await api.hall(hotline="020-83123456")
    return await api.service(**extra)


async def book_one(api: Api, service_id: int, n: int = 1, phone: str = "13812345678", day: str = DAY) -> dict:
    citizen = await api.login(resident_id(n), phone=phone)
    slot = next(s for s in await api.slots(service_id, day) if s["status"] == "open")
    response = await api.book(citizen, slot["id"])
    assert response.status_code == 201, response.text
    return {"headers": citizen, **response.json()}


@pytest.fixture
def notify_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Override notification settings for one test: `notify_config.update(lease_s=5)`."""
    values: dict[str, Any] = {}

    def current() -> NotifySettings:
        return NotifySettings(**values)

    for module in (outbox_module, handlers, delivery, reminders):  # each reads the settings it imported
        monkeypatch.setattr(module, "notify_settings", current)
    yield values


@dataclass
class Flaky:
    """A provider that fails the first `failures` sends (temporary or permanent), then delegates."""

    inner: ConsoleProvider
    failures: int
    temporary: bool = True
    name: str = "flaky"
    calls: list[str] = field(default_factory=list)

    async def send(self, message: Outgoing) -> Receipt:
        self.calls.append(message.idem_key)
        if len(self.calls) <= self.failures:
            code = "isv.BUSINESS_LIMIT_CONTROL" if self.temporary else "isv.MOBILE_NUMBER_ILLEGAL"
            raise ProviderError(code, "failing on purpose", temporary=self.temporary)
        return await self.inner.send(message)


@dataclass
class Counting:
    """Records every send (to find duplicates that the console's key would hide)."""

    inner: ConsoleProvider
    name: str = "counting"
    calls: list[str] = field(default_factory=list)

    async def send(self, message: Outgoing) -> Receipt:
        self.calls.append(message.idem_key)
        return await self.inner.send(message)
