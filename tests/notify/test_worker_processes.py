"""Real worker processes share the outbox: two run at once, one is killed (SIGKILL) while it holds
a claimed batch; every message still goes out, and none twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

from tests.conftest import Api, raw
from tests.notify.conftest import SECRET
from yuyue.kit import crypto
from yuyue.notify.outbox import Draft, enqueue

WORKER = r"""
import asyncio, sys
from yuyue.clock import clock
from yuyue.config import Settings
from yuyue.db import make_engine, make_sessionmaker
from yuyue.notify import providers
from yuyue.notify.delivery import delivery_loop

slow = providers.ConsoleProvider.send

async def send(self, message):
    await asyncio.sleep(float(sys.argv[2]))  # a provider's latency
    return await slow(self, message)

providers.ConsoleProvider.send = send

async def main():
    settings = Settings(env="test", database_url=sys.argv[1])
    clock.settable = True
    engine = make_engine(settings, pool_size=4)
    async def refresh():
        await clock.refresh(engine)
    await delivery_loop(make_sessionmaker(engine), refresh, settings.effective_secret)

asyncio.run(main())
"""

TOTAL = 300


async def _until(api: Api, query: str, mine: str, wait_s: float = 60.0) -> list[Any]:
    """The rows `query` finds (with `:mine` bound), polled until there are some or `wait_s` passed."""
    deadline = time.monotonic() + wait_s
    while True:
        found = await raw(api, query, mine=mine)
        if found or time.monotonic() > deadline:
            return list(found)
        await asyncio.sleep(0.01)


def _stderr(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        return "still running"
    return (process.stderr.read() if process.stderr else b"").decode(errors="replace")[-2000:]


def start_worker(url: str, latency_s: float = 0.02) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "YUYUE_NOTIFY_BATCH_SIZE": "10",
        "YUYUE_NOTIFY_LEASE_S": "5",
        "YUYUE_NOTIFY_INTERVAL_S": "0.2",
    }
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, str(latency_s)], env=env, stderr=subprocess.PIPE
    )


async def test_killed_worker_loses_and_duplicates_nothing(api: Api) -> None:
    url = str(api.app.state.settings.database_url)
    await api.hall()
    drafts = [
        Draft(
            kind="booked",
            params={
                "number": f"I01202612030{i:04d}",
                "start": "2026-12-03T09:00:00+08:00",
                "hall": "测试大厅",
                "hotline": "12345",
            },
            phone_enc=crypto.encrypt(SECRET, f"1390000{i:04d}"),
            phone_masked="139****0000",
            unit_path="platform/hall-a/",
        )
        for i in range(TOTAL)
    ]
    async with api.app.state.sessionmaker() as session:
        assert await enqueue(session, drafts) == TOTAL
        await session.commit()
    # The doomed worker starts first and its provider is slow, so it holds a claimed batch however
    # loaded the machine: started together, a survivor that started faster could send all 300
    # before the doomed one claimed any. The survivor then runs beside it until the kill.
    doomed = start_worker(url, latency_s=2.0)
    survivor: subprocess.Popen[bytes] | None = None
    try:
        held = await _until(
            api,
            "SELECT id FROM messages WHERE status = 'sending' AND claim LIKE :mine",
            f"{doomed.pid}-%",
        )
        assert held, f"the doomed worker never claimed a batch: {_stderr(doomed)}"
        survivor = start_worker(url)
        mine = f"{survivor.pid}-%"
        # running: it holds a batch, or has sent one (the doomed worker sends at most one a 2 s)
        working = await _until(api, "SELECT id FROM messages WHERE claim LIKE :mine OR status = 'sent'", mine)
        assert working, f"the survivor never started: {_stderr(survivor)}"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = (await raw(api, "SELECT count(*) FROM messages WHERE status <> 'sent'"))[0][0]
            if left == 0:
                break
            await asyncio.sleep(0.2)
    finally:
        for process in (doomed, survivor):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
    assert (await raw(api, "SELECT count(*) FROM messages WHERE status <> 'sent'"))[0][0] == 0
    sent = await raw(api, "SELECT idem_key, count(*) FROM console_messages GROUP BY idem_key")
    assert len(sent) == TOTAL and all(row[1] == 1 for row in sent)  # nothing lost, nothing twice
    # the batch the killed worker held went out after its lease, from the survivor
    reclaimed = await raw(
        api,
        "SELECT count(*) FROM messages WHERE id IN :ids AND claim IS NULL AND attempts >= 2".replace(
            ":ids", "(" + ",".join(str(row[0]) for row in held) + ")"
        ),
    )
    assert reclaimed[0][0] >= 1
