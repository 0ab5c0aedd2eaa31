"""Small HTTP helpers with no domain knowledge: bearer tokens, JSON answers, OpenAPI error docs."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from yuyue.config import Settings
from yuyue.errors import PROBLEM_JSON


def settings_of(request: Request) -> Settings:
    """The settings the app was built with (`create_app` keeps them on the app's state)."""
    settings: Settings = request.app.state.settings
    return settings


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def json_answer(status: int, body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def rowcount(result: Any) -> int:
    """Rows touched by an UPDATE/INSERT/DELETE (a CursorResult, typed loosely by SQLAlchemy)."""
    return int(getattr(result, "rowcount", 0) or 0)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for problem+json errors."""
    schema = {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
        },
    }
    return {
        status: {"description": "Problem", "content": {PROBLEM_JSON: {"schema": schema}}}
        for status in statuses
    }


def client_address(request: Request) -> str:
    """The client's address as the server saw it (behind a proxy: what uvicorn's
    `--forwarded-allow-ips` let through), for per-address limits and lockouts."""
    return request.client.host if request.client else "unknown"
