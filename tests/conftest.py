"""Fixtures: every API test runs on SQLite and on the machine's real PostgreSQL.

PostgreSQL: one throwaway database per run (`yuyue_test_<random>`), built by the migrations,
emptied between tests. SQLite: a migrated template file copied per test. In CI (`CI=true`) an
unreachable PostgreSQL is a failure, never a skip. Set YUYUE_TEST_PG to another server URL if
needed (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from yuyue.admin.service import create_admin
from yuyue.app import create_app
from yuyue.catalogue.service import clear_caches
from yuyue.clock import TZ, clock
from yuyue.config import Settings
from yuyue.migrate import upgrade

PG_ADMIN_URL = os.environ.get("YUYUE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)  # a Tuesday, 10:00 platform time
ADMIN_PASSWORD = "platform-admin-2026"


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
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


async def _reset_pg(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        names = ", ".join(f'"{row["tablename"]}"' for row in tables)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        await conn.execute(
            "INSERT INTO units (id, name, kind, parent_id, path, counters, created_at) "
            "VALUES ('platform', '广州市统一预约平台', 'platform', NULL, 'platform/', 0, now())"
        )
        await conn.execute(
            "INSERT INTO policies (unit_id, preset, overrides, updated_at) "
            "VALUES ('platform', 'guangzhou-2021', '{}', now())"
        )
    finally:
        await conn.close()


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        asyncio.run(_reset_pg(url))
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "yuyue.sqlite3"
    shutil.copy(template, target)
    return f"sqlite:///{target}"


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


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    clear_caches()
    app = create_app(settings, run_jobs=False)
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
    clear_caches()


async def raw(api: Api, sql: str, **params: Any) -> list[Any]:
    """Read the database directly (to check what the API claims)."""
    async with api.app.state.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())
