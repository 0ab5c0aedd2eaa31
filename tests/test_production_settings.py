"""What production refuses to start with (issue 19) unless a setting named for it allows it: the
`console` SMS provider (sends nothing, keeps live codes in a table) and a /metrics open to anyone.
In production /metrics answers only the scraper's bearer token; everyone else gets 404."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from yuyue.app import create_app
from yuyue.config import Settings

SECRET = "s" * 40
TOKEN = "metrics-scraper-token-0123456789"


def test_console_sms_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUYUE_SMS_PROVIDER", raising=False)
    with pytest.raises(ValidationError, match="YUYUE_ALLOW_CONSOLE_SMS_IN_PRODUCTION"):
        Settings(env="production", secret_key=SECRET, metrics_token=TOKEN)
    assert Settings(
        env="production", secret_key=SECRET, metrics_token=TOKEN, allow_console_sms_in_production=True
    )
    monkeypatch.setenv("YUYUE_SMS_PROVIDER", "aliyun")
    assert Settings(env="production", secret_key=SECRET, metrics_token=TOKEN)
    assert Settings(env="test")  # outside production the console provider is the default


def test_public_metrics_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUYUE_SMS_PROVIDER", "tencent")
    with pytest.raises(ValidationError, match="YUYUE_METRICS_PUBLIC"):
        Settings(env="production", secret_key=SECRET)
    with pytest.raises(ValidationError, match="YUYUE_METRICS_TOKEN"):
        Settings(env="production", secret_key=SECRET, metrics_token="short")
    assert Settings(env="production", secret_key=SECRET, metrics_public=True).metrics_open
    assert not Settings(env="production", secret_key=SECRET, metrics_token=TOKEN).metrics_open


def test_the_environment_is_what_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The start-up path (`yuyue serve` reads YUYUE_* from the environment)."""
    for name, value in {
        "YUYUE_ENV": "production",
        "YUYUE_SECRET_KEY": SECRET,
        "YUYUE_METRICS_TOKEN": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("YUYUE_SMS_PROVIDER", raising=False)
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("YUYUE_ALLOW_CONSOLE_SMS_IN_PRODUCTION", "true")
    assert Settings().production


async def test_metrics_need_the_token_in_production(settings: Settings) -> None:
    production = Settings(
        **{
            **settings.model_dump(),
            "env": "production",
            "secret_key": SECRET,
            "identity_providers": "",
            "metrics_token": TOKEN,
            "allow_console_sms_in_production": True,
        }
    )
    app = create_app(production, run_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/metrics")).status_code == 404
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token-0123456789"})
            assert wrong.status_code == 404
            ok = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200 and "yuyue_http_requests_total" in ok.text


async def test_metrics_open_outside_production(settings: Settings) -> None:
    app = create_app(settings, run_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/metrics")).status_code == 200


def test_webhooks_to_private_addresses_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decision 0094: the switch that lets webhooks reach local fakes is for development and tests."""
    monkeypatch.setenv("YUYUE_SMS_PROVIDER", "tencent")
    with pytest.raises(ValidationError, match="YUYUE_WEBHOOK_PRIVATE_ADDRESSES"):
        Settings(env="production", secret_key=SECRET, metrics_token=TOKEN, webhook_private_addresses=True)
    assert Settings(env="development", webhook_private_addresses=True)
