"""Builds the FastAPI app: routers, middleware, error handlers. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

import yuyue.domains  # noqa: F401 - registers every domain's jobs and event handlers
from yuyue import __version__
from yuyue.admin import api as admin_api
from yuyue.auth.service import hasher
from yuyue.booking import api as booking_api
from yuyue.booking.tasks import keep_warm
from yuyue.calendar import api as calendar_api
from yuyue.catalogue import api as catalogue_api
from yuyue.catalogue.service import set_cache_ttl
from yuyue.channels import api as channels_api
from yuyue.channels.bureau import api as bureau_api
from yuyue.clock import clock
from yuyue.config import Settings, get_settings
from yuyue.console import api as console_api
from yuyue.console.dashboard import api as console_dashboard_api
from yuyue.console.hall import api as console_hall_api
from yuyue.console.manage import api as console_manage_api
from yuyue.db import DATABASE_UNAVAILABLE, make_engine, make_sessionmaker
from yuyue.errors import PROBLEM_JSON, DomainError, problem
from yuyue.identity import api as identity_api
from yuyue.identity import service as identity_service
from yuyue.jobs import api as jobs_api
from yuyue.jobs import service as jobs
from yuyue.kit import addresses
from yuyue.notify import api as notify_api
from yuyue.notify.delivery import delivery_loop
from yuyue.onsite import api as onsite_api
from yuyue.ops import api as ops_api
from yuyue.ops.logging import configure, log
from yuyue.ops.middleware import AnswerCache, Edge
from yuyue.ops.ratelimit import RateLimit, RateLimits
from yuyue.ops.replicas import Replicas, probing
from yuyue.penalties import api as penalties_api
from yuyue.policy import api as policy_api
from yuyue.stats import api as stats_api
from yuyue.waitlist import api as waitlist_api
from yuyue.watch import api as watch_api
from yuyue.web import api as web_api
from yuyue.web.kiosk import api as kiosk_api

HTTP_CODES = {
    400: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "validation_error",
    429: "rate_limited",
}


def _problem_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        problem(status, code, detail, **extra), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, not a machine): errors answer in HTML."""
    path = request.url.path
    if path.startswith("/api/") or path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        return False
    return "text/html" in request.headers.get("accept", "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        retry = exc.extra.get("retry_after_s")  # issue 9: every 429 carries Retry-After
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return JSONResponse(exc.problem(), status_code=exc.status, media_type=PROBLEM_JSON, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem_response(422, "validation_error", _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(
            exc.status_code, "validation_error" if exc.status_code < 500 else "internal_error"
        )
        detail = exc.detail if isinstance(exc.detail, str) else ""
        if wants_page(request):  # issue 8 item 4: a person never sees raw JSON
            return web_api.error_page(request, DomainError(detail, code=code, status=exc.status_code))
        return _problem_response(exc.status_code, code, detail, headers=getattr(exc, "headers", None))

    async def database_error(_: Request, exc: Exception) -> JSONResponse:
        # Deadlock victims, serialisation failures, a lost connection, an exhausted pool: retryable.
        log.warning("database_error", error=type(exc).__name__)
        return _problem_response(
            503, "unavailable", "the database is busy; retry shortly", {"Retry-After": "1"}
        )

    for kind in DATABASE_UNAVAILABLE:
        app.add_exception_handler(kind, database_error)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
        return _problem_response(500, "internal_error", "an unexpected error occurred")


GC_YOUNG_THRESHOLD = 10_000  # allocations between young-generation passes (Python's default: 700)


def use_settings(settings: Settings) -> None:
    """What the settings configure for the whole process (create_app calls it; a test harness that
    starts one app again after another app ran calls it too)."""
    configure(settings.log_level, settings.log_json)
    clock.settable = not settings.production
    set_cache_ttl(settings.cache_ttl)
    identity_service.use_settings(settings)  # issue 9: data keys and the personal-data jobs' secret
    hasher.use(settings)  # the password hashes' argon2 cost
    addresses.configure(settings.webhook_private_addresses)  # decision 0094


def create_app(settings: Settings | None = None, *, run_jobs: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    use_settings(settings)
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    replicas = Replicas(engine, settings)  # issue 22: lag-tolerant reads (decision 0090)
    if run_jobs is None:
        run_jobs = os.environ.get("YUYUE_NO_JOBS") != "1"

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.clock is not None and os.environ.get("YUYUE_CLOCK_APPLIED") != "1":
            await clock.store(engine, settings.clock)
        await clock.refresh(engine, force=True)
        if os.environ.get("YUYUE_SERVE") == "1":  # a worker of `yuyue serve`, not a test's app
            # What was built at start (modules, routes, caches) never becomes garbage: keep it out
            # of the collector's full passes, and collect the young generation less often (it is
            # mostly per-request objects). Fewer pauses and less CPU per request (decision 0014).
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
        warming = None
        # Decision 0106: the release's first second. PostgreSQL only: there the caches stay good
        # while the configuration version holds; SQLite's expire after the TTL whatever is loaded.
        if os.environ.get("YUYUE_SERVE") == "1" and engine.dialect.name == "postgresql":
            warming = asyncio.create_task(keep_warm(sessionmaker))
        task = None
        if run_jobs:

            async def refresh() -> None:
                await clock.refresh(engine)

            task = asyncio.create_task(jobs.loop(sessionmaker, refresh, settings.jobs_interval_s))
            # issue 7: the outbox is delivered by the same processes that run the jobs
            deliveries = asyncio.create_task(delivery_loop(sessionmaker, refresh, settings.effective_secret))
        try:
            async with probing(replicas):
                yield
        finally:
            if warming is not None:
                warming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await warming
            if task is not None:
                task.cancel()
                deliveries.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                with contextlib.suppress(asyncio.CancelledError):
                    await deliveries
            await engine.dispose()

    app = FastAPI(
        title="yuyue 预约",
        version=__version__,
        description="Unified appointment platform for government service halls. Errors are RFC 9457 "
        "problem+json with a stable `code`.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # Swagger UI needs inline script and a CDN; the CSP allows neither
        redoc_url=None,
        # FastAPI's own OpenTelemetry hooks: off (metrics are Prometheus', logs structlog's); with them
        # on, every request asked OpenTelemetry for its providers though none is configured (issue 21)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.replicas = replicas
    install_error_handlers(app)
    for router in (
        booking_api.router,  # the hot paths first: routes are tried one after another (decision 0013)
        ops_api.router,
        identity_api.router,
        channels_api.admin,
        channels_api.partner,
        bureau_api.router,  # bureaus' own booking systems (decision 0080)
        catalogue_api.public,
        policy_api.public,
        admin_api.router,
        catalogue_api.admin,
        policy_api.admin,
        calendar_api.admin,
        jobs_api.router,
        notify_api.test,
        notify_api.public,
        notify_api.admin,
        notify_api.reports,
        onsite_api.router,
        penalties_api.router,
        waitlist_api.router,
        stats_api.router,
        watch_api.router,
        console_api.router,
        console_hall_api.router,
        console_manage_api.router,
        console_dashboard_api.router,
        kiosk_api.router,
        web_api.router,
    ):
        app.include_router(router)
    # The citizen's booking without an Idempotency-Key, before FastAPI's routing (decision 0099).
    app.router.routes.insert(0, booking_api.BookingDoor())
    app.state.rate_limits = RateLimits(settings)  # issue 9
    app.add_middleware(AnswerCache)  # innermost: published availability answers (decision 0013)
    app.add_middleware(RateLimit, limits=app.state.rate_limits, secret=settings.effective_secret)
    app.add_middleware(Edge, max_body=settings.max_body_bytes, engine=engine, settable_clock=clock.settable)
    return app
