"""CPU time per request (issue 4): what one booking, one availability answer and one bare
`GET /healthz` cost the app's worker process, measured so that other work on the machine barely
changes the figure.

    python bench/cpu_cost.py [--bookings 300] [--reads 600] [--health 1000] [--rounds 3] [--label after]

Starts `yuyue serve --workers 1 --no-jobs` (uvicorn, the production server path, HTTP parsing
included) on a throwaway PostgreSQL database in YUYUE_ENV=test with rate limits off, sets a hall up
through the admin API, logs the citizens in beforehand, then sends requests one at a time over one
keep-alive connection and reads the worker's CPU time (`/proc/<pid>/task/*/schedstat`, nanoseconds
on a CPU, every thread) before and after each batch. The CPU time of the PostgreSQL backends the app
is connected to is read the same way. Serial requests, so the figures are costs, not throughput:
throughput on a dedicated core is about 1000 / (ms per request).

- healthz: the framework floor (uvicorn + Edge + RateLimit + FastAPI routing + JSON);
- booking: `POST /api/v1/appointments`, each by a distinct citizen, every answer 201, into 20 slots
  whose rows exist (the warm-up made them), as in a rush; booking_keyed: the same with an
  Idempotency-Key each;
- availability_hit: one service read again and again (answers come from the 0.5 s cache,
  decision 0010; about one read in a hundred recomputes);
- availability_miss: every read recomputes (10 services per pass, 0.6 s pause between passes,
  CPU counted over the passes only).

Each figure is the median of `--rounds` rounds. Results go to bench/results/cpu_cost.json under
`runs[<label>]` (other labels already in the file are kept, so before/after sit side by side).
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from _harness import (
    RESULTS,
    Server,
    Setup,
    analyze,
    free_port,
    http_request,
    login_citizens,
    machine,
    make_admin,
    sql_rows,
    throwaway_database,
)
from lean_reference import seed as seed_lean

CLOCK = "2026-12-01T19:00:00+08:00"  # after 18:00 on a Tuesday: the 10 working days ahead are open


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bookings", type=int, default=300, help="bookings per round")
    p.add_argument("--reads", type=int, default=600, help="availability reads per round (each kind)")
    p.add_argument("--health", type=int, default=1000, help="GET /healthz per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--services", type=int, default=10)
    p.add_argument("--label", default="current", help="name of this run in the JSON (before, after…)")
    p.add_argument("--out", default="cpu_cost")
    p.add_argument("--no-lean", action="store_true", help="skip the lean reference's bookings")
    p.add_argument("--profile", metavar="DIR", help="also record py-spy stacks of each batch into DIR")
    return p.parse_args()


# --- CPU time from /proc --------------------------------------------------------------------------


def cpu_ns(pid: int) -> int:
    """Nanoseconds on a CPU of every thread of `pid` so far (0 once it is gone)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for tid in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total


class Profiler:
    """`py-spy record` of the worker while a batch runs (collapsed stacks, --profile only)."""

    def __init__(self, pid: int, directory: str | None) -> None:
        self.pid, self.directory = pid, directory
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, name: str) -> None:
        if self.directory:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            out = Path(self.directory) / f"{name}.txt"
            spy = str(Path(sys.executable).parent / "py-spy")
            if not Path(spy).exists():  # not in the project's environment: the one on PATH
                spy = shutil.which("py-spy") or spy
            command = [spy, "record", "--pid", str(self.pid), "--format", "raw", "--rate", "500"]
            command += ["--nonblocking", "--gil", "-o", str(out)]  # --gil: CPU, not waits
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait()
            self.proc = None


class Meter:
    """CPU of the app worker and of its PostgreSQL backends over a batch of requests."""

    def __init__(self, app_pid: int, db_url: str, db_name: str, app_name: str = "yuyue") -> None:
        self.app_pid = app_pid
        self.db_url = db_url
        self.db_name = db_name
        self.app_name = app_name

    def backends(self) -> list[int]:
        rows = asyncio.run(
            sql_rows(
                self.db_url,
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
                self.db_name,
                self.app_name,
            )
        )
        return [int(r["pid"]) for r in rows]

    def snapshot(self) -> tuple[int, dict[int, int]]:
        return cpu_ns(self.app_pid), {pid: cpu_ns(pid) for pid in self.backends()}

    def since(self, before: tuple[int, dict[int, int]]) -> tuple[float, float]:
        """(app ms, database ms) since `before`; backends that appeared meanwhile count from 0."""
        app_after, db_after = self.snapshot()
        db = sum(ns - before[1].get(pid, 0) for pid, ns in db_after.items())
        return (app_after - before[0]) / 1e6, db / 1e6


# --- a minimal serial HTTP/1.1 client on one keep-alive connection -------------------------------


class Connection:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def request(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._fill()
                size_line, _, self.buffer = self.buffer.partition(b"\r\n")
                size = int(size_line.strip(), 16)
                while len(self.buffer) < size + 2:
                    self._fill()
                body, self.buffer = body + self.buffer[:size], self.buffer[size + 2 :]
                if size == 0:
                    return status, body
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def close(self) -> None:
        self.sock.close()


def batch(conn: Connection, requests: list[bytes], expect: int) -> tuple[list[float], int]:
    """Send requests one after the other; returns wall seconds of each and how many were not `expect`."""
    walls, wrong = [], 0
    for raw in requests:
        t = time.perf_counter()
        status, body = conn.request(raw)
        walls.append(time.perf_counter() - t)
        if status != expect:
            wrong += 1
            if wrong <= 3:
                print(f"  unexpected {status}: {body[:200]!r}")
    return walls, wrong


def fetch(port: int, raw: bytes) -> bytes:
    conn = Connection(port)
    try:
        return conn.request(raw)[1]
    finally:
        conn.close()


def figure(app_ms: float, db_ms: float, count: int, walls: list[float], wrong: int) -> dict[str, Any]:
    return {
        "requests": count,
        "app_cpu_ms": round(app_ms / count, 3),
        "db_cpu_ms": round(db_ms / count, 3),
        "wall_ms_median": round(statistics.median(walls) * 1000, 2),
        "unexpected_status": wrong,
    }


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        key: round(statistics.median(r[key] for r in rounds), 3)
        for key in ("app_cpu_ms", "db_cpu_ms", "wall_ms_median")
    }
    out["rounds_app_cpu_ms"] = [r["app_cpu_ms"] for r in rounds]
    out["requests_per_round"] = rounds[0]["requests"]
    out["unexpected_status"] = sum(r["unexpected_status"] for r in rounds)
    return out


def lean_rounds(
    url: str, admin_url: str, db_name: str, service_id: int, day: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The same serial bookings sent to bench/lean_reference.py (1 worker, pool 4) on the same
    database: what the bare booking transaction costs a Python worker here (issue 21)."""
    slots = asyncio.run(seed_lean(url, service_id, 20, date(int(day[:4]), int(day[4:6]), int(day[6:]))))
    ids = [int(r["id"]) for r in asyncio.run(sql_rows(url, "SELECT id FROM citizens ORDER BY id"))]
    port = free_port()
    env = {**os.environ, "LEAN_DATABASE_URL": url, "LEAN_POOL": "4", "LEAN_APP_NAME": "yuyue-lean"}
    here = Path(__file__).resolve().parent
    proc = subprocess.Popen(
        [sys.executable, str(here / "lean_reference.py"), "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    rounds = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                fetch(port, http_request("GET", "/readyz"))
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the lean reference did not start") from None
                time.sleep(0.2)
        meter = Meter(proc.pid, admin_url, db_name, "yuyue-lean")
        conn = Connection(port)

        def booking(k: int) -> bytes:
            body = {"slot_id": slots[k % len(slots)], "channel": "web"}
            return http_request("POST", "/api/v1/appointments", str(ids[k % len(ids)]), body)

        batch(conn, [booking(k) for k in range(100)], 201)  # warm: pool, prepared statements
        for r in range(args.rounds):
            requests = [booking(100 + r * args.bookings + k) for k in range(args.bookings)]
            before = meter.snapshot()
            walls, wrong = batch(conn, requests, 201)
            rounds.append(figure(*meter.since(before), len(requests), walls, wrong))
            print(f"lean round {r + 1}: {rounds[-1]['app_cpu_ms']:.2f} ms")
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return rounds


def main() -> None:
    args = parse()
    started = time.monotonic()
    with throwaway_database("yuyue_cpu") as url:
        make_admin(url)
        db_name = url.rsplit("/", 1)[1]
        admin_url = url.rsplit("/", 1)[0] + "/postgres"
        with Server(url, workers=1, pool=4) as server:
            assert server.proc is not None
            meter = Meter(server.proc.pid, admin_url, db_name)
            setup = Setup(server.base)
            setup.set_clock(CLOCK)
            setup.hall("cpu-hall")
            services = [setup.service("cpu-hall", f"业务{i:02d}", 700) for i in range(args.services)]
            ids = [s["id"] for s in services]
            slots = []
            for sid in ids:
                answer = setup.availability(sid)
                slots += [s["id"] for d in answer["days"] for s in d["slots"] if s["status"] == "open"]
            warm = 2 * len(ids)
            citizens = warm + 2 * args.bookings * args.rounds  # plain bookings, then keyed ones
            tokens = login_citizens(server.base, citizens)
            analyze(url)
            print(f"set-up {time.monotonic() - started:.1f}s: {len(ids)} services, {len(slots)} open slots")

            conn = Connection(server.port)
            health = [http_request("GET", "/healthz")] * args.health
            hit = [http_request("GET", f"/api/v1/services/{ids[0]}/availability")] * args.reads
            per_pass = [http_request("GET", f"/api/v1/services/{sid}/availability") for sid in ids]

            # Bookings go to 20 slots (2 per service), as a rush goes to a few: the warm-up creates
            # their rows, so the figure is the steady state, not the first booking of a slot.
            hot = [slots[i * (len(slots) // len(ids)) + j] for i in range(len(ids)) for j in (0, 1)]

            def booking(k: int, keyed: bool = False) -> bytes:
                body = {"slot_id": hot[k % len(hot)], "channel": "web"}
                headers = {"Idempotency-Key": f"cpu-{k}"} if keyed else None
                return http_request("POST", "/api/v1/appointments", tokens[k], body, headers)

            # Warm every path (imports, caches, prepared statements, pool connections).
            batch(conn, health[:100], 200)
            batch(conn, hit[:100], 200)
            batch(conn, [booking(k) for k in range(warm)], 201)
            time.sleep(0.6)
            batch(conn, per_pass, 200)

            results: dict[str, list[dict[str, Any]]] = {
                k: []
                for k in ("healthz", "booking", "booking_keyed", "availability_hit", "availability_miss")
            }
            profiler = Profiler(server.proc.pid, args.profile)
            for r in range(args.rounds):
                profiler.start(f"healthz-{r}")
                before = meter.snapshot()
                walls, wrong = batch(conn, health, 200)
                results["healthz"].append(figure(*meter.since(before), len(health), walls, wrong))
                profiler.stop()

                requests = [booking(warm + r * args.bookings + k) for k in range(args.bookings)]
                profiler.start(f"booking-{r}")
                before = meter.snapshot()
                walls, wrong = batch(conn, requests, 201)
                results["booking"].append(figure(*meter.since(before), len(requests), walls, wrong))
                profiler.stop()

                first = warm + (args.rounds + r) * args.bookings
                requests = [booking(first + k, keyed=True) for k in range(args.bookings)]
                profiler.start(f"booking_keyed-{r}")
                before = meter.snapshot()
                walls, wrong = batch(conn, requests, 201)
                results["booking_keyed"].append(figure(*meter.since(before), len(requests), walls, wrong))
                profiler.stop()

                time.sleep(0.6)  # the bookings made this process's cache stale; start fresh
                profiler.start(f"availability_hit-{r}")
                before = meter.snapshot()
                walls, wrong = batch(conn, hit, 200)
                results["availability_hit"].append(figure(*meter.since(before), len(hit), walls, wrong))
                profiler.stop()

                app_ms = db_ms = 0.0
                walls, wrong = [], 0
                profiler.start(f"availability_miss-{r}")
                for _ in range(max(1, args.reads // (5 * len(ids)))):
                    time.sleep(0.6)  # every entry has expired: each read of the pass recomputes
                    before = meter.snapshot()
                    w, bad = batch(conn, per_pass, 200)
                    a, d = meter.since(before)
                    app_ms, db_ms, wrong = app_ms + a, db_ms + d, wrong + bad
                    walls += w
                results["availability_miss"].append(figure(app_ms, db_ms, len(walls), walls, wrong))
                profiler.stop()
                print(
                    f"round {r + 1}: "
                    + ", ".join(f"{k} {v[-1]['app_cpu_ms']:.2f} ms" for k, v in results.items())
                )
            conn.close()
            sizes = {"availability_answer_bytes": len(fetch(server.port, per_pass[0]))}
            day = hot[0].split("-")[1][:8]
            service_id = ids[0]
        if not args.no_lean:
            results["lean_booking"] = lean_rounds(url, admin_url, db_name, service_id, day, args)
    figures = {k: median_of(v) for k, v in results.items()}
    run: dict[str, Any] = {
        "figures": figures,
        "settings": {
            "server": "yuyue serve --workers 1 --no-jobs (uvicorn)",
            "rounds": args.rounds,
            "services": len(ids),
            **sizes,
        },
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    if args.profile:  # py-spy inflates the figures: print them, keep them out of the results
        print(json.dumps(figures, indent=2))
        print(f"py-spy stacks in {args.profile}")
        return
    path = RESULTS / f"{args.out}.json"
    RESULTS.mkdir(exist_ok=True)
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    stored["benchmark"] = "cpu_cost"
    stored.setdefault("runs", {})[args.label] = run
    path.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(run, indent=2, ensure_ascii=False))
    print(f"\nworker CPU per request ({args.label}), median of {args.rounds} rounds -> {path}")
    for name, f in figures.items():
        print(f"  {name:18s} app {f['app_cpu_ms']:7.2f} ms   postgres {f['db_cpu_ms']:6.2f} ms")


if __name__ == "__main__":
    main()
