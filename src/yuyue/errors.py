"""DomainError(code, status, detail) and its rendering as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"

TITLES: dict[str, str] = {
    "validation_error": "Invalid request",
    "not_found": "Not found",
    "unauthenticated": "Authentication required",
    "forbidden": "Forbidden",
    "slot_full": "Slot is full",
    "already_booked": "Already booked",
    "daily_limit": "Daily booking limit reached",
    "booking_cap": "Too many live bookings",
    "banned": "Booking banned",
    "not_open_yet": "Not open yet",
    "booking_closed": "Booking closed",
    "cancel_too_late": "Too late to cancel",
    "not_cancellable": "Not cancellable",
    "not_rebookable": "Not rebookable",
    "quantity_exceeds_max": "Quantity exceeds the maximum batch",
    "invalid_id_number": "Invalid ID number",
    "invalid_uscc": "Invalid unified social credit code",
    "idempotency_key_reused": "Idempotency key reused with another request",
    "rate_limited": "Too many requests",
    "conflict": "Conflict",
    "document_phone_differs": "Document held with another phone",
    "method_not_allowed": "Method not allowed",
    "payload_too_large": "Payload too large",
    "unavailable": "Service temporarily unavailable",
    "internal_error": "Internal error",
}


class DomainError(Exception):
    """A rule said no. Carries a stable snake_case code and an HTTP status."""

    code = "internal_error"
    status = 500

    keep_writes = False  # commit what the request wrote before the refusal (`db.get_db`)

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        keep_writes: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.keep_writes = keep_writes
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        return problem(self.status, self.code, self.detail, **self.extra)


def problem(status: int, code: str, detail: str = "", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://yuyue.example/problems/{code}",
        "title": TITLES.get(code, code.replace("_", " ").capitalize()),
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return body


class ValidationFailed(DomainError):
    code, status = "validation_error", 422


class NotFound(DomainError):
    code, status = "not_found", 404


class Unauthenticated(DomainError):
    code, status = "unauthenticated", 401


class Forbidden(DomainError):
    code, status = "forbidden", 403


class Conflict(DomainError):
    code, status = "conflict", 409


class Unprocessable(DomainError):
    """422 with a specific code (not_open_yet, booking_closed, cancel_too_late …)."""

    status = 422
