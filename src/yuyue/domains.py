"""Imports every domain's service module, so that their scheduled jobs and event subscriptions are
registered in every process (`serve` workers and `yuyue worker`). Add a line per new domain."""

from __future__ import annotations

import yuyue.booking.service
import yuyue.jobs.service  # noqa: F401
