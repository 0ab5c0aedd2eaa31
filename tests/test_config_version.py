"""Decision 0103 (issue 21): the catalogue, policy and calendar caches are confirmed by one version
row instead of being reloaded every TTL. A write to any table behind them, by any process, bumps the
version in its own transaction (migration 0031); a process sees the change within the TTL, as before,
and reloads nothing while there is none. SQLite keeps the plain TTL."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from tests.conftest import Api, raw
from yuyue.catalogue import service as catalogue
from yuyue.kit.cache import TTLCache

TABLES = (
    "services",
    "units",
    "departments",
    "capacity_periods",
    "extra_supply",
    "policies",
    "calendar_days",
    "calendar_years",
    "closures",
)


def on_postgres(api: Api) -> bool:
    return bool(api.app.state.engine.dialect.name == "postgresql")


async def version(api: Api) -> str | None:
    rows = await raw(api, "SELECT value FROM platform_state WHERE key = 'config_version'")
    return rows[0][0] if rows else None


async def test_a_write_to_any_cached_table_bumps_the_version_once(api: Api) -> None:
    if not on_postgres(api):
        pytest.skip("the version triggers are PostgreSQL's (SQLite keeps the plain TTL)")
    url = api.app.state.settings.database_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(url)
    try:
        for table in TABLES:
            before = int(
                await conn.fetchval("SELECT value FROM platform_state WHERE key = 'config_version'") or 0
            )
            await conn.execute(
                f"UPDATE {table} SET {await _a_column(conn, table)} = {await _a_column(conn, table)}"
            )
            after = int(await conn.fetchval("SELECT value FROM platform_state WHERE key = 'config_version'"))
            assert after == before + 1, table  # one statement, one bump, whatever the rows
        before = int(await conn.fetchval("SELECT value FROM platform_state WHERE key = 'config_version'"))
        async with conn.transaction():
            await conn.execute("UPDATE services SET name = name")
            await conn.execute("UPDATE slots SET booked = booked")  # not a cached table
            # the writer's own transaction carries the bump: nobody sees it before the commit
            other = await asyncpg.connect(url)
            try:
                seen = await other.fetchval("SELECT value FROM platform_state WHERE key = 'config_version'")
            finally:
                await other.close()
            assert int(seen) == before
        assert (
            int(await conn.fetchval("SELECT value FROM platform_state WHERE key = 'config_version'"))
            == before + 1
        )
    finally:
        await conn.close()


async def _a_column(conn: asyncpg.Connection, table: str) -> str:
    name = await conn.fetchval(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
        "ORDER BY ordinal_position LIMIT 1",
        table,
    )
    return f'"{name}"'


async def test_no_reload_while_the_version_holds_and_a_change_by_another_process_shows_within_the_ttl(
    api: Api, monkeypatch: pytest.MonkeyPatch, service_loads: list[int]
) -> None:
    """The service is read once; past the TTL with no write it is not read again; a capacity
    written straight to the database (another process: this one's caches are not cleared) shows
    within the TTL."""
    if not on_postgres(api):
        pytest.skip("the version triggers are PostgreSQL's (SQLite keeps the plain TTL)")
    await api.hall()
    service = await api.service()
    service_loads.clear()  # from here on
    ttl = 0.4
    for cache in TTLCache.instances:
        monkeypatch.setattr(cache, "ttl", ttl)
    catalogue.clear_caches()

    offered = await seats(api, service["id"])
    first = len(service_loads)
    assert first >= 1
    for _ in range(4):  # 1.2 s: three TTLs, no write
        await asyncio.sleep(ttl)
        assert await seats(api, service["id"]) == offered
    assert len(service_loads) == first, "reloaded without a change"

    await raw_write(
        api, "UPDATE services SET daily_capacity = 2 * daily_capacity WHERE id = :id", id=service["id"]
    )
    await asyncio.sleep(max(ttl, 0.5) + 0.05)  # the TTL, and the 0.5 s of a published answer (0013)
    assert await seats(api, service["id"]) > offered
    assert len(service_loads) > first


async def seats(api: Api, service_id: int) -> int:
    """Seats offered over the horizon: the service's daily capacity, read through its cache."""
    answer = await api.client.get(f"/api/v1/services/{service_id}/availability")
    assert answer.status_code == 200, answer.text
    return sum(s["remaining"] for d in answer.json()["days"] for s in d["slots"])


async def raw_write(api: Api, sql: str, **params: Any) -> None:
    async with api.app.state.engine.begin() as conn:
        await conn.execute(text(sql), params)


def test_a_load_begun_before_a_clear_is_not_kept() -> None:
    cache = TTLCache(60.0)
    try:
        since = TTLCache.generation()
        TTLCache.clear_all()  # a change was seen while the value was being loaded
        cache.put("k", "old", since)
        assert cache.get("k") is None
        cache.put("k", "new", TTLCache.generation())
        assert cache.get("k") == "new"
    finally:
        TTLCache.instances.remove(cache)


async def test_a_write_in_this_process_is_reloaded_once_not_again_at_the_next_ttl(
    api: Api, monkeypatch: pytest.MonkeyPatch, service_loads: list[int]
) -> None:
    """A write through this process clears its caches and bumps the version; the read after it
    takes the new version at once, so what it reloads is kept. Before, the version read at the next
    TTL found "a change" (the process's own) and reloaded everything a second time."""
    if not on_postgres(api):
        pytest.skip("the version triggers are PostgreSQL's (SQLite keeps the plain TTL)")
    await api.hall()
    service = await api.service()
    service_loads.clear()  # from here on
    ttl = 1.0
    for cache in TTLCache.instances:
        monkeypatch.setattr(cache, "ttl", ttl)
    offered = await seats(api, service["id"])  # the version is confirmed now, for a TTL
    edited = await api.client.patch(
        f"/api/v1/admin/services/{service['id']}", json={"name": "换证（新）"}, headers=api.admin()
    )
    assert edited.status_code == 200, edited.text
    # within the TTL of the last confirmation: reloaded at once
    assert await seats(api, service["id"]) == offered
    after_edit = len(service_loads)
    for _ in range(3):  # three TTLs, no further write
        await asyncio.sleep(ttl + 0.05)
        assert await seats(api, service["id"]) == offered
    assert len(service_loads) == after_edit, "the process's own write was taken for a change and reloaded"
