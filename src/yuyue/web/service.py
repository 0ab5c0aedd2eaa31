"""What the citizen pages need beyond the domain services: the cookie session, CSRF tokens, elder
mode, plain-Chinese error messages, and formatting. No booking rule lives here: the page routes call
yuyue.booking (commands, views) and yuyue.identity.service exactly as the API routes do.

Session (docs/decisions/0050): the cookie `yuyue_session` holds the same signed citizen token the
API hands out (HttpOnly, SameSite=Lax, Secure in production). CSRF: a random `yuyue_csrf` cookie and,
in every form that changes something, a hidden field carrying an HMAC of it under the secret key
(signed double submit); a POST whose field does not match is refused before anything runs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from pypinyin import Style, lazy_pinyin
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.catalogue.service import HALL_KINDS, parse_slot_id, synonym_meanings
from yuyue.clock import as_local
from yuyue.errors import DomainError, Unauthenticated, ValidationFailed
from yuyue.identity import service as identity
from yuyue.kit.cn_dates import WEEKDAYS as WEEKDAYS  # the pages import these from here
from yuyue.kit.cn_dates import cn_date as cn_date
from yuyue.kit.cn_dates import cn_datetime as cn_datetime
from yuyue.kit.idnumbers import normalise_id, parse_resident_id
from yuyue.models import Booking, Service, Unit

SESSION_COOKIE = "yuyue_session"
CSRF_COOKIE = "yuyue_csrf"
ELDER_COOKIE = "yuyue_elder"
MAX_FORM_FIELDS = 40

STATUS_TEXT = {
    "booked": "已预约",
    "checked_in": "已取号",
    "served": "已办结",
    "cancelled": "已取消",
    "no_show": "爽约",
    "excused": "已免责（特殊原因改约）",
}
SLOT_STATUS_TEXT = {
    "open": "可预约",
    "full": "已约满",
    "not_yet_open": "未开放",
    "closed_for_booking": "已截止",
    "past": "已过期",
}
WAIT_STATUS_TEXT = {"waiting": "排队中", "allocated": "已分配号源", "left": "已退出", "expired": "已过期"}
ID_TYPES = {
    "resident_id": "居民身份证",
    "passport": "护照",
    "hk_macao_permit": "港澳居民来往内地通行证",
    "taiwan_permit": "台湾居民来往大陆通行证",
    "foreigner_permanent_id": "外国人永久居留身份证",
}
KIND_TEXT = {
    "city_hall": "市级大厅",
    "district_hall": "区级大厅",
    "street_hall": "街道（镇）大厅",
    "village_hall": "村（居）服务站",
}
MODE_TEXT = {
    "appointment_first": "以预约办理为主",
    "appointment_priority": "预约优先，也可现场取号",
    "self_service": "自助服务点，不接受预约",
}


@dataclass(frozen=True)
class Message:
    """What a person reads when a request fails: what happened and what to do next."""

    title: str
    next_step: str


# Every API error code (docs/api.md and errors.TITLES) in plain Chinese with a next step.
MESSAGES: dict[str, Message] = {
    "document_phone_differs": Message(
        "这本证件已经绑定了另一个手机号。",
        "请带上证件和新手机到任一政务服务大厅，由工作人员核对后办理证件换绑手机号。",
    ),
    "slot_full": Message(
        "这个时段已经约满了。",
        "请换一个还有余号的时段或日期；如果这一天都约满了，可以加入预约排队，有人取消时按先后顺序分配给您。",
    ),
    "already_booked": Message(
        "您已经有一个该事项的预约（同一证件同一事项只能保留一个有效预约）。",
        "如需换时间，请到“我的预约”里改约，或先取消原预约再重新预约。",
    ),
    "daily_limit": Message(
        "按该大厅的规定，同一人同一天只能预约一次。",
        "请选择其他日期，或到“我的预约”里调整当天已有的预约。",
    ),
    "booking_cap": Message(
        "您当前有效的预约已经达到上限。",
        "请先到“我的预约”取消不再需要的预约，再预约新的事项。",
    ),
    "banned": Message(
        "由于多次预约后未到场（爽约），您暂时不能预约。",
        "暂停期结束后即可重新预约；期间可以到大厅现场取号办理。如有疑问请拨打大厅咨询电话。",
    ),
    "not_open_yet": Message(
        "这一天的号源还没有开放预约。",
        "请在开放时间之后再来预约，或选择已经开放的日期。",
    ),
    "booking_closed": Message(
        "这个时段已经停止预约（已过预约截止时间或时段已经开始）。",
        "请选择其他时段或日期；当天办理可到大厅现场取号。",
    ),
    "cancel_too_late": Message(
        "已经过了取消截止时间，不能在网上取消或改约了。",
        "请按原预约时间到大厅办理；如果不能前往，本次预约将记为爽约。因特殊原因错过的，"
        "可在预约当天办理一次特殊原因改约。",
    ),
    "not_cancellable": Message(
        "这个预约当前的状态不能取消或改约（可能已取号、已办结或已取消）。",
        "请回到“我的预约”查看最新状态。",
    ),
    "not_rebookable": Message(
        "这个预约不能办理特殊原因改约（只能在错过的当天办理，每个预约只能改约一次）。",
        "请重新预约，或到大厅现场取号办理。",
    ),
    "quantity_exceeds_max": Message(
        "办理数量超过了该事项允许的最大批量。",
        "请减少数量后重新提交，或分几次预约。",
    ),
    "invalid_id_number": Message(
        "证件号码不正确。",
        "请核对证件号码（居民身份证为18位，最后一位可能是X）后重新填写。",
    ),
    "invalid_uscc": Message(
        "统一社会信用代码不正确。",
        "请核对营业执照上的18位统一社会信用代码后重新填写。",
    ),
    "validation_error": Message(
        "填写的内容有误或不完整。",
        "请检查每一项是否按提示填写后再提交。",
    ),
    "idempotency_key_reused": Message(
        "这个表单已经提交过，内容却不一样了。",
        "请回到上一步重新打开页面再提交。",
    ),
    "unauthenticated": Message(
        "您还没有登录，或登录已经过期。",
        "请重新登录后再继续。",
    ),
    "login_failed": Message(
        "登录没有完成（可能等待太久、重复提交或被取消）。",
        "请回到登录页重新点击“用广东政务服务网登录”。",
    ),
    "not_real_name": Message(
        "您的广东政务服务网账号还没有实名认证，不能预约。",
        "请先在广东政务服务网（粤省事）完成实名认证，再回来登录。",
    ),
    "forbidden": Message(
        "您没有权限进行这个操作。",
        "请确认使用的是本人账号；如有疑问请拨打大厅咨询电话。",
    ),
    "not_found": Message(
        "没有找到您要的内容（可能已删除，或不属于当前登录的账号）。",
        "请回到首页重新查找。",
    ),
    "rate_limited": Message(
        "操作太频繁了。",
        "请稍等一分钟再试。",
    ),
    "conflict": Message(
        "同一个请求正在处理中。",
        "请稍等几秒后刷新页面查看结果，不要重复提交。",
    ),
    "method_not_allowed": Message("不支持这样打开该页面。", "请回到首页重新操作。"),
    "payload_too_large": Message("提交的内容太多了。", "请精简填写的内容后重新提交。"),
    "unavailable": Message("系统繁忙。", "请稍等片刻后重试。"),
    "internal_error": Message(
        "系统出了点问题，您的操作可能没有完成。", "请稍后到“我的预约”查看结果，或拨打咨询电话。"
    ),
    "csrf_failed": Message(
        "页面已过期或来源不明，为了您的安全，本次提交没有执行。",
        "请返回上一页，刷新后重新提交。",
    ),
    # Codes of the waiting list and on-site work (docs/api.md "On site").
    "no_booking": Message(
        "没有找到您在本大厅可以取号的预约。", "请核对证件号码，或到窗口咨询，也可以现场取号。"
    ),
    "checkin_too_early": Message("还没到取号时间。", "请在预约时段开始前的取号时间内再来取号。"),
    "checkin_too_late": Message(
        "已经过了取号时间，本次预约不能再取号。", "可以现场取普通号办理，或重新预约。"
    ),
    "not_eligible": Message("您不符合绿色通道的条件。", "请取普通号排队，工作人员会尽快为您办理。"),
    "walk_in_not_allowed": Message(
        "该事项在本大厅需要预约后办理，不能现场取号。", "请先预约，或选择其他可以现场办理的事项。"
    ),
    "invalid_ticket_state": Message("这张号票的状态不能进行该操作。", "请到窗口咨询工作人员。"),
    "already_waiting": Message("您已经在这个事项的排队名单里了。", "请到“我的预约”查看排队情况。"),
    "seats_available": Message("您选的日期还有余号，不需要排队。", "请直接在日历里选择还有余号的时段预约。"),
    "not_waiting": Message(
        "这条排队记录已经不在排队中（可能已分配或已退出）。", "请到“我的预约”查看最新状态。"
    ),
    "too_late_for_change": Message("调整时间太晚了。", "请选择更晚的日期。"),
    # Codes the admin console meets (issue 10 item 4).
    "already_decided": Message("这个号源调整申请已经审批过了。", "请刷新页面查看审批结果。"),
    "already_resolved": Message("这条预警已经处理过了。", "请刷新页面查看处理记录。"),
    "already_retired": Message("这个管理员账号已经注销。", "无需再次注销；如需接替，请为接替人登记新账号。"),
    # Codes the hall pages of the console meet (issue 10 items 1-2), worded for the clerk.
    "counter_closed": Message("这个窗口已暂停叫号。", "请先点击“开始叫号”打开窗口，再叫下一位。"),
    "hall_closed": Message(
        "大厅今天不办公或已经下班，不能再取号。", "请告知市民办公时间，或请其预约其他日期。"
    ),
}

# The same codes worded for the clerk at the desk or counter, where the page speaks to staff who
# then tell the citizen (console pages pass `audience="staff"` to `error_view`).
STAFF_MESSAGES: dict[str, Message] = {  # rules T3, M7 (check-in window), M2 (walk-ins), G10, M3
    "no_booking": Message(
        "没有查到该证件在本大厅今天可以取号的预约。",
        "请核对证件类型和号码；没有预约的，可以为其取现场号或绿色通道号。",
    ),
    "checkin_too_early": Message("还没到该预约的取号时间。", "请市民在取号时间开始后再来取号。"),
    "checkin_too_late": Message(
        "该预约已经过了取号时间，不能再取预约号。", "可以为市民取现场号办理，或请其重新预约。"
    ),
    "not_eligible": Message(
        "该证件不符合绿色通道条件（老年人绿色通道需年满60周岁的居民身份证）。",
        "请为市民取普通现场号；残疾人、军人请核验证件后选择对应类别。",
    ),
    "walk_in_not_allowed": Message(
        "该事项在本大厅需要预约办理，不能取现场号。",
        "请引导市民预约，或办理其他可以现场办理的事项；符合条件的可走绿色通道。",
    ),
    "invalid_ticket_state": Message(
        "这张号票当前的状态不能进行该操作（可能已办结、已过号或已被其他窗口叫走）。",
        "请刷新叫号屏查看最新状态。",
    ),
    "invalid_id_number": Message(
        "证件号码不正确。", "请核对证件号码（居民身份证为18位，最后一位可能是X）后重新输入。"
    ),
    # On-site booking at the desk (rule G10): the booking core's codes, worded for the clerk.
    "not_open_yet": Message(
        "现场预约还没有开放：只能在工作日开放时间（9:00）以后预约当天的时段。",
        "请到开放时间后再为市民现场预约，或先为其取现场号排队。",
    ),
    "booking_closed": Message(
        "这个时段已经结束或本大厅不接受预约，不能再现场预约。",
        "请选择今天还没有结束的时段，或为市民取现场号。",
    ),
    "slot_full": Message(
        "这个时段的号源（含现场预约号源）已经约满。",
        "请选择今天其他还有余号的时段，或为市民取现场号排队。",
    ),
    "banned": Message(
        "该市民因多次爽约被暂停预约，不能为其预约。",
        "暂停期内可以为其取现场号办理；对暂停有疑问的，请联系大厅管理员。",
    ),
    "document_phone_differs": Message(
        "这本护照或通行证已经绑定了另一个手机号，不能用新手机号为其预约。",
        "可以先为其取现场号办理；如需改用新手机号，核对证件和本人后由大厅办理证件换绑手机号，再为其预约。",
    ),
    "already_booked": Message(
        "该市民已经有这个事项的有效预约，不能重复预约。",
        "请在“预约签到”里为其签到取号；如需换时段，请市民先取消原预约。",
    ),
    "daily_limit": Message(
        "按本大厅的规则每人每天只能有一个预约，该市民当天已经有预约了。",
        "请在“预约签到”里为其签到取号，或改天再预约。",
    ),
    "booking_cap": Message(
        "该市民同时持有的有效预约已经达到上限。",
        "请市民先办理或取消已有的预约后再预约。",
    ),
    "quantity_exceeds_max": Message(
        "办理数量超过了该事项允许的最大批量。", "请减少数量，或分几次为市民预约。"
    ),
}


def message_for(code: str, audience: str = "citizen") -> Message:
    if audience == "staff" and code in STAFF_MESSAGES:
        return STAFF_MESSAGES[code]
    return MESSAGES.get(code, MESSAGES["internal_error"])


def error_view(exc: DomainError, audience: str = "citizen") -> dict[str, Any]:
    """The page context of a failed request: the message, the next step and any dates it carries."""
    msg = message_for(exc.code, audience)
    extra: list[str] = []
    if exc.code == "banned" and exc.extra.get("banned_until"):
        extra.append(f"暂停预约至 {cn_date(date.fromisoformat(str(exc.extra['banned_until'])))}（含当天）。")
    if exc.code == "not_open_yet" and exc.extra.get("opens_at"):
        extra.append(f"这一天将于 {cn_datetime(str(exc.extra['opens_at']))} 开放预约。")
    if exc.code == "cancel_too_late" and exc.extra.get("cancel_deadline"):
        extra.append(f"取消截止时间是 {cn_datetime(str(exc.extra['cancel_deadline']))}。")
    if exc.code == "checkin_too_early" and exc.extra.get("checkin_from"):
        extra.append(f"取号时间从 {cn_datetime(str(exc.extra['checkin_from']))} 开始。")
    return {"code": exc.code, "title": msg.title, "next_step": msg.next_step, "facts": extra}


@dataclass(frozen=True)
class Link:
    text: str
    href: str
    primary: bool = False


def remember_slot(state: Any, slot_id: str, back: str) -> None:
    """Before a booking call: note the item and day of the slot on the request, so that its error
    page can go back one step (`back`, with `{service_id}` filled in) and link the waiting list."""
    parsed = parse_slot_id(slot_id)
    if parsed is None:
        return
    state.service_id, state.day = parsed[0], parsed[1].date()
    state.back = back.format(service_id=parsed[0])


def error_links(code: str, service_id: int | None, day: date | None) -> list[Link]:
    """The next steps of an error page as links, per contract error code (docs/api.md)."""
    links: list[Link] = []
    if code == "slot_full" and service_id is not None:
        query = f"service={service_id}" + (f"&date={day.isoformat()}" if day else "")
        label = f"加入{short_date(day)}的预约排队" if day else "加入预约排队"
        links.append(Link(label, f"/waitlist/join?{query}", primary=True))
    if code in ("already_booked", "daily_limit", "booking_cap", "not_cancellable", "cancel_too_late"):
        links.append(Link("查看我的预约", "/bookings", primary=True))
    if code in ("unauthenticated", "login_failed"):
        links.append(Link("重新登录", "/login", primary=True))
    return links


# --- session, CSRF, elder mode ------------------------------------------------------------------


def citizen_of(secret: str, token: str | None) -> int | None:
    """The citizen of a session cookie, or None when it is missing, expired or forged."""
    if not token:
        return None
    try:
        return identity.citizen_from_token(secret, token)
    except Unauthenticated:
        return None


def new_csrf_seed() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(secret: str, seed: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{seed}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, seed: str | None, token: str | None) -> bool:
    if not seed or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, seed), token)


def safe_next(value: str | None, default: str = "/") -> str:
    """Only same-site paths: never `//host` or a scheme (open redirects)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 32 for ch in value) or len(value) > 500:
        return default
    return value


def parse_form(body: bytes) -> dict[str, list[str]]:
    """application/x-www-form-urlencoded, strictly: at most MAX_FORM_FIELDS fields."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, strict_parsing=False)


def field(form: dict[str, list[str]], name: str, max_length: int = 200) -> str:
    values = form.get(name) or [""]
    return values[0].strip()[:max_length]


# --- formatting ---------------------------------------------------------------------------------


def short_date(day: date) -> str:
    return f"{day.month}月{day.day}日 周{WEEKDAYS[day.weekday()]}"


def _moment(value: str | datetime) -> datetime:
    return as_local(datetime.fromisoformat(value) if isinstance(value, str) else value)


def cn_span(start: str, end: str) -> str:
    a, b = _moment(start), _moment(end)
    if a.date() == b.date():
        return f"{cn_date(a.date())} {a:%H:%M}–{b:%H:%M}"
    return f"{cn_datetime(a)} 至 {cn_datetime(b)}"


def hhmm(value: str) -> str:
    return f"{_moment(value):%H:%M}"


def calendar_days(availability: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Availability shaped for the calendar: one entry per day with a summary line."""
    days: list[dict[str, Any]] = []
    for day in availability["days"]:
        when = date.fromisoformat(day["date"])
        slots = day["slots"]
        open_slots = [s for s in slots if s["status"] == "open"]
        if not day["working_day"] or not slots:
            summary, state = "休息日，不办理", "closed"
        elif open_slots:
            summary, state = f"可预约，余 {sum(s['remaining'] for s in open_slots)} 个号", "open"
        elif any(s["status"] == "not_yet_open" for s in slots):
            opens = day.get("opens_at")
            summary = f"{cn_datetime(opens)} 开放" if opens else "未开放"
            state = "not_yet_open"
        elif any(s["status"] == "full" for s in slots):
            summary, state = "已约满", "full"
        else:
            summary, state = "已截止", "closed"
        days.append(
            {
                "date": day["date"],
                "label": short_date(when),
                "summary": summary,
                "state": state,
                "opens_at": day.get("opens_at"),
                "slots": [
                    {
                        **slot,
                        "label": f"{hhmm(slot['start'])}–{hhmm(slot['end'])}",
                        "status_text": SLOT_STATUS_TEXT.get(slot["status"], slot["status"]),
                    }
                    for slot in slots
                ],
            }
        )
    return days


def split_bookings(bookings: Iterable[dict[str, Any]], now: datetime) -> tuple[list[Any], list[Any]]:
    """Upcoming (live and not yet ended) first by time; the rest newest first."""
    upcoming, past = [], []
    for booking in bookings:
        end = _moment(booking["slot"]["end"])
        if booking["status"] in ("booked", "checked_in") and end > now:
            upcoming.append(booking)
        else:
            past.append(booking)
    upcoming.sort(key=lambda b: b["slot"]["start"])
    return upcoming, past


def rebookable(booking: dict[str, Any], now: datetime) -> bool:
    """Offer the special-reason rebook (rules T9, G14) when the service would accept it; the service
    decides (this only hides a button that would certainly fail)."""
    if booking["status"] not in ("booked", "no_show") or booking.get("rebook_of"):
        return False
    start = _moment(booking["slot"]["start"])
    return (
        start <= now < datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), start.tzinfo)
    )


# --- catalogue reads for the hall finder --------------------------------------------------------


async def districts(session: AsyncSession) -> list[Unit]:
    """Top-level groups for the hall finder: districts and city bureaus."""
    query = select(Unit).where(Unit.kind.in_(("district", "city_department")), Unit.parent_id == "platform")
    return list((await session.execute(query.order_by(Unit.kind.desc(), Unit.path))).scalars())


async def home_area(session: AsyncSession, citizen_id: int | None) -> str | None:
    """The citizen's nearest district as far as the platform knows it (issue 20, decision 0097): the
    unit under the platform (a district, or a city body) of the hall of their latest booking."""
    if citizen_id is None:
        return None
    path = (
        await session.execute(
            select(Unit.path)
            .join(Booking, Booking.hall_id == Unit.id)
            .where(Booking.citizen_id == citizen_id)
            .order_by(Booking.created_at.desc(), Booking.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    parts = [p for p in str(path or "").split("/") if p]
    return parts[1] if len(parts) > 2 else None  # platform/<area>/…/hall/; city-level halls: none


async def find_halls(
    session: AsyncSession, under: str | None, q: str, item: str, near: str | None = None
) -> list[dict[str, Any]]:
    """Halls by district (subtree), by name or address, and by the items they offer (their names, or
    what a synonym kept by the platform admins stands for); the district `near` first."""
    query = select(Unit).where(Unit.kind.in_(HALL_KINDS))
    if under:
        root = await session.get(Unit, under)
        if root is None:
            return []
        if root.id == "platform":
            query = query.where(Unit.parent_id == "platform")  # city-level halls
        else:
            query = query.where(Unit.path.startswith(root.path, autoescape=True))
    if q:
        pattern = f"%{q}%"
        query = query.where(or_(Unit.name.like(pattern), Unit.address.like(pattern)))
    halls = list((await session.execute(query.order_by(Unit.path))).scalars())
    if near:
        halls.sort(key=lambda h: not h.path.startswith(f"platform/{near}/"))  # stable: tree order kept
    services: dict[str, list[str]] = {}
    if halls:
        rows = await session.execute(
            select(Service.hall_id, Service.name).where(
                Service.hall_id.in_([h.id for h in halls]), Service.active.is_(True)
            )
        )
        for hall_id, name in rows:
            services.setdefault(hall_id, []).append(name)
    meanings = [item, *await synonym_meanings(session, item)] if item else []

    def wanted(name: str) -> bool:
        return any(item_matches(words, name) for words in meanings)

    found = []
    for hall in halls:
        offered = services.get(hall.id, [])
        if item and not any(wanted(name) for name in offered):
            continue
        found.append(
            {
                "id": hall.id,
                "name": hall.name,
                "address": hall.address or "",
                "hotline": hall.hotline or "",
                "kind": KIND_TEXT.get(hall.kind, ""),
                "mode": hall.mode or "",
                "mode_text": MODE_TEXT.get(hall.mode or "", ""),
                "matching": [name for name in offered if item and wanted(name)],
                "near": bool(near) and hall.path.startswith(f"platform/{near}/"),
            }
        )
    return found


def _initials(text: str) -> str:
    """Pinyin initials of a name (社会保障卡申领 → shbzksl), by pypinyin; other characters kept."""
    return "".join(lazy_pinyin(text, style=Style.FIRST_LETTER)).lower()


def _in_order(short: str, full: str) -> bool:
    """Whether every character of `short` occurs in `full` in the same order: how Chinese short
    names are made (社保卡 ← 社会保障卡, 身份证 ← 居民身份证)."""
    rest = iter(full)
    return all(ch in rest for ch in short)


def item_matches(query: str, name: str) -> bool:
    """An item search that knows what people type: a part of the name, a short name made of the
    name's characters in order (社保, 社保卡 → 社会保障卡申领), or pinyin initials (sbk)."""
    query = "".join(query.split()).lower()
    if not query:
        return True
    if query in name.lower():
        return True
    if query.isascii():
        return query.isalpha() and len(query) >= 2 and _in_order(query, _initials(name))
    return len(query) >= 2 and _in_order(query, name)


LOGIN_FIELDS = (("name", "姓名"), ("id_type", "证件类型"), ("id_number", "证件号码"), ("phone", "手机号码"))
MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


def login_field(exc: DomainError) -> str:
    """Which login field a verification error is about, for the message next to it."""
    if exc.code == "invalid_id_number":
        return "id_number"
    return next((name for name, _ in LOGIN_FIELDS if name in exc.detail), "")


def login_errors(values: dict[str, str]) -> dict[str, str]:
    """Every wrong field of the login form at once, each with a message in plain Chinese that says
    what is wrong and how to put it right (identity.service.verify_identity stays the judge; this
    only words its checks per field, so an empty form flags every field, not only the first)."""
    errors: dict[str, str] = {}
    name = values["name"]
    if not name:
        errors["name"] = "请填写姓名（与证件上的一致）。"
    elif any(ord(ch) < 32 for ch in name):
        errors["name"] = "姓名里有不能识别的字符，请重新填写。"
    id_type, number = values["id_type"], values["id_number"]
    if id_type not in ID_TYPES:
        errors["id_type"] = "请选择证件类型。"
    elif not number:
        errors["id_number"] = f"请填写{ID_TYPES[id_type]}号码。"
    elif normalise_id(id_type, number) is None:
        if id_type == "resident_id":
            digits = len(number.replace(" ", ""))
            errors["id_number"] = (
                f"证件号码不正确：居民身份证号码应为18位（您填了{digits}位），最后一位可能是X。"
                if digits != 18
                else "证件号码不正确：校验位对不上，请逐位核对，最后一位可能是X。"
            )
        else:
            errors["id_number"] = f"证件号码不正确：请按{ID_TYPES[id_type]}上的号码填写。"
    phone = values["phone"]
    if not phone:
        errors["phone"] = "请填写手机号码，预约成功后会发短信给您。"
    elif not MOBILE.match(phone):
        count = sum(ch.isdigit() for ch in phone)
        errors["phone"] = (
            f"手机号码应为11位数字（您填了{count}位），以1开头，请核对。"
            if count != 11 or not phone.isdigit()
            else "手机号码应以13至19开头，请核对。"
        )
    return errors


def age_on(id_type: str, id_number: str, today: date) -> int | None:
    """Age in whole years from a resident ID's birth date; None for other documents."""
    if id_type != "resident_id":
        return None
    resident = parse_resident_id(id_number.strip().upper())
    if resident is None:
        return None
    born = resident.birth_date
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def moment(value: str) -> datetime:
    return _moment(value)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed("date must be YYYY-MM-DD") from None
