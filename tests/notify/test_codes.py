"""SMS verification codes for the phone number (rule M6): 6 digits, 5 minutes, at most 1 a
minute, 5 an hour and 10 a day per number and per client address, stored hashed, 5 wrong tries
burn a code. The windows run on the test clock."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Api, raw
from tests.notify.conftest import SECRET, sent
from yuyue.identity import service as identity


async def ask(api: Api, phone: str, client: httpx.AsyncClient | None = None) -> httpx.Response:
    return await (client or api.client).post("/api/v1/auth/phone/code", json={"phone": phone})


async def verify(api: Api, phone: str, code: str) -> httpx.Response:
    return await api.client.post("/api/v1/auth/phone/verify", json={"phone": phone, "code": code})


async def last_code(api: Api, phone: str) -> str:
    message = next(m for m in await sent(api) if m["kind"] == "code" and m["phone"] == phone)
    assert len(message["text"]) <= 70
    match = re.search(r"验证码(\d{6})，", message["text"])
    assert match, message["text"]
    return match.group(1)


def other_client(api: Api, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=api.app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_code_is_sent_hashed_and_verifies_once(api: Api) -> None:
    answer = await ask(api, "13812345678")
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    assert body == {"phone": "138****5678", "expires_at": "2026-12-01T10:05:00+08:00", "length": 6} or (
        body["phone"] == "138****5678" and body["expires_at"].startswith("2026-12-01T10:05:")
    )
    code = await last_code(api, "13812345678")
    rows = await raw(api, "SELECT code_hash, phone_hash FROM phone_codes")
    assert len(rows) == 1 and code not in rows[0].code_hash and "13812345678" not in rows[0].phone_hash
    assert code not in str(await raw(api, "SELECT params FROM messages"))  # the outbox holds it encrypted
    ok = await verify(api, "13812345678", code)
    assert ok.status_code == 200, ok.text
    token = ok.json()["phone_token"]
    assert ok.json()["verified"] is True
    assert identity.phone_confirmed(SECRET, token, "13812345678")
    assert not identity.phone_confirmed(SECRET, token, "13900000000")
    again = await verify(api, "13812345678", code)  # used up
    assert again.status_code == 422 and again.json()["code"] == "invalid_code"


async def test_code_expires_after_five_minutes(api: Api) -> None:
    await ask(api, "13812345678")
    code = await last_code(api, "13812345678")
    await api.set_clock("2026-12-01T10:06:00+08:00")
    assert (await verify(api, "13812345678", code)).json()["code"] == "invalid_code"


async def test_five_wrong_tries_burn_the_code(api: Api) -> None:
    await ask(api, "13812345678")
    code = await last_code(api, "13812345678")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        answer = await verify(api, "13812345678", wrong)
        assert answer.status_code == 422 and answer.json()["code"] == "invalid_code"
    assert (await raw(api, "SELECT tries FROM phone_codes"))[0][0] == 4  # wrong tries are kept
    assert (await verify(api, "13812345678", code)).status_code == 200  # 4 wrong: still good
    await api.set_clock("2026-12-01T10:01:00+08:00")
    await ask(api, "13812345678")
    code = await last_code(api, "13812345678")
    for _ in range(5):
        await verify(api, "13812345678", wrong)
    assert (await verify(api, "13812345678", code)).json()["code"] == "invalid_code"  # burnt


async def test_one_code_a_minute_five_an_hour_ten_a_day_per_number(api: Api) -> None:
    phone = "13812345678"
    statuses = []
    for minute in range(0, 60, 10):  # 10:00, 10:10 … 10:50: six asks in one hour
        await api.set_clock(f"2026-12-01T10:{minute:02d}:00+08:00")
        first = await ask(api, phone)
        second = await ask(api, phone)  # the same minute
        statuses.append((first.status_code, second.status_code))
    assert statuses[:5] == [(201, 429)] * 5
    assert statuses[5] == (429, 429)  # the 6th in the hour
    limited = await ask(api, phone)
    assert limited.json()["code"] == "rate_limited" and limited.json()["retry_after_s"] > 0
    await api.set_clock("2026-12-01T11:00:00+08:00")
    assert [(await ask(api, phone)).status_code for _ in range(1)] == [201]
    for hour, expected in ((12, 201), (13, 201), (14, 201), (15, 201), (16, 429)):  # 10 a day
        await api.set_clock(f"2026-12-01T{hour}:00:00+08:00")
        assert (await ask(api, phone)).status_code == expected, hour
    await api.set_clock("2026-12-02T00:00:00+08:00")  # a new day
    assert (await ask(api, phone)).status_code == 201
    assert len([m for m in await sent(api) if m["kind"] == "code"]) == 11


async def test_limits_per_client_address(api: Api) -> None:
    async with other_client(api, "203.0.113.7") as client, other_client(api, "203.0.113.8") as another:
        assert (await ask(api, "13800000001", client)).status_code == 201
        refused = await ask(api, "13800000002", client)  # another number, same client, same minute
        assert refused.status_code == 429 and "client" in refused.json()["detail"]
        assert (await ask(api, "13800000002", another)).status_code == 201  # another client


async def test_bad_phone_is_a_validation_error(api: Api) -> None:
    answer = await ask(api, "12345")
    assert answer.status_code == 422 and answer.json()["code"] == "validation_error"
    extra = await api.client.post("/api/v1/auth/phone/code", json={"phone": "13812345678", "x": 1})
    assert extra.status_code == 422
