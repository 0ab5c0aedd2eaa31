"""Crash safety (issue 4): a booking once acknowledged survives a crash of the app and of PostgreSQL.

    python bench/crash.py [--db postgresql|sqlite] [--workers 2] [--clients 32] [--before 6] [--after 4]
                          [--down 2] [--citizens 1000]

PostgreSQL: the script starts its own throwaway PostgreSQL 15 cluster (initdb in a temporary
directory, run as the `postgres` OS user when started as root, a free port on 127.0.0.1, trust
authentication, unix socket in the temporary directory, the durable defaults `fsync=on`,
`synchronous_commit=on`, `full_page_writes=on`), never the machine's main server; the cluster is
stopped and removed at the end, also on an error or Ctrl-C. SQLite: a fresh file (the embedded mode).

It starts `yuyue serve`, creates a hall, logs `--citizens` citizens in, and lets `--clients`
concurrent clients book as fast as they can (each citizen books each service once). A failed attempt
(transport error or 5xx) is retried 0.1 s later by the same citizen.

1. app crash: after `--before` seconds of load every server process is killed with SIGKILL
   (requests in flight); the clients go on for 2 s against the dead port, the server is started
   again on the same database, and the clients book for `--after` seconds.
2. PostgreSQL crash (`--db postgresql` only): after `--before` seconds of load,
   `pg_ctl stop -m immediate` (no checkpoint: the next start runs crash recovery) while the clients
   go on; `--down` seconds later `pg_ctl start`; the app is not touched and must reconnect by itself;
   the clients book for `--after` more seconds.

Each answer is counted by phase (the phase in which the request was sent) and code. During an outage
the only errors allowed are 503 and transport errors. For the PostgreSQL crash it reports how long
`pg_ctl start` took (crash recovery) and how long after PostgreSQL accepted connections again the
app answered 201 again. Then it checks in the database:

- lost: bookings answered 201 that are not stored (must be 0),
- oversold slots (sold seats above capacity or not equal to the live bookings) and citizens with two
  live bookings of one item (must be 0),
- bookings without their confirmation SMS in the outbox (transactional outbox: must be 0),
- stored but unanswered bookings (in flight at a crash: allowed, the citizen sees them in
  "my bookings"; reported).

Prints the figures and writes bench/results/crash-<db>.json; exits 1 if a check fails, if any 5xx
other than 503 was answered, or if the app answered no 201 after the PostgreSQL crash. Not a speed
measurement.
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
import pwd
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from _harness import (
    Server,
    Setup,
    free_port,
    login_citizens,
    machine,
    make_admin,
    sql_rows,
    write_result,
)

CLOCK = "2026-12-01T10:00:00+08:00"  # Tuesday; the next nine working days are open
PG_BIN = Path("/usr/lib/postgresql/15/bin")
RETRY_PAUSE = 0.1  # seconds before a client retries a failed attempt


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=32, help="concurrent booking clients")
    p.add_argument("--before", type=float, default=6.0, help="seconds of load before each crash")
    p.add_argument("--after", type=float, default=4.0, help="seconds of load after each restart")
    p.add_argument("--down", type=float, default=2.0, help="seconds PostgreSQL stays down")
    p.add_argument("--services", type=int, default=8)
    p.add_argument("--citizens", type=int, default=1000, help="each books once per service")
    return p.parse_args()


# --- the throwaway PostgreSQL cluster -----------------------------------------------------------


class Cluster:
    """A PostgreSQL 15 cluster of our own in a temporary directory (never the machine's server)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="yuyue-crash-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgresql.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb and postgres refuse to run as root
        if self.as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        os.chmod(self.dir, 0o700)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(PG_BIN / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd=self.dir, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)}: {done.stdout}{done.stderr}\n{self.log_tail()}")
        return done

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "100",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# bench/crash.py\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120", "start")

    def crash(self) -> None:
        """Immediate shutdown: backends are killed, no checkpoint; the next start runs crash recovery."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(Exception):
                self.crash()
        if pid_file.exists():  # pg_ctl failed: kill the postmaster we started, by its pid
            with contextlib.suppress(Exception):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                time.sleep(1)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


async def _create_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def upgrade(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "yuyue", "db", "upgrade"],
        env={**os.environ, "YUYUE_DATABASE_URL": url, "YUYUE_ENV": "test"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def database(kind: str) -> Iterator[tuple[str, Cluster | None]]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="yuyue-crash-") as folder:
            url = f"sqlite:///{folder}/crash.sqlite3"
            upgrade(url)
            yield url, None
        return
    cluster = Cluster()
    try:
        cluster.init()
        cluster.start()
        asyncio.run(_create_database(cluster.url("postgres"), "yuyue_crash"))
        url = cluster.url("yuyue_crash")
        upgrade(url)
        print(f"throwaway cluster: {cluster.dir}, port {cluster.port}")
        yield url, cluster
    finally:
        cluster.destroy()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(sql).fetchall())
    return [tuple(r) for r in asyncio.run(sql_rows(url, sql))]


# --- the clients --------------------------------------------------------------------------------


@dataclass
class Answer:
    phase: str
    sent: float  # time.monotonic()
    done: float
    status: int  # -1: transport error
    value: str  # the booking number of a 201, else the problem code


@dataclass
class Run:
    """Shared by the clients and the conductor: the current phase, when to stop, what came back."""

    work: list[tuple[int, int]]  # (citizen, service) attempts not yet answered for good
    phase: str = ""
    stop_at: float = math.inf
    answers: list[Answer] = field(default_factory=list)


async def clients(
    base: str, tokens: list[str], slots: list[list[str]], run: Run, seed: int, concurrency: int
) -> None:
    """Each client takes the next (citizen, service) attempt and books a random slot of that service."""
    rng = random.Random(seed)

    async def one(client: httpx.AsyncClient) -> None:
        while run.work and time.monotonic() < run.stop_at:
            citizen, service = run.work.pop()
            body = {"slot_id": rng.choice(slots[service]), "channel": "web"}
            headers = {"Authorization": f"Bearer {tokens[citizen]}"}
            phase, sent = run.phase, time.monotonic()
            try:
                answer = await client.post("/api/v1/appointments", json=body, headers=headers)
            except httpx.HTTPError as exc:
                status, value = -1, type(exc).__name__  # the server died under this request, or is not there
            else:
                is_json = answer.headers.get("content-type", "").endswith("json")
                data = answer.json() if is_json else {}
                status, value = answer.status_code, str(data.get("number") or data.get("code") or "")
            run.answers.append(Answer(phase, sent, time.monotonic(), status, value))
            if status < 0 or status >= 500:
                run.work.insert(0, (citizen, service))  # the citizen tries again a little later
                await asyncio.sleep(RETRY_PAUSE)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))


def label(answer: Answer) -> str:
    if answer.status < 0:
        return f"transport_error {answer.value}"
    if answer.status == 201:
        return "201"
    return f"{answer.status} {answer.value}".strip()


def by_code(answers: list[Answer]) -> dict[str, int]:
    return dict(sorted(Counter(label(a) for a in answers).items()))


# --- the run ------------------------------------------------------------------------------------


def app_crash(
    server: Server, tokens: list[str], slots: list[list[str]], run: Run, args: Any
) -> dict[str, Any]:
    t_kill = time.monotonic() + args.before

    async def until_kill() -> None:
        run.phase, run.stop_at = "1 load", t_kill + 2.0
        task = asyncio.create_task(clients(server.base, tokens, slots, run, 1, args.clients))
        await asyncio.sleep(max(0.0, t_kill - time.monotonic()))
        run.phase = "1 app killed"
        server.kill()  # SIGKILL every process while requests are in flight
        await task

    asyncio.run(until_kill())
    print(f"app killed after {args.before:.0f}s, {len(run.answers)} answers so far; restarting")
    t_restart = time.monotonic()
    server.start()
    restart_s = time.monotonic() - t_restart
    run.phase, run.stop_at = "1 app restarted", time.monotonic() + args.after
    asyncio.run(clients(server.base, tokens, slots, run, 2, args.clients))
    return {"app_restart_s": round(restart_s, 2)}


def pg_crash(
    server: Server, cluster: Cluster, tokens: list[str], slots: list[list[str]], run: Run, args: Any
) -> dict[str, Any]:
    times: dict[str, float] = {}

    async def crash_and_recover() -> None:
        run.phase, run.stop_at = "2 load", math.inf
        task = asyncio.create_task(clients(server.base, tokens, slots, run, 3, args.clients))
        await asyncio.sleep(args.before)
        run.phase = "2 pg down"
        times["stop"] = time.monotonic()
        await asyncio.to_thread(cluster.crash)
        times["stopped"] = time.monotonic()
        await asyncio.sleep(args.down)
        times["start"] = time.monotonic()
        await asyncio.to_thread(cluster.start)  # returns once PostgreSQL accepts connections again
        times["up"] = time.monotonic()
        run.phase = "2 pg restarted"
        run.stop_at = time.monotonic() + args.after
        await task

    log_before = len(cluster.log_text())
    asyncio.run(crash_and_recover())
    log = cluster.log_text()[log_before:]
    up = times["up"]
    after_up = [a for a in run.answers if a.done >= up]
    first_201 = min((a.done for a in after_up if a.status == 201), default=None)
    errors_after_up = [a for a in after_up if a.status < 0 or a.status >= 500]
    return {
        "pg_stop_s": round(times["stopped"] - times["stop"], 2),
        "pg_down_s": round(up - times["stop"], 2),
        "pg_start_s": round(up - times["start"], 2),
        "crash_recovery_in_log": "automatic recovery in progress" in log,
        "first_201_after_pg_up_s": None if first_201 is None else round(first_201 - up, 3),
        "errors_answered_after_pg_up": by_code(errors_after_up),
        "last_error_after_pg_up_s": round(max(a.done for a in errors_after_up) - up, 3)
        if errors_after_up
        else None,
    }


def check(url: str, answers: list[Answer]) -> dict[str, Any]:
    acknowledged = {a.value for a in answers if a.status == 201}
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
    return {
        "acknowledged": len(acknowledged),
        "stored": len(stored),
        "lost": len(acknowledged - stored),
        "stored_unacknowledged": len(stored - acknowledged),
        "oversold": len(oversold),
        "duplicates": len(duplicates),
        "bookings_without_sms": len(unsent),
    }


def main() -> None:
    args = parse()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    started = time.monotonic()
    workers = args.workers if args.db == "postgresql" else 1
    crashes: dict[str, Any] = {}
    with database(args.db) as (url, cluster):
        make_admin(url)
        server = Server(url, workers, 8)
        try:
            server.start()
            setup = Setup(server.base)
            setup.set_clock(CLOCK)
            hall = setup.hall("crash-hall")
            services = [setup.service(hall["id"], f"业务{i:02d}", 700) for i in range(args.services)]
            slots = [
                [
                    s["id"]
                    for day in setup.availability(service["id"])["days"]
                    for s in day["slots"]
                    if s["status"] == "open"
                ]
                for service in services
            ]
            tokens = login_citizens(server.base, args.citizens)
            work = [(c, s) for c in range(args.citizens) for s in range(len(services))]
            random.Random(0).shuffle(work)
            run = Run(work)
            print(
                f"set-up {time.monotonic() - started:.1f}s: {sum(map(len, slots))} open slots, "
                f"{args.citizens} citizens × {len(services)} services"
            )
            crashes["app"] = app_crash(server, tokens, slots, run, args)
            if cluster is not None:
                print(f"{len(run.answers)} answers so far; crashing PostgreSQL")
                crashes["postgresql"] = pg_crash(server, cluster, tokens, slots, run, args)
        finally:
            server.stop()
        checked = check(url, run.answers)
    phases: dict[str, dict[str, Any]] = {}
    for answer in run.answers:
        phases.setdefault(answer.phase, {"answers": []})["answers"].append(answer)
    t0 = min(a.sent for a in run.answers)
    for phase in phases.values():
        sent = [a.sent for a in phase["answers"]]
        phase["from_s"] = round(min(sent) - t0, 2)
        phase["to_s"] = round(max(sent) - t0, 2)
        phase["answers"] = by_code(phase["answers"])
    # during an outage only 503 and transport errors are acceptable; any other 5xx is a bug
    bad_5xx = sum(1 for a in run.answers if a.status >= 500 and a.status != 503)
    result = {
        "benchmark": "crash",
        "settings": {
            "db": args.db,
            "workers": workers,
            "clients": args.clients,
            "before_s": args.before,
            "after_s": args.after,
            "down_s": args.down if cluster is not None else None,
            "citizens": args.citizens,
            "services": args.services,
            "postgresql": "throwaway cluster, fsync=on, synchronous_commit=on, full_page_writes=on"
            if cluster is not None
            else None,
        },
        "phases": phases,
        "answers": by_code(run.answers),
        "unexpected_5xx": bad_5xx,
        "crashes": crashes,
        **checked,
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    path = write_result(f"crash-{args.db}", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, ensure_ascii=False))
    failed = (
        checked["lost"] or checked["oversold"] or checked["duplicates"] or checked["bookings_without_sms"]
    )
    summary = (
        f"lost {checked['lost']}, oversold {checked['oversold']}, duplicates {checked['duplicates']}, "
        f"without SMS {checked['bookings_without_sms']}, 5xx other than 503: {bad_5xx}"
    )
    recovered = True
    if cluster is not None:
        recovered = crashes["postgresql"]["first_201_after_pg_up_s"] is not None
        summary += f", 201 again after the PostgreSQL crash: {'yes' if recovered else 'NO'}"
    verdict = "OK" if not (failed or bad_5xx) and recovered else "FAILED"
    print(f"\n{verdict}: {summary} -> {path}")
    if verdict != "OK":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
