"""Units, halls, departments and services; hourly slots derived from a hall's opening hours.

Slots (rules G11, M13): the hour `[start, start + 1 h)` for each whole hour inside an opening
period; a service's daily capacity is spread evenly, the remainder to the earliest slots. A slot
is identified by `<service id>-<YYYYMMDDHHMM>`; its row in `slots` is created by the first booking
(or a capacity change), so reading availability never writes.

Daily capacity (rule G20): fixed when the service is made, then changed only by an approved
capacity request, applied by `yuyue.booking.inventory`. A standing change from date D makes
`services.daily_capacity` the new figure and keeps the old one for the days before D in
`capacity_periods`; `ServiceInfo.capacity_on(day)` reads the figure of a day.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.audit.service import audit
from yuyue.auth.service import Acting, authorise
from yuyue.clock import HHMM, TZ, at, clock
from yuyue.db import after_commit
from yuyue.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from yuyue.kit.cache import TTLCache, confirm
from yuyue.models import CapacityPeriod, Department, ExtraSupply, ItemSynonym, Service, Unit

cache = TTLCache(2.0)

HALL_KINDS = ("city_hall", "district_hall", "street_hall", "village_hall")
CHILD_KINDS: dict[str, tuple[str, ...]] = {
    "platform": ("city_department", "city_hall", "district"),
    "city_department": ("city_department", "city_hall"),
    "district": ("district_hall", "street_hall"),
    "street_hall": ("village_hall",),
    "city_hall": (),
    "district_hall": (),
    "village_hall": (),
}
MODES = ("appointment_first", "appointment_priority", "self_service")
SLOT_ID = re.compile(r"^([1-9][0-9]{0,8})-([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})$")


@dataclass(frozen=True)
class ServiceInfo:
    """A service with what booking needs of its hall; cached."""

    id: int
    name: str
    department: str
    hall_id: str
    hall_name: str
    hall_code: str
    hall_path: str
    hall_address: str
    hall_hotline: str
    hall_mode: str
    hours: tuple[tuple[str, str], ...]
    business_types: tuple[str, ...]
    daily_capacity: int
    max_batch: int
    walk_in_allowed: bool
    bundle_of: tuple[int, ...] | None
    active: bool
    foreigner_related: bool = False  # rules T2/G8 (decision 0065)
    # Rule G20: (until, daily capacity) of the days before each approved standing change, by
    # `until`; `daily_capacity` is the figure from the last `until` on.
    capacity_before: tuple[tuple[date, int], ...] = ()
    item_code: str | None = None  # docs/rules.md "Items"
    # Rule G12's remedies by capacity request (decision 0093): (day, hours or None, open_day) of
    # the dates with other opening hours or opened though not working days ("5+X")
    extra: tuple[tuple[date, tuple[tuple[str, str], ...] | None, bool], ...] = ()

    def hours_on(self, day: date) -> tuple[tuple[str, str], ...]:
        """The opening hours of `day`: the hall's, or those an approved request set for it."""
        for extra_day, hours, _ in self.extra:
            if extra_day == day and hours is not None:
                return hours
        return self.hours

    @property
    def extra_open_days(self) -> frozenset[date]:
        return frozenset(day for day, _, open_day in self.extra if open_day)

    def capacity_on(self, day: date) -> int:
        """The daily capacity of `day` (rule G20: a standing change counts from its first day)."""
        for until, capacity in self.capacity_before:
            if day < until:
                return capacity
        return self.daily_capacity

    @property
    def item(self) -> str:
        """The item this service handles (docs/rules.md "Items"): its city catalogue code, the same
        item at every hall that offers it; without a code the service is an item of its own."""
        return item_of(self.id, self.item_code)


def item_of(service_id: int, item_code: str | None) -> str:
    """The one comparison of items (rules T5, G15): `i:<code>`, or `s:<service id>` without a code."""
    return f"i:{item_code}" if item_code else f"s:{service_id}"


@dataclass(frozen=True)
class SlotSpec:
    id: str
    day: date
    start: datetime
    end: datetime
    capacity: int


def slot_id(service_id: int, start: datetime) -> str:
    return f"{service_id}-{start:%Y%m%d%H%M}"


def parse_slot_id(value: str) -> tuple[int, datetime] | None:
    match = SLOT_ID.fullmatch(value)
    if not match:
        return None
    service_id, year, month, day, hour, minute = (int(part) for part in match.groups())
    try:
        return service_id, datetime(year, month, day, hour, minute, tzinfo=TZ)
    except ValueError:
        return None


def hourly_starts(hours: tuple[tuple[str, str], ...], day: date) -> list[datetime]:
    starts: list[datetime] = []
    for opening, closing in hours:
        current, stop = at(day, opening), at(day, closing)
        while current + timedelta(hours=1) <= stop:
            starts.append(current)
            current += timedelta(hours=1)
    return sorted(set(starts))


def day_slots(info: ServiceInfo, day: date, daily_capacity: int | None = None) -> list[SlotSpec]:
    """The slots of one working day with the daily capacity spread evenly (rule G11)."""
    starts = hourly_starts(info.hours_on(day), day)
    if not starts:
        return []
    total = info.capacity_on(day) if daily_capacity is None else daily_capacity
    return [
        SlotSpec(slot_id(info.id, start), day, start, start + timedelta(hours=1), seats)
        for start, seats in zip(starts, spread(total, len(starts)), strict=True)
    ]


def spread(total: int, n: int) -> list[int]:
    """A daily capacity spread over a day's `n` slots (rule G11): evenly, the remainder to the
    earliest. (The figures compute the same in SQL: `stats.service._stored_deltas`.)"""
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def hours_tuple(hours: list[Any] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(h["start"]), str(h["end"])) for h in (hours or []))


MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


async def service_info(session: AsyncSession, service_id: int) -> ServiceInfo:
    if not 1 <= service_id <= MAX_ID:
        raise NotFound(f"service {service_id} not found")
    await confirm(session)
    key = ("service", service_id)
    hit = cache.get(key)
    if hit is not None:
        assert isinstance(hit, ServiceInfo)
        return hit
    info = (await service_infos(session, [service_id])).get(service_id)  # loads and caches it
    if info is None:
        raise NotFound(f"service {service_id} not found")
    return info


async def service_infos(session: AsyncSession, service_ids: list[int]) -> dict[int, ServiceInfo]:
    """`service_info` of many services: those this process has cached are taken from the cache,
    the others loaded in three queries per 500 (a pass over a whole city); ids not found are left
    out."""
    await confirm(session)
    since = TTLCache.generation()
    out: dict[int, ServiceInfo] = {}
    missing = []
    for service_id in service_ids:
        hit = cache.get(("service", service_id))
        if isinstance(hit, ServiceInfo):
            out[service_id] = hit
        else:
            missing.append(service_id)
    for chunk in range(0, len(missing), 500):
        ids = missing[chunk : chunk + 500]
        rows = (
            await session.execute(
                select(Service, Unit, Department.name)
                .join(Unit, Unit.id == Service.hall_id)
                .join(Department, Department.id == Service.department_id)
                .where(Service.id.in_(ids))
            )
        ).all()
        periods: dict[int, list[tuple[date, int]]] = {}
        for service_id, until, capacity in (
            await session.execute(
                select(CapacityPeriod.service_id, CapacityPeriod.until, CapacityPeriod.daily_capacity)
                .where(CapacityPeriod.service_id.in_(ids))
                .order_by(CapacityPeriod.service_id, CapacityPeriod.until)
            )
        ).all():
            periods.setdefault(int(service_id), []).append((until, int(capacity)))
        extra: dict[int, list[tuple[date, Any, bool]]] = {}
        for service_id, day, hours, open_day in (
            await session.execute(
                select(ExtraSupply.service_id, ExtraSupply.day, ExtraSupply.hours, ExtraSupply.open_day)
                .where(ExtraSupply.service_id.in_(ids))
                .order_by(ExtraSupply.service_id, ExtraSupply.day)
            )
        ).all():
            extra.setdefault(int(service_id), []).append((day, hours, open_day))
        for service, hall, department in rows:
            out[service.id] = info = _info(
                service, hall, department, periods.get(service.id, []), extra.get(service.id, [])
            )
            cache.put(("service", service.id), info, since)
    return out


def _info(
    service: Service,
    hall: Unit,
    department: str,
    periods: list[tuple[date, int]],
    extra: list[tuple[date, Any, bool]],
) -> ServiceInfo:
    return ServiceInfo(
        id=service.id,
        name=service.name,
        department=department,
        hall_id=hall.id,
        hall_name=hall.name,
        hall_code=hall.code or "",
        hall_path=hall.path,
        hall_address=hall.address or "",
        hall_hotline=hall.hotline or "",
        hall_mode=hall.mode or "appointment_priority",
        hours=hours_tuple(hall.hours),
        business_types=tuple(service.business_types or []),
        daily_capacity=service.daily_capacity,
        max_batch=service.max_batch,
        walk_in_allowed=service.walk_in_allowed,
        bundle_of=tuple(service.bundle_of) if service.bundle_of else None,
        active=service.active,
        foreigner_related=service.foreigner_related,
        capacity_before=tuple(periods),
        item_code=service.item_code,
        extra=tuple(
            (day, hours_tuple(hours) if hours else None, bool(open_day)) for day, hours, open_day in extra
        ),
    )


def clear_caches() -> None:
    """Called after any catalogue, policy or calendar write in this process: every cached read of
    them (this module's, policy's and calendar's caches) is dropped."""
    TTLCache.clear_all()


def set_cache_ttl(ttl: float) -> None:
    TTLCache.set_ttl_all(ttl)


# --- reads of the public catalogue --------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class UnitNode:
    """A unit of the public tree; checked by `schemas.UnitNode`."""

    id: str
    name: str
    kind: str
    parent_id: str | None
    children: list[UnitNode]


@dataclass(slots=True, kw_only=True)
class UnitView:
    """A unit as the admin API shows it; checked by `UnitOut` (a hall: `HallUnitView`)."""

    id: str
    name: str
    kind: str
    parent_id: str | None


@dataclass(slots=True, kw_only=True)
class HallUnitView(UnitView):
    """A hall as the admin API shows it, with its own fields; checked by `HallUnitOut`."""

    code: str | None
    address: str | None
    hotline: str | None
    mode: str | None
    hours: list[dict[str, str]]
    counters: int


@dataclass(slots=True, kw_only=True)
class HallView:
    """A hall in the public list; checked by `HallOut`."""

    id: str
    name: str
    kind: str
    code: str | None
    address: str | None
    hotline: str | None
    mode: str | None


@dataclass(slots=True, kw_only=True)
class PublicService:
    """A service as citizens see it; checked by `ServiceOut`."""

    id: int
    name: str
    department: str
    business_types: list[str]
    max_batch: int
    walk_in_allowed: bool
    bundle_of: list[int] | None
    foreigner_related: bool
    item_code: str | None


@dataclass(slots=True, kw_only=True)
class ServiceView:
    """A service as the admin API shows it; checked by `AdminServiceOut`."""

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


def unit_tree(units: list[Unit]) -> list[UnitNode]:
    nodes = {
        unit.id: UnitNode(id=unit.id, name=unit.name, kind=unit.kind, parent_id=unit.parent_id, children=[])
        for unit in units
    }
    roots: list[UnitNode] = []
    for unit in sorted(units, key=lambda u: (u.path.count("/"), u.id)):
        node = nodes[unit.id]
        parent = nodes.get(unit.parent_id) if unit.parent_id else None
        (parent.children if parent else roots).append(node)
    return roots


async def all_units(session: AsyncSession) -> list[Unit]:
    return list((await session.execute(select(Unit).order_by(Unit.path))).scalars())


async def get_unit(session: AsyncSession, unit_id: str) -> Unit:
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id!r} not found")
    return unit


async def halls_under(session: AsyncSession, unit_id: str) -> list[Unit]:
    root = await get_unit(session, unit_id)
    query = (
        select(Unit)
        .where(Unit.path.startswith(root.path, autoescape=True), Unit.kind.in_(HALL_KINDS))
        .order_by(Unit.code, Unit.id)
    )
    return list((await session.execute(query)).scalars())


async def hall_services(session: AsyncSession, hall_id: str) -> list[tuple[Service, str]]:
    hall = await get_unit(session, hall_id)
    if hall.kind not in HALL_KINDS:
        raise NotFound(f"{hall_id!r} is not a hall")
    rows = (
        await session.execute(
            select(Service, Department.name)
            .join(Department, Department.id == Service.department_id)
            .where(Service.hall_id == hall_id, Service.active.is_(True))
            .order_by(Department.name, Service.id)
        )
    ).all()
    return [(row[0], row[1]) for row in rows]


async def next_hall_code(session: AsyncSession) -> str:
    """Rule M12 (choice): 2-digit codes in order, widening to 3 then 4 digits when they run out."""
    codes = set((await session.execute(select(Unit.code).where(Unit.code.is_not(None)))).scalars())
    for width in (2, 3, 4):
        start = 1 if width == 2 else 10 ** (width - 1)
        for number in range(start, 10**width):
            candidate = f"{number:0{width}d}"
            if candidate not in codes:
                return candidate
    raise RuntimeError("hall codes exhausted")


async def count_units(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(Unit))).scalar_one())


# --- administration -----------------------------------------------------------------------------


def unit_view(unit: Unit) -> UnitView:
    if unit.kind in HALL_KINDS:
        return HallUnitView(
            id=unit.id,
            name=unit.name,
            kind=unit.kind,
            parent_id=unit.parent_id,
            code=unit.code,
            address=unit.address,
            hotline=unit.hotline,
            mode=unit.mode,
            hours=unit.hours or [],
            counters=unit.counters,
        )
    return UnitView(id=unit.id, name=unit.name, kind=unit.kind, parent_id=unit.parent_id)


def hall_view(unit: Unit) -> HallView:
    return HallView(
        id=unit.id,
        name=unit.name,
        kind=unit.kind,
        code=unit.code,
        address=unit.address,
        hotline=unit.hotline,
        mode=unit.mode,
    )


def service_view(service: Service, department: str) -> ServiceView:
    return ServiceView(
        id=service.id,
        hall_id=service.hall_id,
        name=service.name,
        department=department,
        business_types=list(service.business_types or []),
        daily_capacity=service.daily_capacity,
        max_batch=service.max_batch,
        walk_in_allowed=service.walk_in_allowed,
        bundle_of=list(service.bundle_of) if service.bundle_of else None,
        active=service.active,
        foreigner_related=bool(service.foreigner_related),
        item_code=service.item_code,
    )


def public_service(service: Service, department: str) -> PublicService:
    return PublicService(
        id=service.id,
        name=service.name,
        department=department,
        business_types=list(service.business_types or []),
        max_batch=service.max_batch,
        walk_in_allowed=service.walk_in_allowed,
        bundle_of=list(service.bundle_of) if service.bundle_of else None,
        foreigner_related=bool(service.foreigner_related),
        item_code=service.item_code,
    )


def check_hours(hours: list[dict[str, str]]) -> list[dict[str, str]]:
    """Opening periods: HH:MM, start before end, in order, not overlapping."""

    if not hours:
        raise ValidationFailed("hours: a hall needs at least one opening period")
    previous_end = "00:00"
    for period in hours:
        start, end = period["start"], period["end"]
        if not HHMM.match(start) or not HHMM.match(end):
            raise ValidationFailed("hours: times are HH:MM")
        if start >= end:
            raise ValidationFailed(f"hours: {start}–{end} ends before it starts")
        if start < previous_end:
            raise ValidationFailed("hours: periods must be in order and not overlap")
        previous_end = end
    return [{"start": p["start"], "end": p["end"]} for p in hours]


async def create_unit(session: AsyncSession, data: dict[str, Any]) -> Unit:

    parent = await session.get(Unit, data["parent_id"])
    if parent is None:
        raise ValidationFailed(f"parent_id {data['parent_id']!r} does not exist")
    kind = data["kind"]
    if kind not in CHILD_KINDS[parent.kind]:
        raise ValidationFailed(f"a {kind} cannot sit under a {parent.kind}")
    if await session.get(Unit, data["id"]) is not None:
        raise Conflict(f"unit {data['id']!r} already exists")
    if len(parent.path) + len(data["id"]) + 1 > 2000:
        raise ValidationFailed("the unit tree is too deep here (paths are limited to 2000 characters)")
    unit = Unit(
        id=data["id"],
        name=data["name"],
        kind=kind,
        parent_id=parent.id,
        path=f"{parent.path}{data['id']}/",
        counters=0,
        created_at=clock.now(),
    )
    if kind in HALL_KINDS:
        missing = [f for f in ("address", "hotline", "mode", "hours") if not data.get(f)]
        if missing:
            raise ValidationFailed(f"a hall needs {', '.join(missing)}")
        unit.address, unit.hotline, unit.mode = data["address"], data["hotline"], data["mode"]
        unit.hours = check_hours(data["hours"])
        unit.counters = int(data["counters"]) if data.get("counters") is not None else 1
        code = data.get("code")
        if code is None:
            code = await next_hall_code(session)
        elif (await session.execute(select(Unit.id).where(Unit.code == code))).first() is not None:
            raise Conflict(f"hall code {code!r} is taken")
        unit.code = code
    session.add(unit)
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    return unit


async def patch_unit(session: AsyncSession, unit: Unit, changes: dict[str, Any]) -> Unit:

    hall_fields = {"address", "hotline", "mode", "hours", "counters"}
    if unit.kind not in HALL_KINDS and hall_fields & set(changes):
        raise ValidationFailed(f"{', '.join(sorted(hall_fields & set(changes)))}: only halls have these")
    for name, value in changes.items():
        if value is None:
            raise ValidationFailed(f"{name} cannot be null")
        if name == "hours":
            value = check_hours(value)
        setattr(unit, name, value)
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    return unit


async def department_id(session: AsyncSession, hall_id: str, name: str) -> int:
    """Departments are named per hall and created on first use."""
    found = (
        await session.execute(
            select(Department.id).where(Department.hall_id == hall_id, Department.name == name)
        )
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    department = Department(hall_id=hall_id, name=name)
    session.add(department)
    await session.flush()
    return department.id


async def check_bundle(
    session: AsyncSession, hall_id: str, members: list[int] | None, own_id: int | None
) -> None:
    """Rule G17: a 一件事 bundle lists at least two ordinary services of the same hall."""

    if members is None:
        return
    if len(set(members)) < 2 or len(set(members)) != len(members):
        raise ValidationFailed("bundle_of lists at least two different services")
    if own_id is not None and own_id in members:
        raise ValidationFailed("a bundle cannot contain itself")
    if own_id is not None:
        bundles = (
            await session.execute(
                select(Service.id, Service.bundle_of).where(
                    Service.hall_id == hall_id, Service.bundle_of.is_not(None)
                )
            )
        ).all()
        if any(own_id in (row.bundle_of or []) for row in bundles if row.id != own_id):
            raise ValidationFailed(
                "this service is a member of a bundle; a bundle cannot be nested (rule G17)"
            )
    rows = await session.execute(
        select(Service.id, Service.hall_id, Service.bundle_of).where(Service.id.in_(members))
    )
    found = {row.id: row for row in rows}
    for member in members:
        row = found.get(member)
        if row is None or row.hall_id != hall_id:
            raise ValidationFailed(f"bundle_of: service {member} is not a service of this hall")
        if row.bundle_of:
            raise ValidationFailed(f"bundle_of: service {member} is itself a bundle")


async def create_service(session: AsyncSession, data: dict[str, Any]) -> tuple[Service, str]:

    hall = await session.get(Unit, data["hall_id"])
    if hall is None or hall.kind not in HALL_KINDS:
        raise ValidationFailed(f"hall_id {data['hall_id']!r} is not a hall")
    await check_bundle(session, hall.id, data.get("bundle_of"), None)
    service = Service(
        hall_id=hall.id,
        department_id=await department_id(session, hall.id, data["department"]),
        name=data["name"],
        business_types=list(data.get("business_types") or []),
        daily_capacity=data["daily_capacity"],
        max_batch=data.get("max_batch", 1),
        walk_in_allowed=data.get("walk_in_allowed", True),
        bundle_of=data.get("bundle_of"),
        foreigner_related=bool(data.get("foreigner_related", False)),
        item_code=data.get("item_code"),
        active=True,
        created_at=clock.now(),
    )
    session.add(service)
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    return service, data["department"]


async def get_service(session: AsyncSession, service_id: int) -> tuple[Service, str, Unit]:
    if not 1 <= service_id <= MAX_ID:
        raise NotFound(f"service {service_id} not found")
    row = (
        await session.execute(
            select(Service, Department.name, Unit)
            .join(Department, Department.id == Service.department_id)
            .join(Unit, Unit.id == Service.hall_id)
            .where(Service.id == service_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"service {service_id} not found")
    return row[0], row[1], row[2]


async def patch_service(session: AsyncSession, service: Service, changes: dict[str, Any]) -> str:
    """Apply changes. The daily capacity is not one of them: once a service exists its capacity
    changes only by capacity request (rule G20), so a change that names it changes nothing."""

    for name, value in changes.items():
        if value is None and name not in ("bundle_of", "item_code"):  # these two may be cleared
            raise ValidationFailed(f"{name} cannot be null")
    if "daily_capacity" in changes:  # rule G20: by request, approved by the level above
        raise Unprocessable(
            "the daily capacity of a service changes only by capacity request "
            "(POST /api/v1/admin/capacity-requests)",
            code="capacity_by_request",
        )
    if "bundle_of" in changes:
        await check_bundle(session, service.hall_id, changes["bundle_of"], service.id)
    if "department" in changes:
        service.department_id = await department_id(session, service.hall_id, changes.pop("department"))
    for name, value in changes.items():
        setattr(service, name, value)
    await session.flush()
    clear_caches()
    after_commit(session, clear_caches)  # and again once committed: other requests read it
    department = (
        await session.execute(select(Department.name).where(Department.id == service.department_id))
    ).scalar_one()
    return str(department)


async def units_under(session: AsyncSession, root_path: str) -> list[Unit]:
    """Every unit of a subtree (its root included), in tree order."""
    query = select(Unit).where(Unit.path.startswith(root_path, autoescape=True)).order_by(Unit.path)
    return list((await session.execute(query)).scalars())


async def units_named(session: AsyncSession, ids: set[str] | list[str]) -> dict[str, Unit]:
    """Units by id (those that exist)."""
    if not ids:
        return {}
    return {u.id: u for u in (await session.execute(select(Unit).where(Unit.id.in_(set(ids))))).scalars()}


async def service_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    """Service names by id (those that exist)."""
    if not ids:
        return {}
    rows = await session.execute(select(Service.id, Service.name).where(Service.id.in_(ids)))
    return {int(row.id): str(row.name) for row in rows}


async def children_of(session: AsyncSession, unit_id: str) -> list[Unit]:
    query = select(Unit).where(Unit.parent_id == unit_id).order_by(Unit.code, Unit.id)
    return list((await session.execute(query)).scalars())


async def services_under(session: AsyncSession, root_path: str) -> list[tuple[Service, str, Unit]]:
    """Active services of the halls of a subtree, with department name and hall."""
    rows = (
        await session.execute(
            select(Service, Department.name, Unit)
            .join(Department, Department.id == Service.department_id)
            .join(Unit, Unit.id == Service.hall_id)
            .where(Unit.path.startswith(root_path, autoescape=True), Service.active.is_(True))
            .order_by(Unit.path, Department.name, Service.id)
        )
    ).all()
    return [(row[0], row[1], row[2]) for row in rows]


async def hall_catalogue(session: AsyncSession, hall_id: str) -> list[tuple[Service, str]]:
    """Every service of a hall, inactive ones included (the admin's view), by department."""
    rows = (
        await session.execute(
            select(Service, Department.name)
            .join(Department, Department.id == Service.department_id)
            .where(Service.hall_id == hall_id)
            .order_by(Department.name, Service.id)
        )
    ).all()
    return [(row[0], row[1]) for row in rows]


# --- orchestrations shared by the API routes and the console pages (issue 10 item 6) ------------
# Each one authorises (rules G3–G6, `yuyue.auth`), changes and audits (`yuyue.audit`); the caller
# commits.


async def unit_for(session: AsyncSession, who: Acting, unit_id: str) -> Unit:
    """A unit `who` may see (their subtree); `forbidden` outside it."""
    unit = await get_unit(session, unit_id)
    authorise(who, "view", unit.path)
    return unit


async def create_unit_as(session: AsyncSession, who: Acting, data: dict[str, Any]) -> UnitView:
    """A unit under `data["parent_id"]`, which `who` may configure; audited."""
    parent = await get_unit(session, data["parent_id"])
    authorise(who, "configure", parent.path)
    unit = await create_unit(session, data)
    view = unit_view(unit)
    await audit(session, who, unit.id, unit.path, "unit.create", unit.id, None, asdict(view))
    return view


async def update_unit_as(
    session: AsyncSession, who: Acting, unit_id: str, changes: dict[str, Any]
) -> UnitView:
    """Change a unit `who` may configure (hall fields on halls only); audited."""
    unit = await get_unit(session, unit_id)
    authorise(who, "configure", unit.path)
    before = unit_view(unit)
    await patch_unit(session, unit, changes)
    after = unit_view(unit)
    await audit(session, who, unit.id, unit.path, "unit.update", unit.id, asdict(before), asdict(after))
    return after


async def create_service_as(session: AsyncSession, who: Acting, data: dict[str, Any]) -> ServiceView:
    """A service of a hall `who` may configure; audited."""
    hall = await get_unit(session, data["hall_id"])
    authorise(who, "configure", hall.path)
    created, department = await create_service(session, data)
    view = service_view(created, department)
    await audit(session, who, hall.id, hall.path, "service.create", str(created.id), None, asdict(view))
    return view


async def service_for(session: AsyncSession, who: Acting, service_id: int) -> ServiceView:
    """A service of `who`'s subtree, as the admin API shows it."""
    found, department, hall = await get_service(session, service_id)
    authorise(who, "view", hall.path)
    return service_view(found, department)


async def update_service_as(
    session: AsyncSession, who: Acting, service_id: int, changes: dict[str, Any]
) -> ServiceView:
    """Change a service of a hall `who` may configure; audited."""
    found, department, hall = await get_service(session, service_id)
    authorise(who, "configure", hall.path)
    before = service_view(found, department)
    department = await patch_service(session, found, changes)
    after = service_view(found, department)
    await audit(
        session, who, hall.id, hall.path, "service.update", str(found.id), asdict(before), asdict(after)
    )
    return after


# --- item synonyms (issue 20): platform admins keep them, the hall finder uses them ------------------


@dataclass(slots=True, kw_only=True)
class SynonymView:
    """A kept synonym; checked by `SynonymOut`."""

    id: int
    term: str
    means: str


def synonym_view(row: ItemSynonym) -> SynonymView:
    return SynonymView(id=row.id, term=row.term, means=row.means)


def _squeeze(text: str) -> str:
    return "".join(text.split())


async def list_synonyms(session: AsyncSession) -> list[ItemSynonym]:
    return list((await session.execute(select(ItemSynonym).order_by(ItemSynonym.term))).scalars())


async def add_synonym(session: AsyncSession, who: Acting, term: str, means: str) -> SynonymView:
    """Platform level only (configuring the platform: platform L1), audited; a term is unique."""
    platform = await get_unit(session, "platform")
    authorise(who, "configure", platform.path)
    term, means = _squeeze(term), _squeeze(means)
    if not term or not means:
        raise ValidationFailed("term and means must not be blank")
    taken = (await session.execute(select(ItemSynonym).where(ItemSynonym.term == term))).scalar_one_or_none()
    if taken is not None:
        raise Conflict(f"the term {term!r} is already kept")
    row = ItemSynonym(term=term, means=means, created_at=clock.now())
    session.add(row)
    await session.flush()
    view = synonym_view(row)
    await audit(
        session, who, platform.id, platform.path, "synonym.add", f"synonym:{row.id}", None, asdict(view)
    )
    return view


async def remove_synonym(session: AsyncSession, who: Acting, synonym_id: int) -> None:
    platform = await get_unit(session, "platform")
    authorise(who, "configure", platform.path)
    row = await session.get(ItemSynonym, synonym_id)
    if row is None:
        raise NotFound("synonym not found")
    before = asdict(synonym_view(row))
    await session.delete(row)
    await session.flush()
    await audit(
        session, who, platform.id, platform.path, "synonym.remove", f"synonym:{synonym_id}", before, None
    )


async def synonym_meanings(session: AsyncSession, query: str) -> list[str]:
    """What a typed item query may stand for: the `means` of every synonym whose term the query is
    part of or contains (医保 → 社会保障卡 with 医保卡 → 社会保障卡 kept)."""
    squeezed = _squeeze(query).lower()
    if not squeezed:
        return []
    return [
        row.means
        for row in await list_synonyms(session)
        if squeezed in row.term.lower() or (len(row.term) >= 2 and row.term.lower() in squeezed)
    ]
