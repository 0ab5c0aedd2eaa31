"""Figures of a year of a 200-hall city (rule G18): how long `GET /api/v1/admin/stats` takes.

Loads, straight into a throwaway PostgreSQL database, what a year of nightly rollups leaves behind:
11 districts, 200 halls, 10 services each (2,000 services), 365 days, one `stats_daily` row per
(day, service, channel) for 3 channels plus the '*' row (2.92 million rows), and `stats_days`
marking them rolled up. Then times the figures query (the service function the route calls) for
the whole city and for one district over the year, grouped by day, hall, service and channel, and
one rollup of a day of 140,000 bookings (200 halls × 10 services × 70).

    .venv/bin/python bench/stats.py [--out NAME]
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import asyncio
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import analyze, machine, sql_rows, throwaway_database, write_result

HALLS, SERVICES_PER_HALL, DISTRICTS = 200, 10, 11
FIRST = date(2025, 12, 1)
DAYS = 365


def load(url: str) -> dict[str, float]:
    timings: dict[str, float] = {}
    statements = [
        "INSERT INTO units (id, name, kind, parent_id, path, counters, created_at) "
        "SELECT 'd' || d, 'district ' || d, 'district', 'platform', 'platform/d' || d || '/', 0, now() "
        f"FROM generate_series(1, {DISTRICTS}) d",
        "INSERT INTO units (id, name, kind, parent_id, path, address, hotline, mode, hours, counters, code, "
        "created_at) SELECT 'h' || h, 'hall ' || h, 'district_hall', 'd' || (h % "
        f"{DISTRICTS} + 1), 'platform/d' || (h % {DISTRICTS} + 1) || '/h' || h || '/', 'addr', '020', "
        '\'appointment_priority\', \'[{"start": "09:00", "end": "12:00"}, {"start": "13:00", '
        '"end": "17:00"}]\', 2, lpad(h::text, 3, \'0\'), now() '
        f"FROM generate_series(1, {HALLS}) h",
        f"INSERT INTO departments (hall_id, name) SELECT 'h' || h, 'dept' FROM generate_series(1, {HALLS}) h",
        "INSERT INTO services (hall_id, department_id, name, business_types, daily_capacity, max_batch, "
        "walk_in_allowed, active, created_at) SELECT 'h' || h, h, 'service ' || s, '[]', 70, 1, true, "
        f"true, now() FROM generate_series(1, {HALLS}) h, generate_series(1, {SERVICES_PER_HALL}) s",
        "INSERT INTO stats_daily (day, service_id, channel, hall_id, released, booked, seats, cancelled, "
        "checked_in, served, no_show, waitlist, wait_sum_s, wait_n) "
        "SELECT DATE '2025-12-01' + d, s.id, c.channel, s.hall_id, "
        "CASE WHEN c.channel = '*' THEN 70 ELSE 0 END, "
        "CASE WHEN c.channel = '*' THEN 0 ELSE 15 + (s.id + d) % 8 END, "
        "CASE WHEN c.channel = '*' THEN 0 ELSE 13 + (s.id + d) % 8 END, "
        "CASE WHEN c.channel = '*' THEN 0 ELSE 2 END, CASE WHEN c.channel = '*' THEN 0 ELSE 12 END, "
        "CASE WHEN c.channel = '*' THEN 0 ELSE 11 END, CASE WHEN c.channel = '*' THEN 0 ELSE 1 END, "
        "(s.id + d) % 3, CASE WHEN c.channel = '*' THEN 36000 ELSE 0 END, "
        "CASE WHEN c.channel = '*' THEN 60 ELSE 0 END "
        f"FROM generate_series(0, {DAYS - 1}) d, services s, "
        "(VALUES ('*'), ('web'), ('wechat'), ('provincial_portal')) AS c(channel)",
        f"INSERT INTO stats_days (day, rolled_at) SELECT DATE '2025-12-01' + d, now() "
        f"FROM generate_series(0, {DAYS - 1}) d",
    ]
    started = time.perf_counter()
    for statement in statements:
        asyncio.run(sql_rows(url, statement))
    asyncio.run(_sum_up(url))
    timings["load_s"] = round(time.perf_counter() - started, 1)
    analyze(url)
    return timings


async def _sum_up(url: str) -> None:
    """What the nightly rollup writes beside `stats_daily` (decision 0089), for the loaded year;
    nothing with a checkout from before it."""
    from yuyue.config import Settings
    from yuyue.db import make_engine, make_sessionmaker
    from yuyue.stats import service

    if not hasattr(service, "sum_up"):
        return
    engine = make_engine(Settings(env="test", database_url=url))
    try:
        async with make_sessionmaker(engine)() as session:
            await service.sum_up(session, FIRST, FIRST + timedelta(days=DAYS - 1))
            await session.commit()
    finally:
        await engine.dispose()


async def time_queries(url: str) -> dict[str, Any]:
    from yuyue.config import Settings
    from yuyue.db import make_engine, make_sessionmaker
    from yuyue.stats.service import figures, roll_up

    engine = make_engine(Settings(env="test", database_url=url))
    maker = make_sessionmaker(engine)
    out: dict[str, Any] = {}
    last = FIRST + timedelta(days=DAYS - 1)
    try:
        for scope, path in (("city", "platform/"), ("district", "platform/d3/")):
            for group_by in ("day", "hall", "service", "channel"):
                runs = []
                for _ in range(3):
                    async with maker() as session:
                        started = time.perf_counter()
                        rows = await figures(session, path, FIRST, last, group_by)  # type: ignore[arg-type]
                        runs.append(time.perf_counter() - started)
                out[f"{scope}_year_by_{group_by}"] = {"rows": len(rows), "best_s": round(min(runs), 3)}
        # a day of bookings to roll up: 70 for each of the 2,000 services
        conn_sql = (
            "INSERT INTO citizens (id_type, id_hash, id_enc, id_masked, name_enc, name_masked, phone_enc, "
            "phone_masked, "
            "created_at, updated_at) VALUES ('resident_id', 'x', 'x', 'x', 'x', 'x', 'x', 'x', now(), now())"
        )
        from _harness import sql_rows as run_sql

        await run_sql(url, conn_sql)
        await run_sql(
            url,
            'INSERT INTO slots (id, service_id, day, start, "end", capacity, booked) '
            "SELECT s.id || '-20261130' || lpad(h::text, 2, '0') || '00', s.id, DATE '2026-11-30', "
            "TIMESTAMP '2026-11-30 00:00' + h * INTERVAL '1 hour', "
            "TIMESTAMP '2026-11-30 01:00' + h * INTERVAL '1 hour', 10, 10 "
            "FROM services s, (VALUES (9), (10), (11), (13), (14), (15), (16)) AS v(h)",
        )
        await run_sql(
            url,
            "INSERT INTO bookings (number, citizen_id, service_id, hall_id, slot_id, slot_day, slot_start, "
            "slot_end, quantity, channel, business_types, status, live_key, rebooked, created_at, "
            "updated_at) SELECT 'B' || s.id || '-' || n, 1, s.id, s.hall_id, "
            "s.id || '-20261130' || lpad(((ARRAY[9,10,11,13,14,15,16])[n % 7 + 1])::text, 2, '0') || '00', "
            "DATE '2026-11-30', TIMESTAMP '2026-11-30 09:00', TIMESTAMP '2026-11-30 10:00', 1, "
            "(ARRAY['web','wechat','app'])[n % 3 + 1], '[]', "
            "(ARRAY['served','served','served','no_show','cancelled'])[n % 5 + 1], "
            "'k' || s.id || '-' || n, false, now(), now() FROM services s, generate_series(1, 70) n",
        )
        await run_sql(url, "ANALYZE")
        async with maker() as session:
            started = time.perf_counter()
            written = await roll_up(session, date(2026, 11, 30))
            await session.commit()
            out["rollup_one_day_140k_bookings"] = {
                "rows": written,
                "s": round(time.perf_counter() - started, 2),
            }
    finally:
        await engine.dispose()
    return out


def main() -> None:
    with throwaway_database("yuyue_bench_stats") as url:
        result: dict[str, Any] = {"machine": machine(), "halls": HALLS, "services": HALLS * SERVICES_PER_HALL}
        result.update(load(url))
        result["stats_daily_rows"] = asyncio.run(sql_rows(url, "SELECT count(*) FROM stats_daily"))[0][0]
        result["queries"] = asyncio.run(time_queries(url))
    print(result)
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "stats"
    print(write_result(out, result))


if __name__ == "__main__":
    main()
