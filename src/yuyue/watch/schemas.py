"""Pydantic models of the watch's answers (docs/api.md "Hoarding evidence", "Quality report")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class MaskedCitizen(BaseModel):
    name: str
    id_number: str
    phone: str


class HoardingRow(BaseModel):
    id: str  # the opaque citizen id of the ban endpoints (POST /api/v1/admin/citizens/{id}/bans)
    citizen_id: int
    citizen: MaskedCitizen
    pattern: str  # late_cancel | many_halls | no_show_districts | burst
    evidence: list[dict[str, Any]]
    score: int


class QualityRow(BaseModel):
    unit_id: str
    name: str
    booked: int
    checked_in: int
    no_show: int
    cancelled: int
    waitlist: int
    utilisation: float | None
    approvals_on_time: float | None
    data_on_time: float | None
    alerts_raised: int
    alerts_resolved: int


class QualityReport(BaseModel):
    unit_id: str
    month: str
    rows: list[QualityRow]
