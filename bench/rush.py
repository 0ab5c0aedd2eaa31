"""The release rush (issue 4): at 18:00 the 10th working day opens (rule G10) and everybody presses
"book" at once.

    python bench/rush.py --duration 20 [--rate 400] [--workers 2] [--pool 8]
    python bench/rush.py --hosts 3 [--kill-at 10] ...   # issue 22: N app hosts behind nginx

Starts `yuyue serve` on a throwaway PostgreSQL database, creates a hall with S slots (services x 7
hourly slots of the day that opens at 18:00), logs C distinct citizens in beforehand, then fires
booking attempts at a fixed arrival rate (open loop, from a separate process) starting at the
release moment. Afterwards it checks integrity in the database, then starts bench/lean_reference.py
(the bare booking transaction as a raw ASGI app over asyncpg, same workers and pool) on the same
database and drives it with the same load generator at `--lean-rate` (issue 21), and runs
bench/pg_limit.sh (the same transaction in SQL through pgbench, same number of database clients,
same duration) for the ceiling. Prints the figures and writes bench/results/rush.json.

With `--hosts N` (root, nginx): N app hosts, each `yuyue serve --workers W` in its own network
namespace, behind nginx (deploy/nginx/yuyue.conf), over a throwaway primary and streaming replica
(bench/hosts.py); the load goes through nginx. Before the rush, the hall display's event stream is
opened on every host and a counter change made through nginx must reach each. `--kill-at S` kills
the last host (SIGKILL, all its workers) S seconds into the rush: every acknowledged booking must
still be in the database (`lost`).
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from _harness import (
    Server,
    Setup,
    analyze,
    cpu_share,
    cpu_times,
    free_port,
    http_request,
    latency_summary,
    login_citizens,
    machine,
    make_admin,
    run_load,
    sql_rows,
    throwaway_database,
    write_result,
)
from hosts import Hosts, sse_reaches_every_host
from lean_reference import seed as seed_lean

HERE = Path(__file__).resolve().parent
RELEASE = datetime.fromisoformat("2026-12-01T18:00:00+08:00")  # a Tuesday: the 10th working day opens
PER_CITIZEN = 8  # each citizen tries up to 8 different services (rule T5: one live booking per item)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    p.add_argument("--rate", type=float, default=400.0, help="booking attempts offered per second")
    p.add_argument("--workers", type=int, default=2, help="yuyue serve worker processes")
    p.add_argument("--pool", type=int, default=8, help="database connections per worker")
    p.add_argument("--connections", type=int, default=64, help="HTTP keep-alive connections of the load")
    p.add_argument("--services", type=int, default=20, help="services of the hall (7 slots each)")
    p.add_argument(
        "--halls",
        type=int,
        default=1,
        help="spread the services over N halls (each hall and day has its own M12 number counter)",
    )
    p.add_argument("--seats", type=float, default=1.1, help="seats released ÷ attempts (below 1: sells out)")
    p.add_argument(
        "--idempotency", action="store_true", help="send a fresh Idempotency-Key with every attempt"
    )
    p.add_argument("--no-pgbench", action="store_true", help="skip the pgbench ceiling")
    p.add_argument(
        "--release-in-app",
        action="store_true",
        help="run the 18:00 release inside a web worker (the test clock's request), as before 0103",
    )
    p.add_argument(
        "--history",
        type=int,
        default=20000,
        help="other citizens with past and live bookings loaded before the rush (a city's tables)",
    )
    p.add_argument(
        "--warm",
        type=int,
        default=0,
        help="bookings of the day already open made by other citizens before 18:00 (a running city)",
    )
    p.add_argument("--hosts", type=int, default=0, help="app hosts in network namespaces behind nginx")
    p.add_argument("--kill-at", type=float, default=0.0, help="with --hosts: kill the last host after S s")
    p.add_argument("--no-replica", action="store_true", help="with --hosts: every read on the primary")
    p.add_argument(
        "--lean-rate",
        type=float,
        default=2500.0,
        help="attempts/s offered to the lean reference (0: skip it)",
    )
    p.add_argument("--out", default="rush", help="name of the JSON result in bench/results/")
    return p.parse_args()


def lean_run(url: str, args: argparse.Namespace, service_id: int, day: str) -> dict[str, Any]:
    """bench/lean_reference.py on the same database, same workers and pool, same load generator, same
    connections and duration, at `--lean-rate`; its own slots (`lean-*`, plenty of seats)."""
    slots = asyncio.run(seed_lean(url, service_id, 140, date.fromisoformat(day)))
    ids = [r["id"] for r in asyncio.run(sql_rows(url, "SELECT id FROM citizens ORDER BY id"))]
    analyze(url)
    rng = random.Random(21)
    attempts = int(args.lean_rate * args.duration)
    requests = [
        http_request(
            "POST",
            "/api/v1/appointments",
            str(ids[k % len(ids)]),
            {"slot_id": rng.choice(slots), "channel": "web"},
        )
        for k in range(attempts)
    ]
    port = free_port()
    env = {**os.environ, "LEAN_DATABASE_URL": url, "LEAN_POOL": str(args.pool)}
    command = [sys.executable, str(HERE / "lean_reference.py"), "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--workers", str(args.workers)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the lean reference did not start")
            time.sleep(0.2)
        time.sleep(0.5 * args.workers)
        load = run_load(port, requests, args.lean_rate, args.connections, time.time() + 2.0, keep="number")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    numbers = {n for s, n in zip(load["status"], load["kept"], strict=True) if s == 201 and n}
    stored = {
        r["number"]
        for r in asyncio.run(sql_rows(url, "SELECT number FROM bookings WHERE slot_id LIKE 'lean-%'"))
    }
    committed = sum(1 for s in load["status"] if s == 201)
    return {
        "offered_per_s": args.lean_rate,
        "committed_per_s": round(committed / load["elapsed"], 1),
        "answers": dict(sorted(Counter(str(s) for s in load["status"]).items())),
        **latency_summary(load["latency"]),
        "lost": len(numbers - stored),
    }


def pg_limit(url: str, clients: int, duration: float, hall: dict[str, Any], service_id: int) -> float:
    lo, hi = asyncio.run(sql_rows(url, "SELECT min(id), max(id) FROM citizens"))[0]
    env = {
        "CLIENTS": str(clients),
        "DURATION": str(max(1, round(duration))),
        "SERVICE_ID": str(service_id),
        "HALL_ID": hall["id"],
        "HALL_PATH": f"platform/{hall['id']}/",
        "CITIZEN_LO": str(lo),
        "CITIZEN_HI": str(hi),
    }
    done = subprocess.run(
        [str(HERE / "pg_limit.sh"), url], env={**os.environ, **env}, capture_output=True, text=True
    )
    print(done.stdout.strip())
    if done.returncode != 0:
        print(done.stderr)
        raise RuntimeError("pg_limit.sh failed")
    match = re.search(r"PG_LIMIT_TPS=([0-9.]+)", done.stdout)
    return float(match.group(1)) if match else 0.0


def booking_requests(
    tokens: list[str],
    services: list[dict[str, Any]],
    slots: dict[int, list[str]],
    attempts: int,
    rng: random.Random,
) -> list[tuple[str, dict[str, Any]]]:
    """(citizen token, booking body) of each attempt: citizen k % C tries services c, c+1, … in
    turn, so never the same item twice (rule T5), on a random slot of the service."""
    citizens = len(tokens)
    chosen = []
    for k in range(attempts):
        service = services[(k % citizens + k // citizens) % len(services)]
        body = {"slot_id": rng.choice(slots[service["id"]]), "channel": "web"}
        chosen.append((tokens[k % citizens], body))
    return chosen


async def seed_history(url: str, hall_id: str, services: list[int], release_day: date, others: int) -> int:
    """The tables of a city that has been running: `others` more citizens with six bookings each
    (served, cancelled and a no-show over the 60 days before today, one still live in the days before
    the released one), and two served ones for each rush citizen, at 08:00 slots the rush never
    books. Without them the planner sees a booking table of a few rows when `ANALYZE` runs and keeps
    plans that scan it (issue 21, decision 0103)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            first = await conn.fetchval("SELECT max(id) FROM citizens")
            await conn.execute(
                """
                INSERT INTO citizens (id_type, id_hash, id_enc, id_masked, name_enc, name_masked,
                                      phone_enc, phone_masked, gender, created_at, updated_at, elder_mode)
                SELECT c.id_type, md5(c.id_hash || ':history:' || g), c.id_enc, c.id_masked, c.name_enc,
                       c.name_masked, c.phone_enc, c.phone_masked, c.gender, c.created_at, c.updated_at,
                       c.elder_mode
                  FROM (SELECT * FROM citizens ORDER BY id LIMIT 1) c, generate_series(1, $1) g
                """,
                others,
            )
            await conn.execute(
                """
                INSERT INTO slots (id, service_id, day, start, "end", capacity, booked)
                SELECT s || '-' || to_char($2::date - d, 'YYYYMMDD') || '0800', s, $2::date - d,
                       ($2::date - d) + time '08:00', ($2::date - d) + time '09:00', 100000, 0
                  FROM unnest($1::int[]) s, generate_series(1, 75) d
                """,
                services,
                release_day,
            )
            await conn.execute(
                """
                INSERT INTO bookings (number, citizen_id, service_id, hall_id, slot_id, slot_day, slot_start,
                                      slot_end, quantity, channel, business_types, status, cancelled_by,
                                      live_key, rebooked, created_at, updated_at)
                SELECT 'H' || c || '-' || k, c, s, $1, s || '-' || to_char(day, 'YYYYMMDD') || '0800', day,
                       day + time '08:00', day + time '09:00', 1, 'web', '[]',
                       st, CASE WHEN st = 'cancelled' THEN 'citizen' END,
                       'c:' || c || ':i:h' || s || ':u:' || k, false, day - 10, day - 10
                  FROM (SELECT c, k, ($3::int[])[1 + (c + k) % cardinality($3::int[])] AS s,
                               CASE WHEN k = 6 AND c > $4 THEN $2::date + 1 + c % 13
                                    ELSE $2::date - (1 + (c * 7 + k * 11) % 59) END AS day,
                               CASE WHEN c <= $4 THEN 'served'
                                    ELSE (ARRAY['served', 'served', 'cancelled', 'no_show', 'served',
                                                'booked'])[k] END AS st
                          FROM generate_series(1, $5) c, generate_series(1, 6) k
                         WHERE c > $4 OR k <= 2) h
                """,
                hall_id,
                RELEASE.date(),
                services,
                first,
                first + others,
            )
            await conn.execute(
                """
                UPDATE slots SET booked = l.n
                  FROM (SELECT slot_id, count(*) AS n FROM bookings WHERE status = 'booked'
                         GROUP BY slot_id) l
                 WHERE slots.id = l.slot_id
                """
            )
            return int(await conn.fetchval("SELECT count(*) FROM bookings"))
    finally:
        await conn.close()


def jobs_process(url: str) -> subprocess.Popen[bytes]:
    """bench/_jobs.py on the rush's database: the scheduled jobs, in their own process."""
    env = {**os.environ, "YUYUE_ENV": "test", "YUYUE_DATABASE_URL": url, "YUYUE_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, str(HERE / "_jobs.py")],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def release_seen(url: str, deadline: float) -> None:
    """Wait for the `job_runs` row of the 18:00 release to the waiting list."""
    conn = await asyncpg.connect(url)
    try:
        while time.time() < deadline:
            found = await conn.fetchval(
                "SELECT 1 FROM job_runs WHERE job = 'waitlist_release' AND due_at = $1",
                RELEASE.replace(tzinfo=None),
            )
            if found:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("the 18:00 release did not run")
    finally:
        await conn.close()


async def integrity(url: str, numbers: set[str]) -> dict[str, int]:
    oversold = await sql_rows(
        url,
        """
        SELECT s.id FROM slots s
         LEFT JOIN (SELECT slot_id, sum(quantity) AS seats FROM bookings
                     WHERE status IN ('booked', 'checked_in') GROUP BY slot_id) b ON b.slot_id = s.id
         WHERE s.booked > s.capacity - (s.capacity * 10) / 100 OR coalesce(b.seats, 0) <> s.booked
        """,
    )
    duplicates = await sql_rows(
        url,
        "SELECT citizen_id, service_id FROM bookings WHERE status IN ('booked', 'checked_in') "
        "GROUP BY citizen_id, service_id HAVING count(*) > 1",
    )
    stored = {
        r["number"] for r in await sql_rows(url, "SELECT number FROM bookings WHERE number NOT LIKE 'H%'")
    }
    return {
        "oversold": len(oversold),
        "duplicates": len(duplicates),
        "lost": len(numbers - stored),
        "stored_bookings": len(stored),
    }


def main() -> None:
    args = parse()
    attempts = int(args.rate * args.duration)
    citizens = math.ceil(attempts / min(PER_CITIZEN, args.services))
    per_slot = max(1, math.ceil(attempts * args.seats / (args.services * 7)))
    daily = math.ceil(per_slot / 0.9) * 7  # the 10 % on-site share is held back (rule G10)
    rng = random.Random(4)
    started = time.monotonic()
    sse: list[bool] = []
    per_host: Counter[str] = Counter()
    database = contextlib.nullcontext("") if args.hosts else throwaway_database()
    with database as url:
        if not args.hosts:
            make_admin(url)
        front: Any = (
            Hosts(args.hosts, args.workers, args.pool, replica=not args.no_replica)
            if args.hosts
            else Server(url, args.workers, args.pool)
        )
        in_app = bool(args.hosts or args.release_in_app)
        with front as server, contextlib.ExitStack() as stack:
            if args.hosts:
                url = server.url
                make_admin(url)
            if not in_app:  # started now: its imports are done long before the rush
                jobs = jobs_process(url)
                stack.callback(jobs.wait)
                stack.callback(jobs.terminate)
            setup = Setup(server.base)
            setup.set_clock("2026-12-01T17:00:00+08:00")
            halls = [setup.hall("rush-hall" if h == 0 else f"rush-hall-{h}") for h in range(args.halls)]
            hall = halls[0]
            services = [
                setup.service(halls[i % len(halls)]["id"], f"业务{i:02d}", daily)
                for i in range(args.services)
            ]
            release_day = None
            released = 0
            slots: dict[int, list[str]] = {}
            open_slots: dict[int, list[str]] = {}  # the last day already open, for --warm
            for service in services:
                days = setup.availability(service["id"])["days"]
                open_slots[service["id"]] = [
                    s["id"] for d in days for s in d["slots"] if s["status"] == "open"
                ][-7:]
                day = next(d for d in days if d.get("opens_at") == RELEASE.isoformat())
                release_day = day["date"]
                slots[service["id"]] = [s["id"] for s in day["slots"]]
                released += sum(s["capacity"] for s in day["slots"])
                assert all(s["status"] == "not_yet_open" for s in day["slots"])
            if args.hosts:  # the hall display's stream reaches clients on every host
                counter = setup.call("GET", f"/api/v1/halls/{hall['id']}/counters")[0]

                def change() -> None:
                    setup.call("PATCH", f"/api/v1/counters/{counter['id']}", {"open": False})

                sse = sse_reaches_every_host(server, hall["id"], change)
                print(f"hall display events reached hosts: {sse}")
            tokens = login_citizens(server.base, citizens)
            requests = [
                http_request(
                    "POST",
                    "/api/v1/appointments",
                    token,
                    body,
                    {"Idempotency-Key": f"rush-{k}"} if args.idempotency else None,
                )
                for k, (token, body) in enumerate(booking_requests(tokens, services, slots, attempts, rng))
            ]
            history = 0
            if args.history:
                history = asyncio.run(
                    seed_history(
                        url,
                        hall["id"],
                        [s["id"] for s in services],
                        date.fromisoformat(release_day),
                        args.history,
                    )
                )
            analyze(url)
            # Before 18:00 every citizen has the page open: their bookings read once (the web
            # processes of a running city have seen their tokens and opened their pool connections).
            page = [http_request("GET", "/api/v1/appointments", token) for token in tokens]
            run_load(server.port, page, 400.0, args.connections, time.time() + 0.5)
            warmed: Counter[int] = Counter()
            if args.warm:  # the city books the days already open until 18:00 (other citizens)
                others = login_citizens(server.base, args.warm, offset=citizens)
                warm = [
                    http_request("POST", "/api/v1/appointments", token, body)
                    for token, body in booking_requests(others, services, open_slots, args.warm, rng)
                ]
                warmed.update(
                    run_load(server.port, warm, 100.0, args.connections, time.time() + 0.5)["status"]
                )
            print(
                f"set-up {time.monotonic() - started:.1f}s: {len(services)} services x 7 slots "
                f"on {release_day}, "
                f"{released} seats, {citizens} citizens, {attempts} attempts at {args.rate:.0f}/s, "
                f"{history} bookings already stored"
            )
            # The release moment: the first attempt is due at 18:00:00. Without --hosts the release
            # to the waiting list runs in a jobs process (bench/_jobs.py) at its due time, as in
            # production (decision 0092: open booking of the day answers `not_open_yet` until that run
            # has committed); `release_run_ms` is when its `job_runs` row was seen, after 18:00.
            # With --hosts (and --release-in-app) the clock is moved from 17:59:59 to 18:00:00 by the
            # test clock's request, which runs the release inside the web worker that answers it.
            start_at = time.time() + 3.0
            early = timedelta(seconds=1 if in_app else 0)
            setup.set_clock((RELEASE - timedelta(seconds=start_at - time.time()) - early).isoformat())
            release_ms: list[float] = []

            def release() -> None:
                time.sleep(max(0.0, start_at - time.time()))
                begun = time.monotonic()
                if in_app:
                    setup.set_clock(RELEASE.isoformat())
                else:
                    asyncio.run(release_seen(url, start_at + 60))
                release_ms.append(round((time.monotonic() - begun) * 1000, 1))

            releaser = threading.Thread(target=release)
            releaser.start()
            killer = None
            if args.hosts and args.kill_at:
                killer = threading.Timer(start_at - time.time() + args.kill_at, server.kill, (args.hosts,))
                killer.start()
            cpu_before = cpu_times()
            load = run_load(server.port, requests, args.rate, args.connections, start_at, keep="number")
            cpu_during = cpu_share(cpu_before, cpu_times())
            releaser.join()
            if killer is not None:
                killer.join()
            if args.hosts:  # which host answered each booking attempt (nginx's access log)
                for line in (server.tmp / "access.log").read_text().splitlines():
                    if '"POST /api/v1/appointments"' in line:  # the last upstream tried answered
                        tried = re.findall(r"\d+\.\d+\.\d+\.\d+:\d+", line.split('" ', 1)[-1])
                        per_host[(tried or ["none"])[-1]] += 1
            acknowledged = {n for s, n in zip(load["status"], load["kept"], strict=True) if s == 201 and n}
            checks = asyncio.run(integrity(url, acknowledged))
        lean = (
            lean_run(url, args, services[0]["id"], str(release_day))
            if args.lean_rate > 0 and not args.hosts
            else None
        )
        ceiling = (
            0.0
            if args.no_pgbench or args.hosts
            else pg_limit(url, args.workers * args.pool, args.duration, hall, services[0]["id"])
        )
    codes = Counter(
        "201" if s == 201 else (k or str(s)) if s > 0 else ("given_up" if s == -2 else "transport_error")
        for s, k in zip(load["status"], load["kept"], strict=True)
    )
    answered = sum(1 for s in load["status"] if s > 0)
    committed = codes.get("201", 0)
    elapsed = load["elapsed"]
    result: dict[str, Any] = {
        "benchmark": "rush",
        "settings": {
            "workers": args.workers,
            "pool_per_worker": args.pool,
            "http_connections": args.connections,
            "rate": args.rate,
            "duration_s": args.duration,
            "services": len(services),
            "halls": len(halls),
            "slots": len(services) * 7,
            "seats_released": released,
            "citizens": citizens,
            "attempts": attempts,
            "warm_bookings": {str(k): v for k, v in sorted(warmed.items())},
            "idempotency_keys": args.idempotency,
            "hosts": args.hosts,
            "kill_last_host_at_s": args.kill_at or None,
            "replica": bool(args.hosts) and not args.no_replica,
        },
        "offered_per_s": round(attempts / args.duration, 1),
        "answered_per_s": round(answered / elapsed, 1),
        "committed_per_s": round(committed / elapsed, 1),
        "elapsed_s": round(elapsed, 2),
        "answers": dict(sorted(codes.items())),
        "release_run_ms": release_ms[0] if release_ms else None,
        **latency_summary(load["latency"]),
        # p99 of the attempts due in each second of the run (the first is the release moment)
        "p99_by_second_ms": [
            latency_summary(load["latency"][int(k * args.rate) : int((k + 1) * args.rate)])["p99_ms"]
            for k in range(math.ceil(args.duration))
        ],
        "errors_5xx": sum(1 for s in load["status"] if s >= 500),
        "transport_errors": sum(1 for s in load["status"] if s == -1),
        "given_up": sum(1 for s in load["status"] if s == -2),
        **checks,
        "sse_reached_hosts": sse,
        "attempts_per_upstream": dict(sorted(per_host.items())),
        "lean": lean,
        "ratio_to_lean": round(committed / elapsed / lean["committed_per_s"], 3) if lean else None,
        "pgbench_tps": round(ceiling, 1),
        "ratio_to_pg": round(committed / elapsed / ceiling, 3) if ceiling else None,
        "cpu_during_load": cpu_during,
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    path = write_result(args.out, result)
    print(
        json.dumps({k: v for k, v in result.items() if k not in ("machine",)}, indent=2, ensure_ascii=False)
    )
    if lean:
        print(
            f"\nlean reference: committed {lean['committed_per_s']}/s (p99 {lean['p99_ms']} ms) at "
            f"{lean['offered_per_s']:.0f}/s offered; yuyue / lean = {result['ratio_to_lean']}"
        )
    print(
        f"\ncommitted {result['committed_per_s']}/s vs pgbench {result['pgbench_tps']} tx/s: "
        f"ratio {result['ratio_to_pg']}; p99 {result['p99_ms']} ms; oversold {checks['oversold']}, "
        f"duplicates {checks['duplicates']}, lost {checks['lost']}, 5xx {result['errors_5xx']} -> {path}"
    )
    if cpu_during:
        print(
            f"machine during the load: {cpu_during['busy_pct']} % busy, {cpu_during['steal_pct']} % stolen "
            f"by the host; loop of 2 M additions {result['machine']['loop_2m_ms']} ms"
        )


if __name__ == "__main__":
    main()
