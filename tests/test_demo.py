"""`yuyue demo` with its history (demo_history.py), on both backends, with the settable clock: the
past 60 days loaded once, consistent with what the booking path keeps, and the admin pages and API
showing it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.conftest import Api, raw
from yuyue.clock import TZ
from yuyue.demo import load

NOW = datetime(2026, 12, 2, 10, 30, tzinfo=TZ)  # a Wednesday, mid-morning: slots in progress

TABLES = (
    "citizens",
    "bookings",
    "slots",
    "booking_counters",
    "tickets",
    "ticket_counters",
    "no_show_marks",
    "bans",
    "waitlist_entries",
    "capacity_requests",
    "audit_log",
    "alerts",
    "stats_daily",
    "stats_days",
    "units",
    "services",
    "admins",
)


async def counts(api: Api) -> dict[str, int]:
    return {table: (await raw(api, f"SELECT count(*) FROM {table}"))[0][0] for table in TABLES}


async def test_demo_history(api: Api, settings: Any) -> None:
    await api.set_clock(NOW)
    report = await load(settings, history=True)
    assert any(line.startswith("history:") for line in report), report
    first = await counts(api)
    assert first["bookings"] > 5000 and first["tickets"] > 1000, first

    # Idempotent: a second run adds nothing.
    assert await load(settings, history=True) == ["demo already loaded: nothing to do"]
    assert await counts(api) == first

    # A seat sold once: slots.booked is the seats of the slot's bookings not cancelled.
    wrong = await raw(
        api,
        "SELECT s.id, s.booked, s.capacity, (SELECT coalesce(sum(b.quantity), 0) FROM bookings b "
        "WHERE b.slot_id = s.id AND b.status <> 'cancelled') FROM slots s",
    )
    assert all(row[1] == row[3] and row[1] <= row[2] for row in wrong)
    # Numbers unique, one sequence per hall and date, the counter at the last number (rule M12).
    assert (await raw(api, "SELECT count(DISTINCT number) FROM bookings"))[0][0] == first["bookings"]
    sequences = await raw(
        api,
        "SELECT c.n, count(b.id), max(CAST(substr(b.number, length(b.number) - 4) AS integer)) "
        "FROM booking_counters c JOIN bookings b ON b.hall_id = c.hall_id AND b.slot_day = c.day "
        "GROUP BY c.hall_id, c.day, c.n",
    )
    assert sequences and all(n == total == last for n, total, last in sequences)
    assert (await raw(api, "SELECT count(DISTINCT number) FROM tickets"))[0][0] == first["tickets"]
    # Live keys unique among live bookings (the partial unique index would have refused otherwise).
    live = await raw(
        api,
        "SELECT count(*), count(DISTINCT live_key) FROM bookings WHERE status IN ('booked', 'checked_in')",
    )
    assert live[0][0] > 0 and live[0][0] == live[0][1]

    # States: a believable mix; nothing left `booked` after its window closed.
    states = dict(await raw(api, "SELECT status, count(*) FROM bookings GROUP BY status"))
    total = sum(states.values())
    assert 0.07 <= states["cancelled"] / total <= 0.13, states
    assert 0.03 <= states["no_show"] / total <= 0.09, states
    assert states["served"] > states["no_show"] and states["booked"] > 0
    assert states.get("checked_in", 0) > 0  # slots in progress at 10:30 have citizens checked in
    assert not await raw(
        api,
        "SELECT id FROM bookings WHERE status = 'booked' AND slot_end < :now",
        now=NOW.replace(tzinfo=None),
    )
    assert (await raw(api, "SELECT count(*) FROM no_show_marks"))[0][0] == states["no_show"]
    # History only on working days, none on a Sunday.
    days = {row[0] for row in await raw(api, "SELECT DISTINCT slot_day FROM bookings")}
    assert all(str(day)[:10] != "2026-11-29" for day in days)

    # A ban in force now, from the penalty rules (rule G15), of a citizen with no-shows behind it.
    bans = await raw(
        api,
        "SELECT b.id, b.citizen_id FROM bans b WHERE b.until >= :today AND b.lifted_at IS NULL",
        today=NOW.date(),
    )
    assert bans
    for ban_id, _ in bans:
        assert (await raw(api, "SELECT count(*) FROM no_show_marks WHERE ban_id = :b", b=ban_id))[0][0] >= 2

    # Citizens waiting now for full days, and the capacity requests (rule G20) with their audit.
    assert (await raw(api, "SELECT count(*) FROM waitlist_entries WHERE status = 'waiting'"))[0][0] >= 3
    requests = dict(await raw(api, "SELECT status, count(*) FROM capacity_requests GROUP BY status"))
    assert requests == {"approved": 1, "pending": 1}
    actions = {row[0] for row in await raw(api, "SELECT action FROM audit_log")}
    assert {"capacity.request", "capacity.approve"} <= actions

    # Through the API a person uses: the figures of past days, the alert, the audit, the waiting list.
    login = await api.client.post(
        "/api/v1/admin/login", json={"username": "tianhe1", "password": "yuyue-tianhe1-2026"}
    )
    assert login.status_code == 200, login.text
    tianhe = api.admin(login.json()["token"])
    first_day, last_day = (
        (NOW.date() - timedelta(days=30)).isoformat(),
        (NOW.date() - timedelta(days=1)).isoformat(),
    )
    figures = await api.client.get(
        "/api/v1/admin/stats",
        params={"unit_id": "tianhe", "from": first_day, "to": last_day, "group_by": "day"},
        headers=tianhe,
    )
    assert figures.status_code == 200, figures.text
    rows = figures.json()
    assert rows and sum(r["booked"] for r in rows) > 500
    assert sum(r["served"] for r in rows) > 0 and any(r["mean_wait_s"] for r in rows)
    alerts = await api.client.get("/api/v1/admin/alerts", headers=tianhe)
    assert alerts.status_code == 200, alerts.text
    assert any(a["kind"] == "approval_overdue" for a in alerts.json())
    audit = await api.client.get("/api/v1/admin/audit", headers=tianhe)
    assert audit.status_code == 200, audit.text
    assert {"capacity.request", "capacity.approve"} <= {e["action"] for e in audit.json()}
