"""Migration 0023 (issue 19, decision 0095) on a database that already holds people: citizens'
names and admins' phones are rewritten encrypted, birth dates dropped, and the features that need
them still work through HTTP (lookup by ID hash, masked answers, full data for the audited lookup).
Runs on SQLite and PostgreSQL, each on a database of its own."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import PG_ADMIN_URL, _backends, _pg_reachable
from yuyue.app import create_app, use_settings
from yuyue.config import Settings
from yuyue.db import async_url
from yuyue.identity.service import id_lookup_hash
from yuyue.kit import crypto
from yuyue.kit.masking import mask_id, mask_phone
from yuyue.migrate import alembic_config, upgrade

SECRET = "migration-0023-secret-0123456789abcdef"
ID = "440106199001011235"
PASSPORT = "E12345678"
NAME = "王小明"
PHONE = "13800138000"
ADMIN_PHONE = "13912345678"
PASSWORD = "platform-admin-2026"


@pytest.fixture(params=_backends())
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.sqlite3'}"
        return
    if not asyncio.run(_pg_reachable()):
        pytest.skip("PostgreSQL not reachable")
    name = f"yuyue_m0023_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _sql(
    url: str, statement: str, params: dict[str, object] | None = None
) -> list[sa.Row[tuple[object, ...]]]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(statement), params or {})
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _people_before_0023(url: str) -> None:
    now = datetime(2026, 12, 1, 10, 0)
    await _sql(
        url,
        "INSERT INTO citizens (id_type, id_hash, id_enc, id_masked, name, phone_enc, phone_masked, "
        "birth_date, gender, created_at, updated_at) VALUES ('resident_id', :hash, :enc, :masked, :name, "
        ":phone, :phone_masked, :born, 'M', :now, :now)",
        {
            "hash": id_lookup_hash(SECRET, "resident_id", ID),
            "enc": crypto.encrypt(SECRET, ID),
            "masked": mask_id(ID),
            "name": NAME,
            "phone": crypto.encrypt(SECRET, PHONE),
            "phone_masked": mask_phone(PHONE),
            "born": date(1990, 1, 1),
            "now": now,
        },
    )
    await _sql(  # a passport masked the old way, eight of nine characters in clear (0030)
        url,
        "INSERT INTO citizens (id_type, id_hash, id_enc, id_masked, name, phone_enc, phone_masked, "
        "gender, created_at, updated_at) VALUES ('passport', :hash, :enc, 'E123*5678', 'John Smith', "
        ":phone, '137****7000', NULL, :now, :now)",
        {
            "hash": id_lookup_hash(SECRET, "passport", PASSPORT),
            "enc": crypto.encrypt(SECRET, PASSPORT),
            "phone": crypto.encrypt(SECRET, "13700137000"),
            "now": now,
        },
    )
    await _sql(
        url,
        "INSERT INTO admins (username, password_hash, name, title, phone, unit_id, level, active, "
        "created_at) VALUES ('root', :hash, '管理员', '科长', :phone, 'platform', 1, :yes, :now)",
        {"hash": PasswordHasher().hash(PASSWORD), "phone": ADMIN_PHONE, "yes": True, "now": now},
    )


async def test_0023_rewrites_existing_rows_and_the_features_still_work(fresh_url: str) -> None:
    config = alembic_config(fresh_url)
    for head in ScriptDirectory.from_config(config).get_heads():
        if head != "0030":  # 0030 (short document masks) follows 0023 on its branch
            await asyncio.to_thread(command.upgrade, config, head)  # the schema as it was before 0023
    await _people_before_0023(fresh_url)

    await asyncio.to_thread(upgrade, fresh_url, secret=SECRET)  # Alembic runs its own event loop
    citizen, foreigner = await _sql(
        fresh_url, "SELECT name_enc, name_masked, id_masked, phone_masked FROM citizens ORDER BY id"
    )
    assert (foreigner.id_masked, foreigner.name_masked) == ("E1*****78", "J*********")  # 0030
    assert crypto.decrypt(SECRET, citizen.name_enc) == NAME and NAME not in citizen.name_enc
    assert (citizen.name_masked, citizen.id_masked) == ("王**", "4401**********1235")
    [admin] = await _sql(fresh_url, "SELECT phone_enc, phone_masked FROM admins")
    assert crypto.decrypt(SECRET, admin.phone_enc) == ADMIN_PHONE and admin.phone_masked == "139****5678"
    for gone in ("SELECT birth_date FROM citizens", "SELECT name FROM citizens", "SELECT phone FROM admins"):
        with pytest.raises(sa.exc.DBAPIError):
            await _sql(fresh_url, gone)

    settings = Settings(env="test", database_url=fresh_url, secret_key=SECRET, log_level="WARNING")
    app = create_app(settings, run_jobs=False)
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                login = await client.post(
                    "/api/v1/admin/login", json={"username": "root", "password": PASSWORD}
                )
                assert login.status_code == 200, login.text
                admin_headers = {"Authorization": f"Bearer {login.json()['token']}"}
                admins = (await client.get("/api/v1/admin/admins", headers=admin_headers)).json()
                assert [a["phone"] for a in admins] == ["139****5678"]  # masked, as before
                found = await client.post(
                    "/api/v1/admin/citizens/lookup",
                    json={"id_type": "resident_id", "id_number": ID},
                    headers=admin_headers,
                )
                assert found.status_code == 200, found.text  # found by its ID hash
                assert found.json()["citizen"] == {
                    "id_type": "resident_id",
                    "id_number": ID,
                    "name": NAME,
                    "phone": PHONE,
                }
                me = await client.post(
                    "/api/v1/auth/dev/login",
                    json={"name": NAME, "id_type": "resident_id", "id_number": ID, "phone": PHONE},
                )
                assert me.json()["citizen"]["name"] == NAME
                [row] = await _sql(fresh_url, "SELECT count(*) FROM citizens")
                assert row[0] == 2  # the same record, found by its hash (and the passport's)
    finally:
        use_settings(Settings(env="test"))

    # And back: names, phones and birth dates in clear again.
    config.attributes["yuyue_secret"] = SECRET  # as `migrate.upgrade(secret=...)` hands it over
    await asyncio.to_thread(command.downgrade, config, "0023-1")
    [back] = await _sql(fresh_url, "SELECT name, birth_date FROM citizens WHERE id_type = 'resident_id'")
    assert back.name == NAME and str(back.birth_date) == "1990-01-01"
    [back_admin] = await _sql(fresh_url, "SELECT phone FROM admins")
    assert back_admin.phone == ADMIN_PHONE
