"""Fixtures: every API test runs on SQLite and on the machine's real PostgreSQL.

PostgreSQL: one throwaway database per run (`yuyue_test_<random>`), built by the migrations,
emptied back to what the migrations left before each test. SQLite: a migrated template file copied
per test. One app per settings serves every test (started and stopped around each, on that test's
fresh database), the admin passwords are hashed at the test profile's cost (`Settings.argon2_profile`).
In CI (`CI=true`) an unreachable PostgreSQL is a failure, never a skip. Set YUYUE_TEST_PG to another
server URL if needed (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import asyncio
import contextlib
import graphlib
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from yuyue.admin.accounts import create_admin
from yuyue.app import create_app, use_settings
from yuyue.catalogue.service import clear_caches
from yuyue.clock import TZ, clock
from yuyue.config import Settings
from yuyue.migrate import upgrade

PG_ADMIN_URL = os.environ.get("YUYUE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)  # a Tuesday, 10:00 platform time
ADMIN_PASSWORD = "platform-admin-2026"


def pytest_collection_finish(session: pytest.Session) -> None:
    """The fuzz run (its own live server and database) starts now, in the background, so that it
    overlaps the other tests; its test waits for it (tests/test_fuzz.py, tests/README.md "Speed")."""
    if session.config.option.collectonly:
        return
    if any(item.nodeid.startswith("tests/test_fuzz.py::") for item in session.items):
        from tests import test_fuzz

        test_fuzz.start()


def pytest_sessionfinish() -> None:
    fuzz = sys.modules.get("tests.test_fuzz")
    if fuzz is not None:
        fuzz.stop()


def _backends() -> list[str]:
    chosen = os.environ.get("YUYUE_TEST_BACKENDS", "sqlite,postgresql")
    return [b for b in chosen.split(",") if b]


async def _pg_reachable() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not asyncio.run(_pg_reachable()):
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (CI requires it)")
        pytest.skip("PostgreSQL not reachable")
    name = f"yuyue_test_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    # A throwaway database: its commits need not wait for the disk (what tests see is the same).
    asyncio.run(admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    upgrade(url)
    _on_reset_loop(_reset_pg(url))  # learns the empty state the migrations left, before any test
    yield url
    _on_reset_loop(_close_reset_connection(url))
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


# Per database URL: how to empty it back to what the migrations left (built once, on first use).
_RESETS: dict[str, tuple[str, dict[str, str]]] = {}
# The resets run on one connection per database kept for the run, on an event loop of their own (the
# fixtures that reset are synchronous, outside the tests' loop): a new connection for each test paid
# its start-up and the server's first look at the 51 tables' catalogue entries every time (about 75
# of the reset's 90 ms).
_RESET_LOOP = asyncio.new_event_loop()
_RESET_CONNECTIONS: dict[str, asyncpg.Connection] = {}


def _on_reset_loop(step: Any) -> Any:
    return _RESET_LOOP.run_until_complete(step)


async def _close_reset_connection(url: str) -> None:
    conn = _RESET_CONNECTIONS.pop(url, None)
    if conn is not None:
        await conn.close()


async def _reset_plan(conn: asyncpg.Connection) -> tuple[str, dict[str, str]]:
    """The SQL that empties every table (children before the tables they reference, so the foreign
    keys stay checked and no privilege is needed) and restarts the sequences, and the rows the
    migrations seeded (as JSON, per table). A plain DELETE of the few rows a test leaves is far
    cheaper than a TRUNCATE of every table, which rewrites each one's files."""
    tables = [
        row["tablename"]
        for row in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
    ]
    referenced_by: dict[str, set[str]] = {table: set() for table in tables}
    for row in await conn.fetch(
        "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent FROM pg_constraint "
        "WHERE contype = 'f' AND connamespace = 'public'::regnamespace AND conrelid <> confrelid"
    ):
        referenced_by[row["parent"].strip('"')].add(row["child"].strip('"'))
    names = ", ".join(f'"{table}"' for table in tables)
    try:
        order = list(graphlib.TopologicalSorter(referenced_by).static_order())
        empty = "".join(f'DELETE FROM "{table}"; ' for table in order)
    except graphlib.CycleError:  # a cycle of foreign keys: TRUNCATE copes with it
        empty = f"TRUNCATE {names}; "
    empty += (
        "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false) "
        "FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL"
    )
    seeds = {}
    for table in tables:
        rows = await conn.fetchval(f'SELECT json_agg(t) FROM "{table}" t')
        if rows is not None:
            seeds[table] = rows
    return empty, seeds


async def _reset_pg(url: str) -> None:
    conn = _RESET_CONNECTIONS.get(url)
    if conn is None or conn.is_closed():
        conn = _RESET_CONNECTIONS[url] = await asyncpg.connect(url)
    try:
        if url not in _RESETS:  # the first call comes right after the migrations
            _RESETS[url] = await _reset_plan(conn)
        empty, seeds = _RESETS[url]
        async with conn.transaction():
            await conn.execute(empty)
            for table, rows in seeds.items():
                # ON CONFLICT: a trigger may have written the row while the tables were emptied (0031)
                records = f'json_populate_recordset(NULL::"{table}", $1)'
                await conn.execute(
                    f'INSERT INTO "{table}" SELECT * FROM {records} ON CONFLICT DO NOTHING', rows
                )
    except BaseException:
        await _close_reset_connection(url)  # the next reset starts on a fresh connection
        raise


@pytest.fixture(scope="session")
def sqlite_current(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A link to the running test's folder, so that every SQLite test has the same database URL
    (and so the same app, see `api`) while each gets its own fresh file."""
    return tmp_path_factory.mktemp("sqlite") / "current"


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        _on_reset_loop(_reset_pg(url))
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    current: Path = request.getfixturevalue("sqlite_current")
    shutil.copy(template, tmp_path / "yuyue.sqlite3")
    # Point the link at this test's folder (atomically): a connection opened from now on opens this
    # test's file; one left open by an earlier test keeps its own file, never this one.
    link = current.with_name(f"link-{secrets.token_hex(4)}")
    link.symlink_to(tmp_path, target_is_directory=True)
    link.replace(current)
    return f"sqlite:///{current / 'yuyue.sqlite3'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(env="test", database_url=database_url, db_pool_size=20, log_level="WARNING")


class Api:
    """An httpx client on the ASGI app with small helpers for the common steps."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app
        self.admin_token = ""

    async def set_clock(self, when: datetime | str) -> dict[str, Any]:
        value = when.isoformat() if isinstance(when, datetime) else when
        response = await self.client.put("/api/v1/test/clock", json={"now": value})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def admin(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin_token}"}

    async def login(
        self, id_number: str, name: str = "张三", phone: str = "13800138000", id_type: str = "resident_id"
    ) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/auth/dev/login",
            json={"name": name, "id_type": id_type, "id_number": id_number, "phone": phone},
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    async def hall(self, hall_id: str = "hall-a", parent: str = "platform", **extra: Any) -> dict[str, Any]:
        body = {
            "id": hall_id,
            "name": f"测试大厅 {hall_id}",
            "kind": "city_hall",
            "parent_id": parent,
            "address": "广州市天河区测试路1号",
            "hotline": "020-12345",
            "mode": "appointment_priority",
            "hours": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
            "counters": 2,
            "code": None,
            **extra,
        }
        response = await self.client.post("/api/v1/admin/units", json=body, headers=self.admin())
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def service(self, hall_id: str = "hall-a", **extra: Any) -> dict[str, Any]:
        body = {
            "hall_id": hall_id,
            "department": "公安户政",
            "name": "居民身份证申领",
            "business_types": ["换领", "补领"],
            "daily_capacity": 70,
            **extra,
        }
        response = await self.client.post("/api/v1/admin/services", json=body, headers=self.admin())
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def policy(self, unit_id: str, preset: str | None, **overrides: Any) -> dict[str, Any]:
        response = await self.client.put(
            f"/api/v1/admin/units/{unit_id}/policy",
            json={"preset": preset, "overrides": overrides},
            headers=self.admin(),
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def slots(self, service_id: int, day: str | None = None) -> list[dict[str, Any]]:
        params = {"from": day, "to": day} if day else {}
        response = await self.client.get(f"/api/v1/services/{service_id}/availability", params=params)
        assert response.status_code == 200, response.text
        return [slot for d in response.json()["days"] for slot in d["slots"]]

    async def book(self, headers: dict[str, str], slot_id: str, **extra: Any) -> httpx.Response:
        return await self.client.post(
            "/api/v1/appointments", json={"slot_id": slot_id, "channel": "web", **extra}, headers=headers
        )


# Apps by settings, built once per session. FastAPI builds an app's routing state on its first
# requests (about a second for this app's routes on a loaded machine): a new app per test paid it in
# every test. An app is started and stopped (lifespan) around each test as before; its database
# engine is disposed when it stops, and its database is fresh for each test (`database_url`).
_APPS: dict[str, FastAPI] = {}


def _app_for(settings: Settings) -> FastAPI:
    key = settings.model_dump_json()
    app = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_app(settings, run_jobs=False)
    else:
        use_settings(settings)  # another app may have run since this one: its process-wide settings
        app.state.settings = settings  # a test may have swapped them (a wrong client secret, say)
    return app


@contextlib.asynccontextmanager
async def harness_for(app: Any) -> AsyncIterator[Api]:
    """An app started (lifespan), the clock at START, the platform admin `root` created and logged
    in: the harness every API test drives. Shared by the `api` fixture and the tests that build an
    app of their own (a replica, an answer cache)."""
    async with LifespanManager(app) as manager:
        await clock.store(app.state.engine, START)
        async with app.state.sessionmaker() as session:
            await create_admin(
                session,
                username="root",
                password=ADMIN_PASSWORD,
                name="平台管理员",
                title="平台一级管理员",
                phone="13800000000",
                unit_id="platform",
                level=1,
            )
            await session.commit()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            harness = Api(client, app)
            response = await client.post(
                "/api/v1/admin/login", json={"username": "root", "password": ADMIN_PASSWORD}
            )
            assert response.status_code == 200, response.text
            harness.admin_token = response.json()["token"]
            yield harness


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    clear_caches()
    app = _app_for(settings)
    await app.state.rate_limits.storage.reset()  # the rate limits count per test
    async with harness_for(app) as harness:
        yield harness
    clear_caches()


@pytest.fixture
def service_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the services this process loads from the database during the test, in order
    (each `ServiceInfo` built, `catalogue.service._info`): a cache hit adds nothing."""
    from yuyue.catalogue import service as catalogue

    loads: list[int] = []
    original = catalogue._info

    def counting(*args: Any) -> Any:
        loads.append(args[0].id)
        return original(*args)

    monkeypatch.setattr(catalogue, "_info", counting)
    return loads


async def raw(api: Api, sql: str, **params: Any) -> list[Any]:
    """Read the database directly (to check what the API claims)."""
    async with api.app.state.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())
