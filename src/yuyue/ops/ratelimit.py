"""Rate limits (issue 9, abuse and scalping): per client address, per citizen and per partner client,
with the `limits` library. Over the limit: `429 rate_limited` with `Retry-After` (docs/api.md).

Storage (decision 0064): Redis when YUYUE_REDIS_URL is set, so every `serve` worker shares the
counters and the hot path never writes to the database; in memory otherwise (one process, or
counts per process). Every key starts with the deployment's YUYUE_REDIS_PREFIX (decision 0101:
derived from the secret key unless set), so deployments sharing one Redis never share counters.
Windows run on real time (docs/api.md "Test clock"). `YUYUE_RATE_LIMITS=off` (non-production only;
config.py refuses it in production) turns every limit off.

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

Redis down (decision 0091): the counters cannot be shared, and each limit does what it is for.
Address, citizen and partner limits fail *open to this process*: each process counts in its own
memory (so N processes let through up to N times the limit) until Redis answers again; the login
and SMS-code limit fails *closed*: `503 unavailable` with `Retry-After`, because those doors are
the password-guessing and SMS-cost surface and a few seconds without new logins is the lesser harm
(sessions already open keep working). Either way the log says `rate_limit_storage_down` once, the
gauge `yuyue_rate_limit_storage_up` drops to 0 (deploy/prometheus/alerts.yml pages on it), and Redis
is tried again every RETRY_REDIS_S, not on every request.
"""

from __future__ import annotations

import json
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.types import ASGIApp, Receive, Scope, Send

from yuyue.config import Settings
from yuyue.errors import PROBLEM_JSON, DomainError, problem
from yuyue.kit import tokens
from yuyue.ops.logging import log
from yuyue.ops.metrics import LIMIT_FALLBACKS, LIMIT_STORAGE_UP

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
FAIL_CLOSED = frozenset({"login"})  # limits refused while Redis is down (decision 0091); others local
RETRY_REDIS_S = 1.0  # after a Redis failure, how long to count locally before trying Redis again


class RateLimited(DomainError):
    code, status = "rate_limited", 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class LimitsUnavailable(DomainError):
    """A fail-closed limit whose shared counters are unreachable (decision 0091)."""

    code, status = "unavailable", 503

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
            storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix=settings.redis_key_prefix,  # one deployment's keys (decision 0101)
                wrap_exceptions=True,  # StorageError, whatever the driver raises
                socket_connect_timeout=0.25,  # a lost Redis costs a request at most this once a second
                socket_timeout=0.25,
            )
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)
        self.shared = settings.redis_url != ""
        # While Redis is down: this process's own counters (decision 0091).
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.down_until = 0.0  # monotonic: until then, count locally without trying Redis
        LIMIT_STORAGE_UP.set(1)  # 1 also without Redis: nothing is degraded
        self.address = parse(settings.rate_limit_address)
        self.citizen = parse(settings.rate_limit_citizen)
        self.login = parse(settings.rate_limit_login)

    async def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one request against `item` for `key`; over the limit raises `RateLimited`."""
        if not self.enabled:
            return
        limiter = self.limiter
        if self.shared and time.monotonic() < self.down_until:
            limiter = self._degraded(key[0])
            allowed = await limiter.hit(item, *key)
        else:
            try:
                allowed = await limiter.hit(item, *key)
                if self.shared and self.down_until:
                    self.down_until = 0.0
                    LIMIT_STORAGE_UP.set(1)
                    log.warning("rate_limit_storage_back")
            except StorageError as exc:
                if not self.down_until:
                    log.error("rate_limit_storage_down", error=type(exc.storage_error).__name__)
                self.down_until = time.monotonic() + RETRY_REDIS_S
                LIMIT_STORAGE_UP.set(0)
                limiter = self._degraded(key[0])
                allowed = await limiter.hit(item, *key)
        if allowed:
            return
        stats = await limiter.get_window_stats(item, *key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(f"at most {item} for this {key[0]}; retry in {retry} s", retry_after_s=retry)

    def _degraded(self, limit: str) -> MovingWindowRateLimiter:
        """The limiter while Redis is down: this process's own, or a refusal (decision 0091)."""
        LIMIT_FALLBACKS.labels(limit=limit).inc()
        if limit in FAIL_CLOSED:
            raise LimitsUnavailable(
                "the shared rate-limit counters are unavailable; retry shortly",
                retry_after_s=max(1, math.ceil(RETRY_REDIS_S)),
            )
        return self.local


PAGE_UNAVAILABLE = (
    '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>暂时无法登录</title>'
    "<p>系统繁忙，请 {seconds} 秒后再试。({code})</p></html>"
)
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
        except (RateLimited, LimitsUnavailable) as exc:
            if path.startswith("/api/"):
                body = json.dumps(problem(exc.status, exc.code, exc.detail)).encode()
                kind = PROBLEM_JSON
            else:
                page = PAGE if isinstance(exc, RateLimited) else PAGE_UNAVAILABLE
                body = page.format(seconds=exc.retry_after_s, code=exc.code).encode()
                kind = "text/html; charset=utf-8"
            headers = [
                (b"content-type", kind.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(exc.retry_after_s).encode()),
            ]
            await send({"type": "http.response.start", "status": exc.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
