"""SQLAlchemy tables, one module per aggregate."""

from yuyue.models.admin import (
    AdminLockout,
    AdminSession,
    CapacityPeriod,
    CapacityRequest,
    StatsDaily,
    StatsDay,
    StatsHallDaily,
    StatsServiceDaily,
    WaitlistEntry,
)
from yuyue.models.base import Base
from yuyue.models.booking import Booking, BookingCounter, IdempotencyKey, SeatReturn, Slot
from yuyue.models.catalogue import CalendarDay, Closure, Department, Policy, Service, Unit
from yuyue.models.identity import (
    ApiClient,
    ApiKey,
    ChannelBooking,
    ChannelNonce,
    CitizenSession,
    ForeignerPhone,
    LoginState,
)
from yuyue.models.notify import ConsoleMessage, DeliveryAttempt, Message, PhoneCode, RateCounter
from yuyue.models.onsite import Counter, Kiosk, NoShowMark, StaffAccount, Ticket, TicketCounter
from yuyue.models.people import Admin, AuditEntry, Ban, Citizen
from yuyue.models.platform import Alert, JobRun, PlatformState

__all__ = [
    "Admin",
    "AdminLockout",
    "AdminSession",
    "Alert",
    "ApiClient",
    "ApiKey",
    "AuditEntry",
    "Ban",
    "Base",
    "Booking",
    "BookingCounter",
    "CalendarDay",
    "CapacityPeriod",
    "CapacityRequest",
    "ChannelBooking",
    "ChannelNonce",
    "Citizen",
    "CitizenSession",
    "Closure",
    "ConsoleMessage",
    "Counter",
    "DeliveryAttempt",
    "Department",
    "ForeignerPhone",
    "IdempotencyKey",
    "JobRun",
    "Kiosk",
    "LoginState",
    "Message",
    "NoShowMark",
    "PhoneCode",
    "PlatformState",
    "Policy",
    "RateCounter",
    "SeatReturn",
    "Service",
    "Slot",
    "StaffAccount",
    "StatsDaily",
    "StatsDay",
    "StatsHallDaily",
    "StatsServiceDaily",
    "Ticket",
    "TicketCounter",
    "Unit",
    "WaitlistEntry",
]
