"""Crash safety (issue 4): a booking once acknowledged survives a crash.

    python bench/crash.py [--db postgresql|sqlite] [--workers 2] [--clients 32] [--before 6] [--after 4]

Starts `yuyue serve` (PostgreSQL: a throwaway database; sqlite: a fresh file, the embedded mode),
creates a hall, logs citizens in, and lets `--clients` concurrent clients book as fast as they can.
After `--before` seconds every server process is killed with SIGKILL (no shutdown, requests in
flight), the server is started again on the same database, and the clients go on for `--after`
seconds. Then it checks in the database:

- lost: bookings answered 201 that are not stored (must be 0),
- oversold slots and citizens with two live bookings of one item (must be 0),
- bookings without their confirmation SMS in the outbox (transactional outbox: must be 0),
- stored but unanswered bookings (in flight at the kill: allowed, the citizen sees them in
  "my bookings"; reported).

Prints the figures and writes bench/results/crash-<db>.json. Not a speed measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from _harness import (
    Server,
    Setup,
    login_citizens,
    machine,
    make_admin,
    sql_rows,
    throwaway_database,
    write_result,
)

CLOCK = "2026-12-01T10:00:00+08:00"  # Tuesday; the next nine working days are open


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=32, help="concurrent booking clients")
    p.add_argument("--before", type=float, default=6.0, help="seconds of load before the kill")
    p.add_argument("--after", type=float, default=4.0, help="seconds of load after the restart")
    p.add_argument("--services", type=int, default=8)
    return p.parse_args()


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "postgresql":
        with throwaway_database("yuyue_crash") as url:
            yield url
        return
    import os
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="yuyue-crash-") as folder:
        url = f"sqlite:///{folder}/crash.sqlite3"
        subprocess.run(
            [sys.executable, "-m", "yuyue", "db", "upgrade"],
            env={**os.environ, "YUYUE_DATABASE_URL": url, "YUYUE_ENV": "test"},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        yield url


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(sql).fetchall())
    return [tuple(r) for r in asyncio.run(sql_rows(url, sql))]


async def clients(
    base: str,
    tokens: list[str],
    slots: list[str],
    until: float,
    answers: list[tuple[int, str]],
    seed: int,
    concurrency: int,
) -> None:
    """Each client books for its citizens in turn: a random slot, never the same item twice."""
    rng = random.Random(seed)
    queue = list(range(len(tokens)))
    rng.shuffle(queue)

    async def one(client: httpx.AsyncClient) -> None:
        while queue and time.monotonic() < until:
            citizen = queue.pop()
            body = {"slot_id": rng.choice(slots), "channel": "web"}
            headers = {"Authorization": f"Bearer {tokens[citizen]}"}
            try:
                answer = await client.post("/api/v1/appointments", json=body, headers=headers)
            except httpx.HTTPError:
                answers.append((-1, ""))  # the server died under this request
                await asyncio.sleep(0.05)
                continue
            data = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
            answers.append((answer.status_code, data.get("number") or data.get("code") or ""))

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))


def main() -> None:
    args = parse()
    started = time.monotonic()
    answers: list[tuple[int, str]] = []
    with database(args.db) as url:
        make_admin(url)
        workers = args.workers if args.db == "postgresql" else 1
        server = Server(url, workers, 8)
        server.start()
        try:
            setup = Setup(server.base)
            setup.set_clock(CLOCK)
            hall = setup.hall("crash-hall")
            services = [setup.service(hall["id"], f"业务{i:02d}", 700) for i in range(args.services)]
            slots = [
                s["id"]
                for service in services
                for day in setup.availability(service["id"])["days"]
                for s in day["slots"]
                if s["status"] == "open"
            ]
            citizens = 4000
            tokens = login_citizens(server.base, citizens)
            # one citizen per attempt and item: citizen i books through the run, never twice
            print(f"set-up {time.monotonic() - started:.1f}s: {len(slots)} open slots, {citizens} citizens")
            half = citizens // 2
            t_kill = time.monotonic() + args.before

            async def first_half() -> None:
                task = asyncio.create_task(
                    clients(
                        server.base,
                        tokens[:half],
                        slots,
                        t_kill + 2.0,
                        answers,
                        seed=1,
                        concurrency=args.clients,
                    )
                )
                await asyncio.sleep(max(0.0, t_kill - time.monotonic()))
                server.kill()  # SIGKILL every process while requests are in flight
                await task

            asyncio.run(first_half())
            before_kill = len(answers)
            print(f"killed after {args.before:.0f}s with {before_kill} answers; restarting")
            server.start()
            until = time.monotonic() + args.after
            asyncio.run(
                clients(server.base, tokens[half:], slots, until, answers, seed=2, concurrency=args.clients)
            )
        finally:
            server.stop()
        acknowledged = {n for s, n in answers if s == 201}
        stored = {r[0] for r in rows(url, "SELECT number FROM bookings")}
        oversold = rows(
            url,
            "SELECT s.id FROM slots s LEFT JOIN (SELECT slot_id, sum(quantity) AS seats FROM bookings "
            "WHERE status IN ('booked', 'checked_in') GROUP BY slot_id) b ON b.slot_id = s.id "
            "WHERE s.booked > s.capacity OR coalesce(b.seats, 0) <> s.booked",
        )
        duplicates = rows(
            url,
            "SELECT citizen_id, service_id FROM bookings WHERE status IN ('booked', 'checked_in') "
            "GROUP BY citizen_id, service_id HAVING count(*) > 1",
        )
        unsent = rows(
            url,
            "SELECT b.number FROM bookings b WHERE NOT EXISTS "
            "(SELECT 1 FROM messages m WHERE m.booking_number = b.number)",
        )
    codes = Counter("transport_error" if s < 0 else str(s) for s, _ in answers)
    result = {
        "benchmark": "crash",
        "settings": {
            "db": args.db,
            "workers": workers,
            "clients": args.clients,
            "before_s": args.before,
            "after_s": args.after,
        },
        "answers": dict(sorted(codes.items())),
        "acknowledged": len(acknowledged),
        "stored": len(stored),
        "lost": len(acknowledged - stored),
        "stored_unacknowledged": len(stored - acknowledged),
        "oversold": len(oversold),
        "duplicates": len(duplicates),
        "bookings_without_sms": len(unsent),
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    path = write_result(f"crash-{args.db}", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, ensure_ascii=False))
    verdict = "OK" if not (result["lost"] or oversold or duplicates or unsent) else "FAILED"
    print(
        f"\n{verdict}: lost {result['lost']}, oversold {len(oversold)}, "
        f"duplicates {len(duplicates)}, without SMS {len(unsent)} -> {path}"
    )
    if verdict != "OK":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
