"""Dates in Chinese as the pages and messages write them: `2026年12月3日（周四）`."""

from __future__ import annotations

from datetime import date, datetime

from yuyue.clock import as_local

WEEKDAYS = "一二三四五六日"


def cn_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日（周{WEEKDAYS[day.weekday()]}）"


def cn_datetime(value: str | datetime) -> str:
    moment = as_local(datetime.fromisoformat(value) if isinstance(value, str) else value)
    return f"{cn_date(moment.date())} {moment:%H:%M}"
