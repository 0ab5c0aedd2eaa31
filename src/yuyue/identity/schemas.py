"""The identity routes' request and answer models (strict: unknown fields are refused)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from yuyue.kit.answers import Answer

IdType = Literal["resident_id", "passport", "hk_macao_permit", "taiwan_permit", "foreigner_permanent_id"]
ForeignIdType = Literal["passport", "hk_macao_permit", "taiwan_permit", "foreigner_permanent_id"]
Provider = Literal["oidc", "guangdong"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DevLoginIn(Strict):
    name: Annotated[StrictStr, Field(min_length=1, max_length=50)]
    id_type: IdType = "resident_id"
    id_number: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    phone: Annotated[StrictStr, Field(min_length=1, max_length=20)]


class ForeignerLoginIn(Strict):
    """Rule G8: passport or permit, with a phone number confirmed by SMS (POST /auth/phone/verify)."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    id_type: ForeignIdType
    id_number: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    phone: Annotated[StrictStr, Field(min_length=1, max_length=20)]
    phone_token: Annotated[StrictStr, Field(min_length=1, max_length=1000)]


class FinishIn(Strict):
    code: Annotated[StrictStr, Field(min_length=1, max_length=2000)]
    state: Annotated[StrictStr, Field(min_length=1, max_length=2000)]


class StartOut(Answer):
    provider: str
    authorize_url: str
    state: str


class CitizenOut(Answer):
    id_type: str
    id_number: str
    name: str
    phone: str


class LoginOut(Answer):
    token: str
    citizen: CitizenOut


class ProvidersOut(Answer):
    providers: list[str]


class BanInForceOut(Answer):
    id: int
    until: str
    reason: str
    unit_id: str


class MeOut(Answer):
    citizen: CitizenOut
    bans: list[BanInForceOut]
    no_shows: int
