"""Personal data (issue 9): encryption-key rotation with re-encryption, retention anonymisation,
and the address/citizen rate limits with Retry-After."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.fernet import InvalidToken

from tests.conftest import START, Api, raw
from yuyue.app import create_app
from yuyue.config import Settings
from yuyue.identity import service as identity
from yuyue.kit import crypto

ID = "440106199001011235"
USCC = "91440101MA5CXXXX08"
NEW_KEY = "a-brand-new-data-key-0123456789abcdef"


async def test_key_rotation_reencrypts_and_old_data_stays_readable(api: Api, settings: Settings) -> None:
    headers = await api.login(ID)
    await api.hall()
    service = await api.service()
    slot = (await api.slots(service["id"], "2026-12-03"))[0]
    assert (await api.book(headers, slot["id"])).status_code == 201  # its SMS waits in the outbox
    old_enc = (await raw(api, "SELECT id_enc FROM citizens"))[0][0]
    try:
        crypto.configure([NEW_KEY])  # what YUYUE_DATA_KEYS does at start-up
        me = await api.client.get("/api/v1/me", headers=headers)  # old rows decrypt under the ring
        assert me.json()["citizen"]["id_number"] == ID
        assert not crypto.is_current(settings.effective_secret, old_enc)
        async with api.app.state.sessionmaker() as session:
            assert await identity.reencrypt(session, settings.effective_secret) == 3  # citizen, SMS, admin
            await session.commit()
        new_enc, phone_enc = (await raw(api, "SELECT id_enc, phone_enc FROM citizens"))[0]
        assert new_enc != old_enc and crypto.is_current(settings.effective_secret, new_enc)
        crypto.configure(["x" * 40, NEW_KEY])  # another rotation: "x"*40 is now the newest
        assert crypto.decrypt(settings.effective_secret, phone_enc) == "13800138000"
        async with api.app.state.sessionmaker() as session:
            assert await identity.reencrypt(session, settings.effective_secret) == 3  # newest moved on
            await session.commit()
        crypto.configure(["x" * 40])
        outbox = (await raw(api, "SELECT phone_enc FROM messages WHERE kind = 'booked'"))[0][0]
        assert crypto.decrypt(settings.effective_secret, outbox) == "13800138000"  # still sendable
        # NEW_KEY retired: the rows were moved on to "x"*40, so they still read
        assert (await api.client.get("/api/v1/me", headers=headers)).json()["citizen"]["id_number"] == ID
        with pytest.raises(InvalidToken):
            crypto.decrypt(settings.effective_secret, new_enc)  # proof that the row had to move
    finally:
        crypto.configure([])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A retention of 2 days: the test clock moves a week, not five (each day moved runs every
    15-minute job, one transaction each)."""
    return settings.model_copy(update={"retention_days": 2})


async def test_retention_anonymises_old_bookings_and_citizens(api: Api) -> None:
    """Bookings older than YUYUE_RETENTION_DAYS (2 in this module) lose personal details; a citizen
    with nothing inside the period is anonymised; the job runs as the clock moves."""
    await api.hall()
    service = await api.service()
    slot = (await api.slots(service["id"], "2026-12-03"))[0]
    headers = await api.login(ID)
    booked = await api.book(headers, slot["id"], company={"uscc": USCC, "name": "广州某某有限公司"})
    assert booked.status_code == 201, booked.text
    cancelled = await api.client.post(
        f"/api/v1/appointments/{booked.json()['number']}/cancel", headers=headers
    )
    assert cancelled.status_code == 200
    await raw(api, "SELECT 1")
    # make the session old as well (sessions run on real time)
    async with api.app.state.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE citizen_sessions SET created_at = '2026-01-01 00:00:00'"))
    # the slot is on 12-03: on 12-04 the 03:40 run keeps it (cut-off 12-02), on 12-07 it does not
    await api.set_clock(START + timedelta(days=3))
    assert (await raw(api, "SELECT company_uscc FROM bookings"))[0][0] == USCC  # inside the period
    citizen = (await raw(api, "SELECT id_type FROM citizens"))[0]
    assert citizen[0] != "anonymised"  # a booking inside the period keeps the citizen
    await api.set_clock(START + timedelta(days=6))
    assert [tuple(r) for r in await raw(api, "SELECT company_uscc, company_name FROM bookings")] == [
        (None, None)
    ]
    citizen = (await raw(api, "SELECT id_type, name_masked, id_masked, phone_masked FROM citizens"))[0]
    assert tuple(citizen) == ("anonymised", "*", "", "")
    again = await api.login(ID)  # the person may come back: a new record
    me = await api.client.get("/api/v1/me", headers=again)
    assert me.json()["citizen"]["id_number"] == ID
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 2


async def test_address_and_citizen_limits_answer_429_with_retry_after(database_url: str) -> None:
    settings = Settings(
        env="test",
        database_url=database_url,
        log_level="WARNING",
        rate_limit_address="8/minute",
        rate_limit_citizen="2/minute",
    )
    app = create_app(settings, run_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            login = await client.post(
                "/api/v1/auth/dev/login", json={"name": "张三", "id_number": ID, "phone": "13800138000"}
            )
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            body = {"slot_id": "1-202612030900", "channel": "web"}
            posts = [await client.post("/api/v1/appointments", json=body, headers=headers) for _ in range(3)]
            assert [p.status_code for p in posts][2] == 429  # the citizen's 3rd booking attempt
            assert posts[2].json()["code"] == "rate_limited" and int(posts[2].headers["Retry-After"]) >= 1
            others = [await client.get("/api/v1/units") for _ in range(5)]
            assert [o.status_code for o in others] == [200, 200, 200, 200, 429]  # 8 per address in all
            assert (await client.get("/healthz")).status_code == 200  # health probes are never limited
    off = Settings(
        env="test",
        database_url=database_url,
        log_level="WARNING",
        rate_limits="off",
        rate_limit_address="1/minute",
    )
    app = create_app(off, run_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert {(await client.get("/api/v1/units")).status_code for _ in range(3)} == {200}


async def test_names_and_admin_phones_are_stored_encrypted_and_no_birth_date(
    api: Api, settings: Settings
) -> None:
    """Issue 19, decision 0095: a login stores the name encrypted (answers to others show `张*`,
    the owner sees it whole), no birth date beside the masked ID; a registered admin's mobile is
    stored encrypted and listed masked."""
    headers = await api.login(ID, name="欧阳小明", phone="13800138001")
    row = (await raw(api, "SELECT * FROM citizens"))[0]._mapping
    assert "birth_date" not in row and "name" not in row
    assert "欧阳" not in str(dict(row)) and "19900101" not in str(dict(row))
    assert crypto.decrypt(settings.effective_secret, row["name_enc"]) == "欧阳小明"
    assert row["name_masked"] == "欧***"
    assert (await api.client.get("/api/v1/me", headers=headers)).json()["citizen"]["name"] == "欧阳小明"
    await api.hall()
    service = await api.service()
    slot = (await api.slots(service["id"], "2026-12-03"))[0]
    booked = await api.book(headers, slot["id"])
    assert booked.json()["applicant"]["name"] == "欧***"

    created = await api.client.post(
        "/api/v1/admin/admins",
        json={
            "username": "district-l1",
            "password": "district-admin-2026",
            "name": "陈主任",
            "title": "主任",
            "phone": "13912345678",
            "unit_id": "platform",
            "level": 2,
        },
        headers=api.admin(),
    )
    assert created.status_code == 201, created.text
    assert created.json()["phone"] == "139****5678"
    admin = (await raw(api, "SELECT * FROM admins WHERE username = 'district-l1'"))[0]._mapping
    assert "phone" not in admin and "13912345678" not in str(dict(admin))
    assert crypto.decrypt(settings.effective_secret, admin["phone_enc"]) == "13912345678"
