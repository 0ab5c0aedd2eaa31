"""SQLAlchemy tables, one module per aggregate."""

from yuyue.models.base import Base
from yuyue.models.booking import Booking, BookingCounter, IdempotencyKey, Slot
from yuyue.models.catalogue import CalendarDay, Closure, Department, Policy, Service, Unit
from yuyue.models.people import Admin, AuditEntry, Ban, Citizen
from yuyue.models.platform import Alert, JobRun, PlatformState

__all__ = [
    "Admin",
    "Alert",
    "AuditEntry",
    "Ban",
    "Base",
    "Booking",
    "BookingCounter",
    "CalendarDay",
    "Citizen",
    "Closure",
    "Department",
    "IdempotencyKey",
    "JobRun",
    "PlatformState",
    "Policy",
    "Service",
    "Slot",
    "Unit",
]
