"""What the dashboard shows, shaped from the figures of `yuyue.stats.service` (rule G18): the period
and scope asked for, the tables, the charts (pygal, SVG rendered on the server, no script) and the
downloads (CSV as `GET /api/v1/admin/stats` writes it, XLSX with every table).

The figures themselves are never computed here: `figures_grouped` (per day, hall, service, channel
and in total), `fill_by_hour` (the heat map) and `waitlist_length` come from the stats service, with
its definitions and its rollups; this module only names, orders, formats and draws them.
"""

from __future__ import annotations

import csv
import io
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from typing import Any, Literal

import pygal
import xlsxwriter
from markupsafe import Markup
from pygal.style import Style
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.auth.service import Acting
from yuyue.errors import DomainError
from yuyue.models import Department, Service, Unit
from yuyue.stats import service as stats

DEFAULT_DAYS = 30  # the last 30 days up to today …
DEFAULT_AHEAD = 14  # … and the next 14, where the bookings already made lie (issue 20; decision 0096)
MAX_DAYS = 366  # a period covers at most a year
Table = Literal["day", "hall", "service", "channel", "fill", "waitlist"]
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
CHANNEL_TEXT = {  # rule T1: every booking records its channel
    "web": "网站",
    "wechat": "微信公众号",
    "app": "穗好办 App",
    "provincial_portal": "广东政务服务网",
    "onsite": "现场",
    "api": "部门系统接口",
}
KIND_TEXT = {
    "platform": "全市",
    "city_department": "市直部门",
    "city_hall": "市级大厅",
    "district": "全区",
    "district_hall": "区级大厅",
    "street_hall": "街道大厅",
    "village_hall": "村居站点",
}
# The columns of the figures (docs/api.md "Administration"), with their headings on the page and in the XLSX.
FIGURE_HEADINGS = {
    "released": "放号",
    "booked": "预约",
    "cancelled": "取消",
    "checked_in": "取号",
    "served": "办结",
    "no_show": "爽约",
    "utilisation": "号源使用率",
    "waitlist": "排队登记",
    "mean_wait_s": "平均等候（秒）",
}
# The page writes waits in minutes (issue 20); the downloads keep the API's seconds.
PAGE_HEADINGS = {**FIGURE_HEADINGS, "mean_wait_s": "平均等候（分钟）"}
CJK_FONTS = (
    '"WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", '
    '"Microsoft YaHei", sans-serif'
)
SERIES_COLOURS = ("#0a4fbf", "#1e7b34", "#c0392b", "#8a5a00", "#6f42c1", "#00796b", "#5f6670")


# --- the period and the scope ----------------------------------------------------------------------


class BadPeriod(DomainError):
    """`from`/`to` of the dashboard are not a period it can show; `facts` say why, in Chinese."""

    status = 422

    def __init__(self, code: str, detail: str, fact: str) -> None:
        super().__init__(detail, code=code)
        self.fact = fact


@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def length(self) -> int:
        return (self.last - self.first).days + 1


def _parse_day(text: str | None, name: str) -> date | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        if not ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadPeriod(
            "invalid_date",
            f"{name}: {value[:20]!r} is not a date (YYYY-MM-DD)",
            f"“{'开始日期' if name == 'from' else '结束日期'}”不是有效的日期，"
            "请按 年-月-日 填写（例如 2026-11-01）。",
        ) from None


def parse_period(from_text: str | None, to_text: str | None, today: date) -> Period:
    """The period of the query: default the last 30 days up to today and the 14 days after it (the
    bookings already made for the coming days count too); `to` alone ends 30 days there, `from`
    alone runs 30 days from it (never past a year)."""
    first, last = _parse_day(from_text, "from"), _parse_day(to_text, "to")
    if first is None and last is None:
        first, last = today - timedelta(days=DEFAULT_DAYS - 1), today + timedelta(days=DEFAULT_AHEAD)
    if first is None:
        assert last is not None
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last is None:
        last = first + timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise BadPeriod(
            "invalid_period", "'to' is before 'from'", "结束日期早于开始日期，请调换或重新选择日期。"
        )
    if (last - first).days >= MAX_DAYS:
        raise BadPeriod(
            "invalid_period",
            f"a period covers at most {MAX_DAYS} days",
            f"查询的时间段最长 {MAX_DAYS} 天（一年），请缩短时间段后再查询。",
        )
    return Period(first, last)


@dataclass(frozen=True)
class UnitChoice:
    id: str
    name: str
    kind: str
    depth: int

    @property
    def label(self) -> str:
        return f"{'　' * self.depth}{self.name} · {KIND_TEXT.get(self.kind, self.kind)}"


async def unit_choices(session: AsyncSession, who: Acting) -> list[UnitChoice]:
    """The units an admin may look at: their own and every unit below it, in tree order."""
    rows = (
        await session.execute(
            select(Unit.id, Unit.name, Unit.kind, Unit.parent_id, Unit.path).where(
                Unit.path.startswith(who.unit_path, autoescape=True)
            )
        )
    ).all()
    children: dict[str | None, list[Any]] = {}
    ids = {row.id for row in rows}
    for row in rows:
        parent = row.parent_id if row.parent_id in ids else None
        children.setdefault(parent, []).append(row)
    out: list[UnitChoice] = []

    def walk(parent: str | None, depth: int) -> None:
        for row in sorted(children.get(parent, []), key=lambda r: (r.kind.endswith("_hall"), r.id)):
            out.append(UnitChoice(str(row.id), str(row.name), str(row.kind), depth))
            walk(str(row.id), depth + 1)

    walk(None, 0)
    return out


# --- the figures -----------------------------------------------------------------------------------


@dataclass
class Dashboard:
    """Everything one page (or download) shows: a unit's subtree over a period of slot dates."""

    unit_id: str
    unit_name: str
    period: Period
    today: date
    total: dict[str, Any]
    days: list[dict[str, Any]]  # the figures per day, with `waiting` (end-of-day waiting list)
    halls: list[dict[str, Any]]  # per hall, with `name`
    services: list[dict[str, Any]]  # per service, with `name` and `hall_name`
    channels: list[dict[str, Any]]  # per channel, with `name`
    fill: list[dict[str, Any]]  # weekday × hour cells of `fill_by_hour`
    waitlist: list[dict[str, Any]]  # per day, `waitlist_length`
    raw: dict[str, list[dict[str, Any]]]  # the rows of each grouping exactly as the API gives them
    heat: HeatMap = field(init=False)

    def __post_init__(self) -> None:
        self.heat = heat_map(self.fill)

    @property
    def waiting_now(self) -> int | None:
        known = [row["waiting"] for row in self.waitlist if row["waiting"] is not None]
        return known[-1] if known else None


async def build(session: AsyncSession, unit: Unit, period: Period, today: date) -> Dashboard:
    first, last = period.first, period.last
    grouped = await stats.figures_grouped(
        session, unit.path, first, last, ("total", "day", "hall", "service", "channel")
    )
    fill = await stats.fill_by_hour(session, unit.path, first, last)
    waitlist = await stats.waitlist_length(session, unit.path, first, last)
    waiting = {row["day"]: row["waiting"] for row in waitlist}
    by_day = {row["key"]: row for row in grouped["day"]}
    empty = dict.fromkeys(
        ("released", "booked", "cancelled", "checked_in", "served", "no_show", "waitlist"), 0
    )
    days = []
    for day in period.days:  # every day of the period, also those without any figure
        key = day.isoformat()
        row = by_day.get(key) or {"key": key, **empty, "utilisation": None, "mean_wait_s": None}
        days.append(
            {
                **row,
                "weekday": WEEKDAYS[day.weekday()],
                "label": f"{cn_day(day)} {WEEKDAYS[day.weekday()]}",
                "waiting": waiting.get(key),
            }
        )
    hall_names = await _hall_names(session, [row["key"] for row in grouped["hall"]])
    halls = [{**row, "name": hall_names.get(row["key"], row["key"])} for row in grouped["hall"]]
    services = await _service_rows(session, grouped["service"])
    channels = [
        {**row, "name": CHANNEL_TEXT.get(row["key"], row["key"])}
        for row in sorted(grouped["channel"], key=lambda r: (-r["booked"], r["key"]))
    ]
    return Dashboard(
        unit_id=unit.id,
        unit_name=unit.name,
        period=period,
        today=today,
        total=grouped["total"][0],
        days=days,
        halls=halls,
        services=services,
        channels=channels,
        fill=fill,
        waitlist=waitlist,
        raw={str(key): rows for key, rows in grouped.items()},
    )


async def _hall_names(session: AsyncSession, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(list(ids))))
    return {str(row.id): str(row.name) for row in rows}


async def _service_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [int(row["key"]) for row in rows]
    named: dict[str, tuple[str, str, str]] = {}
    for chunk in range(0, len(ids), 500):
        found = await session.execute(
            select(Service.id, Service.name, Department.name, Unit.name)
            .join(Department, Department.id == Service.department_id)
            .join(Unit, Unit.id == Service.hall_id)
            .where(Service.id.in_(ids[chunk : chunk + 500]))
        )
        for sid, name, department, hall in found.all():
            named[str(sid)] = (str(name), str(department), str(hall))
    out = []
    for row in rows:
        name, department, hall = named.get(row["key"], (row["key"], "", ""))
        out.append({**row, "name": name, "department": department, "hall_name": hall})
    return sorted(out, key=lambda r: (r["hall_name"], r["department"], r["name"], r["key"]))


# --- the heat map (an HTML table: colour AND the numbers in every cell) ----------------------------


@dataclass(frozen=True)
class HeatCell:
    released: int
    seats: int
    fill: float | None

    @property
    def level(self) -> str:
        """The colour class: `none` without released seats, else 0–4 by fifths of the fill."""
        if self.fill is None:
            return "none"
        return str(min(4, int(self.fill * 5)))

    @property
    def percent(self) -> str:
        return "—" if self.fill is None else percent(self.fill)


@dataclass(frozen=True)
class HeatMap:
    hours: list[int]
    rows: list[tuple[str, list[HeatCell]]]  # (weekday name, one cell per hour)


def heat_map(cells: list[dict[str, Any]]) -> HeatMap:
    if not cells:
        return HeatMap([], [])
    found = {(c["weekday"], c["hour"]): c for c in cells}
    hours = sorted({c["hour"] for c in cells})  # the hours that release seats (no lunch hour)
    rows = []
    for weekday, name in enumerate(WEEKDAYS):
        row = []
        for hour in hours:
            cell = found.get((weekday, hour))
            row.append(
                HeatCell(cell["released"], cell["seats"], cell["fill"]) if cell else HeatCell(0, 0, None)
            )
        rows.append((name, row))
    return HeatMap(hours, rows)


# --- formatting ------------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def number(value: Any) -> str:
    """A count with thousands separators (千分位: 12,345); a fraction to one decimal."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def minutes(seconds: float | None) -> str:
    """A wait in minutes, one decimal (the figures keep seconds)."""
    return "—" if seconds is None else f"{seconds / 60:,.1f}"


def cell(column: str, value: Any) -> str:
    """A figure of the tables as the page writes it."""
    if column == "utilisation":
        return percent(value)
    if column == "mean_wait_s":
        return minutes(value)
    return number(value)


def sort_key(value: Any) -> str:
    """`data-sort` of a cell: the raw figure, so the sortable tables order numbers, not text."""
    return "" if value is None else str(value)


def short_day(iso: str) -> str:
    """`12月7日`, as the rest of the site writes dates (the year is in the period line)."""
    return f"{int(iso[5:7])}月{int(iso[8:10])}日"


def any_figure(*series: Sequence[Any]) -> bool:
    """Whether a chart has anything to draw: else it says 暂无数据 instead of empty axes."""
    return any(value for values in series for value in values)


# --- charts ----------------------------------------------------------------------------------------

SCRIPT = re.compile(r"<script\b.*?</script>", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)


def chart_style(colours: Sequence[str] = SERIES_COLOURS) -> Style:
    return Style(
        font_family=CJK_FONTS,
        background="#ffffff",
        plot_background="#ffffff",
        foreground="#1a1a1a",
        foreground_strong="#1a1a1a",
        foreground_subtle="#5f6670",
        opacity="0.9",
        opacity_hover="1",
        colors=tuple(colours),
        title_font_size=18,
        legend_font_size=14,
        label_font_size=13,
        major_label_font_size=13,
        value_font_size=12,
        value_label_font_size=12,
        tooltip_font_size=13,
        no_data_font_size=18,
    )


def _config(width: int, height: int, title: str, **extra: Any) -> dict[str, Any]:
    return {
        "width": width,
        "height": height,
        "title": title,
        "style": extra.pop("style", None) or chart_style(),
        "js": [],  # no script: the page's CSP allows none inline, and the table has the numbers
        "disable_xml_declaration": True,
        "no_data_text": "暂无数据",
        "legend_at_bottom": True,
        "legend_box_size": 14,
        "margin": 12,
        "spacing": 12,
        "truncate_legend": -1,
        "truncate_label": -1,
        **extra,
    }


def no_data(title: str) -> Markup:
    """A chart with nothing to draw: its title and 暂无数据 in a box of the chart's place, not empty
    axes (issue 20)."""
    return Markup(  # noqa: S704 - the title is the code's own text, escaped all the same
        f'<div class="chart-empty"><p class="chart-empty-title">{escape(title)}</p><p>暂无数据</p></div>'
    )


def svg(chart: Any, label: str) -> Markup:
    """The chart as inline SVG: without pygal's configuration script (nothing to run here) and
    named for assistive technology (`role="img"` with a label; the table beside it has the data)."""
    text = SCRIPT.sub("", COMMENT.sub("", str(chart.render(is_unicode=True))))
    text = text.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" focusable="false" ', 1)
    return Markup(text)  # noqa: S704 - pygal escapes every label and value it writes


def _date_axis(days: Sequence[str], at_most: int) -> dict[str, Any]:
    """x labels of a run of days that never crowd: all of them when few, every k-th up to two
    months, the first of each month beyond."""
    if len(days) <= at_most:
        return {}
    if len(days) <= 62:
        return {"x_labels_major_every": math.ceil(len(days) / at_most), "show_minor_x_labels": False}
    months = [short_day(day) for day in days if day.endswith("-01")] or [short_day(days[0])]
    step = math.ceil(len(months) / at_most)
    return {"x_labels_major": months[::step], "show_minor_x_labels": False}


def _wide_text_room(labels: Sequence[str], font_size: int) -> int:
    """The room pygal leaves too little for CJK labels: it reckons every character 0.6 em wide,
    a Chinese character takes a whole em."""
    if not labels:
        return 12
    wide = max(sum(1 for ch in label if ord(ch) >= 0x2E80) for label in labels)
    return 12 + math.ceil(wide * 0.45 * font_size)


def daily_chart(board: Dashboard) -> Markup:
    """Bookings, check-ins, no-shows and cancellations per day: bars up to two months, lines beyond
    (x labels thinned, see `_date_axis`)."""
    labels = [short_day(row["key"]) for row in board.days]
    long = len(labels) > 62  # bars up to two months, lines beyond
    chart = (pygal.Line if long else pygal.Bar)(
        **_config(
            1200,
            420,
            "每日预约、取号、爽约与取消",
            **_date_axis([row["key"] for row in board.days], 16),
            show_dots=False,
            legend_at_bottom_columns=4,
            x_title="预约时段日期",
            y_title="人次",
            min_scale=4,
            max_scale=8,
            rounded_bars=1,
        )
    )
    chart.x_labels = labels
    series = [
        (name, [row[column] for row in board.days])
        for name, column in (
            ("预约", "booked"),
            ("取号", "checked_in"),
            ("爽约", "no_show"),
            ("取消", "cancelled"),
        )
    ]
    total = board.total
    if not any_figure(*(values for _, values in series)):
        return no_data("每日预约、取号、爽约与取消")
    for name, values in series:
        chart.add(name, values)
    return svg(
        chart,
        f"每日预约、取号、爽约与取消{'折线图' if long else '柱状图'}："
        f"{cn_day(board.period.first)} 至 {cn_day(board.period.last)} 共预约 "
        f"{number(total['booked'])} 人次，取号 {number(total['checked_in'])}，"
        f"爽约 {number(total['no_show'])}，取消 {number(total['cancelled'])}。逐日数字见下方“按日明细”表。",
    )


def hall_chart(board: Dashboard) -> Markup:
    """Utilisation per hall (horizontal bars, highest first)."""
    halls = sorted(
        (row for row in board.halls if row["released"]),
        key=lambda r: (r["utilisation"] or 0, r["name"]),
    )  # pygal draws the first label at the bottom: the highest ends on top
    labels = [f"{row['name']} {percent(row['utilisation'])}" for row in halls]
    chart = pygal.HorizontalBar(
        **_config(
            600,
            max(360, 120 + 34 * len(halls)),
            "各大厅号源使用率",
            show_legend=False,
            margin_left=_wide_text_room(labels, 13),
            range=(0, 100),
            y_labels=[0, 20, 40, 60, 80, 100],
            value_formatter=lambda v: f"{v:.0f}%",
            style=chart_style(("#0a4fbf",)),
        )
    )
    chart.x_labels = labels  # the name and the figure: nothing printed on the bars
    chart.add("号源使用率", [round((row["utilisation"] or 0) * 100, 1) for row in halls])
    best = max(halls, key=lambda r: r["utilisation"] or 0, default=None)
    summary = (
        f"，最高的是{best['name']}（{percent(best['utilisation'])}）" if best is not None else "，暂无放号"
    )
    return svg(chart, f"各大厅号源使用率条形图：共 {len(halls)} 个大厅有放号{summary}。数字见“按大厅”表。")


def channel_chart(board: Dashboard) -> Markup:
    """The channel mix of the period's bookings (a ring; counts and shares in the legend)."""
    channels = [row for row in board.channels if row["booked"]]
    total = sum(row["booked"] for row in channels)
    chart = pygal.Pie(
        **_config(
            600,
            max(360, 300 + 24 * len(channels)),
            "预约渠道构成",
            inner_radius=0.45,
            legend_at_bottom=False,
            legend_at_bottom_columns=1,
        )
    )
    for row in channels:
        chart.add(f"{row['name']} {number(row['booked'])}（{percent(row['booked'] / total)}）", row["booked"])
    parts = "，".join(f"{row['name']} {number(row['booked'])}" for row in channels) or "暂无预约"
    return svg(chart, f"预约渠道构成环形图：{parts}。数字见“按渠道”表。")


def waitlist_chart(board: Dashboard) -> Markup:
    """The waiting list per day: end-of-day length and new entries."""
    labels = [short_day(row["day"]) for row in board.waitlist]
    chart = pygal.Line(
        **_config(
            600,
            380,
            "预约排队人数",
            **_date_axis([row["day"] for row in board.waitlist], 8),
            legend_at_bottom_columns=2,
            show_dots=len(labels) <= 62,
            dots_size=3,
            min_scale=4,
            max_scale=8,
            style=chart_style(("#8a5a00", "#6f42c1")),
        )
    )
    chart.x_labels = labels
    waiting, joined = [row["waiting"] for row in board.waitlist], [row["joined"] for row in board.waitlist]
    if not any_figure(waiting, joined):
        return no_data("预约排队人数")
    chart.add("日终排队", waiting)
    chart.add("新登记", joined)
    now = board.waiting_now
    return svg(
        chart,
        f"预约排队人数折线图：期间新登记 {number(sum(r['joined'] for r in board.waitlist))} 人，"
        f"最近一日日终排队 {number(now)} 人。数字见“按日明细”表。",
    )


def cn_day(day: date) -> str:
    """2026年12月7日 (web's cn_date without the weekday)."""
    return f"{day.year}年{day.month}月{day.day}日"


def charts(board: Dashboard) -> dict[str, Markup]:
    return {
        "daily": daily_chart(board),
        "halls": hall_chart(board),
        "channels": channel_chart(board),
        "waitlist": waitlist_chart(board),
    }


# --- downloads -------------------------------------------------------------------------------------


def csv_of(board: Dashboard, table: Table) -> str:
    """One table as CSV. The four groupings of the figures are written exactly as
    `GET /api/v1/admin/stats` writes them (`Accept: text/csv`); the heat map and the waiting list
    have their own columns."""
    if table in ("day", "hall", "service", "channel"):
        return stats.as_csv(board.raw[table])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if table == "fill":
        writer.writerow(("weekday", "hour", "released", "seats", "fill"))
        for cell in board.fill:
            fill = "" if cell["fill"] is None else cell["fill"]
            writer.writerow((cell["weekday"] + 1, cell["hour"], cell["released"], cell["seats"], fill))
    else:
        writer.writerow(("day", "joined", "left", "waiting"))
        for row in board.waitlist:
            waiting = "" if row["waiting"] is None else row["waiting"]
            writer.writerow((row["day"], row["joined"], row["left"], waiting))
    return buffer.getvalue()


SheetColumn = tuple[str, Callable[[dict[str, Any]], Any], str]  # heading, value, format name


def _figure_columns(*lead: SheetColumn) -> list[SheetColumn]:
    columns = list(lead)
    for name, heading in FIGURE_HEADINGS.items():
        columns.append((heading, operator.itemgetter(name), "percent" if name == "utilisation" else ""))
    return columns


def xlsx_of(board: Dashboard, generated_at: datetime) -> bytes:
    """Every table of the dashboard as one workbook, a sheet each, with a cover sheet."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    bold = book.add_format({"bold": True, "bg_color": "#E9EDF2", "border": 1, "text_wrap": True})
    formats = {"percent": book.add_format({"num_format": "0.0%"}), "": None}

    def sheet(title: str, columns: list[SheetColumn], rows: list[dict[str, Any]]) -> Any:
        page = book.add_worksheet(title)
        for col, (heading, _, _) in enumerate(columns):
            page.write_string(0, col, heading, bold)
            page.set_column(col, col, max(10, 2 * len(heading) + 2))
        for r, row in enumerate(rows, start=1):
            for col, (_, value_of, fmt) in enumerate(columns):
                value = value_of(row)
                if value is None:
                    page.write_blank(r, col, None)
                elif isinstance(value, int | float):
                    page.write_number(r, col, value, formats[fmt])
                else:
                    page.write_string(r, col, str(value))
        page.freeze_panes(1, 0)
        return page

    cover = book.add_worksheet("说明")
    cover.set_column(0, 0, 14)
    cover.set_column(1, 1, 60)
    facts = [
        ("统计范围", f"{board.unit_name}（{board.unit_id}）及下属单位"),
        ("预约时段日期", f"{board.period.first.isoformat()} 至 {board.period.last.isoformat()}"),
        ("生成时间", generated_at.strftime("%Y-%m-%d %H:%M")),
        ("口径", "按预约时段日期统计；号源使用率 = 未取消预约的号数 ÷ 放号数（规则 G18）"),
    ]
    for r, (name, value) in enumerate(facts):
        cover.write_string(r, 0, name, bold)
        cover.write_string(r, 1, value)
    days = sheet(
        "按日",
        [
            ("日期", lambda row: row["key"], ""),
            ("星期", lambda row: row["weekday"], ""),
            *_figure_columns(),
            ("日终排队", lambda row: row["waiting"], ""),
        ],
        board.days,
    )
    if board.days:
        chart = book.add_chart({"type": "column"})
        n = len(board.days)
        for column, name in ((3, "预约"), (6, "取号"), (8, "爽约"), (4, "取消")):
            chart.add_series(
                {
                    "name": name,
                    "categories": ["按日", 1, 0, n, 0],
                    "values": ["按日", 1, column, n, column],
                }
            )
        chart.set_title({"name": "每日预约、取号、爽约与取消"})
        chart.set_size({"width": 960, "height": 360})
        days.insert_chart(n + 3, 0, chart)
    sheet(
        "按大厅",
        _figure_columns(("大厅编号", lambda row: row["key"], ""), ("大厅", lambda row: row["name"], "")),
        board.halls,
    )
    sheet(
        "按事项",
        _figure_columns(
            ("事项编号", lambda row: int(row["key"]), ""),
            ("大厅", lambda row: row["hall_name"], ""),
            ("部门", lambda row: row["department"], ""),
            ("事项", lambda row: row["name"], ""),
        ),
        board.services,
    )
    sheet(
        "按渠道",
        [
            ("渠道编号", lambda row: row["key"], ""),
            ("渠道", lambda row: row["name"], ""),
            *(
                column
                for column in _figure_columns()
                if column[0]
                not in (FIGURE_HEADINGS[name] for name in ("released", "utilisation", "mean_wait_s"))
            ),
        ],
        board.channels,
    )
    sheet(
        "时段填充",
        [
            ("星期", lambda row: WEEKDAYS[row["weekday"]], ""),
            ("时段", lambda row: f"{row['hour']:02d}:00–{row['hour'] + 1:02d}:00", ""),
            ("放号", lambda row: row["released"], ""),
            ("已约号数", lambda row: row["seats"], ""),
            ("填充率", lambda row: row["fill"], "percent"),
        ],
        board.fill,
    )
    sheet(
        "排队",
        [
            ("日期", lambda row: row["day"], ""),
            ("新登记", lambda row: row["joined"], ""),
            ("离开排队（已分配或退出）", lambda row: row["left"], ""),
            ("日终排队", lambda row: row["waiting"], ""),
        ],
        board.waitlist,
    )
    book.close()
    return buffer.getvalue()
