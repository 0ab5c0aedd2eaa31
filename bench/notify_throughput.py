"""Delivery of the notification outbox (issue 7): messages delivered per second through the
console provider by 1, 2 and 4 `yuyue worker`-style processes sharing one PostgreSQL outbox
(claims with FOR UPDATE SKIP LOCKED, one transaction to claim a batch and one to settle each message).

    python bench/notify_throughput.py [--messages 5000] [--workers 1 2 4] [--batch 50]

Each round starts from a fresh outbox of `--messages` pending messages; the worker processes
start, wait on a barrier, then deliver until the outbox is empty. Throughput is messages over the
wall time from the barrier to the last message settled. Prints the figures and writes
bench/results/notify_throughput.json.
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import ROOT, machine, sql_rows, throwaway_database, write_result

WORKER = r"""
import asyncio, os, sys, time
from yuyue.config import Settings
from yuyue.db import make_engine, make_sessionmaker
from yuyue.notify.delivery import deliver_due

async def main():
    settings = Settings(env="test", database_url=sys.argv[1])
    engine = make_engine(settings, pool_size=10)
    maker = make_sessionmaker(engine)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.005)
    idle = 0
    while idle < 3:  # the outbox is empty (or the rest is leased to others)
        handled = await deliver_due(maker, settings.effective_secret)
        idle = 0 if handled else idle + 1
        if not handled:
            await asyncio.sleep(0.05)
    await engine.dispose()

asyncio.run(main())
"""


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--batch", type=int, default=50)
    return p.parse_args()


async def fill(url: str, count: int) -> None:
    from sqlalchemy import delete

    from yuyue.config import Settings
    from yuyue.db import make_engine, make_sessionmaker
    from yuyue.kit import crypto
    from yuyue.models import ConsoleMessage, DeliveryAttempt, Message
    from yuyue.notify.outbox import Draft, enqueue

    settings = Settings(env="test", database_url=url)
    engine = make_engine(settings)
    async with make_sessionmaker(engine)() as session:
        for table in (DeliveryAttempt, Message, ConsoleMessage):
            await session.execute(delete(table))
        phone = crypto.encrypt(settings.effective_secret, "13900000000")
        for start in range(0, count, 1000):
            drafts = [
                Draft(
                    kind="booked",
                    params={
                        "number": f"I01202612{i:08d}",
                        "start": "2026-12-03T09:00:00+08:00",
                        "hall": "广州市天河区政务服务中心",
                        "hotline": "020-83123456",
                    },
                    phone_enc=phone,
                    phone_masked="139****0000",
                    unit_path="platform/",
                )
                for i in range(start, min(count, start + 1000))
            ]
            await enqueue(session, drafts)
        await session.commit()
    await engine.dispose()


def run_round(url: str, workers: int, count: int, batch: int) -> dict[str, Any]:
    asyncio.run(fill(url, count))
    barrier = Path(tempfile.mkdtemp(prefix="yuyue-bench-")) / "go"
    env = {**os.environ, "YUYUE_NOTIFY_BATCH_SIZE": str(batch), "YUYUE_LOG_LEVEL": "WARNING"}
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, url, str(barrier)], env=env, cwd=ROOT)
        for _ in range(workers)
    ]
    time.sleep(2.0)  # imports and engines ready before the clock starts
    started = time.perf_counter()
    barrier.touch()
    for process in processes:
        process.wait(600)
    elapsed = time.perf_counter() - started
    rows = asyncio.run(
        sql_rows(
            url,
            "SELECT (SELECT count(*) FROM messages WHERE status = 'sent') AS sent, "
            "(SELECT count(*) FROM console_messages) AS console, "
            "(SELECT count(DISTINCT idem_key) FROM console_messages) AS distinct_keys",
        )
    )
    sent, console, distinct = rows[0]["sent"], rows[0]["console"], rows[0]["distinct_keys"]
    # the last worker idles ~0.15 s before it stops: that idle time is not delivery
    busy = max(elapsed - 0.15, 1e-6)
    return {
        "workers": workers,
        "messages": count,
        "sent": sent,
        "console_rows": console,
        "duplicates": console - distinct,
        "seconds": round(busy, 3),
        "messages_per_s": round(sent / busy, 1),
    }


def main() -> None:
    args = parse()
    results = []
    with throwaway_database("yuyue_bench_notify") as url:
        for workers in args.workers:
            result = run_round(url, workers, args.messages, args.batch)
            results.append(result)
            print(
                f"{workers} worker(s): {result['sent']}/{result['messages']} sent in {result['seconds']} s "
                f"= {result['messages_per_s']} messages/s, duplicates {result['duplicates']}"
            )
    path = write_result(
        "notify_throughput",
        {"bench": "notify_throughput", "batch": args.batch, "rounds": results, "machine": machine()},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
