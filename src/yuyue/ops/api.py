"""Health, readiness and metrics endpoints."""

from __future__ import annotations

import secrets
from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from yuyue.config import Settings
from yuyue.errors import NotFound
from yuyue.kit.http import bearer
from yuyue.ops.metrics import render
from yuyue.ops.replicas import Replicas

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """The primary database answers. With replicas (decision 0090) the answer also says each one's
    state — fresh, lagging (with its lag) or down — from the probes; a replica that is lagging or
    down is skipped by the reads, so it never makes the process unready."""
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure means not ready
        return JSONResponse({"status": "unavailable"}, status_code=503)
    replicas: Replicas | None = getattr(request.app.state, "replicas", None)
    if not replicas:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "ok", "replicas": [asdict(state) for state in replicas.states()]})


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
