"""Rate limits (issue 9, abuse and scalping): per client address, per citizen and per partner client,
with the `limits` library. Over the limit: `429 rate_limited` with `Retry-After` (docs/api.md).

Storage (decision 0064): Redis when YUYUE_REDIS_URL is set, so every `serve` worker shares the
counters and the hot path never writes to the database; in memory otherwise (one process, or
counts per process). Windows run on real time (docs/api.md "Test clock"). `YUYUE_RATE_LIMITS=off`
(non-production only; config.py refuses it in production) turns every limit off.

- every `/api/` request: YUYUE_RATE_LIMIT_ADDRESS per client address (default 600/minute);
- booking-changing requests (`POST` under /api/v1/appointments and /api/v1/waitlist):
  YUYUE_RATE_LIMIT_CITIZEN per citizen token subject (default 30/minute), so one account cannot
  hammer the evening release from many addresses;
- partner clients: each client's own `rate_per_minute` (channels/service.py calls `hit`).
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

CITIZEN_PATHS = ("/api/v1/appointments", "/api/v1/waitlist")


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

    async def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one request against `item` for `key`; over the limit raises `RateLimited`."""
        if not self.enabled:
            return
        if await self.limiter.hit(item, *key):
            return
        stats = await self.limiter.get_window_stats(item, *key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(f"at most {item} for this {key[0]}; retry in {retry} s", retry_after_s=retry)


def per_minute(n: int) -> RateLimitItem:
    return parse(f"{n}/minute")


class RateLimit:
    """ASGI middleware: the address and citizen limits, before any route or database work."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits, secret: str) -> None:
        self.app = app
        self.limits = limits
        self.secret = secret

    def _citizen(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    claims = tokens.verify(self.secret, "citizen", token.strip())
                    return str(claims["sub"]) if claims else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not self.limits.enabled or not path.startswith("/api/") or path.startswith("/api/v1/test/"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        try:
            await self.limits.hit(self.limits.address, "address", client[0] if client else "unknown")
            if scope.get("method") == "POST" and path.startswith(CITIZEN_PATHS):
                citizen = self._citizen(scope)
                if citizen is not None:
                    await self.limits.hit(self.limits.citizen, "citizen", citizen)
        except RateLimited as exc:
            body = json.dumps(problem(429, "rate_limited", exc.detail)).encode()
            headers = [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(exc.retry_after_s).encode()),
            ]
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
