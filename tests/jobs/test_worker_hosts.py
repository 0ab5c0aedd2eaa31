"""Jobs across hosts (issue 22): two real `yuyue worker` processes share the scheduled jobs and the
outbox. Every due time of every job runs once (its effects once: one reminder, one no-show mark and
its SMS per booking), and when one worker is killed while it holds a claimed batch of the outbox,
every SMS still goes out exactly once (the survivor takes the batch over after its lease).

PostgreSQL only: several hosts share a PostgreSQL primary (SQLite is one machine's file).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

from tests.conftest import Api, raw
from tests.ids import resident_id
from yuyue.clock import TZ, clock
from yuyue.jobs.service import REGISTRY

BOOKINGS = 60
UNTIL = datetime(2026, 12, 2, 18, 0, tzinfo=TZ)


def start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUYUE_")}
    env.update(
        YUYUE_ENV="test",
        YUYUE_DATABASE_URL=url,
        YUYUE_LOG_LEVEL="WARNING",
        YUYUE_JOBS_INTERVAL_S="0.2",
        YUYUE_NOTIFY_BATCH_SIZE="4",
        YUYUE_NOTIFY_LEASE_S="5",
        YUYUE_NOTIFY_INTERVAL_S="0.1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "yuyue", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


async def _holding(api: Api, pid: int) -> list[int]:
    rows = await raw(
        api, "SELECT id FROM messages WHERE status = 'sending' AND claim LIKE :mine", mine=f"{pid}-%"
    )
    return [row[0] for row in rows]


async def test_two_workers_run_each_due_job_once_and_a_killed_one_loses_no_sms(
    api: Api, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several hosts share a PostgreSQL primary")
    await api.hall()
    service = await api.service(daily_capacity=70)
    slots = await api.slots(service["id"], "2026-12-02")
    for i in range(BOOKINGS):
        citizen = await api.login(resident_id(i + 1), phone=f"1390000{i:04d}")
        booked = await api.book(citizen, slots[i % len(slots)]["id"])
        assert booked.status_code == 201, booked.text

    # Time moves on (the clock every process reads): a worker starting now catches up on the last day.
    await clock.store(api.app.state.engine, UNTIL)
    workers = [start_worker(database_url), start_worker(database_url)]
    doomed, survivor = workers
    try:
        # Catch the doomed worker holding a claimed batch: freeze it, check, then kill it.
        held: list[int] = []
        deadline = time.monotonic() + 90
        while not held:
            assert time.monotonic() < deadline, "the doomed worker never held a batch"
            assert doomed.poll() is None, doomed.stderr.read() if doomed.stderr else ""
            if await _holding(api, doomed.pid):
                doomed.send_signal(signal.SIGSTOP)
                held = await _holding(api, doomed.pid)
                if not held:
                    doomed.send_signal(signal.SIGCONT)
            else:
                await asyncio.sleep(0.005)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)

        expected = {
            (name, due.replace(tzinfo=None))
            for name, job in REGISTRY.items()
            for due in job.schedule(UNTIL - timedelta(days=1), UNTIL)
        }
        deadline = time.monotonic() + 120
        while True:
            ran = {(row[0], row[1]) for row in await raw(api, "SELECT job, due_at FROM job_runs")}
            unsent = (await raw(api, "SELECT count(*) FROM messages WHERE status IN ('pending', 'sending')"))[
                0
            ][0]
            if expected <= ran and unsent == 0:
                break
            assert survivor.poll() is None, survivor.stderr.read() if survivor.stderr else ""
            if time.monotonic() > deadline:
                states = await raw(api, "SELECT kind, status, count(*) FROM messages GROUP BY kind, status")
                pytest.fail(f"not done: jobs {sorted(expected - ran)[:5]}, messages {states}")
            await asyncio.sleep(0.3)
    finally:
        for process in workers:
            if process.poll() is None:
                process.terminate()
                process.wait(20)

    # Every due time ran once (the primary key allows no second run), and its effects happened once.
    statuses = await raw(api, "SELECT status, count(*) FROM bookings GROUP BY status")
    assert dict(statuses) == {"no_show": BOOKINGS}
    kinds = await raw(api, "SELECT kind, status, count(*) FROM messages GROUP BY kind, status")
    # The evening reminders were due at 19:00 yesterday; delivered after the slots had passed, they are
    # skipped (notify: a message that no longer applies is not sent).
    assert sorted(kinds) == [
        ("booked", "sent", BOOKINGS),
        ("no_show", "sent", BOOKINGS),
        ("reminder", "skipped", BOOKINGS),
    ]
    # Each SMS reached the provider once; the batch the killed worker held was settled by the survivor.
    sent = await raw(api, "SELECT idem_key, count(*) FROM console_messages GROUP BY idem_key")
    assert len(sent) == 2 * BOOKINGS and all(row[1] == 1 for row in sent)
    ids = ",".join(str(i) for i in held)
    settled = await raw(
        api,
        f"SELECT count(*) FROM messages WHERE id IN ({ids}) AND claim IS NULL"
        " AND status IN ('sent', 'skipped')",
    )
    assert settled[0][0] == len(held)
