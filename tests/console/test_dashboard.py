"""The console's dashboard (issue 10 item 5): a month of bookings made through the API (see
dashboard_seed.py); the page's tables, its CSV and XLSX downloads agree with
`GET /api/v1/admin/stats` and with the figures counted from the plan; scope and bad input."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.admin.support import new_admin, unit
from tests.conftest import Api, raw
from tests.console import dashboard_seed as seed
from tests.console.conftest import console_login
from tests.ids import resident_id
from tests.onsite.conftest import STAFF_PASSWORD, staff
from yuyue.config import Settings, get_settings

COLUMNS = ("released", "booked", "cancelled", "checked_in", "served", "no_show", "utilisation", "waitlist")


@pytest.fixture
def settings(database_url: str) -> Settings:
    """A month of bookings from one test client: the per-address rate limit is off (test only)."""
    return Settings(
        env="test", database_url=database_url, db_pool_size=20, log_level="WARNING", rate_limits="off"
    )


@pytest.fixture(autouse=True)
def test_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Code that reads the process settings (the SMS of an alert) sees the test environment."""
    monkeypatch.setenv("YUYUE_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def make_units(api: Api) -> dict[str, int]:
    """Two districts: dist-a (hall-a, street-a) and dist-b (hall-b); services A, B, W, C, D."""
    await unit(api, "dist-a", "district", "platform")
    await unit(api, "dist-b", "district", "platform")
    await api.hall("hall-a", parent="dist-a", kind="district_hall", name="甲区政务服务中心")
    await api.hall("street-a", parent="dist-a", kind="street_hall", name="甲区东街中心")
    await api.hall("hall-b", parent="dist-b", kind="district_hall", name="乙区政务服务中心")
    names = {
        "A": "居民身份证申领",
        "B": "社会保障卡申领",
        "W": "护照加急",
        "C": "居住证办理",
        "D": "发票领用",
    }
    services = {}
    for key, (hall, capacity) in seed.SERVICES.items():
        made = await api.service(hall, name=names[key], daily_capacity=capacity)
        services[key] = int(made["id"])
    return services


# --- reading what the dashboard answers -------------------------------------------------------------


class Tables(HTMLParser):
    """Every <table id=…> of a page: rows as (tr attributes, [(cell tag, attributes, text)])."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[dict[str, str], list[tuple[str, dict[str, str], str]]]]] = {}
        self.kpis: dict[str, str] = {}
        self._table: str | None = None
        self._cell: tuple[str, dict[str, str], list[str]] | None = None
        self._kpi: str | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        if tag == "table" and "id" in named:
            self._table = named["id"]
            self.tables[self._table] = []
        elif self._table and tag == "tr":
            self.tables[self._table].append((named, []))
        elif self._table and tag in ("td", "th"):
            self._cell = (tag, named, [])
        if tag == "strong" and "data-kpi" in named:
            self._kpi = named["data-kpi"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            cell_tag, attrs, text = self._cell
            self.tables[self._table][-1][1].append((cell_tag, attrs, " ".join(" ".join(text).split())))
            self._cell = None
        elif tag == "strong":
            self._kpi = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[2].append(data)
        if self._kpi is not None:
            self.kpis[self._kpi] = data.strip()

    def keyed(self, table: str) -> dict[str, dict[str, str]]:
        """The rows carrying data-key, as {key: {data-col: text}}."""
        return {
            attrs["data-key"]: {a["data-col"]: text for _, a, text in cells if "data-col" in a}
            for attrs, cells in self.tables[table]
            if "data-key" in attrs
        }


def shown(value: Any, column: str) -> str:
    """A figure as the page writes it (issue 20: 千分位, waits in minutes)."""
    if value is None:
        return "—"
    if column == "utilisation":
        return f"{value * 100:.1f}%"
    if column == "mean_wait_s":
        return f"{value / 60:,.1f}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def read_xlsx(content: bytes) -> dict[str, list[list[Any]]]:
    """The sheets of a workbook as rows of values (strings and numbers), with zipfile and XML only."""
    ns = {
        "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
        "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
        "p": "http://schemas.openxmlformats.org/package/2006/relationships",
    }
    book = zipfile.ZipFile(io.BytesIO(content))
    strings = [
        "".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t"))
        for si in ElementTree.fromstring(book.read("xl/sharedStrings.xml")).findall("m:si", ns)
    ]
    rels = {
        rel.get("Id"): rel.get("Target")
        for rel in ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels")).findall(
            "p:Relationship", ns
        )
    }
    sheets: dict[str, list[list[Any]]] = {}
    for sheet in ElementTree.fromstring(book.read("xl/workbook.xml")).find("m:sheets", ns) or []:
        target = rels[sheet.get(f"{{{ns['r']}}}id")]
        rows = []
        for row in ElementTree.fromstring(book.read(f"xl/{target}")).iter(f"{{{ns['m']}}}row"):
            values: list[Any] = []
            for cell in row.findall("m:c", ns):
                column = re.match(r"[A-Z]+", cell.get("r", "A")).group(0)  # type: ignore[union-attr]
                index = sum((ord(ch) - 64) * 26**i for i, ch in enumerate(reversed(column))) - 1
                values.extend([None] * (index - len(values)))
                raw = cell.find("m:v", ns)
                if raw is None:
                    values.append(None)
                elif cell.get("t") == "s":
                    values.append(strings[int(raw.text or 0)])
                else:
                    number = float(raw.text or 0)
                    values.append(int(number) if number.is_integer() else number)
            rows.append(values)
        sheets[str(sheet.get("name"))] = rows
    return sheets


async def api_rows(api: Api, headers: dict[str, str], **params: str) -> dict[str, dict[str, Any]]:
    answer = await api.client.get("/api/v1/admin/stats", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return {row["key"]: row for row in answer.json()}


async def api_csv(api: Api, headers: dict[str, str], **params: str) -> str:
    answer = await api.client.get(
        "/api/v1/admin/stats", params=params, headers={**headers, "Accept": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    return answer.text


# --- the month --------------------------------------------------------------------------------------


async def check_scope(
    api: Api, headers: dict[str, str], unit_id: str, page_params: dict[str, str] | None = None
) -> Tables:
    """The page (the seeded month, `unit_id`'s admin's default unit) against the API, the plan and
    the downloads."""
    first, last = seed.FIRST, seed.TODAY
    period = {"from": first.isoformat(), "to": last.isoformat()}
    answer = await api.client.get("/admin/dashboard", params={**period, **(page_params or {})})
    assert answer.status_code == 200, answer.text[:2000]
    page = Tables(answer.text)
    by_day = page.keyed("table-day")
    expected = seed.expected_by_day(unit_id, first, last)
    from_api = await api_rows(api, headers, unit_id=unit_id, group_by="day", **period)

    # every day of the period is a row; the API's figures and the plan's agree with it
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    assert [k for k in by_day if k != "total"] == [d.isoformat() for d in days]
    assert set(from_api) == set(expected)
    for key, row in from_api.items():
        for column in (*COLUMNS, "mean_wait_s"):
            assert by_day[key][column] == shown(row[column], column), (key, column)
        for column in COLUMNS:
            assert row[column] == expected[key][column], (key, column, row, expected[key])
        if row["served"] and key < seed.TODAY.isoformat():
            assert abs(row["mean_wait_s"] - 900) < 5  # served 15 minutes after check-in
    for key, row in by_day.items():
        if key not in from_api and key != "total":
            assert row["booked"] == "0" and row["released"] == "0", key  # a day without figures
        if key != "total" and date.fromisoformat(key) <= seed.TODAY:
            assert row["waiting"] == str(seed.expected_waiting(date.fromisoformat(key))), key

    total = seed.totals(expected)
    kpis = page.kpis
    assert kpis["released"] == shown(total["released"], "released") == by_day["total"]["released"]
    assert kpis["booked"] == shown(total["booked"], "booked") == by_day["total"]["booked"]
    assert kpis["checked_in"] == shown(total["checked_in"], "checked_in")
    assert kpis["no_show"] == shown(total["no_show"], "no_show")
    assert kpis["cancelled"] == shown(total["cancelled"], "cancelled")
    assert kpis["utilisation"] == shown(round(total["seats"] / total["released"], 4), "utilisation")
    assert kpis["waiting"] == str(seed.expected_waiting(seed.TODAY) if unit_id != "dist-b" else 0)

    # per channel and per hall: the API's rows, the plan's counts
    by_channel = page.keyed("table-channel")
    channels_api = await api_rows(api, headers, unit_id=unit_id, group_by="channel", **period)
    channels_plan = seed.expected_by_channel(unit_id, first, last)
    assert set(by_channel) == set(channels_api) == set(channels_plan)
    for key, row in channels_api.items():
        for column in ("booked", "cancelled", "checked_in", "served", "no_show", "waitlist"):
            assert by_channel[key][column] == str(row[column]) == str(channels_plan[key][column]), (
                key,
                column,
            )
    by_hall = page.keyed("table-hall")
    halls_api = await api_rows(api, headers, unit_id=unit_id, group_by="hall", **period)
    assert set(by_hall) == set(halls_api) == {h for h in seed.DISTRICT if seed.in_scope(h, unit_id)}
    for key, row in halls_api.items():
        for column in COLUMNS:
            assert by_hall[key][column] == shown(row[column], column), (key, column)
    services_api = await api_rows(api, headers, unit_id=unit_id, group_by="service", **period)
    assert set(page.keyed("table-service")) == set(services_api)

    # the heat map: released and booked seats per weekday × hour, as counted from the plan
    fill = seed.expected_fill(unit_id, first, last)
    cells = page.tables["table-fill"]
    hours = [int(text.rstrip("时")) for tag, _, text in cells[0][1][1:]]
    weekdays = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]
    seen = {}
    for _, row in cells[1:]:
        weekday = weekdays.index(row[0][2])
        for hour, (_, attrs, text) in zip(hours, row[1:], strict=True):
            released, seats = int(attrs["data-released"]), int(attrs["data-seats"])
            if released or seats:
                seen[(weekday, hour)] = (released, seats)
                assert text == f"{shown(round(seats / released, 4), 'utilisation')} {seats}/{released}"
            else:
                assert text == "—"
    assert seen == {key: value for key, value in fill.items() if value != (0, 0)}
    assert sum(r for r, _ in seen.values()) == total["released"]
    assert sum(s for _, s in seen.values()) == total["seats"]

    # CSV: the four groupings are the API's CSV, byte for byte; the heat map and the waiting list
    query = {"unit_id": unit_id, **period}
    for table in ("day", "hall", "service", "channel"):
        download = await api.client.get("/admin/dashboard.csv", params={**query, "table": table})
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert "attachment" in download.headers["content-disposition"]
        assert download.text == await api_csv(api, headers, unit_id=unit_id, group_by=table, **period)
    download = await api.client.get("/admin/dashboard.csv", params={**query, "table": "fill"})
    lines = list(csv.DictReader(io.StringIO(download.text)))
    assert {
        (int(r["weekday"]) - 1, int(r["hour"])): (int(r["released"]), int(r["seats"])) for r in lines
    } == {key: value for key, value in fill.items() if value != (0, 0)}
    download = await api.client.get("/admin/dashboard.csv", params={**query, "table": "waitlist"})
    lines = list(csv.DictReader(io.StringIO(download.text)))
    assert [r["day"] for r in lines] == [d.isoformat() for d in days]
    for line in lines:
        waiting = seed.expected_waiting(date.fromisoformat(line["day"])) if unit_id != "dist-b" else 0
        assert line["waiting"] == str(waiting), line

    # XLSX: every sheet, read back
    download = await api.client.get("/admin/dashboard.xlsx", params=query)
    assert download.status_code == 200
    assert download.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    sheets = read_xlsx(download.content)
    assert list(sheets) == ["说明", "按日", "按大厅", "按事项", "按渠道", "时段填充", "排队"]
    head, *rows = sheets["按日"]
    assert head[:2] == ["日期", "星期"] and head[2:11] == [
        "放号",
        "预约",
        "取消",
        "取号",
        "办结",
        "爽约",
        "号源使用率",
        "排队登记",
        "平均等候（秒）",
    ]
    assert [r[0] for r in rows] == [d.isoformat() for d in days]
    for r in rows:
        figures = from_api.get(r[0])
        for offset, column in enumerate(("released", *COLUMNS[1:], "mean_wait_s")):
            want = (
                figures[column] if figures else (0 if column not in ("utilisation", "mean_wait_s") else None)
            )
            got = r[2 + offset] if 2 + offset < len(r) else None  # blank cells are not written
            assert got == want, (r[0], column, r, want)
    head, *rows = sheets["按大厅"]
    assert {r[0]: r[3] for r in rows} == {key: row["booked"] for key, row in halls_api.items()}
    head, *rows = sheets["按渠道"]
    assert {r[0]: r[2] for r in rows} == {key: row["booked"] for key, row in channels_api.items()}
    head, *rows = sheets["时段填充"]
    assert sum(r[2] for r in rows) == total["released"] and sum(r[3] for r in rows) == total["seats"]
    assert sheets["说明"][0][1].endswith(f"（{unit_id}）及下属单位")
    return page


async def test_a_month_on_the_dashboard_agrees_with_the_api_and_the_plan(api: Api) -> None:
    services = await make_units(api)
    await seed.seed(api, api.admin(), services)
    rolled = [str(r.day) for r in await raw(api, "SELECT day FROM stats_days ORDER BY day")]
    assert rolled == ["2026-11-05", "2026-11-12", "2026-11-19", "2026-11-26"]  # the rest is live
    # the figures counted by hand from the plan (see dashboard_seed.plan): 22 working days
    # 11-02 … 12-01 release 14 + 7 + 1 + 7 + 7 = 36 seats a day; each day books A three times and B
    # once (88), C every other day (11), D every third (8), plus 3 on site and 3 of W: 113
    expected = seed.totals(seed.expected_by_day("platform", seed.FIRST, seed.TODAY))
    assert expected["released"] == 22 * 36 == 792
    assert expected["booked"] == 88 + 11 + 8 + 3 + 3 == 113

    assert (await console_login(api)).status_code == 303
    page = await check_scope(api, api.admin(), "platform")
    booked = [int(row["booked"]) for row in page.keyed("table-channel").values()]
    assert booked == sorted(booked, reverse=True)  # the largest channel first

    # another period: only 12-02, where the two bookings made ahead lie (not in the default period)
    answer = await api.client.get("/admin/dashboard", params={"from": "2026-12-02", "to": "2026-12-02"})
    day = Tables(answer.text).keyed("table-day")["2026-12-02"]
    assert day["booked"] == "2" and day["released"] == "36"

    # issue 20: the default period runs 30 days back and 14 ahead, so the bookings already made for
    # the coming days show (12-02's two); dates in Chinese, waits in minutes, sortable tables
    default = await api.client.get("/admin/dashboard")
    tables = Tables(default.text)
    keys = [k for k in tables.keyed("table-day") if k != "total"]
    assert keys[0] == (seed.TODAY - timedelta(days=29)).isoformat()
    assert keys[-1] == (seed.TODAY + timedelta(days=14)).isoformat()
    assert tables.keyed("table-day")["2026-12-02"]["booked"] == "2"
    assert int(tables.kpis["booked"].replace(",", "")) == expected["booked"] + 2  # and 12-02
    assert "2026年12月2日 周三" in default.text and "平均等候（分钟）" in default.text
    assert default.text.count('class="figures sortable"') == 4
    assert 'data-sort="2026-12-02"' in default.text

    # a district admin: their subtree by default, the same checks; another district is forbidden
    district = await new_admin(api, "dista1", "dist-a", 1)
    assert (await console_login(api, "dista1", "dista1-password-2026")).status_code == 303
    page = await check_scope(api, district, "dist-a")
    choices = re.findall(r'<option value="([^"]+)"', (await api.client.get("/admin/dashboard")).text)
    assert choices == ["dist-a", "hall-a", "street-a"]
    assert set(page.keyed("table-hall")) == {"hall-a", "street-a"}
    for path in ("/admin/dashboard", "/admin/dashboard.csv", "/admin/dashboard.xlsx"):
        for other in ("dist-b", "hall-b", "platform"):
            refused = await api.client.get(path, params={"unit_id": other})
            assert refused.status_code == 403, (path, other)
            assert 'data-code="forbidden"' in refused.text
    # and a hall of their district, chosen in the form
    answer = await api.client.get("/admin/dashboard", params={"unit_id": "street-a"})
    assert set(Tables(answer.text).keyed("table-hall")) == {"street-a"}


async def test_the_page_draws_its_charts_as_svg(api: Api) -> None:
    services = await make_units(api)
    citizen = await api.login(resident_id(1))
    booked = await api.book(citizen, f"{services['A']}-202612030900", channel="wechat")
    assert booked.status_code == 201, booked.text
    await console_login(api)
    answer = await api.client.get("/admin/dashboard", params={"from": "2026-11-20", "to": "2026-12-31"})
    assert answer.status_code == 200
    page = answer.text
    charts = re.findall(r"<svg [^>]*>", page)
    assert len(charts) == 3 and all('role="img"' in c and "aria-label=" in c for c in charts)
    assert page.count('class="chart-empty"') == 1  # nobody waits: the waiting-list chart says 暂无数据
    assert page.count("<script") == 1  # the console's own file; pygal's inline script is gone
    for title in ("每日预约、取号、爽约与取消", "各大厅号源使用率", "预约渠道构成", "预约排队人数"):
        assert title in page
    assert "微信公众号 1（100.0%）" in page  # the channel legend: name, count, share
    assert "WenQuanYi Micro Hei" in page  # a CJK font for the labels
    day = Tables(page).keyed("table-day")
    assert day["2026-12-03"]["booked"] == "1" and len(day) == 42 + 1


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"from": "2026-13-01"}, "invalid_date"),
        ({"to": "yesterday"}, "invalid_date"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "invalid_period"),
        ({"from": "2025-01-01", "to": "2026-12-01"}, "invalid_period"),
    ],
)
async def test_bad_dates_are_a_clear_page(api: Api, query: dict[str, str], code: str) -> None:
    await api.hall()
    await console_login(api)
    for path in ("/admin/dashboard", "/admin/dashboard.csv", "/admin/dashboard.xlsx"):
        answer = await api.client.get(path, params=query)
        assert answer.status_code == 422, (path, answer.status_code)
        assert "text/html" in answer.headers["content-type"]
        assert f'data-code="{code}"' in answer.text and 'role="alert"' in answer.text
        assert '<form method="get" action="/admin/dashboard"' in answer.text  # to correct it there
    answer = await api.client.get("/admin/dashboard", params={"from": "2025-12-01", "to": "2026-11-30"})
    assert answer.status_code == 200  # a year is allowed


async def test_who_may_open_the_dashboard(api: Api) -> None:
    await api.hall("hall-a")
    first = await api.client.get("/admin/dashboard?from=2026-11-01")
    assert first.status_code == 303
    assert first.headers["location"] == "/admin/login?next=%2Fadmin%2Fdashboard%3Ffrom%3D2026-11-01"
    await staff(api, "hall-a", username="clerk1")
    assert (await console_login(api, "clerk1", STAFF_PASSWORD, role="staff")).status_code == 303
    refused = await api.client.get("/admin/dashboard")
    assert refused.status_code == 403 and 'data-code="forbidden"' in refused.text
    api.client.cookies.clear()
    await console_login(api)
    missing = await api.client.get("/admin/dashboard", params={"unit_id": "nowhere"})
    assert missing.status_code == 404 and 'data-code="not_found"' in missing.text
    bad_table = await api.client.get("/admin/dashboard.csv", params={"table": "everything"})
    assert bad_table.status_code == 422 and 'data-code="validation_error"' in bad_table.text
    # a new platform with one empty hall: the page still answers, with zeros and no chart data
    empty = await api.client.get("/admin/dashboard")
    assert empty.status_code == 200 and "暂无数据" in empty.text
    # issue 20: a chart with nothing to draw is a box saying so, not axes from 0 to 1
    assert empty.text.count('class="chart-empty"') == 2
