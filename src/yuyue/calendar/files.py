"""A year's national calendar from a file (issue 18, decision 0092): the State Council's notice of
holidays and swapped working days (调休) as a small CSV or iCalendar file. Parsing only; no database.

CSV: one date a line, `date,working_day[,note]`, a header line optional. `working_day` is 1/0,
true/false, yes/no, 班/休 (上班/休息, workday/holiday).

iCalendar (RFC 5545, read with the `icalendar` package): every VEVENT with a date `DTSTART` (and an
optional exclusive `DTEND`) lists its days; a SUMMARY naming 班 (补班, 上班) or "work" marks working
days (a swapped weekend), any other event holidays (the common holiday feeds: "元旦", "春节 休").
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from icalendar import Calendar

from yuyue.errors import ValidationFailed

MAX_BYTES = 256 * 1024
MAX_DAYS = 400  # a year's notice lists some 30 dates
NOTE_MAX = 200
TRUE_WORDS = {"1", "true", "yes", "y", "班", "上班", "补班", "workday", "work", "working"}
FALSE_WORDS = {"0", "false", "no", "n", "休", "休息", "放假", "holiday", "off", "rest"}


@dataclass(frozen=True)
class CalendarRow:
    day: date
    working_day: bool
    note: str


@dataclass(frozen=True)
class CalendarFile:
    """The parsed file: its dates in order, and the year it is the notice of (the year most of its
    dates fall in; a holiday may spill into the year before, 元旦 on 12-31)."""

    rows: tuple[CalendarRow, ...]
    year: int
    kind: str  # "csv" | "ics"


def parse(content: bytes | str, name: str = "") -> CalendarFile:
    """Parse a CSV or iCalendar file (told apart by its content, `BEGIN:VCALENDAR`)."""
    raw = content.encode() if isinstance(content, str) else content
    if len(raw) > MAX_BYTES:
        raise ValidationFailed(f"file: at most {MAX_BYTES // 1024} KB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("file: UTF-8 text expected") from None
    kind = "ics" if text.lstrip().upper().startswith("BEGIN:VCALENDAR") or name.endswith(".ics") else "csv"
    rows = _ics(text) if kind == "ics" else _csv(text)
    if not rows:
        raise ValidationFailed("file: no dates found")
    if len(rows) > MAX_DAYS:
        raise ValidationFailed(f"file: at most {MAX_DAYS} dates")
    seen: dict[date, CalendarRow] = {}
    for row in rows:
        other = seen.get(row.day)
        if other is not None and other.working_day != row.working_day:
            raise ValidationFailed(f"file: {row.day.isoformat()} is listed both as working and as a holiday")
        seen.setdefault(row.day, row)
    ordered = tuple(sorted(seen.values(), key=lambda r: r.day))
    year = Counter(r.day.year for r in ordered).most_common(1)[0][0]
    return CalendarFile(ordered, year, kind)


def _flag(value: str, where: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValidationFailed(f"{where}: working_day must be 1/0, true/false or 班/休, not {value.strip()!r}")


def _csv(text: str) -> list[CalendarRow]:
    rows: list[CalendarRow] = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in fields]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and cells[0].lower() in ("date", "日期"):
            continue  # the header
        where = f"line {number}"
        if len(cells) < 2:
            raise ValidationFailed(f"{where}: date,working_day[,note] expected")
        try:
            day = date.fromisoformat(cells[0])
        except ValueError:
            raise ValidationFailed(f"{where}: {cells[0]!r} is not a date (YYYY-MM-DD)") from None
        note = ",".join(cells[2:]).strip()[:NOTE_MAX]
        rows.append(CalendarRow(day, _flag(cells[1], where), note))
    return rows


def _ics(text: str) -> list[CalendarRow]:
    try:
        calendar = Calendar.from_ical(text)
    except ValueError as exc:
        raise ValidationFailed(f"file: not a valid iCalendar file ({exc})") from None
    rows: list[CalendarRow] = []
    for event in calendar.walk("VEVENT"):
        summary = str(event.get("SUMMARY", "")).strip()
        start = event.decoded("DTSTART", None)
        if start is None:
            raise ValidationFailed(f"event {summary!r}: DTSTART is missing")
        if isinstance(start, datetime):
            start = start.date()
        end = event.decoded("DTEND", None)
        if isinstance(end, datetime):
            end = end.date() + timedelta(days=1)
        last = (end if isinstance(end, date) and end > start else start + timedelta(days=1)) - timedelta(
            days=1
        )
        if (last - start).days > 31:
            raise ValidationFailed(f"event {summary!r}: longer than a month")
        working = "班" in summary or "work" in summary.lower()
        day = start
        while day <= last:
            rows.append(CalendarRow(day, working, summary[:NOTE_MAX]))
            day += timedelta(days=1)
    return rows
