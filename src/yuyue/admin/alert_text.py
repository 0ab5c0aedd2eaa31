"""Alerts in plain Chinese (issue 20; rules G12, G19, G20): the one sentence an administrator reads
of each alert, by kind, built from the stored fields (kind, unit, service, figure, suggestion, dedup
key); the API keeps each alert's English `detail`. The console's alerts page shows it with the
remedy; the SMS and email of `alert.raised` (notify.handlers) send its first clause."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.booking.receipt import CHANNEL_TEXT
from yuyue.kit.cn_dates import cn_date, cn_datetime
from yuyue.models import Alert, ApiClient, CapacityRequest

ALERT_TEXT = {
    "waitlist_over_release": "排队人数超过放号量",
    "approval_overdue": "号源调整审批逾期",
    "calendar_missing": "工作日日历缺失",
    "sold_out_fast": "号源很快约满",
    "low_utilisation": "号源使用率低",
    "no_show_high": "爽约率偏高",
    "waitlist_growing": "排队候补持续增加",
    "channel_surge": "某渠道预约激增",
    "bureau_silent": "部门系统无数据",
}


def _count(value: Any) -> str:
    """12,345: a count with thousands separators (千分位)."""
    return f"{int(value):,}"


def _pct(value: Any, digits: int = 0) -> str:
    return f"{float(value) * 100:,.{digits}f}%"


def _fig(alert: Alert, key: str) -> float:
    return float((alert.figure or {}).get(key) or 0)


def _day(iso: Any) -> str:
    try:
        return cn_date(date.fromisoformat(str(iso)))
    except ValueError:
        return "近期"


def _key_part(alert: Alert, index: int) -> str:
    """A part of the dedup key (`channel_surge:hall:web`), before a resolved alert's `#resolved:N`."""
    parts = alert.dedup_key.split("#", 1)[0].split(":")
    return parts[index] if len(parts) > index else ""


OVER_RELEASE = re.compile(r"^(\d+) waiting entries, (\d+) off-site seats")


def alert_sentence(alert: Alert, unit: str, service: str, extra: dict[str, Any]) -> str:
    """One sentence an administrator reads, by kind (the kinds of admin.alerts, watch, calendar,
    waitlist); an unknown kind says only what and where."""
    what = f"{unit}“{service}”" if service else unit
    suggestion = alert.suggestion or {}
    advice = (
        f"建议从{_day(suggestion.get('date_from'))}起把每日号源调整为 "
        f"{_count(suggestion['daily_capacity'])} 个。"
        if suggestion.get("daily_capacity") is not None
        else ""
    )
    kind = alert.kind
    if kind == "calendar_missing":
        year = _key_part(alert, 1)
        return (
            f"尚未录入{year}年的全国节假日安排：录入前，该年周一至周五一律按工作日计算。"
            "请在“工作日日历”页面导入国务院办公厅的放假通知，或逐日录入节假日和调休上班日。"
        )
    if kind == "approval_overdue":
        request = extra.get("request")
        if request is None:
            return f"{what}的号源调整申请未在规定时限内审批，请尽快审批。"
        days = (
            f"{_day(request.date_from)}起长期"
            if request.date_to is None
            else _day(request.date_from)
            if request.date_to == request.date_from
            else f"{_day(request.date_from)}至{_day(request.date_to)}"
        )
        return (
            f"{what}的号源调整申请（{days}，每日 {_count(request.daily_capacity)} 个）"
            f"未在{cn_datetime(request.overdue_at)}前审批，请尽快审批。"
        )
    if kind == "waitlist_over_release":
        # the figure stored (waiting entries against the line, the seats released); an alert raised
        # before it was stored has its counts in the English detail only
        found = OVER_RELEASE.match(alert.detail)
        counts = (
            (_fig(alert, "value"), _fig(alert, "threshold"))
            if alert.figure
            else (found.group(1), found.group(2))
            if found
            else None
        )
        figures = (
            f"排队候补 {_count(counts[0])} 人，多于今后 10 个工作日已放出的网上号源 {_count(counts[1])} 个"
            if counts
            else "排队候补人数多于今后 10 个工作日已放出的网上号源"
        )
        return f"{what}{figures}。请增加号源（5+X、延时服务），或引导群众网上办理、自助办理。"
    if kind == "sold_out_fast":
        return (
            f"{what}最近几天放出的网上号源在 {_fig(alert, 'value'):,.0f} 分钟内就被约满"
            f"（预警线 {_fig(alert, 'threshold'):,.0f} 分钟）。{advice}"
        )
    if kind == "low_utilisation":
        return (
            f"{what}的号源使用率只有 {_pct(_fig(alert, 'value'))}，"
            f"连续几周低于 {_pct(_fig(alert, 'threshold'))}。{advice}"
        )
    if kind == "waitlist_growing":
        return (
            f"{what}的排队候补人数已连续 {_fig(alert, 'value'):,.0f} 天增加"
            f"（预警线 {_fig(alert, 'threshold'):,.0f} 天）。{advice}"
        )
    if kind == "no_show_high":
        return (
            f"{what}上周的爽约率为 {_pct(_fig(alert, 'value'), 1)}，"
            f"达到预警线 {_pct(_fig(alert, 'threshold'), 1)}（前四周水平的一定倍数）。"
            "请核查是否有人恶意占号，必要时限制其预约。"
        )
    if kind == "channel_surge":
        channel = CHANNEL_TEXT.get(_key_part(alert, 2), "合作渠道")
        return (
            f"{what}上周经“{channel}”的预约占 {_pct(_fig(alert, 'value'))}，"
            f"超过平常占比的预警线 {_pct(_fig(alert, 'threshold'))}。请核查是否有人代抢号源。"
        )
    if kind == "bureau_silent":
        system = extra.get("client") or "部门自有预约系统"
        return (
            f"{what}的“{system}”已 {_fig(alert, 'value'):,.1f} 小时没有传来任何数据"
            f"（预警线 {_fig(alert, 'threshold'):,.0f} 小时）。请联系该部门检查系统对接。"
        )
    return f"{what}出现“{ALERT_TEXT.get(kind, '其他')}”预警。"


async def alert_extras(session: AsyncSession, alerts: list[Alert]) -> dict[int, dict[str, Any]]:
    """What a sentence needs beyond the alert row: the overdue request, the bureau system's name."""
    request_ids = {
        int(_key_part(a, 1)): a.id
        for a in alerts
        if a.kind == "approval_overdue" and _key_part(a, 1).isdigit()
    }
    client_ids = {_key_part(a, 1): a.id for a in alerts if a.kind == "bureau_silent"}
    extras: dict[int, dict[str, Any]] = {a.id: {} for a in alerts}
    if request_ids:
        for r in (
            await session.execute(select(CapacityRequest).where(CapacityRequest.id.in_(request_ids)))
        ).scalars():
            extras[request_ids[r.id]]["request"] = r
    if client_ids:
        for client_id, name in await session.execute(
            select(ApiClient.id, ApiClient.name).where(ApiClient.id.in_(client_ids))
        ):
            extras[client_ids[str(client_id)]]["client"] = name
    return extras


def sms_clause(sentence: str) -> str:
    """The first clause of a sentence, without its full stop: what an SMS has room for (the SMS
    template adds the unit before it and "，请登录管理端处理。" after it, notify.templates)."""
    return sentence.split("。", 1)[0].rstrip("，、：")
