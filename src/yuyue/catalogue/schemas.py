"""Pydantic models of the catalogue part of the HTTP contract (strict bodies)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from yuyue.kit.answers import Answer

UnitKind = Literal["city_department", "city_hall", "district", "district_hall", "street_hall", "village_hall"]
Mode = Literal["appointment_first", "appointment_priority", "self_service"]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Short = Annotated[StrictStr, Field(min_length=1, max_length=100)]
ServiceRef = Annotated[StrictInt, Field(ge=1, le=2**31 - 1)]
# docs/rules.md "Items": the city catalogue's code of the item a service handles (rules T5, G15)
ItemCode = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Period(Strict):
    start: Annotated[StrictStr, Field(min_length=5, max_length=5)]
    end: Annotated[StrictStr, Field(min_length=5, max_length=5)]


class UnitIn(Strict):
    id: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: Name
    kind: UnitKind
    parent_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    address: Annotated[StrictStr, Field(max_length=300)] | None = None
    hotline: Annotated[StrictStr, Field(pattern=r"^[0-9+\-() ]{3,30}$")] | None = None
    mode: Mode | None = None
    hours: Annotated[list[Period], Field(max_length=8)] | None = None
    counters: Annotated[StrictInt, Field(ge=0, le=500)] | None = None
    code: Annotated[StrictStr, Field(pattern=r"^[0-9]{2,4}$")] | None = None


class UnitPatch(Strict):
    name: Name | None = None
    address: Annotated[StrictStr, Field(max_length=300)] | None = None
    hotline: Annotated[StrictStr, Field(pattern=r"^[0-9+\-() ]{3,30}$")] | None = None
    mode: Mode | None = None
    hours: Annotated[list[Period], Field(max_length=8)] | None = None
    counters: Annotated[StrictInt, Field(ge=0, le=500)] | None = None


class ServiceIn(Strict):
    hall_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    department: Name
    name: Name
    business_types: Annotated[list[Short], Field(max_length=20)] = []
    daily_capacity: Annotated[StrictInt, Field(ge=0, le=100_000)]
    max_batch: Annotated[StrictInt, Field(ge=1, le=99)] = 1
    walk_in_allowed: StrictBool = True
    bundle_of: Annotated[list[ServiceRef], Field(max_length=20)] | None = None
    foreigner_related: StrictBool = False  # rules T2/G8: a foreigner login may book it (decision 0065)
    item_code: ItemCode | None = None  # docs/rules.md "Items": one code at several halls is one item


class ServicePatch(Strict):
    department: Name | None = None
    name: Name | None = None
    business_types: Annotated[list[Short], Field(max_length=20)] | None = None
    daily_capacity: Annotated[StrictInt, Field(ge=0, le=100_000)] | None = None
    max_batch: Annotated[StrictInt, Field(ge=1, le=99)] | None = None
    walk_in_allowed: StrictBool | None = None
    bundle_of: Annotated[list[ServiceRef], Field(max_length=20)] | None = None
    active: StrictBool | None = None
    foreigner_related: StrictBool | None = None
    item_code: ItemCode | None = None  # null clears it: the service is an item of its own


class UnitNode(Answer):
    id: str
    name: str
    kind: str
    parent_id: str | None
    children: list[UnitNode]


class HallOut(Answer):
    id: str
    name: str
    kind: str
    code: str | None
    address: str | None
    hotline: str | None
    mode: str | None


class ServiceOut(Answer):
    id: int
    name: str
    department: str
    business_types: list[str]
    max_batch: int
    walk_in_allowed: bool
    bundle_of: list[int] | None
    foreigner_related: bool = Field(
        False, description="foreigner-related business (rules T2/G8): a foreigner login may book only these"
    )
    item_code: str | None = Field(
        None,
        description='the city catalogue\'s item code (docs/rules.md "Items"): services with one code at '
        "several halls are one item for rules T5 and G15; null: the service is an item of its own",
    )


class PeriodOut(Answer):
    start: str
    end: str


class UnitOut(Answer):
    """A unit as the admin API shows it (not a hall)."""

    id: str
    name: str
    kind: str
    parent_id: str | None


class HallUnitOut(UnitOut):
    """A hall as the admin API shows it: the unit and the hall's own fields."""

    code: str | None
    address: str | None
    hotline: str | None
    mode: str | None
    hours: list[PeriodOut]
    counters: int


class AdminServiceOut(Answer):
    """A service as the admin API shows it."""

    id: int
    hall_id: str
    name: str
    department: str
    business_types: list[str]
    daily_capacity: int
    max_batch: int
    walk_in_allowed: bool
    bundle_of: list[int] | None
    active: bool
    foreigner_related: bool
    item_code: str | None


class SynonymIn(Strict):
    """A word people type for an item, and the words of the item's name it stands for (issue 20)."""

    term: Annotated[StrictStr, Field(min_length=1, max_length=50)]
    means: Annotated[StrictStr, Field(min_length=1, max_length=100)]


class SynonymOut(Answer):
    id: int
    term: str
    means: str
