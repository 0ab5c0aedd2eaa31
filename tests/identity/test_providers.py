"""Identity providers (issue 9, rules T2/G8): OpenID Connect and the Guangdong unified identity flow
against local fake providers with real signed tokens; foreigners; sessions and logout."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import ValidationError

from tests.conftest import Api, raw
from tests.identity.conftest import FakeProvider, confirmed_phone
from yuyue.config import Settings

ID = "440106199001011235"
ID2 = "440106198505055675"
USCC = "91440101MA5CXXXX08"
OIDC_USER = {
    "name": "李四",
    "id_number": ID,
    "id_type": "resident_id",
    "phone_number": "+8613800138001",
    "real_name_verified": True,
}
GD_USER = {
    "user_type": "1",
    "name": "王五",
    "cert_type": "111",
    "cert_no": ID2,
    "mobile": "13900139002",
    "real_name_status": "1",
}


async def _start(api: Api, provider: str) -> dict[str, Any]:
    response = await api.client.post(f"/api/v1/auth/{provider}/start")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _finish(api: Api, provider: str, code: str, state: str) -> Any:
    return await api.client.post(f"/api/v1/auth/{provider}/finish", json={"code": code, "state": state})


async def test_oidc_login_with_pkce_state_and_nonce(api: Api, fake_idp: FakeProvider) -> None:
    """Rule T2: code + PKCE (the fake refuses a wrong verifier), nonce bound into the ID token."""
    started = await _start(api, "oidc")
    query = parse_qs(urlparse(started["authorize_url"]).query)
    assert query["state"] == [started["state"]] and query["code_challenge_method"] == ["S256"]
    assert query["nonce"][0] and query["code_challenge"][0]
    code = fake_idp.authorize(started["authorize_url"], OIDC_USER)
    response = await _finish(api, "oidc", code, started["state"])
    assert response.status_code == 200, response.text
    assert response.json()["citizen"] == {
        "id_type": "resident_id",
        "id_number": ID,
        "name": "李四",
        "phone": "13800138001",
    }
    me = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {response.json()['token']}"})
    assert me.status_code == 200 and me.json()["citizen"]["id_number"] == ID


@pytest.mark.parametrize(
    "tweak",
    [{"rogue": True}, {"aud": "someone-else"}, {"ttl": -120}, {"nonce": "not-the-one-we-sent"}],
    ids=["bad-signature", "wrong-audience", "expired", "wrong-nonce"],
)
async def test_oidc_refuses_bad_id_tokens(api: Api, fake_idp: FakeProvider, tweak: dict[str, Any]) -> None:
    started = await _start(api, "oidc")
    code = fake_idp.authorize(started["authorize_url"], OIDC_USER, **tweak)
    response = await _finish(api, "oidc", code, started["state"])
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "login_failed"
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 0


async def test_replayed_state_is_refused(api: Api, fake_idp: FakeProvider) -> None:
    started = await _start(api, "oidc")
    first = await _finish(
        api, "oidc", fake_idp.authorize(started["authorize_url"], OIDC_USER), started["state"]
    )
    assert first.status_code == 200
    again = await _finish(
        api, "oidc", fake_idp.authorize(started["authorize_url"], OIDC_USER), started["state"]
    )
    assert again.status_code == 401 and again.json()["code"] == "login_failed"
    assert "already used" in again.json()["detail"]


async def test_forged_or_foreign_state_is_refused(api: Api, fake_idp: FakeProvider) -> None:
    started = await _start(api, "oidc")
    code = fake_idp.authorize(started["authorize_url"], OIDC_USER)
    forged = await _finish(api, "oidc", code, started["state"][:-4] + "AAAA")
    assert forged.status_code == 401
    other = await _start(api, "guangdong")  # a state made for another provider
    crossed = await _finish(api, "oidc", code, other["state"])
    assert crossed.status_code == 401


async def test_oidc_refuses_accounts_not_real_name_verified(api: Api, fake_idp: FakeProvider) -> None:
    started = await _start(api, "oidc")
    code = fake_idp.authorize(started["authorize_url"], {**OIDC_USER, "real_name_verified": False})
    response = await _finish(api, "oidc", code, started["state"])
    assert response.status_code == 403 and response.json()["code"] == "not_real_name"


async def test_guangdong_person_login(api: Api, fake_idp: FakeProvider) -> None:
    started = await _start(api, "guangdong")
    code = fake_idp.authorize(started["authorize_url"], GD_USER)
    response = await _finish(api, "guangdong", code, started["state"])
    assert response.status_code == 200, response.text
    assert response.json()["citizen"] == {
        "id_type": "resident_id",
        "id_number": ID2,
        "name": "王五",
        "phone": "13900139002",
    }
    sessions = await raw(api, "SELECT provider, company_uscc FROM citizen_sessions")
    assert [tuple(s) for s in sessions] == [("guangdong", None)]


async def test_guangdong_legal_person_logs_in_as_its_agent(api: Api, fake_idp: FakeProvider) -> None:
    user = {
        "user_type": "2",
        "corp_name": "广州某某有限公司",
        "corp_uscc": USCC,
        "agent_name": "王五",
        "agent_cert_type": "111",
        "agent_cert_no": ID2,
        "agent_mobile": "13900139002",
        "real_name_status": "1",
    }
    started = await _start(api, "guangdong")
    response = await _finish(
        api, "guangdong", fake_idp.authorize(started["authorize_url"], user), started["state"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["citizen"]["name"] == "王五"
    sessions = await raw(api, "SELECT company_uscc, company_name FROM citizen_sessions")
    assert [tuple(s) for s in sessions] == [(USCC, "广州某某有限公司")]


@pytest.mark.parametrize(
    ("user", "tweak", "status", "code"),
    [
        ({**GD_USER, "real_name_status": "0"}, {}, 403, "not_real_name"),
        (GD_USER, {"aud": "someone-else"}, 401, "login_failed"),
        (GD_USER, {"ttl": -5}, 401, "login_failed"),
        ({**GD_USER, "cert_no": "440106199001011234"}, {}, 422, "invalid_id_number"),
    ],
    ids=["not-real-name", "wrong-audience", "expired", "bad-id-number"],
)
async def test_guangdong_refusals(
    api: Api, fake_idp: FakeProvider, user: dict[str, Any], tweak: dict[str, Any], status: int, code: str
) -> None:
    started = await _start(api, "guangdong")
    response = await _finish(
        api, "guangdong", fake_idp.authorize(started["authorize_url"], user, **tweak), started["state"]
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def test_guangdong_unknown_code_and_replayed_state(api: Api, fake_idp: FakeProvider) -> None:
    started = await _start(api, "guangdong")
    bad = await _finish(api, "guangdong", "never-issued", started["state"])
    assert bad.status_code == 401
    ok = await _finish(
        api, "guangdong", fake_idp.authorize(started["authorize_url"], GD_USER), started["state"]
    )
    assert ok.status_code == 200
    replay = await _finish(
        api, "guangdong", fake_idp.authorize(started["authorize_url"], GD_USER), started["state"]
    )
    assert replay.status_code == 401


async def test_logout_revokes_the_session(api: Api) -> None:
    headers = await api.login(ID)
    assert (await api.client.get("/api/v1/me", headers=headers)).status_code == 200
    assert (await api.client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    after = await api.client.get("/api/v1/me", headers=headers)
    assert after.status_code == 401 and after.json()["code"] == "unauthenticated"
    other = await api.login(ID)  # a new login opens a new session
    assert (await api.client.get("/api/v1/me", headers=other)).status_code == 200


async def test_foreigner_login_needs_a_confirmed_phone(api: Api) -> None:
    """Rule G8: passport or permit, no provincial login; the phone is confirmed by SMS (rule M6)."""
    body = {"name": "John Smith", "id_type": "passport", "id_number": "E12345678", "phone": "13700137000"}
    refused = await api.client.post("/api/v1/auth/foreigner/login", json={**body, "phone_token": "nope"})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_code"
    resident = await api.client.post(
        "/api/v1/auth/foreigner/login", json={**body, "id_type": "resident_id", "phone_token": "x"}
    )
    assert resident.status_code == 422
    token = await confirmed_phone(api, "13700137000")
    response = await api.client.post("/api/v1/auth/foreigner/login", json={**body, "phone_token": token})
    assert response.status_code == 200, response.text
    assert response.json()["citizen"]["id_type"] == "passport"


async def test_providers_listed(api: Api) -> None:
    response = await api.client.get("/api/v1/auth/providers")
    assert response.json() == {"providers": ["dev", "oidc", "guangdong", "foreigner"]}


def test_production_refuses_the_dev_provider() -> None:
    ok = {"secret_key": "s" * 40, "metrics_public": True, "allow_console_sms_in_production": True}
    with pytest.raises(ValidationError, match="dev identity provider"):
        Settings(env="production", identity_providers="dev,guangdong", **ok)
    with pytest.raises(ValidationError, match="needs"):
        Settings(env="production", identity_providers="guangdong", **ok)
    assert Settings(env="production", **ok).providers == ("foreigner",)


async def _next_code_window(api: Api) -> None:
    """One code a minute per client address (rule M6): move the test clock on. Phone tokens name
    their second of issue, which runs on real time: wait one, as the code limit makes anyone."""
    await asyncio.sleep(1.05)
    now = datetime.fromisoformat((await api.client.get("/api/v1/test/clock")).json()["now"])
    await api.set_clock(now + timedelta(minutes=2))


async def _foreigner(api: Api, number: str, phone: str, token: str) -> Any:
    body = {
        "name": "John Smith",
        "id_type": "passport",
        "id_number": number,
        "phone": phone,
        "phone_token": token,
    }
    return await api.client.post("/api/v1/auth/foreigner/login", json=body)


async def test_foreigner_login_cannot_take_over_a_passport_held_with_another_phone(api: Api) -> None:
    """A passport number is not a secret: someone who types another person's number with their own
    confirmed phone must not get that person's record and bookings, nor learn that the number is
    registered: the answer is the one a used-up phone token gets."""
    owner_phone, other_phone = "13700137000", "13600136000"
    owner = await _foreigner(api, "E12345678", owner_phone, await confirmed_phone(api, owner_phone))
    assert owner.status_code == 200, owner.text
    await _next_code_window(api)
    other_token = await confirmed_phone(api, other_phone)
    intruder = await _foreigner(api, "E12345678", other_phone, other_token)
    assert intruder.status_code == 422 and intruder.json()["code"] == "invalid_code"
    # the same answer as a token already used (which it now is): nothing tells the two apart
    replay = await _foreigner(api, "E99999999", other_phone, other_token)
    assert {k: v for k, v in replay.json().items() if k != "instance"} == {
        k: v for k, v in intruder.json().items() if k != "instance"
    }
    await _next_code_window(api)
    again = await _foreigner(api, "E12345678", owner_phone, await confirmed_phone(api, owner_phone))
    assert again.status_code == 200 and again.json()["citizen"] == owner.json()["citizen"]
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 1


async def test_foreigner_phone_token_is_single_use_and_bound_to_its_document(api: Api) -> None:
    phone = "13700137001"
    token = await confirmed_phone(api, phone)
    assert (await _foreigner(api, "E10000001", phone, token)).status_code == 200
    for number in ("E10000001", "E10000002"):  # neither the same login again nor another document
        reused = await _foreigner(api, number, phone, token)
        assert reused.status_code == 422 and reused.json()["code"] == "invalid_code"
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 1


async def test_one_phone_holds_at_most_three_documents(api: Api) -> None:
    phone = "13700137002"
    for n in range(3):
        answer = await _foreigner(api, f"E2000000{n}", phone, await confirmed_phone(api, phone))
        assert answer.status_code == 200, answer.text
        await _next_code_window(api)
    fourth = await _foreigner(api, "E20000009", phone, await confirmed_phone(api, phone))
    assert fourth.status_code == 422 and fourth.json()["code"] == "phone_document_limit"
    await _next_code_window(api)
    # a document the phone already holds still logs in
    assert (await _foreigner(api, "E20000001", phone, await confirmed_phone(api, phone))).status_code == 200
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 3
    assert (await raw(api, "SELECT count(*) FROM foreigner_phones"))[0][0] == 3


async def test_oidc_userinfo_about_someone_else_is_refused(api: Api, fake_idp: FakeProvider) -> None:
    """OpenID Connect Core §5.3.2: UserInfo's `sub` must be the ID token's."""
    started = await _start(api, "oidc")
    code = fake_idp.authorize(started["authorize_url"], OIDC_USER, userinfo={"sub": "u-someone-else"})
    response = await _finish(api, "oidc", code, started["state"])
    assert response.status_code == 401 and response.json()["code"] == "login_failed"
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 0


async def test_oidc_claims_from_userinfo_fill_the_id_token(api: Api, fake_idp: FakeProvider) -> None:
    started = await _start(api, "oidc")
    slim = {"id_number": ID}  # the ID token names the person; the rest is in UserInfo
    rest = {k: v for k, v in OIDC_USER.items() if k != "id_number"}
    code = fake_idp.authorize(started["authorize_url"], slim, userinfo={"sub": f"u-{ID}", **rest})
    response = await _finish(api, "oidc", code, started["state"])
    assert response.status_code == 200, response.text
    assert response.json()["citizen"]["name"] == "李四"
