"""Partner webhooks (issue 7 item 7): a booking made through a partner client tells the partner of
each of its events through the outbox, as a signed POST (decision 0063), retried with backoff on a
temporary failure, dead-lettered on a permanent one, never for bookings made elsewhere."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.channels.conftest import PUBLIC_IP, Partner, register
from tests.channels.test_channels import CITIZEN, ID
from tests.conftest import Api, raw
from yuyue.channels import webhooks
from yuyue.kit.signing import sign

HOOK = "http://partner.test/hooks/yuyue?site=gz"


class FakePartner:
    """The partner's endpoint: checks the signature with the key it was given, records each event,
    and answers with the statuses queued in `answers` (then 200)."""

    def __init__(self) -> None:
        self.key_secret = ""
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.app = FastAPI()

        @self.app.post("/hooks/yuyue")
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            h = request.headers
            expected = sign(
                self.key_secret,
                "POST",
                "/hooks/yuyue",
                request.url.query,
                h["x-yuyue-timestamp"],
                h["x-yuyue-nonce"],
                body,
            )
            assert h["x-yuyue-signature"] == expected, "bad signature"
            assert hashlib.sha256(body).hexdigest()  # the body is what was signed
            status = self.answers.pop(0) if self.answers else 200
            self.received.append(
                {
                    "status": status,
                    "id": h["x-yuyue-message-id"],
                    "to": (request.scope["server"][0], h["host"]),  # where it connected, and its Host
                    **json.loads(body.decode()),
                }
            )
            location = {"Location": "http://127.0.0.1/admin"} if 300 <= status < 400 else {}
            return JSONResponse({"ok": status < 300}, status_code=status, headers=location)


@pytest.fixture
def fake_partner() -> Iterator[FakePartner]:
    fake = FakePartner()
    webhooks.webhook_transport = httpx.ASGITransport(app=fake.app)
    yield fake
    webhooks.webhook_transport = None


async def setup(api: Api, fake: FakePartner) -> tuple[Partner, list[str]]:
    await api.hall()
    service = await api.service()
    slots = [s["id"] for s in await api.slots(service["id"], "2026-12-03")]
    partner = await register(api)
    fake.key_secret = partner.key_secret
    answer = await api.client.put(
        "/api/v1/admin/api-clients/wechat-gz/webhook", json={"url": HOOK}, headers=api.admin()
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["webhook_url"] == HOOK
    login = await partner.call("POST", "/api/v1/channel/citizens/login", CITIZEN)
    partner.citizen_token = login.json()["token"]
    return partner, slots


async def deliver(api: Api) -> None:
    assert (await api.client.get("/api/v1/test/messages")).status_code == 200


async def test_partner_hears_of_its_bookings(api: Api, fake_partner: FakePartner) -> None:
    partner, slots = await setup(api, fake_partner)
    booked = await partner.call("POST", "/api/v1/channel/appointments", {"slot_id": slots[0]})
    number = booked.json()["number"]
    await deliver(api)
    [created] = fake_partner.received
    assert created["event"] == "booking.created" and created["booking"]["number"] == number
    assert created["booking"]["status"] == "booked" and created["booking"]["channel"] == "wechat"
    text = json.dumps(created, ensure_ascii=False)
    assert ID not in text and "李四" not in text and "13800138001" not in text  # no personal data

    # cancelled by the citizen on the platform's own pages or API: the partner still hears of it
    cancelled = await partner.call("POST", f"/api/v1/channel/appointments/{number}/cancel")
    assert cancelled.status_code == 200
    await deliver(api)
    assert [e["event"] for e in fake_partner.received] == ["booking.created", "booking.cancelled"]
    assert fake_partner.received[1]["booking"]["status"] == "cancelled"
    # each event once, with a stable message id
    assert len({e["id"] for e in fake_partner.received}) == 2

    # a booking made on the web (not through this partner) sends it nothing
    web = await api.login("440106199001011251")
    assert (await api.book(web, slots[1])).status_code == 201
    await deliver(api)
    assert len(fake_partner.received) == 2
    assert len(await raw(api, "SELECT id FROM messages WHERE channel = 'webhook'")) == 2


async def test_temporary_failures_are_retried_permanent_ones_dead(
    api: Api, fake_partner: FakePartner
) -> None:
    partner, slots = await setup(api, fake_partner)
    fake_partner.answers = [503, 429]
    await partner.call("POST", "/api/v1/channel/appointments", {"slot_id": slots[0]})
    await deliver(api)
    [row] = await raw(api, "SELECT status, attempts FROM messages WHERE channel = 'webhook'")
    assert (row.status, row.attempts) == ("pending", 1)
    for hours in ("10:30", "11:30"):  # backoff: due again later
        await api.set_clock(f"2026-12-01T{hours}:00+08:00")
        await deliver(api)
    [row] = await raw(api, "SELECT status, attempts FROM messages WHERE channel = 'webhook'")
    assert (row.status, row.attempts) == ("sent", 3)
    assert [e["status"] for e in fake_partner.received] == [503, 429, 200]
    assert len({e["id"] for e in fake_partner.received}) == 1  # the same message each time
    outcomes = await raw(
        api,
        "SELECT d.outcome FROM delivery_attempts d JOIN messages m ON m.id = d.message_id "
        "WHERE m.channel = 'webhook' ORDER BY d.attempt",
    )
    assert [o.outcome for o in outcomes] == ["temporary", "temporary", "sent"]

    fake_partner.answers = [410]
    number = (await partner.call("GET", "/api/v1/channel/appointments")).json()[0]["number"]
    await partner.call("POST", f"/api/v1/channel/appointments/{number}/cancel")
    await deliver(api)
    statuses = await raw(api, "SELECT status FROM messages WHERE channel = 'webhook' ORDER BY id")
    assert [s.status for s in statuses] == ["sent", "dead"]


async def test_webhook_url_is_checked(api: Api) -> None:
    await register(api)
    path = "/api/v1/admin/api-clients/wechat-gz/webhook"
    for bad in ("ftp://partner.test/x", "/relative", "http://user:pw@partner.test/x"):
        answer = await api.client.put(path, json={"url": bad}, headers=api.admin())
        assert answer.status_code == 422, bad
    off = await api.client.put(path, json={"url": None}, headers=api.admin())
    assert off.status_code == 200 and off.json()["webhook_url"] is None
    missing = await api.client.put(
        "/api/v1/admin/api-clients/nobody/webhook", json={"url": HOOK}, headers=api.admin()
    )
    assert missing.status_code == 404


async def test_webhook_urls_must_reach_public_addresses(api: Api, dns: dict[str, list[str]]) -> None:
    """Decision 0094: at set-up the host is resolved and every address must be public; loopback,
    private, link-local (cloud metadata), shared, multicast, unspecified and IPv4-mapped forms are
    refused with `422 webhook_address_not_allowed`, as is a host that does not resolve; nothing
    changes."""
    await register(api)
    path = "/api/v1/admin/api-clients/wechat-gz/webhook"
    assert (await api.client.put(path, json={"url": HOOK}, headers=api.admin())).status_code == 200
    dns["internal.test"] = ["10.1.2.3"]
    dns["mixed.test"] = [PUBLIC_IP, "127.0.0.1"]  # one bad address is enough
    dns["metadata.test"] = ["169.254.169.254"]
    for bad in (
        "http://127.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/hook",
        "http://192.168.1.20:8080/hook",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://internal.test/hook",
        "http://mixed.test/hook",
        "http://metadata.test/hook",
        "http://nowhere.test/hook",
    ):
        answer = await api.client.put(path, json={"url": bad}, headers=api.admin())
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["code"] == "webhook_address_not_allowed", bad
    [row] = await raw(api, "SELECT webhook_url FROM api_clients WHERE id = 'wechat-gz'")
    assert row.webhook_url == HOOK


async def test_delivery_checks_the_address_again_and_follows_no_redirect(
    api: Api, fake_partner: FakePartner, dns: dict[str, list[str]]
) -> None:
    """Decision 0094: the host is resolved again at delivery and the POST goes to the address just
    checked (Host header kept); a name that now points inside is refused there (a permanent
    failure, nothing sent), and a redirect is never followed."""
    partner, slots = await setup(api, fake_partner)
    first = await partner.call("POST", "/api/v1/channel/appointments", {"slot_id": slots[0]})
    await deliver(api)
    [created] = fake_partner.received
    assert created["to"] == (PUBLIC_IP, "partner.test")  # pinned to the checked address

    dns["partner.test"] = ["169.254.169.254"]  # rebinding after the set-up check
    await partner.call("POST", f"/api/v1/channel/appointments/{first.json()['number']}/cancel")
    await deliver(api)
    assert len(fake_partner.received) == 1  # nothing went to the partner's name
    [refused] = await raw(
        api,
        "SELECT m.status, d.code FROM messages m JOIN delivery_attempts d ON d.message_id = m.id "
        "WHERE m.channel = 'webhook' AND m.template = 'booking.cancelled'",
    )
    assert (refused.status, refused.code) == ("dead", "address_not_allowed")

    dns["partner.test"] = [PUBLIC_IP]
    fake_partner.answers = [302]  # to http://127.0.0.1/admin: not followed
    await partner.call("POST", "/api/v1/channel/appointments", {"slot_id": slots[1]})
    await deliver(api)
    assert [e["status"] for e in fake_partner.received] == [200, 302]
    statuses = await raw(api, "SELECT status FROM messages WHERE channel = 'webhook' ORDER BY id")
    assert [s.status for s in statuses] == ["sent", "dead", "dead"]
