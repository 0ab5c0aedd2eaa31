"""Partner channel API (issue 9, rules T1, M1): registration by platform admins, HMAC-signed requests
with timestamp and nonce, replay refusal, channel on every booking, per-client limits, key rotation."""

from __future__ import annotations

import asyncio
import time

from tests.channels.conftest import Partner, register
from tests.conftest import ADMIN_PASSWORD, Api, raw
from yuyue.admin.accounts import create_admin

ID = "440106199001011235"
CITIZEN = {"name": "李四", "id_type": "resident_id", "id_number": ID, "phone": "13800138001"}


async def _setup(api: Api) -> tuple[Partner, str]:
    await api.hall()
    service = await api.service()
    slot = (await api.slots(service["id"], "2026-12-03"))[0]
    partner = await register(api)
    login = await partner.call("POST", "/api/v1/channel/citizens/login", CITIZEN)
    assert login.status_code == 200, login.text
    assert login.json()["citizen"]["id_number"] == "4401**********1235"  # masked for the partner
    partner.citizen_token = login.json()["token"]
    return partner, slot["id"]


async def test_partner_books_with_its_channel_recorded(api: Api) -> None:
    """Rule T1: the booking's channel is the client's, and the client is recorded."""
    partner, slot_id = await _setup(api)
    booked = await partner.call("POST", "/api/v1/channel/appointments", {"slot_id": slot_id})
    assert booked.status_code == 201, booked.text
    assert booked.json()["channel"] == "wechat"
    number = booked.json()["number"]
    assert [tuple(r) for r in await raw(api, "SELECT number, client_id FROM channel_bookings")] == [
        (number, "wechat-gz")
    ]
    listed = await partner.call("GET", "/api/v1/channel/appointments")
    assert [b["number"] for b in listed.json()] == [number]
    cancelled = await partner.call("POST", f"/api/v1/channel/appointments/{number}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_a_partner_cannot_book_the_on_site_share(api: Api) -> None:
    """Rule G10 (docs/rules.md "On-site booking"): a partner books on its own channel only; asking for
    `onsite` is not part of its contract (422, nothing booked), and today's slots, which only on-site
    booking takes, are closed to it."""
    partner, _ = await _setup(api)
    service_id = (await raw(api, "SELECT id FROM services"))[0][0]
    today = f"{service_id}-202612011000"  # under way at START: on site only
    path = "/api/v1/channel/appointments"
    asked = await partner.call("POST", path, {"slot_id": today, "channel": "onsite"})
    assert asked.status_code == 422 and asked.json()["code"] == "validation_error", asked.text
    plain = await partner.call("POST", "/api/v1/channel/appointments", {"slot_id": today})
    assert plain.status_code == 422 and plain.json()["code"] == "booking_closed", plain.text
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0


async def test_replayed_request_is_refused_even_after_a_failure(api: Api) -> None:
    partner, slot_id = await _setup(api)
    body = b'{"slot_id": "nonexistent-202612030900"}'
    path = "/api/v1/channel/appointments"
    headers = partner.headers("POST", path, body, nonce="n" * 20)
    first = await api.client.post(path, content=body, headers=headers)
    assert first.status_code in (404, 422), first.text
    replay = await api.client.post(path, content=body, headers=headers)
    assert replay.status_code == 401 and replay.json()["code"] == "replayed_request"


async def test_concurrent_replays_only_one_passes(api: Api) -> None:
    partner, _ = await _setup(api)
    path = "/api/v1/channel/appointments"
    headers = partner.headers("GET", path, b"", nonce="race-nonce-0123456789")
    answers = await asyncio.gather(*(api.client.get(path, headers=headers) for _ in range(12)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 11


async def test_bad_signature_stale_timestamp_and_tampered_body(api: Api) -> None:
    partner, slot_id = await _setup(api)
    path = "/api/v1/channel/appointments"
    body = f'{{"slot_id": "{slot_id}"}}'.encode()
    headers = partner.headers("POST", path, body)
    tampered = await api.client.post(path, content=body.replace(b"}", b', "quantity": 2}'), headers=headers)
    assert tampered.status_code == 401
    stale = partner.headers("POST", path, body, timestamp=int(time.time()) - 3600)
    assert (await api.client.post(path, content=body, headers=stale)).status_code == 401
    wrong = Partner(api, partner.key_id, "not-the-secret")
    wrong.citizen_token = partner.citizen_token
    assert (await wrong.call("POST", path, {"slot_id": slot_id})).status_code == 401
    unsigned = await api.client.post(
        path, content=body, headers={"Authorization": f"Bearer {partner.citizen_token}"}
    )
    assert unsigned.status_code == 401
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0


async def test_tokens_are_bound_to_their_client_and_scopes_enforced(api: Api) -> None:
    partner, slot_id = await _setup(api)
    other = await register(api, "suihaoban", "app", scopes=["bookings:read"])
    other.citizen_token = partner.citizen_token  # a token issued to wechat-gz
    assert (await other.call("GET", "/api/v1/channel/appointments")).status_code == 401
    own = await other.call("POST", "/api/v1/channel/citizens/login", CITIZEN)
    assert own.status_code == 403 and own.json()["code"] == "forbidden"  # lacks citizens:login
    web = await api.login(ID)  # a citizen's own web token is not a partner token
    other.citizen_token = web["Authorization"].split()[1]
    assert (await other.call("GET", "/api/v1/channel/appointments")).status_code == 401


async def test_an_ended_partner_session_is_refused_before_anything(api: Api) -> None:
    """A citizen token the partner obtained stops working once its session ends: no booking, no
    list, 401 (the session row is read once, for the client and for the end)."""
    partner, slot_id = await _setup(api)
    ended = await api.client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {partner.citizen_token}"}
    )
    assert ended.status_code == 204, ended.text
    for method, path, body in (
        ("POST", "/api/v1/channel/appointments", {"slot_id": slot_id}),
        ("GET", "/api/v1/channel/appointments", None),
    ):
        answer = await partner.call(method, path, body)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated", answer.text
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0


async def test_key_rotation_with_grace_and_revocation(api: Api) -> None:
    partner, _ = await _setup(api)
    rotated = await api.client.post(
        "/api/v1/admin/api-clients/wechat-gz/keys", json={"grace_hours": 0}, headers=api.admin()
    )
    assert rotated.status_code == 201
    # grace 0: the old key has expired at once; the new one works
    assert (await partner.call("GET", "/api/v1/channel/appointments")).status_code == 401
    fresh = Partner(api, rotated.json()["id"], rotated.json()["secret"])
    fresh.citizen_token = partner.citizen_token
    assert (await fresh.call("GET", "/api/v1/channel/appointments")).status_code == 200
    again = await api.client.post("/api/v1/admin/api-clients/wechat-gz/keys", headers=api.admin())
    assert (await fresh.call("GET", "/api/v1/channel/appointments")).status_code == 200  # 24 h grace
    revoked = await api.client.delete(
        f"/api/v1/admin/api-clients/wechat-gz/keys/{fresh.key_id}", headers=api.admin()
    )
    assert revoked.status_code == 204
    assert (await fresh.call("GET", "/api/v1/channel/appointments")).status_code == 401
    listed = await api.client.get("/api/v1/admin/api-clients", headers=api.admin())
    assert len(listed.json()[0]["keys"]) == 3 and "secret" not in str(listed.json())
    assert again.json()["id"] in {k["id"] for k in listed.json()[0]["keys"]}
    audit = await api.client.get("/api/v1/admin/audit", headers=api.admin())
    actions = {a["action"] for a in audit.json()}
    assert {"api_client.create", "api_client.rotate_key", "api_client.revoke_key"} <= actions


async def test_per_client_rate_limit(api: Api) -> None:
    await _setup(api)
    slow = await register(api, "portal", "provincial_portal", rate_per_minute=3)
    answers = [await slow.call("GET", "/api/v1/channel/appointments") for _ in range(5)]
    # no citizen token: 401 while inside the limit, then 429 with Retry-After
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert answers[-1].json()["code"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60


async def test_only_platform_admins_register_clients(api: Api) -> None:
    async with api.app.state.sessionmaker() as session:
        await create_admin(
            session,
            username="p2",
            password=ADMIN_PASSWORD,
            name="二级",
            title="平台二级",
            phone="13800000001",
            unit_id="platform",
            level=2,
        )
        await session.commit()
    login = await api.client.post("/api/v1/admin/login", json={"username": "p2", "password": ADMIN_PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    body = {"id": "x-app", "name": "x", "channel": "app", "scopes": ["bookings:read"]}
    assert (await api.client.post("/api/v1/admin/api-clients", json=body, headers=headers)).status_code == 403
    assert (await api.client.post("/api/v1/admin/api-clients", json=body)).status_code == 401
    unknown = await api.client.post(
        "/api/v1/admin/api-clients", json={**body, "extra": 1}, headers=api.admin()
    )
    assert unknown.status_code == 422


async def test_a_partner_token_works_only_on_its_partners_signed_requests(api: Api) -> None:
    """Issue 19, decision 0094: a citizen token a partner obtained is refused on the citizen's own
    routes (no signature there), and it travels under the signature: a token added to a request
    signed without it, or swapped for another, breaks the signature. Nothing is booked."""
    partner, slot_id = await _setup(api)
    bearer = {"Authorization": f"Bearer {partner.citizen_token}"}
    for method, path, body in (
        ("GET", "/api/v1/me", None),
        ("GET", "/api/v1/appointments", None),
        ("POST", "/api/v1/appointments", {"slot_id": slot_id, "channel": "web"}),
        ("POST", "/api/v1/waitlist", {"service_id": 1, "dates": None, "channel": "web"}),
    ):
        answer = await api.client.request(method, path, json=body, headers=bearer)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated", (path, answer.text)

    path = "/api/v1/channel/appointments"
    body = f'{{"slot_id": "{slot_id}"}}'.encode()
    token, partner.citizen_token = partner.citizen_token, ""
    unsigned_token = partner.headers("POST", path, body) | bearer  # signed without the token
    assert (await api.client.post(path, content=body, headers=unsigned_token)).status_code == 401
    second = await partner.call("POST", "/api/v1/channel/citizens/login", CITIZEN | {"name": "李四四"})
    partner.citizen_token = second.json()["token"]
    swapped = partner.headers("POST", path, body) | bearer  # signed with another token of the same client
    assert (await api.client.post(path, content=body, headers=swapped)).status_code == 401
    assert (await raw(api, "SELECT count(*) FROM bookings"))[0][0] == 0
    partner.citizen_token = token
    booked = await partner.call("POST", path, {"slot_id": slot_id})
    assert booked.status_code == 201, booked.text
