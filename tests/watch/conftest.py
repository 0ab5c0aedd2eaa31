"""Fixtures of the supply-and-oversight tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from yuyue.config import get_settings


@pytest.fixture(autouse=True)
def test_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Code that reads the process settings (`get_settings()`, e.g. the SMS of `alert.raised`)
    sees the test environment the `api` fixture runs in, not the production default."""
    monkeypatch.setenv("YUYUE_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
