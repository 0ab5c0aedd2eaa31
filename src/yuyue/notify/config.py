"""Notification settings (YUYUE_SMS_* and YUYUE_NOTIFY_*), typed in one place like yuyue.config."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from yuyue.clock import HHMM


class SmsSettings(BaseSettings):
    """Which SMS provider sends, with its credentials, sign name and per-kind template codes."""

    model_config = SettingsConfigDict(env_prefix="YUYUE_SMS_", extra="ignore")

    provider: Literal["console", "aliyun", "tencent"] = "console"
    sign_name: str = "广州预约"
    # Provider template codes per message kind, e.g. {"booked": "SMS_123", …} (JSON in the env).
    templates: dict[str, str] = Field(default_factory=dict)
    access_key_id: str = ""  # Aliyun AccessKey id, or Tencent SecretId
    access_key_secret: str = ""  # Aliyun AccessKey secret, or Tencent SecretKey
    sdk_app_id: str = ""  # Tencent SmsSdkAppId
    region: str = "ap-guangzhou"  # Tencent region (Aliyun SMS is served from cn-hangzhou)
    # Override of the provider's endpoint (host[:port]) and scheme; tests point them at a local server.
    endpoint: str = ""
    scheme: Literal["https", "http"] = "https"
    timeout_s: float = 10.0

    @field_validator("sign_name")
    @classmethod
    def _sign(cls, value: str) -> str:
        if not 2 <= len(value) <= 8:
            raise ValueError("YUYUE_SMS_SIGN_NAME must have 2 to 8 characters")
        return value


# A report token is a URL path segment: URL-safe characters only, long enough not to be guessed.
REPORT_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


class SmsReportSettings(BaseSettings):
    """The routes that receive the providers' delivery reports (decision 0082). No token: the
    routes answer 404 as if they did not exist. The token is a secret (`SecretStr`: never in a repr
    or a log line), e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`."""

    model_config = SettingsConfigDict(env_prefix="YUYUE_SMS_REPORT_", extra="ignore")

    token: SecretStr = SecretStr("")
    max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)  # one push, as sent
    max_rows: int = Field(default=1000, ge=1, le=10_000)  # reports in one push
    rate: str = "300/minute"  # pushes per client address (the `limits` notation)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and not REPORT_TOKEN.match(secret):
            raise ValueError("YUYUE_SMS_REPORT_TOKEN must be 32 to 128 characters of A-Z a-z 0-9 _ -")
        return value

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        parse(value)  # raises ValueError on a malformed limit
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.token.get_secret_value())


class NotifySettings(BaseSettings):
    """Delivery, retries, reminders and quiet hours."""

    model_config = SettingsConfigDict(env_prefix="YUYUE_NOTIFY_", extra="ignore")

    # The fallback hotline for messages about no single hall (bans of a district): 12345.
    default_hotline: str = "12345"
    # Where a citizen whose day the hall closed books again, named in that SMS: a short link or app
    # name (at most 12 characters, so the reason still fits one SMS).
    rebook_link: str = Field(default="穗好办", min_length=1, max_length=12)
    batch_size: int = Field(default=50, ge=1, le=1000)
    lease_s: int = Field(default=60, ge=5)  # a claimed message not settled by then is claimed again
    max_attempts: int = Field(default=8, ge=1, le=50)
    backoff_base_s: float = Field(default=30.0, gt=0)  # 30 s, 60 s, 120 s … with ±25 % jitter
    backoff_max_s: float = Field(default=6 * 3600.0, gt=0)
    interval_s: float = Field(default=2.0, gt=0)  # how often a worker looks for due messages
    reminder_evening: str = "19:00"  # the evening-before reminder (never inside quiet hours)
    reminder_hour_before: bool = False  # the optional reminder an hour before the slot
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"

    @field_validator("reminder_evening", "quiet_start", "quiet_end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError("times are HH:MM")
        return value

    @model_validator(mode="after")
    def _evening_outside_quiet_hours(self) -> NotifySettings:
        if in_quiet_hours(self, self.reminder_evening):
            raise ValueError("YUYUE_NOTIFY_REMINDER_EVENING falls inside the quiet hours")
        return self


def in_quiet_hours(settings: NotifySettings, hhmm: str) -> bool:
    """Quiet hours may wrap midnight (21:00–08:00): start inclusive, end exclusive."""
    start, end = settings.quiet_start, settings.quiet_end
    if start == end:
        return False
    if start < end:
        return start <= hhmm < end
    return hhmm >= start or hhmm < end


class EmailSettings(BaseSettings):
    """The SMTP server that sends email (YUYUE_SMTP_*); no host: no email is sent."""

    model_config = SettingsConfigDict(env_prefix="YUYUE_SMTP_", extra="ignore")

    host: str = ""
    port: int = Field(default=587, ge=1, le=65535)
    username: str = ""
    password: str = ""
    sender: str = "yuyue@localhost"
    starttls: bool = True  # upgrade the connection with STARTTLS (port 587)
    tls: bool = False  # implicit TLS from the start (port 465)
    timeout_s: float = Field(default=10.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@lru_cache(maxsize=1)
def email_settings() -> EmailSettings:
    return EmailSettings()


@lru_cache(maxsize=1)
def sms_settings() -> SmsSettings:
    return SmsSettings()


@lru_cache(maxsize=1)
def sms_report_settings() -> SmsReportSettings:
    return SmsReportSettings()


@lru_cache(maxsize=1)
def notify_settings() -> NotifySettings:
    return NotifySettings()
