"""Reads of availability (issue 4): `GET /api/v1/services/{id}/availability` over the policy's
horizon, the most frequent request of all, at a fixed arrival rate (open loop, separate process).

    python bench/availability.py --duration 20 [--rate 2000] [--workers 2] [--pool 8] [--warmup 2]
    python bench/availability.py --page ...   # the portal's service page (HTML) instead of the API

The first `--warmup` seconds at the same rate are sent but not counted: they measure a cold process
(its first PostgreSQL connections and answers), not the service a city's warm servers give.

While the reads run, a writer books seats at a low rate so the answers change. Afterwards a probe
measures freshness: it books a seat and polls availability on fresh connections (any worker) until
the seat is gone from the answer. Prints the figures and writes bench/results/availability.json.
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import argparse
import json
import random
import threading
import time
from collections import Counter
from typing import Any

import httpx
from _harness import (
    Server,
    Setup,
    analyze,
    http_request,
    latency_summary,
    login_citizens,
    machine,
    make_admin,
    run_load,
    throwaway_database,
    write_result,
)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=2000.0, help="reads offered per second")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pool", type=int, default=8)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--services", type=int, default=10)
    p.add_argument("--probes", type=int, default=20, help="freshness probes after the load")
    p.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds at the same rate before the measured ones, not counted (pools and caches warm)",
    )
    p.add_argument(
        "--page",
        action="store_true",
        help="read the portal's service page (/services/{id}, HTML) instead of the API",
    )
    p.add_argument("--out", default="availability")
    return p.parse_args()


def remaining(client: httpx.Client, service_id: int, slot_id: str) -> int:
    days = client.get(f"/api/v1/services/{service_id}/availability").json()["days"]
    return next(s["remaining"] for d in days for s in d["slots"] if s["id"] == slot_id)


def freshness(base: str, service_id: int, slots: list[str], tokens: list[str]) -> list[float]:
    """Seconds from a booking's 201 until a new connection's availability answer no longer shows it."""
    delays = []
    for token, slot in zip(tokens, slots, strict=False):
        with httpx.Client(base_url=base, timeout=10) as warm:
            before = remaining(warm, service_id, slot)  # warms this worker's cache with the old figure
        answer = httpx.post(
            f"{base}/api/v1/appointments",
            json={"slot_id": slot, "channel": "web"},
            headers={"Authorization": f"Bearer {token}"},
        )
        booked_at = time.perf_counter()
        if answer.status_code != 201:
            continue
        while True:
            with httpx.Client(base_url=base, timeout=10) as fresh:  # a new connection: any worker
                if remaining(fresh, service_id, slot) <= before - 1:
                    break
            if time.perf_counter() - booked_at > 5:
                break
        delays.append(time.perf_counter() - booked_at)
    return delays


def main() -> None:
    args = parse()
    started = time.monotonic()
    rng = random.Random(7)
    with throwaway_database() as url:
        make_admin(url)
        with Server(url, args.workers, args.pool) as server:
            setup = Setup(server.base)
            setup.set_clock("2026-12-01T19:00:00+08:00")  # after 18:00: the 10 working days are open
            setup.hall("read-hall")
            services = [setup.service("read-hall", f"业务{i:02d}", 700) for i in range(args.services)]
            first = setup.availability(services[0]["id"])
            open_slots = [s["id"] for d in first["days"] for s in d["slots"] if s["status"] == "open"]
            tokens = login_citizens(server.base, 400 + args.probes)
            analyze(url)
            attempts = int(args.rate * args.duration)
            warm = int(args.rate * args.warmup)
            read = "/services/{}" if args.page else "/api/v1/services/{}/availability"
            requests = [
                http_request("GET", read.format(services[i % len(services)]["id"]))
                for i in range(warm + attempts)
            ]
            stop = threading.Event()
            written = Counter[int]()

            def writer() -> None:  # seats keep going while the reads run (about 20 bookings/s)
                with httpx.Client(base_url=server.base, timeout=10) as client:
                    for token in tokens[:400]:
                        if stop.is_set():
                            return
                        answer = client.post(
                            "/api/v1/appointments",
                            json={"slot_id": rng.choice(open_slots), "channel": "web"},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        written[answer.status_code] += 1
                        time.sleep(0.05)

            thread = threading.Thread(target=writer)
            thread.start()
            load = run_load(server.port, requests, args.rate, args.connections, time.time() + 1.5)
            # A city's servers are warm at any moment of the day: the first `warm` reads (a new
            # process's first connections to PostgreSQL, its first answers) are not counted.
            load["status"], load["latency"] = load["status"][warm:], load["latency"][warm:]
            load["elapsed"] -= warm / args.rate
            stop.set()
            thread.join()
            delays = freshness(server.base, services[0]["id"], open_slots[-args.probes :], tokens[400:])
    codes = Counter(
        str(s) if s > 0 else ("given_up" if s == -2 else "transport_error") for s in load["status"]
    )
    answered = sum(1 for s in load["status"] if 200 <= s < 300)
    elapsed = load["elapsed"]
    result: dict[str, Any] = {
        "benchmark": "availability",
        "settings": {
            "workers": args.workers,
            "pool_per_worker": args.pool,
            "http_connections": args.connections,
            "rate": args.rate,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "services": args.services,
            "read": "/services/{id} (portal page)" if args.page else "/api/v1/services/{id}/availability",
            "days_per_answer": len(first["days"]),
            "slots_per_answer": sum(len(d["slots"]) for d in first["days"]),
        },
        "offered_per_s": round(attempts / args.duration, 1),
        "answers_per_s": round(answered / elapsed, 1),
        "elapsed_s": round(elapsed, 2),
        "answers": dict(sorted(codes.items())),
        **latency_summary(load["latency"]),
        "errors_5xx": sum(1 for s in load["status"] if s >= 500),
        "transport_errors": sum(1 for s in load["status"] if s == -1),
        "given_up": sum(1 for s in load["status"] if s == -2),
        "writes_during_reads": dict(written),
        "freshness_probes": len(delays),
        "staleness_max_ms": round(max(delays, default=0) * 1000, 1),
        "staleness_mean_ms": round(sum(delays) / len(delays) * 1000, 1) if delays else None,
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    path = write_result(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, ensure_ascii=False))
    print(
        f"\n{result['answers_per_s']} answers/s of {result['offered_per_s']} offered, "
        f"p99 {result['p99_ms']} ms, "
        f"staleness max {result['staleness_max_ms']} ms -> {path}"
    )


if __name__ == "__main__":
    main()
