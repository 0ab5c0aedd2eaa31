"""Health, readiness and metrics endpoints."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from yuyue.config import Settings
from yuyue.errors import NotFound
from yuyue.kit.http import bearer
from yuyue.ops.metrics import render

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """The database answers."""
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure means not ready
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus. In production only with `Authorization: Bearer <YUYUE_METRICS_TOKEN>` (unless
    YUYUE_METRICS_PUBLIC=true); anyone else gets the same 404 as an unknown path."""
    settings: Settings = request.app.state.settings
    if not settings.metrics_open:
        token = bearer(request) or ""
        if not settings.metrics_token or not secrets.compare_digest(token, settings.metrics_token):
            raise NotFound("not found")
    return PlainTextResponse(render(), media_type=CONTENT_TYPE_LATEST)
