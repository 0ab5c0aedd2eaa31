"""What a login may book (decision 0065): the foreigner login books foreigner-related services only
(rules T2, G8); a legal person's agent books for the account's own company (decision 0061, rule
M10's per-USCC reading). Everything through HTTP, logins through the fake providers."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, raw
from tests.identity.conftest import FakeProvider, confirmed_phone
from yuyue.kit.idnumbers import uscc_check_char

ID = "440106199001011235"
ID2 = "440106198505055675"
USCC = "91440101MA5CXXXX08"
OTHER_USCC = "91440101MA5CYYYY0" + uscc_check_char("91440101MA5CYYYY0")
COMPANY = "广州某某有限公司"
PASSPORT = "E12345678"
LEGAL_PERSON = {
    "user_type": "2",
    "corp_name": COMPANY,
    "corp_uscc": USCC,
    "agent_name": "王五",
    "agent_cert_type": "111",
    "agent_cert_no": ID2,
    "agent_mobile": "13900139002",
    "real_name_status": "1",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def foreigner(api: Api, phone: str = "13700137000", id_number: str = PASSPORT) -> dict[str, str]:
    """Rule G8: passport and an SMS-confirmed phone (rule M6), no provincial login."""
    body = {"name": "John Smith", "id_type": "passport", "id_number": id_number, "phone": phone}
    token = await confirmed_phone(api, phone)
    response = await api.client.post("/api/v1/auth/foreigner/login", json={**body, "phone_token": token})
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


async def guangdong(api: Api, idp: FakeProvider, user: dict[str, Any]) -> dict[str, str]:
    started = (await api.client.post("/api/v1/auth/guangdong/start")).json()
    code = idp.authorize(started["authorize_url"], user)
    response = await api.client.post(
        "/api/v1/auth/guangdong/finish", json={"code": code, "state": started["state"]}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


async def open_slots(api: Api, service_id: int) -> list[str]:
    return [s["id"] for s in await api.slots(service_id) if s["status"] == "open"]


async def test_service_flag_is_set_by_admins_and_shown_publicly(api: Api) -> None:
    await api.hall()
    plain = await api.service()
    assert plain["foreigner_related"] is False
    flagged = await api.service(name="外国人工作许可", foreigner_related=True)
    assert flagged["foreigner_related"] is True
    public = (await api.client.get("/api/v1/halls/hall-a/services")).json()
    assert {s["id"]: s["foreigner_related"] for s in public} == {plain["id"]: False, flagged["id"]: True}
    patched = await api.client.patch(
        f"/api/v1/admin/services/{plain['id']}", json={"foreigner_related": True}, headers=api.admin()
    )
    assert patched.status_code == 200 and patched.json()["foreigner_related"] is True
    got = await api.client.get(f"/api/v1/admin/services/{plain['id']}", headers=api.admin())
    assert got.json()["foreigner_related"] is True
    bad = await api.client.patch(
        f"/api/v1/admin/services/{plain['id']}", json={"foreigner_related": "yes"}, headers=api.admin()
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"


async def test_foreigner_login_books_foreigner_related_business_only(api: Api) -> None:
    """Rules T2/G8: the exemption from the provincial login covers foreigner-related business only."""
    await api.hall()
    plain = await api.service()
    flagged = await api.service(name="外国人工作许可", foreigner_related=True)
    guest = await foreigner(api)
    refused = await api.book(guest, (await open_slots(api, plain["id"]))[0])
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "provincial_login_required"
    assert "provincial" in refused.json()["detail"]
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0
    assert (await raw(api, "SELECT coalesce(sum(booked), 0) FROM slots"))[0][0] == 0
    booked = await api.book(guest, (await open_slots(api, flagged["id"]))[0])
    assert booked.status_code == 201, booked.text
    # Citizens of the provincial-style logins book both kinds.
    citizen = await api.login(ID)
    for service in (plain, flagged):
        response = await api.book(citizen, (await open_slots(api, service["id"]))[0])
        assert response.status_code == 201, response.text


async def test_foreigner_login_may_not_queue_for_other_business(api: Api) -> None:
    await api.hall()
    plain = await api.service(daily_capacity=0)  # nothing open: queueing is what is left
    flagged = await api.service(name="外国人工作许可", daily_capacity=0, foreigner_related=True)
    guest = await foreigner(api)
    refused = await api.client.post(
        "/api/v1/waitlist", json={"service_id": plain["id"], "dates": None, "channel": "web"}, headers=guest
    )
    assert refused.status_code == 403 and refused.json()["code"] == "provincial_login_required"
    joined = await api.client.post(
        "/api/v1/waitlist", json={"service_id": flagged["id"], "dates": None, "channel": "web"}, headers=guest
    )
    assert joined.status_code == 201, joined.text
    assert (await raw(api, "SELECT service_id FROM waitlist_entries")) == [(flagged["id"],)]


async def test_reschedule_after_the_flag_is_cleared_is_refused(api: Api) -> None:
    await api.hall()
    flagged = await api.service(name="外国人工作许可", foreigner_related=True)
    guest = await foreigner(api)
    first, second = (await open_slots(api, flagged["id"]))[:2]
    booking = (await api.book(guest, first)).json()
    cleared = await api.client.patch(
        f"/api/v1/admin/services/{flagged['id']}", json={"foreigner_related": False}, headers=api.admin()
    )
    assert cleared.status_code == 200
    moved = await api.client.post(
        f"/api/v1/appointments/{booking['number']}/reschedule", json={"slot_id": second}, headers=guest
    )
    assert moved.status_code == 403 and moved.json()["code"] == "provincial_login_required"
    assert (await raw(api, "SELECT slot_id FROM bookings")) == [(first,)]
    cancelled = await api.client.post(f"/api/v1/appointments/{booking['number']}/cancel", headers=guest)
    assert cancelled.status_code == 200  # what was booked can always be cancelled


async def test_the_session_decides_not_the_document(api: Api, fake_idp: FakeProvider) -> None:
    """One citizen record per passport, whichever way its holder logs in: through the province
    (certificate type 414) any service; through the foreigner login, foreigner business only."""
    await api.hall()
    plain = await api.service()
    user = {
        "user_type": "1",
        "name": "John Smith",
        "cert_type": "414",
        "cert_no": PASSPORT,
        "mobile": "13700137000",
        "real_name_status": "1",
    }
    provincial = await guangdong(api, fake_idp, user)
    guest = await foreigner(api)
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 1
    slot = (await open_slots(api, plain["id"]))[0]
    refused = await api.book(guest, slot)
    assert refused.status_code == 403 and refused.json()["code"] == "provincial_login_required"
    booked = await api.book(provincial, slot)
    assert booked.status_code == 201, booked.text


async def test_legal_person_books_for_its_own_company(api: Api, fake_idp: FakeProvider) -> None:
    await api.hall()
    service = await api.service()
    agent = await guangdong(api, fake_idp, LEGAL_PERSON)
    slots = await open_slots(api, service["id"])
    other = await api.book(agent, slots[0], company={"uscc": OTHER_USCC, "name": "别的公司"})
    assert other.status_code == 422 and other.json()["code"] == "company_mismatch"
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0
    booked = await api.book(agent, slots[0])  # no company given: the account's own
    assert booked.status_code == 201, booked.text
    assert booked.json()["company"] == {"uscc": USCC, "name": COMPANY}
    assert (await raw(api, "SELECT company_uscc, company_name FROM bookings")) == [(USCC, COMPANY)]


async def test_legal_person_naming_its_own_uscc_keeps_the_registered_name(
    api: Api, fake_idp: FakeProvider
) -> None:
    await api.hall()
    service = await api.service()
    agent = await guangdong(api, fake_idp, LEGAL_PERSON)
    slot = (await open_slots(api, service["id"]))[0]
    booked = await api.book(agent, slot, company={"uscc": USCC.lower(), "name": "某某公司"})
    assert booked.status_code == 201, booked.text
    assert booked.json()["company"] == {"uscc": USCC, "name": COMPANY}


async def test_legal_person_daily_limit_counts_per_uscc(api: Api, fake_idp: FakeProvider) -> None:
    """Rule M10: one booking per day per company agent (USCC); the same person's own account books
    for themselves beside it, and a personal account still names a company only if it wants."""
    await api.hall()
    await api.policy("hall-a", "gz-medical-insurance")
    first = await api.service()
    second = await api.service(name="单位参保登记")
    agent = await guangdong(api, fake_idp, LEGAL_PERSON)
    day = (await open_slots(api, first["id"]))[0][-12:-4]
    on_day = [s for s in await open_slots(api, first["id"]) if s[-12:-4] == day]
    assert (await api.book(agent, on_day[0])).status_code == 201
    again = await api.book(agent, [s for s in await open_slots(api, second["id"]) if s[-12:-4] == day][0])
    assert again.status_code == 409 and again.json()["code"] == "daily_limit"
    person = await guangdong(
        api,
        fake_idp,
        {
            "user_type": "1",
            "name": "王五",
            "cert_type": "111",
            "cert_no": ID2,
            "mobile": "13900139002",
            "real_name_status": "1",
        },
    )
    own = await api.book(person, on_day[1])
    assert own.status_code == 201, own.text
    assert own.json()["company"] is None
    citizen = await api.login(ID)
    named = await api.book(citizen, on_day[2], company={"uscc": OTHER_USCC, "name": "别的公司"})
    assert named.status_code == 201 and named.json()["company"] == {"uscc": OTHER_USCC, "name": "别的公司"}
