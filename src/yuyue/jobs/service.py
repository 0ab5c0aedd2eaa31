"""Scheduled jobs: a registry, and a runner that runs each (job, due time) exactly once.

A job is a function of (session, due_at) plus a schedule that lists its due times in an interval.
The runner claims `(job, due_at)` by inserting it into `job_runs` in the same transaction as the
job's work: with any number of `serve` and `worker` processes, each due time runs once, and a job
that fails leaves no claim behind, so it is retried on the next pass. Moving the test clock runs,
in time order, every due time passed on the way (docs/api.md "Test clock").

A job whose effect depends only on the state when it runs (a purge, an expiry: `coalesce=True`)
runs once per pass, for its latest due time: when a pass catches up many of its due times (a
worker back after an outage, the test clock jumping a day), one transaction claims them all and
runs the job once; the earlier ones are recorded in `job_runs` as settled by that run and counted
`outcome="coalesced"` (decision 0100). Jobs whose every due time matters (a reminder, the 18:00
release, a no-show sweep, a day's rollup) run for each.

Later work plugs in with `register(Job(...))` (no-show marking, penalties, releases to the waiting
list, reminders, alerts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yuyue.clock import at, clock
from yuyue.db import dialect_insert as _insert
from yuyue.kit.http import rowcount
from yuyue.models import IdempotencyKey, JobRun
from yuyue.ops.logging import log
from yuyue.ops.metrics import JOB_SECONDS, JOBS

Schedule = Callable[[datetime, datetime], list[datetime]]
# Due times a job keeps in the database (a freed seat's random return moment, decision 0081): the
# ones in (after, until], read at each pass, merged with the schedule's and claimed the same way.
Pending = Callable[[AsyncSession, datetime, datetime], Awaitable[list[datetime]]]


@dataclass(frozen=True)
class Job:
    name: str
    schedule: Schedule
    run: Callable[[AsyncSession, datetime], Awaitable[None]]
    pending: Pending | None = None
    # Its effect depends only on the state at run time (what has expired by now): a pass runs it
    # once, for its latest due time, and records the earlier ones as coalesced into that run.
    coalesce: bool = False
    # Runs before the other jobs due at the same moment: the release that opens a day for booking
    # (decision 0092) must not wait behind a sweep or a purge (issue 21, decision 0104).
    first: bool = False


def daily(hhmm: str) -> Schedule:
    """Due every day at HH:MM, platform time."""

    def due(after: datetime, until: datetime) -> list[datetime]:
        times, day = [], after.date()
        while day <= until.date():
            moment = at(day, hhmm)
            if after < moment <= until:
                times.append(moment)
            day += timedelta(days=1)
        return times

    return due


def every(minutes: int) -> Schedule:
    """Due at each multiple of `minutes` after midnight."""

    def due(after: datetime, until: datetime) -> list[datetime]:
        step = timedelta(minutes=minutes)
        start = at(after.date(), "00:00")
        first = start + step * ((after - start) // step + 1)
        times = []
        while first <= until:
            times.append(first)
            first += step
        return times

    return due


REGISTRY: dict[str, Job] = {}


def register(job: Job) -> Job:
    REGISTRY[job.name] = job
    return job


# The other jobs of a `first` job's moment wait until this long after it (decision 0105): at 18:00
# the cores and the database belong to the citizens booking the day just opened, not to purges.
SETTLE_S = 30.0


async def run_due(
    maker: async_sessionmaker[AsyncSession], after: datetime, until: datetime, settle_s: float = 0.0
) -> int:
    """Run every due time in (after, until], in time order (at one moment the `first` jobs first);
    returns how many this process ran. With `settle_s`, the other jobs of a moment that has a
    `first` job (whichever process ran it) wait until `settle_s` after that moment; a pass catching
    up on a moment longer ago does not wait."""
    if until <= after:
        return 0
    # Long gaps (a stopped service) are caught up over at most 31 days.
    after = max(after, until - timedelta(days=31))
    found = {(due, name) for name, job in REGISTRY.items() for due in job.schedule(after, until)}
    for name, job in REGISTRY.items():
        if job.pending is not None:
            try:
                async with maker() as session:
                    found.update((due, name) for due in await job.pending(session, after, until))
            except Exception:
                log.exception("job_pending_failed", job=name)
    dues = sorted(found, key=lambda pair: (pair[0], not REGISTRY[pair[1]].first, pair[1]))
    # A coalescing job's due times of this pass are claimed together at its latest one.
    batches: dict[str, list[datetime]] = {}
    for due, name in dues:
        if REGISTRY[name].coalesce:
            batches.setdefault(name, []).append(due)
    ran = 0
    firsts = {due for due, name in dues if REGISTRY[name].first}
    for due, name in dues:
        job = REGISTRY[name]
        batch = batches.get(name, [due])
        if due != batch[-1]:
            continue  # claimed with the latest
        if settle_s > 0 and due in firsts and not job.first:
            firsts.discard(due)  # once per moment
            wait = settle_s - (clock.now() - due).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
        started = time.perf_counter()
        try:
            async with maker() as session:
                latest, earlier = await _claim(session, name, batch)
                if not latest:
                    if earlier:  # the latest ran elsewhere; these earlier ones are settled by it
                        await session.commit()
                        JOBS.labels(job=name, outcome="coalesced").inc(earlier)
                    continue
                await job.run(session, due)
                await session.commit()
                ran += 1
                elapsed = time.perf_counter() - started
                JOBS.labels(job=name, outcome="ok").inc()
                JOB_SECONDS.labels(job=name).observe(elapsed)
                log.debug("job_ran", job=name, due_at=due.isoformat(), ms=round(elapsed * 1000, 1))
                if earlier:
                    JOBS.labels(job=name, outcome="coalesced").inc(earlier)
                    log.info("job_coalesced", job=name, due_at=due.isoformat(), earlier=earlier)
        except Exception:
            JOBS.labels(job=name, outcome="error").inc()
            log.exception("job_failed", job=name, due_at=due.isoformat())
    return ran


async def _claim(session: AsyncSession, name: str, dues: list[datetime]) -> tuple[bool, int]:
    """Claim `(name, due)` for each of `dues` (ascending) in the session's transaction: whether the
    latest was claimed here, and how many earlier ones (those another process claimed are its own).
    The earlier ones go first, in one statement, so that processes claiming overlapping batches
    take the rows in one order (no deadlock); at most 31 days of 15-minute due times, 2,976 rows."""
    now, key = clock.now(), ["job", "due_at"]
    earlier = 0
    if len(dues) > 1:
        rows = [{"job": name, "due_at": due, "ran_at": now} for due in dues[:-1]]
        batch = _insert(session, JobRun).values(rows).on_conflict_do_nothing(index_elements=key)
        earlier = rowcount(await session.execute(batch))
    latest = _insert(session, JobRun).values(job=name, due_at=dues[-1], ran_at=now)
    claimed = await session.execute(latest.on_conflict_do_nothing(index_elements=key))
    return bool(rowcount(claimed)), earlier


async def loop(
    maker: async_sessionmaker[AsyncSession],
    engine_refresh: Callable[[], Awaitable[None]],
    interval_s: float,
    settle_s: float = SETTLE_S,
) -> None:
    """The background runner of `serve` and `worker`: every `interval_s`, run what came due, and
    wake at a due time that falls sooner, so that a job meant for a moment (the 18:00 release going
    to the waiting list first, rules G10, G11) runs at that moment, not up to `interval_s` later."""
    await engine_refresh()
    last = clock.now() - timedelta(days=1)
    while True:
        await engine_refresh()
        now = clock.now()
        await run_due(maker, last, now, settle_s)
        last = max(last, now)
        await asyncio.sleep(seconds_to_next_due(clock.now(), interval_s))


def seconds_to_next_due(now: datetime, interval_s: float) -> float:
    """How long the runner sleeps: until the next due time of any job (a little after it), at most
    `interval_s`."""
    horizon = now + timedelta(seconds=interval_s)
    soonest = min(
        (due for job in REGISTRY.values() for due in job.schedule(now, horizon) if due > now),
        default=None,
    )
    if soonest is None:
        return interval_s
    return max(0.01, min(interval_s, (soonest - now).total_seconds() + 0.05))


# --- the jobs of the booking core ---------------------------------------------------------------


async def _expire_idempotency_keys(session: AsyncSession, due: datetime) -> None:
    """docs/api.md: Idempotency keys live 24 hours."""
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < due - timedelta(hours=24)))


register(Job("expire_idempotency_keys", every(60), _expire_idempotency_keys, coalesce=True))
