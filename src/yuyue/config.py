"""Every YUYUE_* setting in one typed place (pydantic-settings).

Settings refuse unsafe defaults in production: no default secret key, no dev login.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from yuyue.kit.idnumbers import ID_TYPES

DEV_SECRET = "yuyue-development-secret-do-not-use-in-production"  # noqa: S105 - refused in production
# A CSP host source naming one partner origin: scheme, host (optionally `*.` for its subdomains),
# optional port; nothing that could end the header or add a directive.
ORIGIN = re.compile(
    r"^https?://(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$"
)


# Argon2 cost profiles of the admin and staff password hashes: (time_cost, memory_cost KiB, parallelism).
# "standard" is argon2-cffi's default (RFC 9106 low-memory profile), the only one production accepts;
# "minimal" is the cheapest argon2 allows, so that a test suite which makes and checks a password in
# every test spends no time on it. A hash records its own parameters: either verifies under the other.
# A Redis key prefix: short, no spaces or control characters (it starts every key the app writes).
REDIS_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

ARGON2_PROFILES: dict[str, tuple[int, int, int]] = {"standard": (3, 65536, 4), "minimal": (1, 8, 1)}


def default_database_url() -> str:
    return f"sqlite:///{Path('var/yuyue.sqlite3').resolve()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YUYUE_", extra="ignore")

    env: Literal["production", "development", "test"] = "production"
    database_url: str = Field(default_factory=default_database_url)
    # --- issue 22: read replicas (decision 0090) ---
    # PostgreSQL streaming replicas that serve the reads that may be a little behind (availability,
    # the portal's catalogue pages, the public queue, figures, exports): comma-separated URLs.
    database_replica_urls: str = ""
    # A replica further behind the primary than this (seconds), or down, is skipped until it catches up.
    replica_max_lag: float = Field(default=0.5, gt=0)
    replica_probe_s: float = Field(default=0.1, gt=0)  # how often each process measures the lag
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
    pdf_font: str | None = None  # optional path of a TrueType CJK font to embed in PDF receipts (0098)
    # --- issue 9: identity providers, sessions, partner channels, rate limits, personal data ---
    # Citizen login providers, comma-separated: dev (non-production only), oidc, guangdong, foreigner.
    # Empty: "dev,foreigner" outside production, "foreigner" in production.
    identity_providers: str = ""
    session_ttl_s: int = 8 * 3600  # revocable citizen sessions (real time)
    # On-site tickets (walk-in, green channel) are issued from this many minutes before the hall's
    # opening time until it closes, on the days it works (docs/rules.md "Hall modes").
    tickets_before_open_min: int = Field(default=60, ge=0, le=180)  # as check-in
    foreigner_documents_per_phone: int = Field(default=3, ge=1)  # documents one confirmed phone may hold
    login_state_ttl_s: int = 600  # a started external login must finish within this
    cookie_secure: bool | None = None  # None: Secure cookies in production only
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    # Endpoints come from the issuer's /.well-known/openid-configuration; a URL set here overrides
    # the discovered one (with oidc_discovery off, authorize, token and jwks must be set).
    oidc_discovery: bool = True
    oidc_discovery_ttl_s: float = 3600.0
    oidc_authorize_url: str = ""
    oidc_token_url: str = ""
    oidc_jwks_url: str = ""
    oidc_userinfo_url: str = ""
    oidc_end_session_url: str = ""
    oidc_post_logout_redirect_uri: str = ""  # where the provider sends the browser after logout
    oidc_jwks_refetch_s: float = 30.0  # an unknown key id refetches the JWKS at most this often
    # The provider's ID-type codes → ours, JSON: {"ID_CARD": "resident_id", "PASSPORT": "passport"}
    oidc_id_type_map: dict[str, str] = Field(default_factory=dict)
    oidc_scope: str = "openid profile phone"
    oidc_id_number_claim: str = "id_number"
    oidc_id_type_claim: str = "id_type"
    oidc_verified_claim: str = "real_name_verified"
    gd_client_id: str = ""
    gd_client_secret: str = ""
    gd_authorize_url: str = ""
    gd_token_url: str = ""
    gd_tokeninfo_url: str = ""
    login_redirect_uri: str = ""  # where the providers send the citizen back (our callback page)
    # Rate limits ("N/second|minute|hour", the `limits` library notation); storage in Redis when set.
    redis_url: str = ""
    # Starts every Redis key (decision 0101): "" derives `yuyue-<12 hex>` from YUYUE_SECRET_KEY, which
    # every host of one deployment shares and two deployments do not, so two deployments on one
    # Redis keep their counters apart. Set it to keep the keys across a change of the secret key.
    redis_prefix: str = ""
    rate_limit_address: str = "600/minute"
    rate_limit_citizen: str = "30/minute"  # booking-changing requests per citizen (API and pages)
    rate_limit_login: str = "30/minute"  # login and SMS-code requests per address (API and pages)
    channel_clock_skew_s: int = 300  # signed partner requests: accepted timestamp drift
    # Personal data: extra encryption keys, newest first (the newest encrypts, all decrypt; the key
    # derived from YUYUE_SECRET_KEY stays the last decrypt-only fallback). Comma-separated.
    data_keys: str = ""
    retention_days: int = 3 * 365  # bookings whose slot date is older are anonymised by a job
    # Partner origins (a city app's or portal's web pages) that may frame the citizen pages, besides
    # our own: comma-separated `https://host[:port]`. Consoles and the kiosk are never framed.
    frame_ancestors: str = ""
    # Addresses of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto `yuyue serve` trusts
    # (uvicorn's forwarded_allow_ips: comma-separated IPs or CIDRs, "*" for any). The client address
    # that rate limits and logs see comes from there only when the request came from one of these.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # Argon2 profile of password hashes (ARGON2_PROFILES). Empty: "minimal" when env=test, else
    # "standard"; "minimal" is refused in production.
    argon2_profile: Literal["", "standard", "minimal"] = ""
    # --- issue 19: what production refuses unless a setting named for it allows it ---
    # /metrics: in production only for `Authorization: Bearer <YUYUE_METRICS_TOKEN>`, or for anyone
    # with YUYUE_METRICS_PUBLIC=true; production refuses to start with neither. Open outside production.
    metrics_token: str = ""
    metrics_public: bool = False
    # The `console` SMS provider stores numbers and live codes in a table and sends nothing.
    allow_console_sms_in_production: bool = False
    # Webhooks to private, loopback or link-local addresses (a local fake partner): development and
    # tests only (decision 0094).
    webhook_private_addresses: bool = False
    # YUYUE_SMS_PROVIDER, read here only for the check above; notify/config.py owns the SMS settings.
    sms_provider: str = "console"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def effective_secret(self) -> str:
        return self.secret_key or DEV_SECRET

    @property
    def providers(self) -> tuple[str, ...]:
        chosen = [p.strip() for p in self.identity_providers.split(",") if p.strip()]
        if not chosen:
            chosen = ["foreigner"] if self.production else ["dev", "foreigner"]
        return tuple(chosen)

    @property
    def replica_url_list(self) -> list[str]:
        return [u.strip() for u in self.database_replica_urls.split(",") if u.strip()]

    @property
    def redis_key_prefix(self) -> str:
        """YUYUE_REDIS_PREFIX, or `yuyue-` and 12 hex digits of an HMAC of the secret key (the secret
        cannot be read back from it)."""
        if self.redis_prefix:
            return self.redis_prefix
        digest = hmac.new(self.effective_secret.encode(), b"redis-key-prefix", hashlib.sha256).hexdigest()
        return f"yuyue-{digest[:12]}"

    @property
    def data_key_list(self) -> list[str]:
        return [k.strip() for k in self.data_keys.split(",") if k.strip()]

    @property
    def frame_ancestor_list(self) -> list[str]:
        return [o.strip().lower().rstrip("/") for o in self.frame_ancestors.split(",") if o.strip()]

    @property
    def argon2_parameters(self) -> tuple[int, int, int]:
        """(time_cost, memory_cost KiB, parallelism) of the password hasher."""
        profile = self.argon2_profile or ("minimal" if self.env == "test" else "standard")
        return ARGON2_PROFILES[profile]

    @property
    def metrics_open(self) -> bool:
        """/metrics without a token: outside production, or when YUYUE_METRICS_PUBLIC says so."""
        return self.metrics_public or not self.production

    @property
    def secure_cookies(self) -> bool:
        return self.production if self.cookie_secure is None else self.cookie_secure

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.production:
            if not self.secret_key or self.secret_key == DEV_SECRET or len(self.secret_key) < 32:
                raise ValueError("YUYUE_SECRET_KEY (32+ characters) is required when YUYUE_ENV=production")
            if self.clock is not None:
                raise ValueError("YUYUE_CLOCK is a non-production setting")
            if self.rate_limits == "off":
                raise ValueError("YUYUE_RATE_LIMITS=off is a non-production setting")
            if "dev" in self.providers:
                raise ValueError("the dev identity provider is a non-production setting")
            if self.argon2_profile == "minimal":
                raise ValueError("YUYUE_ARGON2_PROFILE=minimal is a non-production setting")
            if self.webhook_private_addresses:
                raise ValueError("YUYUE_WEBHOOK_PRIVATE_ADDRESSES is a non-production setting")
            if any(len(key) < 32 for key in self.data_key_list):
                raise ValueError("YUYUE_DATA_KEYS: every key needs 32+ characters in production")
            if not self.metrics_public and len(self.metrics_token) < 16:
                raise ValueError(
                    "production needs YUYUE_METRICS_TOKEN (16+ characters; the scraper sends it as a "
                    "bearer token) or YUYUE_METRICS_PUBLIC=true to serve /metrics to anyone"
                )
            if not self.allow_console_sms_in_production and self.sms_provider == "console":
                raise ValueError(
                    "YUYUE_SMS_PROVIDER=console sends no SMS (codes stay in a table): set aliyun or "
                    "tencent, or YUYUE_ALLOW_CONSOLE_SMS_IN_PRODUCTION=true"
                )
        if self.replica_url_list:
            backends = {url.split(":", 1)[0] for url in (self.database_url, *self.replica_url_list)}
            if not backends <= {"postgresql", "postgres", "postgresql+asyncpg"}:
                raise ValueError(
                    "YUYUE_DATABASE_REPLICA_URLS: replicas need a PostgreSQL primary and postgresql:// URLs"
                )
        if self.redis_prefix and not REDIS_PREFIX.match(self.redis_prefix):
            raise ValueError("YUYUE_REDIS_PREFIX: 1 to 64 of the characters A-Z a-z 0-9 _ . : -")
        for origin in self.frame_ancestor_list:
            if not ORIGIN.match(origin) or (self.production and not origin.startswith("https://")):
                raise ValueError(f"YUYUE_FRAME_ANCESTORS: {origin!r} is not an https://host[:port] origin")
        wrong = sorted(v for v in self.oidc_id_type_map.values() if v not in ID_TYPES)
        if wrong:
            raise ValueError(f"YUYUE_OIDC_ID_TYPE_MAP: {', '.join(wrong)} not one of {', '.join(ID_TYPES)}")
        unknown = set(self.providers) - {"dev", "oidc", "guangdong", "foreigner"}
        if unknown:
            raise ValueError(f"YUYUE_IDENTITY_PROVIDERS: unknown provider(s) {', '.join(sorted(unknown))}")
        oidc_urls = () if self.oidc_discovery else ("oidc_authorize_url", "oidc_token_url", "oidc_jwks_url")
        needs = {
            "oidc": ("oidc_issuer", "oidc_client_id", *oidc_urls),
            "guangdong": (
                "gd_client_id",
                "gd_client_secret",
                "gd_authorize_url",
                "gd_token_url",
                "gd_tokeninfo_url",
            ),
        }
        for provider, fields in needs.items():
            if provider not in self.providers:
                continue
            missing = [f for f in (*fields, "login_redirect_uri") if not getattr(self, f)]
            if missing:
                names = ", ".join(f"YUYUE_{f.upper()}" for f in missing)
                raise ValueError(f"identity provider {provider} needs {names}")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
