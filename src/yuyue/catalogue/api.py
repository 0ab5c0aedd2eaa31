"""Catalogue routes: the public tree, halls and services; units and services for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.api import AdminDep
from yuyue.admin.service import audit, authorise
from yuyue.catalogue import service
from yuyue.catalogue.schemas import HallOut, ServiceIn, ServiceOut, ServicePatch, UnitIn, UnitNode, UnitPatch
from yuyue.db import get_db
from yuyue.kit.http import problems

public = APIRouter(prefix="/api/v1", tags=["catalogue"])
admin = APIRouter(prefix="/api/v1/admin", tags=["administration"])
Db = Annotated[AsyncSession, Depends(get_db)]


@public.get("/units", response_model=list[UnitNode])
async def units(db: Db) -> list[dict[str, Any]]:
    """The unit tree, from the platform down."""
    return service.unit_tree(await service.all_units(db))


@public.get("/halls", response_model=list[HallOut], responses=problems(404))
async def halls(db: Db, under: Annotated[str, Query(max_length=64)] = "platform") -> list[dict[str, Any]]:
    """Halls of a unit's subtree."""
    return [service.hall_view(hall) for hall in await service.halls_under(db, under)]


@public.get("/halls/{hall_id}/services", response_model=list[ServiceOut], responses=problems(404))
async def hall_services(hall_id: str, db: Db) -> list[dict[str, Any]]:
    return [service.service_view(s, dept) for s, dept in await service.hall_services(db, hall_id)]


@admin.post("/units", status_code=201, responses=problems(401, 403, 409, 422))
async def create_unit(body: UnitIn, who: AdminDep, db: Db) -> dict[str, Any]:
    parent = await service.get_unit(db, body.parent_id)
    authorise(who, "configure", parent.path)
    data = body.model_dump()
    unit = await service.create_unit(db, data)
    await audit(db, who, unit.id, unit.path, "unit.create", unit.id, None, service.unit_view(unit))
    await db.commit()
    return service.unit_view(unit)


@admin.get("/units/{unit_id}", responses=problems(401, 403, 404))
async def get_unit(unit_id: str, who: AdminDep, db: Db) -> dict[str, Any]:
    unit = await service.get_unit(db, unit_id)
    authorise(who, "view", unit.path)
    return service.unit_view(unit)


@admin.patch("/units/{unit_id}", responses=problems(401, 403, 404, 422))
async def patch_unit(unit_id: str, body: UnitPatch, who: AdminDep, db: Db) -> dict[str, Any]:
    unit = await service.get_unit(db, unit_id)
    authorise(who, "configure", unit.path)
    before = service.unit_view(unit)
    await service.patch_unit(db, unit, body.model_dump(exclude_unset=True))
    after = service.unit_view(unit)
    await audit(db, who, unit.id, unit.path, "unit.update", unit.id, before, after)
    await db.commit()
    return after


@admin.post("/services", status_code=201, responses=problems(401, 403, 404, 422))
async def create_service(body: ServiceIn, who: AdminDep, db: Db) -> dict[str, Any]:
    hall = await service.get_unit(db, body.hall_id)
    authorise(who, "configure", hall.path)
    created, department = await service.create_service(db, body.model_dump())
    view = service.service_view(created, department)
    await audit(db, who, hall.id, hall.path, "service.create", str(created.id), None, view)
    await db.commit()
    return view


@admin.get("/services/{service_id}", responses=problems(401, 403, 404))
async def get_service(service_id: int, who: AdminDep, db: Db) -> dict[str, Any]:
    found, department, hall = await service.get_service(db, service_id)
    authorise(who, "view", hall.path)
    return service.service_view(found, department)


@admin.patch("/services/{service_id}", responses=problems(401, 403, 404, 422))
async def patch_service(service_id: int, body: ServicePatch, who: AdminDep, db: Db) -> dict[str, Any]:
    found, department, hall = await service.get_service(db, service_id)
    authorise(who, "configure", hall.path)
    before = service.service_view(found, department)
    department = await service.patch_service(db, found, body.model_dump(exclude_unset=True))
    after = service.service_view(found, department)
    await audit(db, who, hall.id, hall.path, "service.update", str(found.id), before, after)
    await db.commit()
    return after
