"""The hall display's fan-out (issue 21): N screens hold the hall's event stream open
(`GET /api/v1/halls/{id}/queue/events`, Server-Sent Events), a clerk calls one ticket, and every
screen must get the `call` event within 1 s.

    python bench/display_fanout.py [--streams 1000 --workers 2 --calls 3 --out display_fanout]

Starts `yuyue serve --workers N --no-jobs` on a throwaway PostgreSQL database (the streams spread
over the workers; a call made by one worker reaches the others' screens through LISTEN/NOTIFY), sets
a hall up through the admin API with a service, a counter and a clerk, opens the streams (raw
HTTP/1.1, one asyncio connection each, from this process), waits until each has its `queue` snapshot,
then `--calls` times: a walk-in ticket is issued, every screen gets its `change`, and the clerk calls
it (`POST /api/v1/counters/{id}/call-next`). The delay of a screen is from just before the call's
request is sent to the moment its `call` event arrived. Prints the figures and writes
bench/results/<out>.json.
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import argparse
import asyncio
import contextlib
import json
import resource
import time
from typing import Any

import httpx
from _harness import (
    Server,
    Setup,
    latency_summary,
    machine,
    make_admin,
    resident_id,
    throwaway_database,
    write_result,
)

CLOCK = "2026-12-01T10:00:00+08:00"  # a Tuesday inside the hall's hours: walk-ins get tickets
PASSWORD = "counter-clerk-2026"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=1000, help="open display streams")
    p.add_argument("--workers", type=int, default=2, help="yuyue serve worker processes")
    p.add_argument("--pool", type=int, default=8, help="database connections per worker")
    p.add_argument("--calls", type=int, default=3, help="tickets called, one after another")
    p.add_argument("--out", default="display_fanout", help="name of the JSON result in bench/results/")
    return p.parse_args()


class Screen:
    """One display: a raw keep-alive connection reading the event stream."""

    def __init__(self) -> None:
        self.buffer = b""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.seen: dict[bytes, int] = {}  # event name -> how many arrived
        self.arrived: dict[tuple[bytes, int], float] = {}  # (event, nth) -> perf_counter
        self.changed = asyncio.Event()

    async def open(self, port: int, hall_id: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        self.writer.write(
            f"GET /api/v1/halls/{hall_id}/queue/events HTTP/1.1\r\nHost: bench\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )

    async def read(self) -> None:
        assert self.reader is not None
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            now = time.perf_counter()
            self.buffer += chunk
            while b"\n\n" in self.buffer:
                block, self.buffer = self.buffer.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    line = line.strip()
                    if line.startswith(b"event: "):
                        name = line[7:]
                        n = self.seen.get(name, 0) + 1
                        self.seen[name] = n
                        self.arrived[(name, n)] = now
                        self.changed.set()

    async def wait_for(self, name: bytes, n: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while self.seen.get(name, 0) < n:
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run(port: int, base: str, hall_id: str, clerk: dict[str, str], service_id: int, args: Any) -> Any:
    screens = [Screen() for _ in range(args.streams)]
    readers = []
    started = time.perf_counter()
    for i in range(0, len(screens), 50):  # open in batches: each takes the queue's snapshot
        batch = screens[i : i + 50]
        await asyncio.gather(*(s.open(port, hall_id) for s in batch))
        readers += [asyncio.create_task(s.read()) for s in batch]
        await asyncio.gather(*(s.wait_for(b"queue", 1, 60) for s in batch))
    opened_s = time.perf_counter() - started
    connected = sum(1 for s in screens if s.seen.get(b"queue"))
    delays: list[float] = []
    missed = 0
    per_call = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        counter = (await client.get(f"/api/v1/halls/{hall_id}/counters", headers=clerk)).json()[0]
        for k in range(args.calls):
            body = {"service_id": service_id, "id_type": "resident_id", "id_number": resident_id(k)}
            made = await client.post(f"/api/v1/halls/{hall_id}/tickets", json=body, headers=clerk)
            assert made.status_code == 201, made.text
            await asyncio.gather(*(s.wait_for(b"change", k + 1, 10) for s in screens))
            await asyncio.sleep(0.5)
            if k:  # the previous call's ticket leaves the counter
                number = per_call[-1]["number"]
                await client.post(f"/api/v1/tickets/{number}/finish", headers=clerk)
                await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            called = await client.post(f"/api/v1/counters/{counter['id']}/call-next", headers=clerk)
            answered = time.perf_counter() - t0
            assert called.status_code == 200, called.text
            got = await asyncio.gather(*(s.wait_for(b"call", k + 1, 10) for s in screens))
            these = [s.arrived[(b"call", k + 1)] - t0 for s, ok in zip(screens, got, strict=True) if ok]
            missed += len(screens) - len(these)
            delays += these
            per_call.append(
                {
                    "number": made.json()["ticket"]["number"],
                    "call_answer_ms": round(answered * 1000, 1),
                    "received": len(these),
                    "within_1s": sum(1 for d in these if d <= 1.0),
                    **latency_summary(these),
                }
            )
    for s in screens:
        s.close()
    for task in readers:
        task.cancel()
    return {
        "connected": connected,
        "open_s": round(opened_s, 2),
        "calls": per_call,
        "received": len(delays),
        "missed": missed,
        "within_1s": sum(1 for d in delays if d <= 1.0),
        **latency_summary(delays),
    }


def main() -> None:
    args = parse()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.streams + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the server inherits it
    started = time.monotonic()
    with throwaway_database("yuyue_bench_sse") as url:
        make_admin(url)
        with Server(url, args.workers, args.pool) as server:
            setup = Setup(server.base)
            setup.set_clock(CLOCK)
            hall = setup.hall("sse-hall")
            service = setup.service(hall["id"], "业务", 700)
            setup.call(
                "POST",
                f"/api/v1/admin/halls/{hall['id']}/staff",
                {"username": "sse-clerk", "password": PASSWORD, "name": "王窗口", "counter_id": None},
                201,
            )
            login = httpx.post(
                f"{server.base}/api/v1/staff/login", json={"username": "sse-clerk", "password": PASSWORD}
            )
            login.raise_for_status()
            clerk = {"Authorization": f"Bearer {login.json()['token']}"}
            figures = asyncio.run(run(server.port, server.base, hall["id"], clerk, service["id"], args))
    result = {
        "benchmark": "display_fanout",
        "settings": {"streams": args.streams, "workers": args.workers, "calls": args.calls},
        **figures,
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    path = write_result(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, ensure_ascii=False))
    print(
        f"\n{figures['connected']} streams, {args.calls} calls: {figures['within_1s']} of "
        f"{args.streams * args.calls} deliveries within 1 s, p99 {figures['p99_ms']} ms, "
        f"max {figures['max_ms']} ms, missed {figures['missed']} -> {path}"
    )


if __name__ == "__main__":
    main()
