"""Watching the figures of a 200-hall city (rule G19, issue 23): what the watch's nightly pass and
its checks on live tables cost.

Loads, into a throwaway PostgreSQL database, the city and the year of rolled-up figures of
`bench/stats.py` (200 halls, 2,000 services, 2.92 million `stats_daily` rows, 2025-12-01 to
2026-11-30), then what the checks on live tables read: for the 5 working days 2026-12-09 … 12-15
(the days released last, 10 working days ahead), 7 stored slots and 70 bookings a service (700,000
bookings, sold within 3 to 60 minutes of release, a fifth cancelled the next morning), and 20,000
waiting-list entries of the last month.
Then, with the clock at the nightly run (2026-12-01 03:30):

- each check of `watch.service` alone (best of 3), and the whole nightly pass `watch_figures`
  twice (the first raises the alerts, the second finds them raised);
- the checks that read live tables rather than the rollup (`sold_out_fast`, `waitlist_growing`,
  `bureau_silent`), as a run every 15 minutes would: their time, and its share of 15 minutes.

    .venv/bin/python bench/watch.py [--out NAME]
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import analyze, machine, sql_rows, throwaway_database, write_result

from stats import HALLS, SERVICES_PER_HALL, load

DAYS = ("2026-12-09", "2026-12-10", "2026-12-11", "2026-12-14", "2026-12-15")
PER_SERVICE = 70
CITIZENS = 100_000  # 7 bookings each over the 5 days
SILENT_DISTRICTS = (1, 5, 9)  # bureau-d1-2, … stopped sending (with bureau-new: 4 bureau_silent)
NIGHTLY = "2026-12-01T03:30:00+08:00"
LIVE = ("_sold_out_fast", "_waitlist_growing", "_bureau_silent")
CHECKS = (
    "_sold_out_fast",
    "_low_utilisation",
    "_no_show_high",
    "_waitlist_growing",
    "_channel_surge",
    "_bureau_silent",
)


def load_live(url: str) -> float:
    started = time.perf_counter()
    statements = [
        "INSERT INTO citizens (id_type, id_hash, id_enc, id_masked, name_enc, name_masked, phone_enc, "
        "phone_masked, "
        "created_at, updated_at) SELECT 'resident_id', 'x' || n, 'x', 'x', 'x', 'x', 'x', 'x', now(), now() "
        f"FROM generate_series(1, {CITIZENS}) n",
    ]
    for day in DAYS:
        ymd = day.replace("-", "")
        statements += [
            'INSERT INTO slots (id, service_id, day, start, "end", capacity, booked) '
            f"SELECT s.id || '-{ymd}' || lpad(h::text, 2, '0') || '00', s.id, DATE '{day}', "
            f"TIMESTAMP '{day} 00:00' + h * INTERVAL '1 hour', "
            f"TIMESTAMP '{day} 01:00' + h * INTERVAL '1 hour', "
            "10, 10 FROM services s, (VALUES (9), (10), (11), (13), (14), (15), (16)) AS v(h)",
            # released at 18:00 ten working days before; sold within 3 to 60 minutes by service
            "INSERT INTO bookings (number, citizen_id, service_id, hall_id, slot_id, slot_day, slot_start, "
            "slot_end, quantity, channel, business_types, status, live_key, rebooked, created_at, "
            f"updated_at) SELECT 'W{ymd}-' || s.id || '-' || n, (s.id * {PER_SERVICE} + n) % {CITIZENS} + 1, "
            "s.id, s.hall_id, "
            f"s.id || '-{ymd}' || lpad(((ARRAY[9,10,11,13,14,15,16])[n % 7 + 1])::text, 2, '0') || '00', "
            f"DATE '{day}', TIMESTAMP '{day} 09:00', TIMESTAMP '{day} 10:00', 1, "
            "(ARRAY['web','wechat','app'])[n % 3 + 1], '[]', "
            "(ARRAY['booked','booked','booked','booked','cancelled'])[n % 5 + 1], "
            f"'w{ymd}-' || s.id || '-' || n, false, "
            f"(DATE '{day}' - 14) + TIME '18:00' + (n * (3 + s.id % 58)) * INTERVAL '1 second' * 60 / 70, "
            f"(DATE '{day}' - 13) + TIME '09:00' "  # cancelled the next morning
            f"FROM services s, generate_series(1, {PER_SERVICE}) n",
        ]
    statements.append(
        "INSERT INTO waitlist_entries (citizen_id, service_id, hall_id, dates, channel, status, "
        "created_at, updated_at) SELECT (n - 1) % 1000 + 1, s.id, s.hall_id, '[]', 'web', "
        "(ARRAY['waiting','allocated','left'])[n % 3 + 1], "
        "TIMESTAMP '2026-11-01 08:00' + (n % 30) * INTERVAL '1 day', "
        "TIMESTAMP '2026-11-01 08:00' + (n % 30 + n % 3) * INTERVAL '1 day' "
        "FROM generate_series(1, 20000) n JOIN services s ON s.id = (n - 1) / 1000 * 100 + (n - 1) % 100 + 1"
    )
    statements += bureau_systems()
    for statement in statements:
        asyncio.run(sql_rows(url, statement))
    analyze(url)
    return round(time.perf_counter() - started, 1)


def bureau_systems() -> list[str]:
    """Two bureau systems per district (rules G5, G6), each pushing a month of slots (one service a
    hall of its district, 7 a day) and 3 bookings a slot; the silent ones (G2, Art. 22) stopped
    3.6 days before the nightly run, the rest pushed 1.5 hours before it; one more, registered
    11 days before, never sent anything."""
    silent = ", ".join(f"'bureau-d{d}-2'" for d in SILENT_DISTRICTS)
    pushed = (
        f"CASE WHEN c.id IN ({silent}) THEN TIMESTAMP '2026-11-28 12:00' "
        "ELSE TIMESTAMP '2026-12-01 02:00' END - (29 - d) * INTERVAL '1 day'"
    )
    return [
        "INSERT INTO api_clients (id, name, channel, scopes, rate_per_minute, active, created_at, unit_id) "
        "SELECT 'bureau-d' || d || '-' || k, 'bureau system', 'bureau', '[\"bureau:sync\"]', 600, true, "
        "TIMESTAMP '2026-01-01 08:00', 'd' || d FROM generate_series(1, 11) d, generate_series(1, 2) k",
        "INSERT INTO api_clients (id, name, channel, scopes, rate_per_minute, active, created_at, unit_id) "
        "VALUES ('bureau-new', 'bureau system', 'bureau', '[\"bureau:sync\"]', 600, true, "
        "TIMESTAMP '2026-11-20 08:00', 'd3')",
        'INSERT INTO bureau_slots (client_id, external_id, hall_id, service_id, day, start, "end", '
        "capacity, booked, received_at) SELECT c.id, s.id || '-' || d || '-' || h, s.hall_id, s.id, "
        "DATE '2026-11-01' + d, DATE '2026-11-01' + d + h * INTERVAL '1 hour', "
        f"DATE '2026-11-01' + d + (h + 1) * INTERVAL '1 hour', 3, 3, {pushed} "
        "FROM api_clients c JOIN units u ON u.parent_id = c.unit_id "
        "JOIN services s ON s.hall_id = u.id AND s.id % 10 = right(c.id, 1)::int, "
        "generate_series(0, 29) d, (VALUES (9), (10), (11), (13), (14), (15), (16)) AS v(h) "
        "WHERE c.channel = 'bureau' AND c.id <> 'bureau-new'",
        "INSERT INTO bureau_bookings (client_id, external_id, slot_external_id, status, channel, created_at, "
        "updated_at, received_at) SELECT b.client_id, b.external_id || '-' || n, b.external_id, 'booked', "
        "'web', b.received_at, b.received_at, b.received_at FROM bureau_slots b, generate_series(1, 3) n",
    ]


async def time_penalties_page(url: str) -> dict[str, Any]:
    """The console's 限制预约 page: its hoarding suspects (`console.manage.service.hoarding_suspects`:
    slot dates 30 days back and 14 ahead) for the platform's admin and a district's, best of 3:
    ranked on the visit (no ranking stored: the code before issue 23's leftovers always did this),
    the nightly job storing both rankings (`watch.service.store_rankings`), then the page again,
    reading them."""
    from yuyue.auth.service import Acting
    from yuyue.clock import clock
    from yuyue.config import Settings
    from yuyue.console.manage import service as manage
    from yuyue.db import make_engine, make_sessionmaker

    engine = make_engine(Settings(env="test", database_url=url))
    maker = make_sessionmaker(engine)
    await clock.store(engine, datetime.fromisoformat(NIGHTLY).replace(hour=10))  # the page that morning
    out: dict[str, Any] = {}
    admins = {
        name: Acting(id=1, username=name, unit_id=unit, unit_path=path, unit_kind=kind, level=1)
        for name, unit, path, kind in (
            ("platform", "platform", "platform/", "platform"),
            ("district", "d1", "platform/d1/", "district"),
        )
    }

    async def visits(key: str) -> None:
        for name, who in admins.items():
            runs: list[float] = []
            found = 0
            while len(runs) < 3 and sum(runs) < 10:  # one visit only when it takes that long
                async with maker() as session:
                    started = time.perf_counter()
                    found = len((await manage.hoarding_suspects(session, "bench-secret", who))["suspects"])
                    runs.append(time.perf_counter() - started)
            out[f"{name}_{key}"] = {"suspects": found, "best_s": round(min(runs), 3), "visits": len(runs)}

    try:
        await visits("ranked_on_visit")
        from yuyue.watch import service as watch

        if hasattr(watch, "store_rankings"):
            async with maker() as session:
                started = time.perf_counter()
                await watch.store_rankings(session, clock.now(), ["platform", "d1"])
                await session.commit()
                out["nightly_store_both_s"] = round(time.perf_counter() - started, 3)
            await visits("stored")
    finally:
        await engine.dispose()
    return out


async def time_checks(url: str) -> dict[str, Any]:
    from yuyue.config import Settings
    from yuyue.db import make_engine, make_sessionmaker
    from yuyue.watch import service

    engine = make_engine(Settings(env="test", database_url=url))
    maker = make_sessionmaker(engine)
    now = datetime.fromisoformat(NIGHTLY)
    out: dict[str, Any] = {"checks": {}}
    try:
        for name in CHECKS:
            runs, found = [], 0
            for _ in range(3):
                async with maker() as session:
                    started = time.perf_counter()
                    found = len(await getattr(service, name)(service.Context(session, now)))
                    runs.append(time.perf_counter() - started)
            out["checks"][name.lstrip("_")] = {"found": found, "best_s": round(min(runs), 3)}
        for run in ("nightly_first_s", "nightly_again_s"):
            async with maker() as session:
                started = time.perf_counter()
                raised = await service.watch_figures(session, now)
                await session.commit()
                out[run] = round(time.perf_counter() - started, 2)
                out[run.replace("_s", "_raised")] = len(raised)
        live = sum(out["checks"][name.lstrip("_")]["best_s"] for name in LIVE)
        out["live_checks_s"] = round(live, 3)
        out["live_share_of_15_min"] = round(live / (15 * 60), 5)
    finally:
        await engine.dispose()
    return out


def main() -> None:
    with throwaway_database("yuyue_bench_watch") as url:
        result: dict[str, Any] = {"machine": machine(), "halls": HALLS, "services": HALLS * SERVICES_PER_HALL}
        result.update(load(url))
        result["load_live_s"] = load_live(url)
        result["bookings"] = asyncio.run(sql_rows(url, "SELECT count(*) FROM bookings"))[0][0]
        result.update(asyncio.run(time_checks(url)))
        result["bureau_rows"] = asyncio.run(
            sql_rows(
                url, "SELECT (SELECT count(*) FROM bureau_slots) + (SELECT count(*) FROM bureau_bookings)"
            )
        )[0][0]
        try:
            result["penalties_page"] = asyncio.run(time_penalties_page(url))
        except Exception as exc:  # the figures above are kept
            result["penalties_page"] = {"error": repr(exc)}
        result["machine"]["load_average_1m"] = machine()["load_average_1m"]
    print(result)
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "watch"
    print(write_result(out, result))


if __name__ == "__main__":
    main()
