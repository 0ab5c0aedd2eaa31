"""Routes of the console's hall pages (see the package docstring)."""

from __future__ import annotations

from fastapi import APIRouter

from yuyue.console.api import ConsoleRoute

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
