"""`make deploy-check`, second part: several app hosts, each in its own network namespace, behind
nginx, over one PostgreSQL primary and its streaming replica (issue 22) — the deployment of
docs/scaling.md, built by bench/hosts.py (the harness `bench/rush.py --hosts N` measures with).

Three hosts (`yuyue serve --workers 1` in `ip netns`, a veth pair each), nginx with
deploy/nginx/yuyue.conf in front, a throwaway durable primary + `pg_basebackup -R` replica
(tests/pgcluster.py). It checks, and fails (exit 1) on the first that does not hold:

1. the hall display's event stream, opened on every host directly, carries a counter change made
   through nginx (one `pg_notify`, one `LISTEN` per process);
2. a booking rush through nginx (more attempts than seats, so the hall sells out) stores no oversold
   seat, no duplicate live booking, and loses no acknowledged (`201`) booking;
3. the last host is killed (SIGKILL, all its processes) mid-rush: attempts due after the kill are
   all answered by the other hosts (no 5xx), only attempts in flight on the killed host may get a
   `502`, and still nothing acknowledged is lost;
4. nginx spread the attempts over every host, and the killed host had its share before the kill.

About a minute. Skips (exit 0, with the reason) only when it cannot build the hosts here: not root
(`ip netns`), no `ip`, no `nginx` (deploy/check.py, run first by `make deploy-check`, installs it),
or no PostgreSQL server binaries for the throwaway cluster. Run with the venv's python.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import shutil
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

HOSTS = 3
RATE = 30.0  # attempts per second: integrity, not saturation, on a shared 2-core machine
DURATION = 8.0  # seconds of rush
KILL_AT = 4.0  # seconds into the rush, the last host dies
SERVICES = 4
SEATS = 0.8  # seats released ÷ attempts: the hall sells out, so `slot_full` is exercised too
CLOCK = "2026-12-01T19:00:00+08:00"  # a Tuesday after the 18:00 release: the next days are open


class Failed(Exception):
    pass


def why_not_here() -> str | None:
    """The reason this machine cannot build namespaced hosts, or None."""
    from tests.pgcluster import missing_binaries

    if os.geteuid() != 0:
        return "not root: `ip netns` needs root"
    for tool in ("ip", "nginx"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    return missing_binaries()


def ok(what: str) -> None:
    print(f"ok   {what}", flush=True)


def upstream_of(line: str) -> str:
    """The upstream that answered an access-log line (the last one nginx tried)."""
    tried = re.findall(r"\d+\.\d+\.\d+\.\d+:\d+", line.split('" ', 1)[-1])
    return tried[-1] if tried else "none"


def run() -> None:
    from hosts import Hosts

    attempts = int(RATE * DURATION)
    citizens = math.ceil(attempts / SERVICES)
    per_slot = max(1, math.ceil(attempts * SEATS / (SERVICES * 7)))
    daily = math.ceil(per_slot / 0.9) * 7  # the 10 % on-site share is held back (rule G10)
    with Hosts(HOSTS, workers=1, pool=4) as hosts:
        try:
            check(hosts, attempts, citizens, daily)
        except BaseException:
            show_logs(hosts.tmp)  # before the hosts' folder goes
            raise


def show_logs(folder: Path) -> None:
    for log in sorted(folder.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-8:]
        if lines:
            print(f"--- {log.name} (last lines)", *lines, sep="\n", flush=True)


def check(hosts: Any, attempts: int, citizens: int, daily: int) -> None:
    from _harness import Setup, http_request, login_citizens, make_admin, run_load
    from hosts import APP_PORT, sse_reaches_every_host
    from rush import booking_requests, integrity

    ok(f"{HOSTS} hosts in network namespaces behind nginx on {hosts.base}, primary + replica")
    make_admin(hosts.url)
    setup = Setup(hosts.base)
    setup.set_clock(CLOCK)
    hall = setup.hall("hosts-hall")
    services = [setup.service(hall["id"], f"业务{i:02d}", daily) for i in range(SERVICES)]
    slots: dict[int, list[str]] = {}
    seats = 0
    for service in services:
        days = setup.availability(service["id"])["days"]
        day = next((d for d in days if any(s["status"] == "open" for s in d["slots"])), None)
        if day is None:
            raise Failed(f"service {service['id']}: no open day after {CLOCK}")
        slots[service["id"]] = [s["id"] for s in day["slots"] if s["status"] == "open"]
        seats += sum(s["remaining"] for s in day["slots"] if s["status"] == "open")

    counter = setup.call("GET", f"/api/v1/halls/{hall['id']}/counters")[0]

    def change() -> None:
        setup.call("PATCH", f"/api/v1/counters/{counter['id']}", {"open": False})

    reached = sse_reaches_every_host(hosts, hall["id"], change)
    if not all(reached):
        raise Failed(f"hall display: a change made through nginx reached the hosts {reached}")
    ok(f"hall display: a counter change made through nginx reached the stream on each of {HOSTS} hosts")

    tokens = login_citizens(hosts.base, citizens)
    requests = [
        http_request("POST", "/api/v1/appointments", token, body)
        for token, body in booking_requests(tokens, services, slots, attempts, random.Random(22))
    ]
    start_at = time.time() + 2.0
    killed: list[float] = []

    def kill() -> None:
        hosts.kill(HOSTS)
        killed.append(time.time() - start_at)  # seconds into the rush when the host was gone

    killer = threading.Timer(start_at - time.time() + KILL_AT, kill)
    killer.start()
    load = run_load(hosts.port, requests, RATE, 16, start_at, keep="number")
    killer.join()
    statuses: list[int] = load["status"]
    acknowledged = {n for s, n in zip(statuses, load["kept"], strict=True) if s == 201 and n}
    checks = asyncio.run(integrity(hosts.url, acknowledged))
    answers = Counter(
        "201" if s == 201 else (k or str(s)) if s > 0 else "no answer"
        for s, k in zip(statuses, load["kept"], strict=True)
    )
    summary = f"{attempts} attempts on {seats} seats: {dict(sorted(answers.items()))}; {checks}"
    if checks["oversold"] or checks["duplicates"] or checks["lost"]:
        raise Failed(f"rush through nginx: {summary}")
    if not acknowledged or "slot_full" not in answers:
        raise Failed(f"rush through nginx did not both book and sell out: {summary}")
    late = [
        (k / RATE, s)
        for k, s in enumerate(statuses)
        if (s >= 500 or s <= 0) and (s != 502 or k / RATE > killed[0] + 1.0)
    ]
    if late:
        raise Failed(
            f"host {HOSTS} killed {killed[0]:.1f} s into the rush: attempts (due at s, status) "
            f"{late[:5]} were not answered by the other hosts; {summary}"
        )
    ok(f"rush through nginx, host {HOSTS} killed {killed[0]:.1f} s in: {summary}")

    per_host: Counter[str] = Counter()
    for line in (hosts.tmp / "access.log").read_text().splitlines():
        if '"POST /api/v1/appointments' in line:
            per_host[upstream_of(line)] += 1
    every = [f"{hosts.host_address(i)}:{APP_PORT}" for i in range(1, HOSTS + 1)]
    if any(per_host[address] == 0 for address in every):
        raise Failed(f"nginx did not spread the rush over every host: {dict(per_host)}")
    ok(f"nginx spread the attempts over the hosts: {[per_host[a] for a in every]}")


def main() -> int:
    reason = why_not_here()
    if reason is not None:
        print(f"SKIP deploy-check hosts: {reason}", flush=True)
        return 0
    try:
        run()
    except (Exception, KeyboardInterrupt) as exc:
        what = str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}"
        print(f"FAIL deploy-check hosts: {what}", flush=True)
        return 1
    print("deploy-check hosts: passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
