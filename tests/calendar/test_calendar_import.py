"""Calendar years ahead (issue 18, decision 0092): a year's national holidays and swapped working days
imported from a CSV or iCalendar file, by `yuyue calendar import FILE` (with `--dry-run`), the API and
the console (preview, then confirm); the preview names the bookings a new holiday cancels;
`calendar_missing` is raised 90 days before the data runs out, and not for an imported year."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.admin.support import new_admin, problem
from tests.conftest import Api, raw
from tests.console.conftest import console_login, post
from tests.onsite.conftest import book_at
from yuyue.cli import app as cli_app
from yuyue.config import get_settings

# 2027 as the State Council's notice would list it (abridged), and a correction of 2026-12-03
NOTICE_CSV = """date,working_day,note
2027-01-01,休,元旦
2027-02-06,班,春节调休上班
2027-02-07,休,春节
2027-02-08,休,春节
2026-12-03,0,临时调整
"""

NOTICE_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//notice//CN
BEGIN:VEVENT
UID:1@test
DTSTART;VALUE=DATE:20270101
DTEND;VALUE=DATE:20270102
SUMMARY:元旦 休
END:VEVENT
BEGIN:VEVENT
UID:2@test
DTSTART;VALUE=DATE:20270211
DTEND;VALUE=DATE:20270214
SUMMARY:春节
END:VEVENT
BEGIN:VEVENT
UID:3@test
DTSTART;VALUE=DATE:20270206
SUMMARY:春节 补班
END:VEVENT
END:VCALENDAR
"""


async def _import(api: Api, content: str, apply: bool, headers: dict[str, str] | None = None) -> Any:
    return await api.client.post(
        "/api/v1/admin/calendar/import",
        json={"file": content, "name": "notice-2027", "apply": apply},
        headers=headers or api.admin(),
    )


async def _alert_years(api: Api) -> list[str]:
    alerts = (await api.client.get("/api/v1/admin/alerts", headers=api.admin())).json()
    return sorted(a["detail"].split()[5].rstrip(":") for a in alerts if a["kind"] == "calendar_missing")


async def test_preview_then_import_through_the_api(api: Api) -> None:
    await api.hall()
    service = await api.service()
    booked = await book_at(api, 1, service["id"], "2026-12-03T09:00")
    preview = await _import(api, NOTICE_CSV, apply=False)
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert (body["year"], body["format"], body["applied"]) == (2027, "csv", False)
    assert (body["changed"], body["bookings"], body["citizens"]) == (4, 1, 1)  # 02-07 was a Sunday already
    day = next(d for d in body["days"] if d["date"] == "2026-12-03")
    assert day == {**day, "working_before": True, "working_day": False, "changes": True, "bookings": 1}
    assert (await raw(api, "SELECT count(*) FROM calendar_days"))[0][0] == 0  # a preview writes nothing
    assert (await raw(api, "SELECT status FROM bookings"))[0][0] == "booked"

    done = await _import(api, NOTICE_CSV, apply=True)
    assert done.status_code == 200 and done.json()["applied"] is True
    rows = await raw(
        api, "SELECT status, cancelled_by FROM bookings WHERE number = :n", n=booked["booking"]["number"]
    )
    assert tuple(rows[0]) == ("cancelled", "hall")  # a new holiday is a closed day (docs/rules.md)
    days = (
        await api.client.get(
            f"/api/v1/services/{service['id']}/availability",
            params={"from": "2027-02-05", "to": "2027-02-08"},
        )
    ).json()["days"]
    assert [d["working_day"] for d in days] == [True, True, False, False]  # Sat 02-06 swapped to work
    audit = (await api.client.get("/api/v1/admin/audit", headers=api.admin())).json()
    assert any(entry["action"] == "calendar.import" and entry["target"] == "2027" for entry in audit)


async def test_bad_files_and_who_may_import(api: Api) -> None:
    problem(await _import(api, "2027-01-01,maybe\n", apply=False), 422, "validation_error")
    problem(await _import(api, "2027-13-01,1\n", apply=False), 422, "validation_error")
    problem(await _import(api, "2027-01-01,1\n2027-01-01,0\n", apply=False), 422, "validation_error")
    problem(await _import(api, "BEGIN:VCALENDAR\nnot ical\n", apply=False), 422, "validation_error")
    second = await new_admin(api, "p2", "platform", 2)  # platform L2 proposes, never sets (rule G4)
    problem(await _import(api, NOTICE_CSV, apply=True, headers=second), 403, "forbidden")
    assert (await raw(api, "SELECT count(*) FROM calendar_days"))[0][0] == 0


async def test_ics_import_covers_the_year_so_no_calendar_missing(api: Api) -> None:
    body = (await _import(api, NOTICE_ICS, apply=True)).json()
    assert body["format"] == "ics" and body["year"] == 2027
    listed = {d["date"]: d["working_day"] for d in body["days"]}
    assert listed == {
        "2027-01-01": False,
        "2027-02-06": True,
        "2027-02-11": False,
        "2027-02-12": False,
        "2027-02-13": False,
    }
    await api.set_clock("2026-12-02T01:00:00+08:00")  # the daily check: 2027 is covered now
    assert await _alert_years(api) == []


async def test_calendar_missing_is_raised_90_days_ahead(api: Api) -> None:
    await api.set_clock("2026-10-03T00:59:00+08:00")  # back in time: runs nothing
    await api.set_clock("2026-10-03T01:00:00+08:00")  # 2027-01-01 is 90 days away: not yet
    assert await _alert_years(api) == []
    await api.set_clock("2026-10-04T00:59:00+08:00")
    await api.set_clock("2026-10-04T01:00:00+08:00")  # now within 90 days
    assert await _alert_years(api) == ["2027"]


async def test_console_preview_shows_who_is_texted_then_confirms(api: Api) -> None:
    await api.hall()
    service = await api.service()
    await book_at(api, 1, service["id"], "2026-12-03T09:00")
    await book_at(api, 2, service["id"], "2026-12-03T10:00")
    assert (await console_login(api)).status_code == 303
    page = await post(api, "/admin/calendar/preview", {"file": NOTICE_CSV, "name": "2027.csv"})
    assert page.status_code == 200, page.text
    assert 'data-citizens="2"' in page.text and 'data-day="2026-12-03" data-changes="1"' in page.text
    assert "确认导入（取消 2 个预约）" in page.text
    assert (await raw(api, "SELECT count(*) FROM calendar_days"))[0][0] == 0
    bad = await post(api, "/admin/calendar/preview", {"file": "2027-01-01,maybe", "name": ""})
    assert bad.status_code == 422 and "2027-01-01,maybe" in bad.text  # the page again, what was typed kept
    confirmed = await post(api, "/admin/calendar/import", {"file": NOTICE_CSV, "name": "2027.csv"})
    assert confirmed.status_code == 303 and confirmed.headers["location"].endswith("done=calendar_imported")
    assert (await raw(api, "SELECT count(*) FROM bookings WHERE cancelled_by = 'hall'"))[0][0] == 2
    assert (await raw(api, "SELECT year, source FROM calendar_years"))[0] == (2027, "2027.csv")


async def test_cli_import_with_dry_run(
    api: Api, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUYUE_DATABASE_URL", database_url)
    monkeypatch.setenv("YUYUE_ENV", "test")
    get_settings.cache_clear()
    notice = tmp_path / "2027.ics"
    notice.write_text(NOTICE_ICS, encoding="utf-8")
    runner = CliRunner()
    try:
        dry = await asyncio.to_thread(
            runner.invoke, cli_app, ["calendar", "import", str(notice), "--dry-run"]
        )
        assert dry.exit_code == 0, dry.output
        assert "dry run, nothing changed: 2027, 5 dates, 4 changed" in dry.output
        assert "* 2027-02-06 working" in dry.output
        assert (await raw(api, "SELECT count(*) FROM calendar_days"))[0][0] == 0
        done = await asyncio.to_thread(runner.invoke, cli_app, ["calendar", "import", str(notice)])
        assert done.exit_code == 0, done.output
        assert "imported: 2027" in done.output
        assert (await raw(api, "SELECT count(*) FROM calendar_days"))[0][0] == 5
        bad = tmp_path / "bad.csv"
        bad.write_text("2027-01-01,maybe\n", encoding="utf-8")
        refused = await asyncio.to_thread(runner.invoke, cli_app, ["calendar", "import", str(bad)])
        assert refused.exit_code == 2 and "working_day must be" in refused.output
    finally:
        get_settings.cache_clear()
