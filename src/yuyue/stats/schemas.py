"""Pydantic models of the figures contract (rule G18)."""

from __future__ import annotations

from pydantic import BaseModel


class FiguresRow(BaseModel):
    key: str
    released: int | None
    booked: int
    cancelled: int
    checked_in: int
    served: int
    no_show: int
    utilisation: float | None
    waitlist: int
    mean_wait_s: float | None
