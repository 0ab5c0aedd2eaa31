"""Imports every domain's service module, so that their scheduled jobs and event subscriptions are
registered in every process (`serve` workers and `yuyue worker`). Add a line per new domain."""

from __future__ import annotations

import yuyue.admin.alerts
import yuyue.booking.closures
import yuyue.booking.tasks
import yuyue.calendar.service
import yuyue.channels.service
import yuyue.channels.webhooks
import yuyue.jobs.service
import yuyue.notify.closures
import yuyue.notify.handlers
import yuyue.notify.reminders
import yuyue.onsite.queue  # the hall display hears of today's closures (`day.changed`)
import yuyue.penalties.service
import yuyue.stats.service
import yuyue.waitlist.service
import yuyue.watch.service  # noqa: F401
