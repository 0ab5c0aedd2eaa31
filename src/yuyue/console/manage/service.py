"""View shaping of the admin console's manage pages (issue 10 item 4): page contexts built from the
domain services' reads, form parsing into the API's own request models, plain-Chinese problems.

No rule lives here and nothing is written here. Every change a page makes goes through the domain
service that the API route calls too (`register_admin`, `decide_request`, `create_unit_as`,
`set_policy`, `set_closure`, `penalties.add_ban` …), which authorises (rules G3–G7) and audits; every
page reads through scoped services (`unit_for`, `list_requests`, `list_alerts`, `audit_log` …), so an
admin never sees or changes anything outside their unit subtree (issue 10 item 6).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.admin import accounts, alert_text
from yuyue.admin import alerts as admin_alerts
from yuyue.admin import capacity as admin_capacity
from yuyue.audit.service import AuditView
from yuyue.auth.service import LEVELS, Acting, may
from yuyue.booking.receipt import CHANNEL_TEXT
from yuyue.calendar import service as calendar
from yuyue.catalogue import service as catalogue
from yuyue.catalogue.service import CHILD_KINDS, HALL_KINDS, MODES
from yuyue.clock import clock
from yuyue.console.service import LEVEL_TEXT
from yuyue.errors import DomainError, ValidationFailed
from yuyue.models import Alert, Service, Unit
from yuyue.onsite.counters import list_counters
from yuyue.onsite.staff import Actor
from yuyue.penalties.service import BanView
from yuyue.policy import service as policy
from yuyue.policy.presets import KNOB_NAMES, PRESETS
from yuyue.watch import service as watch
from yuyue.web import service as web

Model = TypeVar("Model", bound=BaseModel)

KIND_TEXT = {
    "platform": "平台",
    "city_department": "市直部门",
    "district": "区",
    **web.KIND_TEXT,
}
MODE_TEXT = web.MODE_TEXT
PRESET_TEXT = {
    "guangzhou-2021": "广州市统一预约管理办法",
    "tianhe": "天河区政务服务预约指引",
    "gz-medical-insurance": "广州医保中心预约指引",
}
REQUEST_STATUS_TEXT = {"pending": "待审批", "approved": "已批准", "rejected": "已驳回"}
ALERT_TEXT = alert_text.ALERT_TEXT
ACTION_TEXT = {
    "admin.create": "登记管理员",
    "admin.retire": "注销管理员",
    "unit.create": "新建单位",
    "unit.update": "修改单位",
    "service.create": "新增事项",
    "service.update": "修改事项",
    "policy.set": "设置预约规则",
    "closure.set": "设置休息日",
    "closure.delete": "取消休息日",
    "calendar.set": "设置全国工作日",
    "calendar.import": "导入全国工作日日历",
    "capacity.request": "申请调整号源",
    "capacity.approve": "批准号源调整",
    "capacity.reject": "驳回号源调整",
    "alert.resolve": "处理预警",
    "citizen.lookup": "查询市民",
    "citizen.reveal": "查看市民证件信息",
    "ban.add": "限制预约",
    "ban.lift": "解除限制",
    "kiosk.create": "新建自助机",
    "kiosk.revoke": "停用自助机",
    "staff.create": "登记窗口工作人员",
    "api_client.create": "登记接入系统",
    "api_client.revoke_key": "停用接入密钥",
    "api_client.rotate_key": "更换接入密钥",
    "synonym.add": "新增事项简称",
    "synonym.remove": "删除事项简称",
}
CHANNELS = CHANNEL_TEXT
WAIT_STATUS_TEXT = web.WAIT_STATUS_TEXT
ID_TYPES = web.ID_TYPES
STATUS_TEXT = web.STATUS_TEXT

# What each page says after a change went through (`?done=`).
DONE_TEXT = {
    "unit_created": "已新建下级单位。",
    "unit_updated": "已保存单位信息。",
    "service_created": "已新增事项。",
    "service_updated": "已保存事项。",
    "closure_added": "已设置休息日。",
    "closure_removed": "已取消休息日。",
    "calendar_imported": "已导入全国工作日日历。",
    "policy_set": "已保存预约规则。",
    "requested": "已提交号源调整申请，等待上级审批。",
    "approved": "已批准，新的号源已生效。",
    "rejected": "已驳回申请。",
    "resolved": "已处理预警。",
    "ban_added": "已限制该市民预约。",
    "ban_lifted": "已解除限制。",
    "synonym_added": "已新增事项简称，查找大厅时即可使用。",
    "synonym_removed": "已删除事项简称。",
    "registered": "已登记管理员，账号已开通。",
    "retired": "已注销该管理员账号。",
}


# --- the policy knobs, for people (docs/policies.md) ---------------------------------------------

KNOBS: dict[str, dict[str, Any]] = {
    "horizon_rule": {
        "label": "预约期计算方式",
        "kind": "choice",
        "choices": {
            "working_days_from_release": "工作日，每天放号时间开放新的一天",
            "calendar_days": "自然日，最后一天在放号时间开放",
            "working_days": "工作日，从明天起",
        },
    },
    "horizon_days": {"label": "预约期天数", "kind": "int", "unit": "天"},
    "release_time": {"label": "每天放号时间", "kind": "time_or_none"},
    "cutoff_prev_day": {"label": "前一天停止预约的时间", "kind": "time_or_none"},
    "onsite_share_pct": {"label": "现场号源比例", "kind": "int", "unit": "%"},
    "onsite_opens": {"label": "当天现场预约开始时间", "kind": "time"},
    "cancel_rule": {
        "label": "取消截止规则",
        "kind": "choice",
        "choices": {
            "before_slot_end": "时段结束前",
            "before_slot_start": "时段开始前",
            "prev_working_day": "前一个工作日的截止时间",
        },
    },
    "cancel_minutes": {"label": "取消须提前", "kind": "int", "unit": "分钟"},
    "cancel_time": {"label": "前一工作日取消截止时间", "kind": "time_or_none"},
    "one_live_per": {
        "label": "有效预约限制",
        "kind": "choice",
        "choices": {"service": "同一证件同一事项一个", "day": "同一证件同一天一个"},
    },
    "checkin_before_min": {"label": "时段开始前可取号", "kind": "int", "unit": "分钟"},
    "checkin_after_end_min": {"label": "时段结束后仍可取号", "kind": "int", "unit": "分钟"},
    "penalty": {
        "label": "爽约处罚规则",
        "kind": "choice",
        "choices": {
            "city": "市统一规则",
            "medical_insurance": "医保规则：累计3次限3个月",
            "none": "不处罚",
        },
    },
    "max_live_bookings": {"label": "每人有效预约上限", "kind": "int", "unit": "个"},
    "freed_seat_delay_min_s": {"label": "取消号源延迟放回最短", "kind": "int", "unit": "秒"},
    "freed_seat_delay_max_s": {"label": "取消号源延迟放回最长（0 即时）", "kind": "int", "unit": "秒"},
    "watch_sold_out_minutes": {"label": "异常：放号后约满时限", "kind": "int", "unit": "分钟"},
    "watch_sold_out_days": {"label": "异常：连续快速约满天数", "kind": "int", "unit": "天"},
    "watch_utilisation_floor_pct": {"label": "异常：号源使用率下限", "kind": "int", "unit": "%"},
    "watch_utilisation_weeks": {"label": "异常：使用率偏低持续周数", "kind": "int", "unit": "周"},
    "watch_no_show_factor_pct": {"label": "异常：爽约率超过基线倍数", "kind": "int", "unit": "%"},
    "watch_waitlist_days": {"label": "异常：排队人数连续增长天数", "kind": "int", "unit": "天"},
    "watch_channel_surge_factor_pct": {"label": "异常：渠道占比超过常态倍数", "kind": "int", "unit": "%"},
    "watch_bureau_silent_hours": {"label": "异常：部门系统未报送数据时长", "kind": "int", "unit": "小时"},
    "watch_min_count": {"label": "异常判断最少样本数", "kind": "int", "unit": "个"},
    "hoarding_late_cancel_min": {"label": "疑似占号：临近截止取消次数", "kind": "int", "unit": "次"},
    "hoarding_late_cancel_window_min": {"label": "疑似占号：截止前多久内取消", "kind": "int", "unit": "分钟"},
    "hoarding_many_halls_min": {"label": "疑似占号：同一事项预约大厅数", "kind": "int", "unit": "个"},
    "hoarding_no_show_areas_min": {"label": "疑似占号：爽约涉及区数", "kind": "int", "unit": "个"},
    "hoarding_burst_min": {"label": "疑似占号：短时间内预约次数", "kind": "int", "unit": "次"},
    "hoarding_burst_seconds": {"label": "疑似占号：短时间的时长", "kind": "int", "unit": "秒"},
}
assert set(KNOBS) == set(KNOB_NAMES), "every knob has its words"
NONE_WORDS = ("无", "none", "null")


def knob_text(name: str, value: Any) -> str:
    meta = KNOBS[name]
    if value is None:
        return "不设"
    if meta["kind"] == "choice":
        return str(meta["choices"].get(value, value))
    if meta["kind"] == "int":
        return f"{value} {meta.get('unit', '')}".strip()
    return str(value)


def knob_input(value: Any) -> str:
    """A knob's own override as its form field shows it."""
    if value is None:
        return "无"
    return str(value)


# --- form parsing ----------------------------------------------------------------------------

FIELD_TEXT = {
    "username": "用户名（3–64 位字母、数字或 . _ -）",
    "password": "密码（至少 12 位，含字母和数字）",
    "name": "名称或姓名",
    "title": "职务",
    "phone": "手机号码（11 位）",
    "unit_id": "所属单位",
    "level": "级别",
    "id": "单位编号（小写字母或数字开头，可含 - _）",
    "kind": "单位类型",
    "parent_id": "上级单位",
    "address": "地址",
    "hotline": "咨询电话",
    "mode": "办理模式",
    "hours": "办公时间",
    "counters": "窗口数量",
    "code": "大厅编号",
    "department": "部门",
    "business_types": "业务类型",
    "daily_capacity": "每日号源",
    "max_batch": "最大批量",
    "walk_in_allowed": "可现场取号",
    "item_code": "事项编码",
    "service_id": "事项",
    "date_from": "开始日期",
    "date_to": "结束日期",
    "date": "日期",
    "reason": "原因",
    "note": "备注",
    "until": "限制至（含当天）",
    "id_type": "证件类型",
    "id_number": "证件号码",
    "preset": "规则模板",
    **{name: str(meta["label"]) for name, meta in KNOBS.items()},
}

# Details of the services' ValidationFailed/Conflict in plain Chinese (the API keeps its English).
DETAIL_TEXT: tuple[tuple[str, str], ...] = (
    ("password must have", "密码至少 12 位，且同时包含字母和数字。"),
    (
        "admin has level",
        "该单位的管理员级别不符合“2-2-3”设置：平台、市直部门和市级大厅设一、二级，"
        "区设一级，区和街道大厅设二级，村（居）设三级。",
    ),
    ("username", "这个用户名已被使用（注销账号的用户名也不再使用）。请换一个用户名。"),
    (
        "only by capacity request",
        "事项建好后，每日号源只能通过“号源调整”申请、经上一级批准后改变，这里没有保存任何修改。",
    ),
    ("a hall needs", "大厅需要填写地址、咨询电话、办理模式和办公时间。"),
    ("cannot sit under", "这种类型的单位不能设在此单位下面。"),
    ("already exists", "这个单位编号已经存在，请换一个。"),
    ("hall code", "这个大厅编号已被使用。"),
    ("too deep", "单位层级太深了。"),
    ("only halls have", "只有大厅才有地址、电话、办理模式、办公时间和窗口。"),
    ("closures are set on halls", "只有大厅可以设置休息日。"),
    ("hours", "办公时间格式不正确：请写成“09:00-12:00 13:00-17:00”，时段按先后顺序且不重叠。"),
    ("date_to is before date_from", "结束日期早于开始日期。"),
    ("a change covers at most", f"一次调整最多覆盖 {admin_capacity.MAX_CHANGE_DAYS} 天。"),
    ("until: the last banned date", "限制截止日期不能早于今天。"),
    ("already lifted", "这条限制已经解除了。"),
    ("bundle", "“一件事”组合须包含本大厅至少两个普通事项，且不能嵌套。"),
    ("unknown preset", "规则模板不存在。"),
    ("unknown knob", "预约规则中有不认识的项目。"),
    ("must be a time", "时间请写成 HH:MM，例如 09:00。"),
    ("cannot be null", "这一项不能为空。"),
)


def problem_view(exc: DomainError) -> dict[str, Any]:
    """`web.error_view` for administrators: the message and next step, and what exactly was wrong."""
    view = web.error_view(exc)
    facts: list[str] = list(view["facts"])
    if exc.code == "too_late_for_change" and exc.extra.get("earliest"):
        first = date.fromisoformat(str(exc.extra["earliest"]))
        facts.append(f"最早可以从 {web.cn_date(first)} 开始调整（申请后的第 2 个工作日）。")
    fields = exc.extra.get("fields")
    if isinstance(fields, list) and fields:
        facts.append("请检查：" + "、".join(str(f) for f in fields) + "。")
    for needle, text in DETAIL_TEXT:
        if needle in exc.detail:
            facts.append(text)
            break
    if exc.code == "conflict" and not facts:
        facts.append("这项内容已经存在或刚被修改过，请刷新页面后再试。")
    view["facts"] = facts
    if exc.code == "conflict":
        view["title"], view["next_step"] = "没有保存：与已有内容冲突。", "请按上面的说明修改后再提交。"
    return view


def validated(model: type[Model], data: dict[str, Any]) -> Model:
    """The API's own request model, so a page accepts exactly what the API accepts."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        names = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            if name and FIELD_TEXT.get(name, name) not in names:
                names.append(FIELD_TEXT.get(name, name))
        raise ValidationFailed(str(exc.errors()[0].get("msg", "invalid")), fields=names) from None


def text(form: dict[str, list[str]], name: str, max_length: int = 200) -> str:
    return web.field(form, name, max_length)


def optional(form: dict[str, list[str]], name: str, max_length: int = 200) -> str | None:
    return web.field(form, name, max_length) or None


def number(form: dict[str, list[str]], name: str) -> int | str | None:
    """An integer field: the int, None when blank, the raw text when not a number (the model then
    names the field)."""
    raw = web.field(form, name, 20)
    if not raw:
        return None
    return int(raw) if re.fullmatch(r"-?[0-9]{1,9}", raw) else raw


def password(form: dict[str, list[str]]) -> str:
    """A password as typed (never trimmed)."""
    values = form.get("password") or [""]
    return values[0][:200]


def split_list(raw: str) -> list[str]:
    """`换领，补领` / `换领, 补领` / `换领 补领` → ["换领", "补领"]."""
    return [part for part in re.split(r"[,，、;；\s]+", raw) if part]


def checked(form: dict[str, list[str]], name: str) -> bool:
    return web.field(form, name, 10) in ("1", "on", "true", "yes")


def day(form: dict[str, list[str]], name: str) -> date:
    raw = web.field(form, name, 10)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: not a date", fields=[FIELD_TEXT.get(name, name)]) from None


PERIOD = re.compile(r"^([0-9]{1,2}:[0-9]{2})\s*[-–~至]\s*([0-9]{1,2}:[0-9]{2})$")


def hours_text(hours: list[dict[str, str]] | None) -> str:
    return " ".join(f"{p['start']}-{p['end']}" for p in hours or [])


def parse_hours(raw: str) -> list[dict[str, str]] | None:
    """`09:00-12:00 13:00-17:00` (spaces, commas or semicolons between periods); None when blank.
    The catalogue checks order and overlap (`check_hours`)."""
    if not raw.strip():
        return None
    periods = []
    for part in re.split(r"[\s,，;；、]+", raw.strip()):
        match = PERIOD.match(part)
        if not match:
            raise ValidationFailed(f"hours: {part!r} is not HH:MM-HH:MM", fields=[FIELD_TEXT["hours"]])
        start, end = (value.zfill(5) for value in match.groups())
        periods.append({"start": start, "end": end})
    return periods


def hall_fields(form: dict[str, list[str]]) -> dict[str, Any]:
    """The hall fields of a unit form, blank ones left out."""
    data: dict[str, Any] = {}
    for name, limit in (("address", 300), ("hotline", 30), ("mode", 32)):
        value = optional(form, name, limit)
        if value is not None:
            data[name] = value
    hours = parse_hours(text(form, "hours", 200))
    if hours is not None:
        data["hours"] = hours
    counters = number(form, "counters")
    if counters is not None:
        data["counters"] = counters
    return data


def policy_overrides(form: dict[str, list[str]]) -> tuple[str | None, dict[str, Any]]:
    """The preset and the knobs set here; a blank field inherits, `无` sets a time knob to none."""
    preset = optional(form, "preset", 40)
    overrides: dict[str, Any] = {}
    for name, meta in KNOBS.items():
        raw = web.field(form, f"knob.{name}", 40)
        if not raw:
            continue
        if meta["kind"] == "int":
            if not re.fullmatch(r"[0-9]{1,6}", raw):
                raise ValidationFailed(f"overrides.{name}: not a number", fields=[meta["label"]])
            overrides[name] = int(raw)
        elif meta["kind"] == "time_or_none" and raw.lower() in NONE_WORDS:
            overrides[name] = None
        else:
            overrides[name] = raw
    return preset, overrides


def sticky(form: dict[str, list[str]], name: str) -> dict[str, Any]:
    """What was typed into a form that failed, to show it again (never a password)."""
    values = {key: vals[0] for key, vals in form.items() if vals and key not in ("csrf", "password")}
    return {"form": name, "typed": values}


# --- page contexts -------------------------------------------------------------------------------


def texts() -> dict[str, Any]:
    """The words every manage template may use."""
    return {
        "hours_text": hours_text,
        "KIND_TEXT": KIND_TEXT,
        "MODE_TEXT": MODE_TEXT,
        "PRESET_TEXT": PRESET_TEXT,
        "REQUEST_STATUS_TEXT": REQUEST_STATUS_TEXT,
        "ALERT_TEXT": ALERT_TEXT,
        "ACTION_TEXT": ACTION_TEXT,
        "CHANNELS": CHANNELS,
        "WAIT_STATUS_TEXT": WAIT_STATUS_TEXT,
        "DONE_TEXT": DONE_TEXT,
        "MANAGE_LEVELS": LEVEL_TEXT,
        "ID_TYPE_TEXT": ID_TYPES,
        "BOOKING_STATUS_TEXT": STATUS_TEXT,
    }


def tree(units: list[Unit]) -> list[dict[str, Any]]:
    """The admin's subtree as nested nodes (the admin's own unit is the root)."""
    nodes: dict[str, dict[str, Any]] = {
        u.id: {"id": u.id, "name": u.name, "kind": u.kind, "code": u.code, "children": []} for u in units
    }
    roots: list[dict[str, Any]] = []
    for unit in sorted(units, key=lambda u: (u.path.count("/"), u.code or "", u.id)):
        parent = nodes.get(unit.parent_id) if unit.parent_id else None
        siblings: list[dict[str, Any]] = parent["children"] if parent else roots
        siblings.append(nodes[unit.id])
    return roots


async def scope_units(session: AsyncSession, who: Acting) -> list[Unit]:
    return await catalogue.units_under(session, who.unit_path)


def _source(unit: Unit, names: dict[str, Unit], source: str) -> tuple[str, str]:
    """Where a knob's value comes from: ("here" | "inherited" | "default", words)."""
    if source == unit.id:
        return "here", "本单位设置"
    if source == "default":
        return "default", "平台默认（广州市统一规则）"
    found = names.get(source)
    return "inherited", f"继承自 {found.name if found else source}"


async def policy_context(session: AsyncSession, unit: Unit) -> dict[str, Any]:
    """Each knob's effective value and where it comes from (set here, inherited, default), and what
    this unit sets itself (rules: "Policies")."""
    effective = await policy.effective_policy(session, unit.id)
    own_preset, own_overrides = await policy.own_policy(session, unit.id)
    names = await catalogue.units_named(session, policy.path_ids(unit.path))
    values = effective.knobs.model_dump()
    rows = []
    for name in KNOB_NAMES:
        where, words = _source(unit, names, effective.sources[name])
        rows.append(
            {
                "name": name,
                "label": KNOBS[name]["label"],
                "kind": KNOBS[name]["kind"],
                "choices": KNOBS[name].get("choices", {}),
                "unit": KNOBS[name].get("unit", ""),
                "value": knob_text(name, values[name]),
                "where": where,
                "source": words,
                "own": knob_input(own_overrides[name]) if name in own_overrides else "",
            }
        )
    preset_from = None
    for uid in reversed(policy.path_ids(unit.path)):  # the nearest unit up the tree that sets one
        preset = own_preset if uid == unit.id else (await policy.own_policy(session, uid))[0]
        if preset:
            source = names[uid].name if uid in names else uid
            preset_from = "本单位设置" if uid == unit.id else f"继承自 {source}"
            break
    return {
        "rows": rows,
        "preset": effective.preset,
        "preset_from": preset_from,
        "own_preset": own_preset or "",
        "presets": PRESETS,
    }


async def unit_context(session: AsyncSession, who: Acting, actor: Actor, unit_id: str) -> dict[str, Any]:
    """The unit page: details, halls' catalogue, hours, counters, closures, policy, children."""
    unit = await catalogue.unit_for(session, who, unit_id)  # rule G6: only inside the subtree
    chain = policy.path_ids(unit.path)
    named = await catalogue.units_named(session, chain)
    crumbs = [named[uid] for uid in chain if uid in named and named[uid].path.startswith(who.unit_path)]
    context: dict[str, Any] = {
        "unit": unit,
        "crumbs": crumbs,
        "is_hall": unit.kind in HALL_KINDS,
        "may_configure": may(who, "configure", unit.path),
        "children": await catalogue.children_of(session, unit.id),
        "child_kinds": CHILD_KINDS.get(unit.kind, ()),
        "modes": MODES,
        "policy": await policy_context(session, unit),
        "hours": hours_text(unit.hours),
    }
    if unit.kind in HALL_KINDS:
        departments: dict[str, list[Any]] = {}
        for found, department in await catalogue.hall_catalogue(session, unit.id):
            departments.setdefault(department, []).append(found)
        context["departments"] = departments
        context["closures"] = await calendar.closures_of(session, unit.id, since=clock.today())
        context["counters"] = await list_counters(session, actor, unit.id)
    return context


async def capacity_context(session: AsyncSession, who: Acting) -> dict[str, Any]:
    """Capacity requests of the subtree (rule G20): who may decide each, which are past due."""
    requests = await admin_capacity.list_requests(session, who, None)
    parties = await admin_capacity.requesters(session, requests)
    services = await catalogue.services_under(session, who.unit_path)
    by_id = {s.id: (s, department, hall) for s, department, hall in services}
    halls = await catalogue.units_named(session, {r.hall_id for r in requests})
    people = await accounts.admin_names(
        session, {r.requested_by for r in requests} | {r.decided_by for r in requests if r.decided_by}
    )
    now = clock.now()
    rows = []
    for r in requests:
        hall = halls.get(r.hall_id)
        found = by_id.get(r.service_id)
        pending = r.status == "pending"
        rows.append(
            {
                "request": r,
                "service": found[0].name if found else f"事项 {r.service_id}",
                "hall": hall.name if hall else r.hall_id,
                "requester": people.get(r.requested_by, str(r.requested_by)),
                "decider": people.get(r.decided_by, "") if r.decided_by else "",
                "overdue": pending and r.overdue_at <= now,  # rule G20: approval_overdue
                "may_decide": pending
                and hall is not None
                and may(who, "approve", hall.path, requester=parties.get(r.id)),
                "mine": r.requested_by == who.id,
            }
        )
    return {
        "rows": rows,
        "services": [
            {"id": s.id, "label": f"{hall.name} · {department} · {s.name}（每日 {s.daily_capacity}）"}
            for s, department, hall in services
            if hall.mode != "self_service"  # rule M2 (as read): self-service halls take no bookings
        ],
        "overdue_count": sum(1 for row in rows if row["overdue"]),
        "may_propose": may(who, "propose", who.unit_path),
    }


# --- alerts in plain Chinese (issue 20) ------------------------------------------------------------
# The API keeps each alert's English `detail`; the console says it in one Chinese sentence per kind,
# built from the stored fields (kind, unit, service, figure, suggestion, dedup key), and offers the
# remedy as a link: a capacity request pre-filled with the suggestion (rule G20), the calendar page.


def alert_remedy(alert: Alert) -> tuple[str, str] | None:
    """(the link's words, where it goes): a capacity request pre-filled with the suggested figure
    (rule G20), the calendar page, the capacity requests to decide."""
    suggestion = alert.suggestion or {}
    if alert.kind == "calendar_missing":
        return "录入工作日日历", "/admin/calendar"
    if alert.kind == "approval_overdue":
        return "去审批号源调整", "/admin/capacity"
    if alert.service_id and suggestion.get("daily_capacity") is not None:
        query = urlencode(
            {
                "service_id": alert.service_id,
                "daily_capacity": suggestion["daily_capacity"],
                "date_from": suggestion.get("date_from", ""),
            }
        )
        return "按建议申请调整号源", f"/admin/capacity?{query}"
    if alert.kind == "waitlist_over_release" and alert.service_id:
        return "申请增加号源", f"/admin/capacity?service_id={alert.service_id}"
    return None


async def alerts_context(session: AsyncSession, who: Acting, show: str) -> dict[str, Any]:
    resolved = None if show == "all" else False
    alerts = await admin_alerts.list_alerts(session, who, resolved)
    units = await catalogue.units_named(session, {a.unit_id for a in alerts})
    service_ids = {a.service_id for a in alerts if a.service_id}
    services: dict[int, str] = {}
    if service_ids:
        named = select(Service.id, Service.name).where(Service.id.in_(service_ids))
        services = {row.id: row.name for row in await session.execute(named)}
    extras = await alert_text.alert_extras(session, alerts)
    return {
        "alerts": [
            {
                "alert": a,
                "unit": units[a.unit_id].name if a.unit_id in units else "已撤销的单位",
                "sentence": alert_text.alert_sentence(
                    a,
                    units[a.unit_id].name if a.unit_id in units else "已撤销的单位",
                    services.get(a.service_id, "") if a.service_id else "",
                    extras[a.id],
                ),
                "remedy": alert_remedy(a),
                "chart": admin_alerts.chart_link(a.kind, a.unit_id, a.service_id),
                "may_resolve": a.resolved_at is None
                and a.unit_id in units
                and may(who, "resolve_alert", units[a.unit_id].path),
            }
            for a in alerts
        ],
        "show": "all" if show == "all" else "open",
    }


async def admins_context(session: AsyncSession, who: Acting) -> dict[str, Any]:
    """Admins of the subtree, who may be retired by `who`, and where `who` may register one (G3–G7)."""
    units = await scope_units(session, who)
    by_id = {u.id: u for u in units}
    rows = []
    for account in await accounts.list_admins(session, who):
        unit = by_id.get(account.unit_id)
        rows.append(
            {
                "admin": accounts.admin_view(account),
                "unit": unit.name if unit else account.unit_id,
                "may_retire": account.active
                and unit is not None
                and may(who, "manage_admins", unit.path, target_level=account.level),
            }
        )
    levels = sorted(
        {
            level
            for u in units
            for level in LEVELS.get(u.kind, ())
            if may(who, "manage_admins", u.path, target_level=level)
        }
    )
    targets = [
        {
            "id": u.id,
            "label": f"{u.name}（{KIND_TEXT.get(u.kind, u.kind)}，可设"
            + "、".join(LEVEL_TEXT[level] for level in LEVELS.get(u.kind, ()))
            + "）",
        }
        for u in units
        if any(may(who, "manage_admins", u.path, target_level=level) for level in LEVELS.get(u.kind, ()))
    ]
    return {"rows": rows, "targets": targets, "levels": levels}


TARGET_TEXT = {  # the kinds of object an audit entry names ("kiosk:1"), in words
    "admin": "管理员",
    "alert": "预警",
    "api_client": "接入系统",
    "ban": "限制预约",
    "calendar": "全国工作日",
    "capacity": "号源调整申请",
    "citizen": "市民",
    "client": "接入系统",
    "closure": "休息日",
    "kiosk": "自助机",
    "policy": "预约规则",
    "service": "事项",
    "staff": "窗口工作人员",
    "synonym": "事项简称",
    "unit": "单位",
}
FIELD_TEXT = {  # the fields of the before/after records, in words
    "term": "简称",
    "means": "对应的事项名称",
    "active": "开放",
    "address": "地址",
    "appointment_only": "只接受预约",
    "bundle_of": "联办事项",
    "business_types": "业务类型",
    "capacity": "号源",
    "code": "编号",
    "counters": "窗口数量",
    "daily_capacity": "每日号源",
    "date": "日期",
    "day": "日期",
    "department": "部门",
    "end": "结束",
    "foreigner_allowed": "外国人可预约",
    "foreigner_related": "涉外事项",
    "hall": "大厅",
    "hall_id": "大厅",
    "hotline": "咨询电话",
    "hours": "办公时间",
    "id": "序号",
    "item_code": "事项编码",
    "kind": "类型",
    "level": "级别",
    "max_batch": "最大批量",
    "mode": "预约方式",
    "name": "名称",
    "note": "说明",
    "overrides": "单项设置",
    "parent_id": "上级单位",
    "phone": "手机号码",
    "preset": "规则模板",
    "priority": "优先",
    "reason": "原因",
    "related": "相关事项",
    "start": "开始",
    "status": "状态",
    "title": "职务",
    "unit_id": "单位",
    "until": "截止",
    "username": "用户名",
    "walk_in_allowed": "可现场取号",
    "working": "工作日",
}


def _value_text(value: Any, units: dict[str, Unit]) -> str:
    """One recorded value as a person reads it: yes/no, units by name, codes by their words."""
    if value is None:
        return "无"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        return "、".join(_value_text(v, units) for v in value) or "无"
    if isinstance(value, dict):
        return "；".join(f"{FIELD_TEXT.get(k, k)}：{_value_text(v, units)}" for k, v in sorted(value.items()))
    text = str(value)
    if text in units:
        return units[text].name
    for words in (MODE_TEXT, KIND_TEXT, PRESET_TEXT, ID_TYPES, STATUS_TEXT):
        if text in words:
            return str(words[text])
    return text


def _record_text(value: Any, units: dict[str, Unit]) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        lines = [f"{FIELD_TEXT.get(k, k)}：{_value_text(v, units)}" for k, v in sorted(value.items())]
        return "\n".join(lines)[:2000]
    return _value_text(value, units)[:2000]


def _target_text(target: str | None, units: dict[str, Unit]) -> str:
    """`kiosk:1` → 自助机（第 1 号）, `unit:hall-a` → the unit's name."""
    if not target:
        return "—"
    if target in units:
        return units[target].name
    kind, _, ref = target.partition(":")
    if ref in units:
        return units[ref].name
    words = TARGET_TEXT.get(kind)
    if words is None:
        return target
    return f"{words}（第 {ref} 号）" if ref.isdigit() else words


def audit_rows(entries: list[AuditView], units: dict[str, Unit]) -> list[dict[str, Any]]:
    return [
        asdict(entry)
        | {
            "who": entry.admin or (f"窗口 {entry.staff}" if entry.staff else "系统"),
            "unit": units[entry.unit_id].name if entry.unit_id in units else "—",
            "action_text": ACTION_TEXT.get(entry.action, "其他操作"),
            "target": _target_text(entry.target, units),
            "before_text": _record_text(entry.before, units),
            "after_text": _record_text(entry.after, units),
        }
        for entry in entries
    ]


async def ban_units(session: AsyncSession, who: Acting, bans: list[BanView]) -> dict[int, bool]:
    """Which bans `who` may lift (those imposed by a unit of their subtree)."""
    units = await catalogue.units_named(session, {b.unit_id for b in bans})
    return {b.id: b.unit_id in units and may(who, "configure", units[b.unit_id].path) for b in bans}


def may_ban(who: Acting) -> bool:
    """Rule G15: an admin who may configure their own unit may add a ban for deliberate hoarding."""
    return may(who, "configure", who.unit_path)


# --- hoarding suspects on the 限制预约 page (rule G15, last clause; issue 23) -----------------------

PATTERN_TEXT = {
    "late_cancel": "临近取消截止时间反复取消",
    "many_halls": "同一事项在多个大厅预约",
    "no_show_districts": "在多个区爽约",
    "burst": "短时间内集中预约",
}
VIA_TEXT = {"s:": "同一登录会话", "p:": "同一合作方"}  # a burst's `via` (watch.service.burst_via)
BAN_SUGGESTED_DAYS = 90  # the until-date the ban form offers (the admin may change it)


async def hoarding_suspects(session: AsyncSession, secret: str, who: Acting) -> dict[str, Any]:
    """The admin's subtree's hoarding suspects (watch.service.hoarding: scoped, masked, with the
    `hoarding_*` knobs of the admin's unit), one entry per citizen, strongest first, the evidence in
    words (hall and item names, Chinese dates): nothing here bans; the page offers the ban form."""
    today = clock.today()
    first, last = watch.page_range(today)
    # the ranking the nightly job stored for the admin's unit (issue 23: ranking a city's bookings
    # takes seconds); none of today yet (a new admin's unit, before 03:45): ranked now
    stored = await watch.stored_ranking(session, secret, who.unit_id, today)
    rows, ranked_at = stored if stored is not None else ([], None)
    if stored is None:
        rows = await watch.hoarding(session, secret, who, None, first, last)
    hall_ids: set[str] = set()
    service_ids: set[int] = set()
    for row in rows:
        for item in row["evidence"]:
            hall_ids.add(str(item["hall_id"]))
            service_ids.add(int(item["service_id"]))
            if "district" in item:
                hall_ids.add(str(item["district"]))
    units = await catalogue.units_named(session, hall_ids)
    services = await catalogue.service_names(session, service_ids)
    suspects: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = suspects.setdefault(
            row["id"], {"id": row["id"], "citizen": row["citizen"], "score": 0, "patterns": []}
        )
        entry["score"] += row["score"]
        entry["patterns"].append(
            {
                "pattern": row["pattern"],
                "text": PATTERN_TEXT.get(row["pattern"], "其他"),
                "score": row["score"],
                "evidence": [_evidence_line(item, units, services) for item in row["evidence"]],
            }
        )
    ordered = sorted(suspects.values(), key=lambda s: -int(s["score"]))
    return {
        "suspects": ordered,
        "suspect_first": first,
        "suspect_last": last,
        "suspects_ranked_at": web.cn_datetime(ranked_at) if ranked_at else None,
        "ban_until": (today + timedelta(days=BAN_SUGGESTED_DAYS)).isoformat(),
    }


def _evidence_line(item: dict[str, Any], units: dict[str, Unit], services: dict[int, str]) -> dict[str, str]:
    hall = units.get(str(item["hall_id"]))
    line = {
        "number": str(item["number"]),
        "hall": hall.name if hall else "（已撤销的大厅）",
        "service": services.get(int(item["service_id"]), "（已撤销的事项）"),
        "slot": web.cn_datetime(str(item["slot_start"])),
        "status": STATUS_TEXT.get(str(item["status"]), "其他"),
        "channel": CHANNEL_TEXT.get(str(item["channel"]), "其他渠道"),
        "made": web.cn_datetime(str(item["created_at"])),
        "note": "",
    }
    if "cancelled_at" in item:
        line["note"] = (
            f"取消于 {web.cn_datetime(str(item['cancelled_at']))}，"
            f"截止 {web.cn_datetime(str(item['deadline']))}"
        )
    elif "district" in item:
        area = units.get(str(item["district"]))
        line["note"] = f"所在区：{area.name if area else '未知'}"
    elif "via" in item:  # a burst: through one login session, one partner, or (before 0028) one channel
        line["note"] = VIA_TEXT.get(str(item["via"])[:2], "同一渠道")
    return line
