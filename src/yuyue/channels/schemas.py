"""Partner channel API models (strict: unknown fields are refused)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from yuyue.booking.schemas import CompanyIn, Quantity
from yuyue.identity.schemas import IdType

PartnerChannel = Literal["wechat", "app", "provincial_portal", "api", "bureau"]
# bureau:* only for a bureau system bound to a unit (channel `bureau`, decision 0080)
Scope = Literal["citizens:login", "bookings:read", "bookings:write", "bureau:sync", "bureau:read"]
Short = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientIn(Strict):
    id: Annotated[StrictStr, Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    channel: PartnerChannel
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)]
    rate_per_minute: Annotated[StrictInt, Field(ge=1, le=100_000)] = 600
    # A bureau's or district's own booking system (rules G5, G6): the unit it acts for.
    unit_id: Annotated[StrictStr | None, Field(min_length=1, max_length=64)] = None


class WebhookIn(Strict):
    """`null` turns the webhook off. Outside production plain http is accepted (local partners)."""

    url: Annotated[StrictStr | None, Field(max_length=500)]


class RotateIn(Strict):
    grace_hours: Annotated[StrictInt, Field(ge=0, le=24 * 30)] = 24


class KeyOut(BaseModel):
    id: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class NewKeyOut(BaseModel):
    id: str
    secret: str


class ClientOut(BaseModel):
    id: str
    name: str
    channel: str
    scopes: list[str]
    rate_per_minute: int
    active: bool
    created_at: str
    webhook_url: str | None = None
    unit_id: str | None = None
    keys: list[KeyOut]


class ClientCreatedOut(BaseModel):
    client: ClientOut
    key: NewKeyOut


class PartnerLoginIn(Strict):
    """A citizen the partner has logged in through the provincial identity service (rule T2)."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=50)]
    id_type: IdType = "resident_id"
    id_number: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    phone: Annotated[StrictStr, Field(min_length=1, max_length=20)]


class MaskedCitizenOut(BaseModel):
    id_type: str
    id_number: str
    name: str
    phone: str


class PartnerLoginOut(BaseModel):
    token: str
    citizen: MaskedCitizenOut


class ChannelBookIn(Strict):
    slot_id: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    quantity: Quantity = 1
    business_types: Annotated[list[Short], Field(max_length=20)] = []
    company: CompanyIn | None = None
