"""Catching up (decision 0100): when a pass of the job runner covers many due times of a job whose
effect depends only on the state when it runs (a purge, an expiry), it runs that job once, for the
latest due time, and records the earlier ones in `job_runs` as settled by that run; jobs whose every
due time matters (the no-show sweep, the 18:00 release) still run for each. Through the test clock
(`PUT /api/v1/test/clock`, the HTTP path) and the runner itself, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import START, Api, raw
from tests.ids import resident_id
from yuyue.clock import TZ
from yuyue.jobs.service import REGISTRY, Job, every, run_due
from yuyue.models import JobRun

COALESCED = {
    "channel_nonce_purge",
    "expire_idempotency_keys",
    "identity_purge",
    "notify_clean_up",
    "personal_data_reencrypt",
    "personal_data_retention",
}


Counts = dict[tuple[str, str], float]


async def job_counts(api: Api) -> Counts:
    """`yuyue_jobs_total` by (job, outcome), read from GET /metrics."""
    text = (await api.client.get("/metrics")).text
    found = re.findall(r'^yuyue_jobs_total\{job="([^"]+)",outcome="([^"]+)"\} (\S+)$', text, re.M)
    return {(job, outcome): float(value) for job, outcome, value in found}


async def timed_runs(api: Api) -> dict[str, float]:
    """`yuyue_job_duration_seconds_count` by job: the runs whose time was recorded."""
    text = (await api.client.get("/metrics")).text
    found = re.findall(r'^yuyue_job_duration_seconds_count\{job="([^"]+)"\} (\S+)$', text, re.M)
    return {job: float(value) for job, value in found}


def delta(before: Counts, after: Counts, job: str, outcome: str) -> int:
    return int(after.get((job, outcome), 0) - before.get((job, outcome), 0))


async def runs(api: Api, job: str) -> list[datetime]:
    rows = await raw(api, "SELECT due_at FROM job_runs WHERE job = :job ORDER BY due_at", job=job)
    return [row[0] if isinstance(row[0], datetime) else datetime.fromisoformat(row[0]) for row in rows]


def test_the_coalescing_jobs_are_the_purges_and_expiries() -> None:
    """Only jobs that act on the state at run time coalesce; a job whose due time is part of its
    meaning (a day's sweep, rollup, reminder, release, alert stamp) runs for each."""
    assert {name for name, job in REGISTRY.items() if job.coalesce} == COALESCED
    each = ("mark_no_shows", "waitlist_release", "waitlist_expire", "stats_rollup", "reminders_evening")
    assert not any(REGISTRY[name].coalesce for name in each)


async def test_a_day_jump_runs_each_purge_once_and_records_every_due_time(api: Api) -> None:
    before, timed_before = await job_counts(api), await timed_runs(api)
    until = START + timedelta(days=1)
    await api.set_clock(until)
    after, timed_after = await job_counts(api), await timed_runs(api)

    # Every due time of every job is in job_runs, coalesced or not: each due time is settled once.
    for name, job in REGISTRY.items():
        expected = [due.replace(tzinfo=None) for due in job.schedule(START, until)]
        assert [due.replace(tzinfo=None) for due in await runs(api, name)] == expected, name
    # The hourly purge ran once, at the latest due time; its 23 earlier due times were coalesced.
    assert delta(before, after, "identity_purge", "ok") == 1
    assert delta(before, after, "identity_purge", "coalesced") == 23
    assert delta(before, after, "channel_nonce_purge", "ok") == 1
    assert delta(before, after, "channel_nonce_purge", "coalesced") == 95
    # The no-show sweep ran for each quarter hour, nothing coalesced.
    assert delta(before, after, "mark_no_shows", "ok") == 96
    assert delta(before, after, "mark_no_shows", "coalesced") == 0
    # Each run's time is recorded (what shares the cores at 18:00 is visible): one per run, not per
    # due time.
    assert timed_after["mark_no_shows"] - timed_before.get("mark_no_shows", 0) == 96
    assert timed_after["identity_purge"] - timed_before.get("identity_purge", 0) == 1

    # A small step covers one due time: it runs as before, nothing to coalesce.
    await api.set_clock(until + timedelta(hours=1))
    again = await job_counts(api)
    assert delta(after, again, "identity_purge", "ok") == 1
    assert delta(after, again, "identity_purge", "coalesced") == 0


async def test_the_one_run_purges_what_expired_by_the_latest_due_time(api: Api) -> None:
    """Idempotency keys live 24 hours (docs/api.md): after a 25-hour jump the key is gone, and a
    key made after the jump's start is kept."""
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(1))
    keyed = await api.client.post(
        "/api/v1/appointments",
        json={"slot_id": f"{service['id']}-202612041000", "channel": "web"},
        headers={**citizen, "Idempotency-Key": "catch-up-1"},
    )
    assert keyed.status_code == 201, keyed.text
    assert (await raw(api, "SELECT count(*) FROM idempotency_keys"))[0][0] == 1
    before = await job_counts(api)
    await api.set_clock(START + timedelta(hours=23, minutes=30))
    assert (await raw(api, "SELECT count(*) FROM idempotency_keys"))[0][0] == 1  # 23 h 30 old: kept
    await api.set_clock(START + timedelta(hours=49))
    assert (await raw(api, "SELECT count(*) FROM idempotency_keys"))[0][0] == 0
    after = await job_counts(api)
    assert delta(before, after, "expire_idempotency_keys", "ok") == 2  # one per jump
    assert delta(before, after, "expire_idempotency_keys", "coalesced") == 49 - 2


async def test_a_failed_coalesced_run_leaves_no_claim_and_is_retried(api: Api) -> None:
    ran: list[datetime] = []
    state = {"fail": True}

    async def run(session: AsyncSession, due: datetime) -> None:
        if state["fail"]:
            raise RuntimeError("the database went away")
        ran.append(due)

    REGISTRY["test_flaky_purge"] = Job("test_flaky_purge", every(60), run, coalesce=True)
    try:
        maker = api.app.state.sessionmaker
        until = START + timedelta(hours=6)
        await run_due(maker, START, until)
        assert ran == [] and await runs(api, "test_flaky_purge") == []  # nothing claimed
        state["fail"] = False
        await run_due(maker, START, until)  # the next pass over the same window
        assert ran == [until]
        assert len(await runs(api, "test_flaky_purge")) == 6
    finally:
        del REGISTRY["test_flaky_purge"]


async def test_due_times_another_runner_claimed_are_left_to_it(api: Api) -> None:
    """Another process already ran the latest due time: this pass records the earlier ones it finds
    unclaimed as settled and does not run the purge again; due times claimed elsewhere stay theirs."""
    maker = api.app.state.sessionmaker
    latest = datetime(2026, 12, 1, 16, 0, tzinfo=TZ)
    async with maker() as session:  # as the other runner's claims
        for due in (datetime(2026, 12, 1, 12, 0, tzinfo=TZ), latest):
            session.add(JobRun(job="identity_purge", due_at=due, ran_at=due))
        await session.commit()
    before = await job_counts(api)
    await run_due(maker, START, latest + timedelta(minutes=5))
    after = await job_counts(api)
    assert delta(before, after, "identity_purge", "ok") == 0
    assert delta(before, after, "identity_purge", "coalesced") == 4  # 11:00, 13:00, 14:00, 15:00
    assert len(await runs(api, "identity_purge")) == 6


async def test_two_runners_over_one_catch_up_run_each_purge_once(api: Api) -> None:
    """Two job runners (separate engines, like two `yuyue worker` processes) catch up the same day:
    each due time is claimed once and each coalescing job runs once in all."""
    from yuyue.config import Settings
    from yuyue.db import make_engine, make_sessionmaker

    settings = api.app.state.settings
    engines = [make_engine(Settings(**{**settings.model_dump(), "db_pool_size": 5})) for _ in range(2)]
    until = START + timedelta(days=1)
    before = await job_counts(api)
    try:
        await asyncio.gather(*(run_due(make_sessionmaker(e), START, until) for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    after = await job_counts(api)
    for name in COALESCED:
        due = REGISTRY[name].schedule(START, until)
        if due:
            assert delta(before, after, name, "ok") == 1, name
            assert delta(before, after, name, "coalesced") == len(due) - 1, name
    twice = "SELECT job, due_at FROM job_runs GROUP BY job, due_at HAVING count(*) > 1"
    assert await raw(api, twice) == []
    assert delta(before, after, "mark_no_shows", "ok") == 96
