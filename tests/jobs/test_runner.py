"""The job runner wakes at a job's due time (rules G10, G11: at 18:00 the released day goes to the
waiting list first), not up to its polling interval later."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import yuyue.domains  # noqa: F401 - registers every domain's jobs
from yuyue.clock import TZ, at, clock
from yuyue.jobs import service
from yuyue.jobs.service import REGISTRY, seconds_to_next_due


def test_release_job_is_due_at_the_release_moment() -> None:
    release = at(datetime(2026, 12, 1).date(), "18:00")
    assert release in REGISTRY["waitlist_release"].schedule(release - timedelta(minutes=1), release)


def test_runner_sleeps_until_the_next_due_time_not_a_whole_interval() -> None:
    release = at(datetime(2026, 12, 1).date(), "18:00")
    assert seconds_to_next_due(release - timedelta(seconds=2), 15.0) == 2.05
    assert seconds_to_next_due(release - timedelta(milliseconds=5), 15.0) == 0.055
    # otherwise it wakes just after whichever job is due first, or after the whole interval
    moment = release + timedelta(milliseconds=500)
    sleep = seconds_to_next_due(moment, 15.0)
    assert 0.01 <= sleep <= 15.0
    if sleep < 15.0:
        woken = moment + timedelta(seconds=sleep - 0.05)
        assert any(woken in job.schedule(moment, woken) for job in REGISTRY.values())


async def test_the_release_runs_before_the_other_jobs_of_its_moment(api: Any, monkeypatch: Any) -> None:
    """Open booking of a released day waits for the release's run (decision 0092): at 18:00 it runs
    first, not after a sweep or a purge that falls due at the same moment (decision 0104)."""
    ran: list[str] = []
    for name, job in list(REGISTRY.items()):

        def recording(run: Any, name: str = name) -> Any:
            async def wrapped(session: Any, due: datetime) -> None:
                ran.append(name)
                await run(session, due)

            return wrapped

        monkeypatch.setitem(REGISTRY, name, replace(job, run=recording(job.run)))
    await api.set_clock("2026-12-01T17:59:00+08:00")  # the test clock runs on: a minute to spare
    ran.clear()
    await api.set_clock("2026-12-01T18:00:00+08:00")
    assert ran[0] == "waitlist_release", ran
    assert {"mark_no_shows", "open_slots_ahead", "channel_nonce_purge"} <= set(ran[1:]), ran


async def test_the_other_jobs_of_the_release_moment_wait_until_it_settles(api: Any, monkeypatch: Any) -> None:
    """Decision 0105: the release runs at 18:00 and the sweep, the purges and the rest of that moment
    wait until `settle_s` after it (the citizens booking the day just opened have the machine);
    once per moment, and not at all in a pass catching up on a moment long past."""
    events: list[tuple[str, float]] = []
    for name, job in list(REGISTRY.items()):

        def recording(run: Any, name: str = name) -> Any:
            async def wrapped(session: Any, due: datetime) -> None:
                events.append((name, 0.0))
                await run(session, due)

            return wrapped

        monkeypatch.setitem(REGISTRY, name, replace(job, run=recording(job.run)))

    async def no_sleep(seconds: float) -> None:  # the wait is recorded, not slept
        events.append(("sleep", seconds))

    monkeypatch.setattr(service.asyncio, "sleep", no_sleep)
    release = datetime(2026, 12, 1, 18, 0, tzinfo=TZ)
    maker, engine = api.app.state.sessionmaker, api.app.state.engine
    await api.set_clock(release - timedelta(seconds=1))
    events.clear()
    await clock.store(engine, release)  # live: the pass runs at the moment itself
    assert await service.run_due(maker, release - timedelta(seconds=1), release, settle_s=30.0) > 2
    names = [name for name, _ in events]
    assert names[0] == "waitlist_release", names
    assert names[1] == "sleep" and 20.0 < events[1][1] <= 30.0, events
    assert "sleep" not in names[2:] and {"mark_no_shows", "channel_nonce_purge"} <= set(names[2:]), names

    events.clear()  # a pass catching up on 18:15 long after it: nothing waits
    later = release + timedelta(minutes=15)
    await clock.store(engine, later + timedelta(minutes=10))
    assert await service.run_due(maker, release, later, settle_s=30.0) > 0
    assert "sleep" not in [name for name, _ in events], events
