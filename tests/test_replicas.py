"""Reads from PostgreSQL streaming replicas (issue 22, decision 0090), on a real replica.

A throwaway primary and a `pg_basebackup -R` replica are built once for this module (tests/pgcluster.py);
each test gets a fresh database copied from a migrated template. What is checked, through the HTTP API:
availability and the public reads come from a fresh replica; bookings and a citizen's own bookings
from the primary; a replica that lags past `YUYUE_REPLICA_MAX_LAG` (replay paused) is skipped, so a
taken seat disappears within 1 s; a replica stopped mid-run costs no failed request, and is used
again once it is back and caught up.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import ValidationError

from tests.conftest import Api, harness_for
from tests.ids import resident_id
from tests.pgcluster import Cluster, missing_binaries
from yuyue.app import create_app
from yuyue.booking.availability import seats_changed
from yuyue.catalogue.service import clear_caches
from yuyue.config import Settings
from yuyue.migrate import upgrade
from yuyue.ops.replicas import READS

pytestmark = pytest.mark.skipif(missing_binaries() is not None, reason=missing_binaries() or "")
TEMPLATE = "yuyue_template"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    built = Cluster()
    try:
        built.start()
        asyncio.run(built.primary_sql(f'CREATE DATABASE "{TEMPLATE}"'))
        upgrade(built.url(TEMPLATE))
        yield built
    finally:
        built.stop()


@pytest.fixture
def database(cluster: Cluster) -> Iterator[str]:
    name = f"yuyue_{secrets.token_hex(4)}"
    asyncio.run(cluster.primary_sql(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"'))
    asyncio.run(cluster.caught_up())
    yield name
    asyncio.run(cluster.primary_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _api(cluster: Cluster, database: str, max_lag: float) -> AsyncIterator[Api]:
    settings = Settings(
        env="test",
        database_url=cluster.url(database),
        database_replica_urls=cluster.replica_url(database),
        replica_max_lag=max_lag,
        replica_probe_s=0.05,
        rate_limits="off",
        log_level="WARNING",
    )
    clear_caches()
    app = create_app(settings, run_jobs=False)
    async with harness_for(app) as harness:
        yield harness
    clear_caches()


@pytest.fixture
async def api(cluster: Cluster, database: str) -> AsyncIterator[Api]:
    """The app with the default lag bound (0.5 s)."""
    async for harness in _api(cluster, database, 0.5):
        yield harness


@pytest.fixture
async def patient_api(cluster: Cluster, database: str) -> AsyncIterator[Api]:
    """The app with a lag bound of a minute: a paused replica stays in use (to see where reads go)."""
    async for harness in _api(cluster, database, 60.0):
        yield harness


def reads(target: str) -> float:
    return float(READS.labels(target=target)._value.get())


async def _service(api: Api, cluster: Cluster) -> tuple[int, str]:
    await api.hall()
    service = await api.service(daily_capacity=7)  # one seat per hourly slot
    await api.set_clock("2026-12-01T19:00:00+08:00")  # after the 18:00 release
    await cluster.caught_up()
    slots = await api.slots(service["id"], "2026-12-02")
    return service["id"], slots[0]["id"]


async def _remaining(api: Api, service_id: int, slot_id: str, recompute: bool = False) -> int:
    if recompute:
        seats_changed(service_id)  # no answer from memory: this read reaches a database
    slots = await api.slots(service_id, "2026-12-02")
    return next(s["remaining"] for s in slots if s["id"] == slot_id)


async def test_reads_go_to_the_replica_and_bookings_to_the_primary(
    patient_api: Api, cluster: Cluster
) -> None:
    api = patient_api
    service_id, slot_id = await _service(api, cluster)
    before = reads("replica")
    assert await _remaining(api, service_id, slot_id, recompute=True) == 1
    assert reads("replica") > before  # availability came from the replica
    queue = await api.client.get("/api/v1/halls/hall-a/queue")
    assert queue.status_code == 200
    stats = await api.client.get("/api/v1/admin/stats?unit_id=platform&from=2026-12-02", headers=api.admin())
    assert stats.status_code == 200, stats.text

    await cluster.replica_sql("SELECT pg_wal_replay_pause()", database="postgres")
    try:
        citizen = await api.login(resident_id(1))
        booked = await api.book(citizen, slot_id)
        assert booked.status_code == 201, booked.text  # the booking went to the primary
        mine = await api.client.get("/api/v1/appointments", headers=citizen)
        assert [b["number"] for b in mine.json()] == [booked.json()["number"]]  # its own write: primary
        await asyncio.sleep(0.6)  # past the answer cache
        # The replica replays nothing and the bound is a minute: availability still shows the seat,
        # which proves it was read there (a stale answer leads to slot_full, never to an oversold seat).
        assert await _remaining(api, service_id, slot_id) == 1
        second = await api.book(await api.login(resident_id(2)), slot_id)
        assert second.status_code == 409 and second.json()["code"] == "slot_full"
    finally:
        await cluster.replica_sql("SELECT pg_wal_replay_resume()")
    await cluster.caught_up()
    await asyncio.sleep(0.6)
    assert await _remaining(api, service_id, slot_id) == 0


async def test_a_lagging_replica_is_skipped_so_a_taken_seat_disappears_within_a_second(
    api: Api, cluster: Cluster
) -> None:
    service_id, slot_id = await _service(api, cluster)
    assert await _remaining(api, service_id, slot_id) == 1
    await cluster.replica_sql("SELECT pg_wal_replay_pause()")
    try:
        booked = await api.book(await api.login(resident_id(1)), slot_id)
        assert booked.status_code == 201, booked.text
        taken_at = time.monotonic()
        while True:
            asked_at = time.monotonic()
            if await _remaining(api, service_id, slot_id) == 0:
                break
            # a read that began 1 s after the booking must not show the seat: 0.5 s of lag + 0.5 s
            # of answer cache at most (decisions 0010, 0090)
            assert asked_at - taken_at <= 1.0, "a taken seat still showed after 1 s"
            await asyncio.sleep(0.02)
        # Still paused: the replica is behind, so reads stay on the primary.
        await asyncio.sleep(0.6)
        before = reads("primary")
        assert await _remaining(api, service_id, slot_id, recompute=True) == 0
        assert reads("primary") > before
    finally:
        await cluster.replica_sql("SELECT pg_wal_replay_resume()")
    await cluster.caught_up()
    await asyncio.sleep(0.3)  # the next probe finds it caught up
    await asyncio.sleep(0.6)
    before = reads("replica")
    assert await _remaining(api, service_id, slot_id, recompute=True) == 0
    assert reads("replica") > before  # back in use


async def test_a_replica_stopped_mid_run_fails_no_request(api: Api, cluster: Cluster) -> None:
    service_id, slot_id = await _service(api, cluster)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            response = await api.client.get(
                f"/api/v1/services/{service_id}/availability",
                params={"from": "2026-12-02", "to": "2026-12-02"},
            )
            statuses.append(response.status_code)
            seats_changed(service_id)  # recompute every time: each answer is a read of the database
            await asyncio.sleep(0.01)

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    try:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(cluster.stop_replica)
        await asyncio.sleep(0.5)
        before = reads("primary")
        await asyncio.sleep(0.3)
        assert reads("primary") > before  # reads went on, on the primary
        await asyncio.to_thread(cluster.start_replica)
        await cluster.caught_up()
        await asyncio.sleep(0.5)
        before = reads("replica")
        await asyncio.sleep(0.3)
        assert reads("replica") > before  # back in use once caught up
    finally:
        stop.set()
        await asyncio.gather(*readers)
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert await _remaining(api, service_id, slot_id) == 1


async def _ready_until(api: Api, state: str) -> dict[str, object]:
    """/readyz, asked until it reports the replica in `state` (the probe runs every 0.05 s here);
    every answer on the way must be 200: a replica's state never makes the process unready."""
    answers = []
    for _ in range(200):
        response = await api.client.get("/readyz")
        assert response.status_code == 200, response.text
        answers.append(response.json())
        if answers[-1]["replicas"][0]["state"] == state:
            return dict(answers[-1])
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never reported the replica {state}: {answers[-3:]}")


async def _up_gauge(api: Api) -> float:
    """This app's replica's `yuyue_replica_up` (earlier tests' replicas have their own labels)."""
    name = api.app.state.replicas.replicas[0].name
    text = (await api.client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith(f'yuyue_replica_up{{replica="{name}"}}'))
    return float(line.split()[-1])


async def test_readyz_reports_each_replica_fresh_lagging_or_down_and_stays_ready(
    api: Api, cluster: Cluster
) -> None:
    """/readyz (docs/api.md): ready while the primary answers; each replica's state alongside,
    by its position in YUYUE_DATABASE_REPLICA_URLS (no address: the answer is public)."""
    service_id, slot_id = await _service(api, cluster)
    fresh = await _ready_until(api, "fresh")
    assert fresh["status"] == "ok" and set(fresh) == {"status", "replicas"}
    [replica] = fresh["replicas"]  # type: ignore[misc]
    assert replica["replica"] == 1 and 0 <= replica["lag_s"] <= 0.5, replica
    assert await _up_gauge(api) == 1.0

    await cluster.replica_sql("SELECT pg_wal_replay_pause()")
    try:
        booked = await api.book(await api.login(resident_id(1)), slot_id)  # a write it does not replay
        assert booked.status_code == 201, booked.text
        lagging = await _ready_until(api, "lagging")
        [replica] = lagging["replicas"]  # type: ignore[misc]
        assert lagging["status"] == "ok" and replica["lag_s"] > 0.5, lagging
        # skipped, not fatal: the reads go on, on the primary, and see the booking
        assert await _remaining(api, service_id, slot_id, recompute=True) == 0
    finally:
        await cluster.replica_sql("SELECT pg_wal_replay_resume()")
    await cluster.caught_up()
    await _ready_until(api, "fresh")

    await asyncio.to_thread(cluster.stop_replica)
    try:
        down = await _ready_until(api, "down")
        assert down == {"status": "ok", "replicas": [{"replica": 1, "state": "down", "lag_s": None}]}
        assert await _up_gauge(api) == 0.0
        assert await _remaining(api, service_id, slot_id, recompute=True) == 0
    finally:
        await asyncio.to_thread(cluster.start_replica)
    await cluster.caught_up()
    await _ready_until(api, "fresh")
    assert await _up_gauge(api) == 1.0


def test_replicas_need_a_postgresql_primary() -> None:
    with pytest.raises(ValidationError, match="REPLICA_URLS"):
        Settings(env="test", database_url="sqlite:///x.db", database_replica_urls="postgresql://h/db")
