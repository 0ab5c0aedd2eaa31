"""SQLAlchemy tables, one module per aggregate."""

from yuyue.models.admin import (
    AdminLockout,
    AdminSession,
    CapacityPeriod,
    CapacityRequest,
    ExtraSupply,
    StatsDaily,
    StatsDay,
    WaitlistEntry,
)
from yuyue.models.base import Base
from yuyue.models.booking import Booking, BookingCounter, IdempotencyKey, SeatReturn, Slot
from yuyue.models.catalogue import (
    CalendarDay,
    CalendarYear,
    Closure,
    Department,
    ItemSynonym,
    Policy,
    Service,
    Unit,
)
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
    "CalendarYear",
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
    "ExtraSupply",
    "ForeignerPhone",
    "IdempotencyKey",
    "ItemSynonym",
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
    "Ticket",
    "TicketCounter",
    "Unit",
    "WaitlistEntry",
]
