"""Catalogue routes: the public tree, halls and services; units and services for admins (authorised
and audited in `service`, shared with the console pages, issue 10 item 6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from yuyue.auth.api import AdminDep
from yuyue.catalogue import service
from yuyue.catalogue.schemas import (
    AdminServiceOut,
    HallOut,
    HallUnitOut,
    ServiceIn,
    ServiceOut,
    ServicePatch,
    SynonymIn,
    SynonymOut,
    UnitIn,
    UnitNode,
    UnitOut,
    UnitPatch,
)
from yuyue.db import Db
from yuyue.kit.http import problems

public = APIRouter(prefix="/api/v1", tags=["catalogue"])
admin = APIRouter(prefix="/api/v1/admin", tags=["administration"])


@public.get("/units", response_model=list[UnitNode])
async def units(db: Db) -> list[service.UnitNode]:
    """The unit tree, from the platform down."""
    return service.unit_tree(await service.all_units(db))


@public.get("/halls", response_model=list[HallOut], responses=problems(404))
async def halls(db: Db, under: Annotated[str, Query(max_length=64)] = "platform") -> list[service.HallView]:
    """Halls of a unit's subtree."""
    return [service.hall_view(hall) for hall in await service.halls_under(db, under)]


@public.get("/halls/{hall_id}/services", response_model=list[ServiceOut], responses=problems(404))
async def hall_services(hall_id: str, db: Db) -> list[service.PublicService]:
    return [service.public_service(s, dept) for s, dept in await service.hall_services(db, hall_id)]


UnitAnswer = HallUnitOut | UnitOut  # hall fields for hall kinds only (docs/api.md)


@admin.post("/units", status_code=201, response_model=UnitAnswer, responses=problems(401, 403, 409, 422))
async def create_unit(body: UnitIn, who: AdminDep, db: Db) -> service.UnitView:
    return await service.create_unit_as(db, who, body.model_dump())


@admin.get("/units/{unit_id}", response_model=UnitAnswer, responses=problems(401, 403, 404))
async def get_unit(unit_id: str, who: AdminDep, db: Db) -> service.UnitView:
    return service.unit_view(await service.unit_for(db, who, unit_id))


@admin.patch("/units/{unit_id}", response_model=UnitAnswer, responses=problems(401, 403, 404, 422))
async def patch_unit(unit_id: str, body: UnitPatch, who: AdminDep, db: Db) -> service.UnitView:
    return await service.update_unit_as(db, who, unit_id, body.model_dump(exclude_unset=True))


@admin.post(
    "/services", status_code=201, response_model=AdminServiceOut, responses=problems(401, 403, 404, 422)
)
async def create_service(body: ServiceIn, who: AdminDep, db: Db) -> service.ServiceView:
    return await service.create_service_as(db, who, body.model_dump())


@admin.get("/services/{service_id}", response_model=AdminServiceOut, responses=problems(401, 403, 404))
async def get_service(service_id: int, who: AdminDep, db: Db) -> service.ServiceView:
    return await service.service_for(db, who, service_id)


@admin.patch("/services/{service_id}", response_model=AdminServiceOut, responses=problems(401, 403, 404, 422))
async def patch_service(service_id: int, body: ServicePatch, who: AdminDep, db: Db) -> service.ServiceView:
    return await service.update_service_as(db, who, service_id, body.model_dump(exclude_unset=True))


@admin.get("/synonyms", response_model=list[SynonymOut], responses=problems(401, 403))
async def synonyms(who: AdminDep, db: Db) -> list[service.SynonymView]:
    """The words people type for items (issue 20), as the hall finder's item search uses them."""
    return [service.synonym_view(row) for row in await service.list_synonyms(db)]


@admin.post("/synonyms", status_code=201, response_model=SynonymOut, responses=problems(401, 403, 409, 422))
async def add_synonym(body: SynonymIn, who: AdminDep, db: Db) -> service.SynonymView:
    """Platform level (platform L1), audited; a term already kept is `409 conflict`."""
    return await service.add_synonym(db, who, body.term, body.means)


@admin.delete("/synonyms/{synonym_id}", status_code=204, responses=problems(401, 403, 404))
async def remove_synonym(
    synonym_id: Annotated[int, Path(ge=1, le=2**31 - 1)], who: AdminDep, db: Db
) -> Response:
    await service.remove_synonym(db, who, synonym_id)
    return Response(status_code=204)
