"""`yuyue demo`: a believable Guangzhou to book in at once (idempotent: what exists is kept).

The platform runs the city policy; 天河 runs `tianhe`; the medical-insurance bureau and its
centres run `gz-medical-insurance`. Demo admins are printed with their passwords: they exist for
trying the product out, never for production (the command refuses YUYUE_ENV=production).

On a demo without bookings it also loads 60 days of history up to `clock.now()` and the days ahead
(`demo_history`): bookings in their final states, tickets, no-shows and a ban, waiting entries,
capacity requests, an alert, the figures rolled up. Under YUYUE_ENV=test the bare demo is loaded
unless `history=True` is asked for: the browser tests seed their own month over it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin.accounts import create_admin
from yuyue.catalogue.service import clear_caches, create_service, create_unit
from yuyue.clock import clock
from yuyue.config import Settings
from yuyue.db import make_engine, make_sessionmaker
from yuyue.demo_history import load_history
from yuyue.models import Admin, Policy, Service, Unit

DAY = [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]
SHORT_DAY = [{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "17:00"}]

UNITS: list[dict[str, Any]] = [
    {
        "id": "gz-hall",
        "name": "广州市政务服务中心",
        "kind": "city_hall",
        "parent_id": "platform",
        "address": "广州市天河区天府路1号",
        "hotline": "020-12345",
        "mode": "appointment_priority",
        "hours": DAY,
        "counters": 12,
    },
    {"id": "gz-ybj", "name": "广州市医疗保障局", "kind": "city_department", "parent_id": "platform"},
    {
        "id": "gz-yb-centre",
        "name": "广州市医疗保险服务中心",
        "kind": "city_hall",
        "parent_id": "gz-ybj",
        "address": "广州市越秀区东风中路318号",
        "hotline": "020-12345",
        "mode": "appointment_first",
        "hours": DAY,
        "counters": 10,
    },
    {
        "id": "gz-yb-tianhe",
        "name": "广州市医疗保险服务中心天河分中心",
        "kind": "city_hall",
        "parent_id": "gz-ybj",
        "address": "广州市天河区黄埔大道中309号",
        "hotline": "020-12345",
        "mode": "appointment_first",
        "hours": DAY,
        "counters": 6,
    },
    {
        "id": "gz-yb-panyu",
        "name": "广州市医疗保险服务中心番禺分中心",
        "kind": "city_hall",
        "parent_id": "gz-ybj",
        "address": "广州市番禺区市桥街清河东路319号",
        "hotline": "020-12345",
        "mode": "appointment_first",
        "hours": DAY,
        "counters": 5,
    },
    {"id": "tianhe", "name": "天河区", "kind": "district", "parent_id": "platform"},
    {
        "id": "tianhe-hall",
        "name": "天河区政务服务中心",
        "kind": "district_hall",
        "parent_id": "tianhe",
        "address": "广州市天河区天河路242号",
        "hotline": "020-38622345",
        "mode": "appointment_priority",
        "hours": DAY,
        "counters": 20,
    },
    {
        "id": "tianhe-shipai",
        "name": "天河区石牌街政务服务中心",
        "kind": "street_hall",
        "parent_id": "tianhe",
        "address": "广州市天河区石牌东路88号",
        "hotline": "020-85512345",
        "mode": "appointment_priority",
        "hours": SHORT_DAY,
        "counters": 4,
    },
    {
        "id": "tianhe-shipai-cun",
        "name": "石牌村党群服务站",
        "kind": "village_hall",
        "parent_id": "tianhe-shipai",
        "address": "广州市天河区石牌村东街12号",
        "hotline": "020-85523456",
        "mode": "self_service",
        "hours": SHORT_DAY,
        "counters": 1,
    },
    {
        "id": "tianhe-tianhenan",
        "name": "天河区天河南街政务服务中心",
        "kind": "street_hall",
        "parent_id": "tianhe",
        "address": "广州市天河区天河南二路33号",
        "hotline": "020-38801234",
        "mode": "appointment_priority",
        "hours": SHORT_DAY,
        "counters": 3,
    },
    {"id": "yuexiu", "name": "越秀区", "kind": "district", "parent_id": "platform"},
    {
        "id": "yuexiu-hall",
        "name": "越秀区政务服务中心",
        "kind": "district_hall",
        "parent_id": "yuexiu",
        "address": "广州市越秀区中山六路218号",
        "hotline": "020-83212345",
        "mode": "appointment_priority",
        "hours": DAY,
        "counters": 16,
    },
    {
        "id": "yuexiu-beijing",
        "name": "越秀区北京街政务服务中心",
        "kind": "street_hall",
        "parent_id": "yuexiu",
        "address": "广州市越秀区北京路306号",
        "hotline": "020-83301234",
        "mode": "appointment_priority",
        "hours": SHORT_DAY,
        "counters": 3,
    },
    {"id": "panyu", "name": "番禺区", "kind": "district", "parent_id": "platform"},
    {
        "id": "panyu-hall",
        "name": "番禺区政务服务中心",
        "kind": "district_hall",
        "parent_id": "panyu",
        "address": "广州市番禺区市桥街福德路28号",
        "hotline": "020-84612345",
        "mode": "appointment_first",
        "hours": DAY,
        "counters": 14,
    },
    {
        "id": "panyu-shiqiao",
        "name": "番禺区市桥街政务服务中心",
        "kind": "street_hall",
        "parent_id": "panyu",
        "address": "广州市番禺区市桥街繁华路1号",
        "hotline": "020-84831234",
        "mode": "appointment_priority",
        "hours": SHORT_DAY,
        "counters": 3,
    },
    {
        "id": "panyu-shiqiao-dongxing",
        "name": "市桥街东兴社区服务站",
        "kind": "village_hall",
        "parent_id": "panyu-shiqiao",
        "address": "广州市番禺区市桥街东兴路8号",
        "hotline": "020-84845678",
        "mode": "appointment_priority",
        "hours": SHORT_DAY,
        "counters": 1,
    },
]

POLICIES = {"tianhe": "tianhe", "gz-ybj": "gz-medical-insurance"}
# The demo city holds freed seats back from the fastest clicker for 1–5 minutes (decision 0081).
PLATFORM_OVERRIDES = {"freed_seat_delay_min_s": 60, "freed_seat_delay_max_s": 300}

# (department, name, business types, daily capacity, max batch, walk-ins allowed)
DISTRICT_SERVICES: list[tuple[str, str, list[str], int, int, bool]] = [
    ("公安户政", "居民身份证申领", ["首次申领", "换领", "补领"], 70, 1, True),
    ("公安出入境", "往来港澳通行证签注", [], 56, 1, False),
    ("市场监管", "企业设立登记", ["有限责任公司", "个人独资企业", "合伙企业"], 42, 3, False),
    ("税务", "发票领用", [], 35, 2, True),
    ("人力资源和社会保障", "社会保障卡申领", ["首次申领", "补换卡"], 49, 1, True),
    ("不动产登记", "不动产转移登记", ["买卖", "赠与", "继承"], 28, 1, False),
]
STREET_SERVICES: list[tuple[str, str, list[str], int, int, bool]] = [
    ("社会事务", "居住证办理", ["新办", "签注"], 24, 1, True),
    ("社会事务", "老年人优待证办理", [], 12, 1, True),
    ("人力资源和社会保障", "灵活就业人员参保登记", [], 18, 1, True),
]
MEDICAL_SERVICES: list[tuple[str, str, list[str], int, int, bool]] = [
    ("个人业务", "异地就医备案", ["异地就医业务", "其他业务"], 70, 1, False),
    ("个人业务", "医保关系转移接续", ["其他业务"], 42, 1, False),
    ("单位业务", "单位参保登记及变更", ["其他业务"], 35, 5, False),
    ("个人业务", "门诊特定病种待遇申请", ["其他业务"], 28, 1, False),
]

# docs/rules.md "Items": the city catalogue's item code of a service name, the same item at every hall
# that offers it (rules T5, G15 compare items); names not listed are items of their own.
ITEM_CODES = {
    "居民身份证申领": "440100-GA-0001",
    "往来港澳通行证签注": "440100-GA-0002",
    "企业设立登记": "440100-SJ-0001",
    "发票领用": "440100-SW-0001",
    "社会保障卡申领": "440100-RS-0001",
    "不动产转移登记": "440100-BDC-0001",
    "居住证办理": "440100-GA-0003",
    "异地就医备案": "440100-YB-0001",
    "医保关系转移接续": "440100-YB-0002",
}

ADMINS: list[dict[str, Any]] = [
    {
        "username": "admin",
        "password": "yuyue-admin-2026",
        "name": "陈平台",
        "title": "平台一级管理员",
        "phone": "13800000001",
        "unit_id": "platform",
        "level": 1,
    },
    {
        "username": "platform2",
        "password": "yuyue-platform2-2026",
        "name": "李平台",
        "title": "平台二级管理员",
        "phone": "13800000002",
        "unit_id": "platform",
        "level": 2,
    },
    {
        "username": "yibao1",
        "password": "yuyue-yibao1-2026",
        "name": "王医保",
        "title": "市医保局一级管理员",
        "phone": "13800000003",
        "unit_id": "gz-ybj",
        "level": 1,
    },
    {
        "username": "tianhe1",
        "password": "yuyue-tianhe1-2026",
        "name": "赵天河",
        "title": "天河区一级管理员",
        "phone": "13800000004",
        "unit_id": "tianhe",
        "level": 1,
    },
    {
        "username": "tianhehall",
        "password": "yuyue-tianhehall-2026",
        "name": "钱大厅",
        "title": "区中心二级管理员",
        "phone": "13800000005",
        "unit_id": "tianhe-hall",
        "level": 2,
    },
    {
        "username": "shipai",
        "password": "yuyue-shipai-2026",
        "name": "孙街道",
        "title": "街道中心二级管理员",
        "phone": "13800000006",
        "unit_id": "tianhe-shipai",
        "level": 2,
    },
    {
        "username": "shipaicun",
        "password": "yuyue-shipaicun-2026",
        "name": "周社区",
        "title": "村居三级管理员",
        "phone": "13800000007",
        "unit_id": "tianhe-shipai-cun",
        "level": 3,
    },
]


def services_for(unit: dict[str, Any]) -> list[tuple[str, str, list[str], int, int, bool]]:
    if unit["parent_id"] == "gz-ybj":
        return MEDICAL_SERVICES
    if unit["kind"] in ("district_hall", "city_hall"):
        return DISTRICT_SERVICES
    if unit["kind"] == "street_hall":
        return STREET_SERVICES
    return STREET_SERVICES[:1]


async def _load(session: AsyncSession, secret: str, history: bool) -> list[str]:
    report: list[str] = []
    for data in UNITS:
        if await session.get(Unit, data["id"]) is None:
            await create_unit(session, {"code": None, **data})
            report.append(f"unit {data['id']} {data['name']}")
    for unit_id, preset in POLICIES.items():
        row = await session.get(Policy, unit_id)
        if row is None:
            session.add(Policy(unit_id=unit_id, preset=preset, overrides={}, updated_at=clock.now()))
            report.append(f"policy {preset} on {unit_id}")
    platform = await session.get(Policy, "platform")
    if platform is not None and not platform.overrides:
        platform.overrides = dict(PLATFORM_OVERRIDES)
        report.append("platform policy: freed seats return after 60–300 s")
    await session.flush()
    for data in UNITS:
        if data["kind"] in ("district", "city_department"):
            continue
        existing = set(
            (await session.execute(select(Service.name).where(Service.hall_id == data["id"]))).scalars()
        )
        created: dict[str, int] = {}
        for department, name, types, capacity, batch, walk_in in services_for(data):
            if name in existing:
                continue
            service, _ = await create_service(
                session,
                {
                    "hall_id": data["id"],
                    "department": department,
                    "name": name,
                    "business_types": types,
                    "daily_capacity": capacity,
                    "max_batch": batch,
                    "walk_in_allowed": walk_in,
                    "bundle_of": None,
                    "item_code": ITEM_CODES.get(name),
                },
            )
            created[name] = service.id
        # Rule G17: a 一件事 bundle at the comprehensive window of the district halls.
        if data["kind"] == "district_hall" and {"企业设立登记", "发票领用"} <= set(created):
            await create_service(
                session,
                {
                    "hall_id": data["id"],
                    "department": "综合窗口",
                    "name": "开办企业一件事",
                    "business_types": [],
                    "daily_capacity": 14,
                    "max_batch": 1,
                    "walk_in_allowed": False,
                    "bundle_of": [created["企业设立登记"], created["发票领用"]],
                },
            )
        if created:
            report.append(f"services at {data['id']}: {len(created)}")
    for admin in ADMINS:
        exists = (await session.execute(select(Admin.id).where(Admin.username == admin["username"]))).first()
        if exists is None:
            await create_admin(session, **admin)
            report.append(
                f"admin {admin['username']} / {admin['password']} ({admin['title']}, {admin['unit_id']})"
            )
    if history:
        await session.flush()
        report += await load_history(session, secret)
    return report


async def load(settings: Settings, history: bool | None = None) -> list[str]:
    if settings.production:
        raise SystemExit("yuyue demo loads demo admins with known passwords: not in production")
    if history is None:
        history = settings.env != "test"
    engine = make_engine(settings)
    try:
        clock.settable = True  # not production: the history is relative to the platform's now
        await clock.refresh(engine, force=True)
        async with make_sessionmaker(engine)() as session:
            report = await _load(session, settings.effective_secret, history)
            await session.commit()
    finally:
        await engine.dispose()
    clear_caches()
    return report or ["demo already loaded: nothing to do"]
