"""Every YUYUE_* setting in one typed place (pydantic-settings).

Settings refuse unsafe defaults in production: no default secret key, no dev login.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "yuyue-development-secret-do-not-use-in-production"  # noqa: S105 - refused in production


def default_database_url() -> str:
    return f"sqlite:///{Path('var/yuyue.sqlite3').resolve()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YUYUE_", extra="ignore")

    env: Literal["production", "development", "test"] = "production"
    database_url: str = Field(default_factory=default_database_url)
    clock: datetime | None = None
    rate_limits: Literal["on", "off"] = "on"
    secret_key: str = ""
    # Seconds a process may serve catalogue/policy/calendar data from memory before
    # re-reading it; writes made by the same process clear it at once.
    cache_ttl: float = 2.0
    token_ttl_s: int = 8 * 3600
    db_pool_size: int = 10
    db_max_overflow: int = 20
    log_level: str = "INFO"
    log_json: bool = True
    max_body_bytes: int = 64 * 1024
    jobs_interval_s: float = 15.0
    pdf_font: str | None = None  # optional path of a TrueType CJK font to embed in PDF receipts

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def effective_secret(self) -> str:
        return self.secret_key or DEV_SECRET

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.production:
            if not self.secret_key or self.secret_key == DEV_SECRET or len(self.secret_key) < 32:
                raise ValueError("YUYUE_SECRET_KEY (32+ characters) is required when YUYUE_ENV=production")
            if self.clock is not None:
                raise ValueError("YUYUE_CLOCK is a non-production setting")
            if self.rate_limits == "off":
                raise ValueError("YUYUE_RATE_LIMITS=off is a non-production setting")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
