"""Rate limits (issue 9, abuse and scalping): per client address, per citizen and per partner client,
with the `limits` library. Over the limit: `429 rate_limited` with `Retry-After` (docs/api.md).

Storage (decision 0064): Redis when YUYUE_REDIS_URL is set, so every `serve` worker shares the
counters and the hot path never writes to the database; in memory otherwise (one process, or
counts per process). Windows run on real time (docs/api.md "Test clock"). `YUYUE_RATE_LIMITS=off`
(non-production only; config.py refuses it in production) turns every limit off.

Every door, API and pages alike (static files, health probes, metrics and the test-only routes aside):

- every request: YUYUE_RATE_LIMIT_ADDRESS per client address (default 600/minute);
- booking-changing requests (`POST` under /api/v1/appointments and /api/v1/waitlist, and the
  portal's booking, cancel, reschedule/rebook and waiting-list forms): YUYUE_RATE_LIMIT_CITIZEN per
  citizen (the bearer token's or the session cookie's subject; default 30/minute), so one account
  cannot hammer the evening release from many addresses;
- password and code doors (citizen, admin and staff logins, API and console page; SMS codes):
  YUYUE_RATE_LIMIT_LOGIN per address (default 30/minute), besides the per address+username lockout
  of admin/accounts.py;
- partner clients: each client's own `rate_per_minute` (channels/service.py calls `hit`).

Over a limit the API answers problem+json, the pages a short HTML page; both `429` + `Retry-After`.
"""

from __future__ import annotations

import json
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from yuyue.config import Settings
from yuyue.errors import PROBLEM_JSON, DomainError, problem
from yuyue.kit import tokens

CITIZEN_PATHS = ("/api/v1/appointments", "/api/v1/waitlist", "/book", "/bookings/", "/waitlist/")
LOGIN_PATHS = (
    "/api/v1/admin/login",
    "/api/v1/staff/login",
    "/api/v1/auth/",  # citizen logins, phone codes
    "/admin/login",
)
NOT_LOGINS = ("/api/v1/auth/logout", "/api/v1/auth/dev/")  # the dev login: never in production
UNLIMITED = ("/static/", "/api/v1/test/", "/healthz", "/readyz", "/metrics")  # probes and scrapers
SESSION_COOKIE = b"yuyue_session"  # web/service.py SESSION_COOKIE: the portal's citizen token


class RateLimited(DomainError):
    code, status = "rate_limited", 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class RateLimits:
    """The limiter of one process (one per app), over the configured storage."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits == "on"
        storage: Storage
        if settings.redis_url:
            uri = (
                settings.redis_url
                if settings.redis_url.startswith("async+")
                else f"async+{settings.redis_url}"
            )
            storage = RedisStorage(uri, implementation="redispy", key_prefix="yuyue")
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)
        self.address = parse(settings.rate_limit_address)
        self.citizen = parse(settings.rate_limit_citizen)
        self.login = parse(settings.rate_limit_login)

    async def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one request against `item` for `key`; over the limit raises `RateLimited`."""
        if not self.enabled:
            return
        if await self.limiter.hit(item, *key):
            return
        stats = await self.limiter.get_window_stats(item, *key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(f"at most {item} for this {key[0]}; retry in {retry} s", retry_after_s=retry)


PAGE = (
    '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>请求过于频繁</title>'
    "<p>请求过于频繁，请 {seconds} 秒后再试。(rate_limited)</p></html>"
)


def per_minute(n: int) -> RateLimitItem:
    return parse(f"{n}/minute")


class RateLimit:
    """ASGI middleware: the address and citizen limits, before any route or database work."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits, secret: str) -> None:
        self.app = app
        self.limits = limits
        self.secret = secret

    def _citizen(self, scope: Scope) -> str | None:
        """The citizen of the bearer token (API) or of the session cookie (pages)."""
        token = ""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, bearer = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and bearer.strip():
                    token = bearer.strip()
                    break
            elif name == b"cookie" and not token:
                for part in value.split(b";"):
                    key, _, cookie = part.strip().partition(b"=")
                    if key == SESSION_COOKIE and cookie:
                        token = cookie.decode("latin-1").strip('"')
        if not token:
            return None
        claims = tokens.verify(self.secret, "citizen", token)
        return str(claims["sub"]) if claims else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not self.limits.enabled or not path or path.startswith(UNLIMITED):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        post = scope.get("method") == "POST"
        try:
            await self.limits.hit(self.limits.address, "address", address)
            if post and path.startswith(LOGIN_PATHS) and not path.startswith(NOT_LOGINS):
                await self.limits.hit(self.limits.login, "login", address)
            if post and path.startswith(CITIZEN_PATHS):
                citizen = self._citizen(scope)
                if citizen is not None:
                    await self.limits.hit(self.limits.citizen, "citizen", citizen)
        except RateLimited as exc:
            if path.startswith("/api/"):
                body = json.dumps(problem(429, "rate_limited", exc.detail)).encode()
                kind = PROBLEM_JSON
            else:
                body = PAGE.format(seconds=exc.retry_after_s).encode()
                kind = "text/html; charset=utf-8"
            headers = [
                (b"content-type", kind.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(exc.retry_after_s).encode()),
            ]
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
