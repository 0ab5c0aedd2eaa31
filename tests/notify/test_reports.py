"""Delivery reports (issue 7 item 2, decision 0082): a message sent through the Aliyun or Tencent
adapter (against the fake provider server of test_providers), then the provider's report pushed over
HTTP to the token-protected route, recorded once on the message and shown to admins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.conftest import START, Api, raw
from tests.notify import test_providers
from tests.notify.conftest import SECRET, book_one, outbox, setup_service
from tests.notify.test_providers import ALIYUN_OK, FakeServer, aliyun, tencent, tencent_status
from yuyue.notify import config
from yuyue.notify.delivery import deliver_due

fake = test_providers.fake  # the fake Aliyun/Tencent server of the adapter tests (a fixture)

TOKEN = "rpt_3Jk9sV2mQx7LwZp4Yt8Rb6Nc1Hd5Fg0A"
PHONE = "13812345678"
BIZ_ID = ALIYUN_OK["BizId"]
SERIAL = "2433:214003536516835612680913211"
ALIYUN = f"/api/v1/sms/reports/aliyun/{TOKEN}"
TENCENT = f"/api/v1/sms/reports/tencent/{TOKEN}"
DELIVERY = (
    "SELECT id, status, delivery_status, delivery_code, delivery_detail, delivery_reported_at, "
    "delivery_received_at, updated_at FROM messages ORDER BY id"
)


@pytest.fixture
def reports_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """YUYUE_SMS_REPORT_TOKEN (and more with `reports_on(YUYUE_SMS_REPORT_RATE=…)`) for one test;
    the settings are read from the environment and cached, so the cache is cleared around them."""

    def apply(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        config.sms_report_settings.cache_clear()

    apply(YUYUE_SMS_REPORT_TOKEN=TOKEN)
    yield apply
    monkeypatch.undo()
    config.sms_report_settings.cache_clear()


def aliyun_report(biz_id: str = BIZ_ID, success: Any = True, **extra: Any) -> dict[str, Any]:
    return {
        "phone_number": PHONE,
        "send_time": "2026-12-01 10:00:00",
        "report_time": "2026-12-01 10:00:07",
        "success": success,
        "err_code": "DELIVERED" if success is True else "MK:0001",
        "err_msg": "用户接收成功" if success is True else "空号",
        "sms_size": "1",
        "biz_id": biz_id,
        "out_id": "3f2a9c0d1e2b4a5c8d7e6f5a4b3c2d1e",
        **extra,
    }


def tencent_report(sid: str = SERIAL, status: str = "FAIL", **extra: Any) -> dict[str, Any]:
    return {
        "user_receive_time": "2026-12-01 10:00:09",
        "nationcode": "86",
        "mobile": PHONE,
        "report_status": status,
        "errmsg": "DELIVRD" if status == "SUCCESS" else "MK:0001",
        "description": "用户短信送达成功" if status == "SUCCESS" else "用户短信接收失败",
        "sid": sid,
        "ext": "",
        **extra,
    }


def counted(provider: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("yuyue_sms_reports_total", {"provider": provider, "outcome": outcome})
    return value or 0.0


async def sent_through(api: Api, provider: Any) -> dict[str, Any]:
    """A booking's SMS, delivered by the real adapter against the fake provider server."""
    service_ = await setup_service(api)
    booking = await book_one(api, service_["id"], phone=PHONE)
    assert await deliver_due(api.app.state.sessionmaker, SECRET, provider) == 1
    [row] = await outbox(api)
    assert row.status == "sent" and row.delivery_status is None
    return {"id": row.id, "ref": row.provider_ref, "number": booking["number"]}


async def view(api: Api, message_id: int) -> dict[str, Any]:
    response = await api.client.get(f"/api/v1/admin/notifications/{message_id}", headers=api.admin())
    assert response.status_code == 200, response.text
    return dict(response.json())


async def listed(api: Api, query: str = "") -> list[dict[str, Any]]:
    response = await api.client.get(f"/api/v1/admin/notifications{query}", headers=api.admin())
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_aliyun_report_is_recorded_once_and_shown_to_admins(
    api: Api, fake: FakeServer, reports_on: Callable[..., None]
) -> None:
    fake.answers.append((200, ALIYUN_OK))
    message = await sent_through(api, aliyun(fake))
    assert message["ref"] == BIZ_ID and fake.problems == []
    assert (await view(api, message["id"]))["delivery"] is None

    response = await api.client.post(ALIYUN, json=[aliyun_report()])
    assert response.status_code == 200, response.text
    assert response.json() == {"code": 0, "msg": "成功"}

    shown = await view(api, message["id"])
    assert shown["status"] == "sent" and shown["provider_ref"] == BIZ_ID
    received = shown["delivery"].pop("received_at")
    assert shown["delivery"] == {
        "status": "delivered",
        "code": "DELIVERED",
        "detail": "用户接收成功",
        "reported_at": "2026-12-01T10:00:07+08:00",
    }
    assert START <= datetime.fromisoformat(received) < START + timedelta(minutes=1)  # the platform clock
    [row] = await listed(api)
    assert row["delivery"]["status"] == "delivered"
    assert [m["id"] for m in await listed(api, "?delivery=delivered")] == [message["id"]]
    assert await listed(api, "?delivery=undelivered") == []
    before = await raw(api, DELIVERY)

    # pushed again later (the provider retries when our answer was lost), and a contradicting push:
    # the first report stays, nothing else changes
    await api.set_clock("2026-12-01T10:05:00+08:00")
    duplicates = counted("aliyun", "duplicate")
    for push in ([aliyun_report()], [aliyun_report(success=False)]):
        again = await api.client.post(ALIYUN, json=push)
        assert again.status_code == 200 and again.json() == {"code": 0, "msg": "成功"}
    assert await raw(api, DELIVERY) == before
    assert counted("aliyun", "duplicate") == duplicates + 2
    assert (await view(api, message["id"]))["delivery"] == {**shown["delivery"], "received_at": received}


async def test_tencent_failed_report_marks_the_message_undelivered_with_a_masked_log(
    api: Api, fake: FakeServer, reports_on: Callable[..., None], capfd: pytest.CaptureFixture[str]
) -> None:
    fake.answers.append((200, tencent_status("Ok", "send success", SERIAL)))
    message = await sent_through(api, tencent(fake))
    assert message["ref"] == SERIAL and fake.problems == []
    capfd.readouterr()

    response = await api.client.post(TENCENT, json=[tencent_report()])
    assert response.status_code == 200, response.text
    assert response.json() == {"result": 0, "errmsg": "OK"}

    shown = await view(api, message["id"])
    assert shown["delivery"]["status"] == "undelivered"
    assert shown["delivery"]["code"] == "MK:0001"
    assert shown["delivery"]["detail"] == "用户短信接收失败"
    assert shown["delivery"]["reported_at"] == "2026-12-01T10:00:09+08:00"
    assert [m["id"] for m in await listed(api, "?delivery=undelivered")] == [message["id"]]
    logged = capfd.readouterr()
    assert "sms_undelivered" in logged.out and "138****5678" in logged.out
    assert PHONE not in logged.out + logged.err and TOKEN not in logged.out + logged.err
    assert PHONE not in json.dumps(shown)

    # the same report again: recorded once
    before = await raw(api, DELIVERY)
    again = await api.client.post(TENCENT, json=[tencent_report(), tencent_report(status="SUCCESS")])
    assert again.status_code == 200 and again.json() == {"result": 0, "errmsg": "OK"}
    assert await raw(api, DELIVERY) == before


async def test_a_report_pushed_by_many_requests_at_once_is_recorded_once(
    api: Api, fake: FakeServer, reports_on: Callable[..., None]
) -> None:
    """Five identical pushes race: the conditional UPDATE lets exactly one record the report (with
    the guard removed every push would count as `delivered`)."""
    fake.answers.append((200, ALIYUN_OK))
    message = await sent_through(api, aliyun(fake))
    delivered, duplicates = counted("aliyun", "delivered"), counted("aliyun", "duplicate")
    answers = await asyncio.gather(*(api.client.post(ALIYUN, json=[aliyun_report()]) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert counted("aliyun", "delivered") == delivered + 1
    assert counted("aliyun", "duplicate") == duplicates + 4
    assert (await view(api, message["id"]))["delivery"]["status"] == "delivered"


async def test_wrong_or_missing_token_is_a_plain_404_and_changes_nothing(
    api: Api, fake: FakeServer, reports_on: Callable[..., None]
) -> None:
    fake.answers.append((200, ALIYUN_OK))
    await sent_through(api, aliyun(fake))
    before = await raw(api, DELIVERY)
    nowhere = await api.client.post("/api/v1/nowhere", json=[])
    assert nowhere.status_code == 404
    refused = counted("aliyun", "refused")
    for path in (
        "/api/v1/sms/reports/aliyun/" + TOKEN[:-1] + "B",
        "/api/v1/sms/reports/aliyun/" + TOKEN[:-1],
        "/api/v1/sms/reports/aliyun/x",
    ):
        response = await api.client.post(path, json=[aliyun_report()])
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == nowhere.json()  # no different from a path that does not exist
    assert counted("aliyun", "refused") == refused + 3
    wrong = await api.client.post("/api/v1/sms/reports/tencent/" + "z" * 40, json=[tencent_report()])
    assert wrong.status_code == 404 and wrong.json()["code"] == "not_found"
    assert await raw(api, DELIVERY) == before


async def test_without_a_configured_token_the_routes_do_not_exist(
    api: Api, fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("YUYUE_SMS_REPORT_TOKEN", raising=False)
    config.sms_report_settings.cache_clear()
    fake.answers.append((200, ALIYUN_OK))
    await sent_through(api, aliyun(fake))
    before = await raw(api, DELIVERY)
    for path, body in ((ALIYUN, [aliyun_report()]), (TENCENT, [tencent_report()])):
        response = await api.client.post(path, json=body)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert await raw(api, DELIVERY) == before


ALIYUN_MALFORMED = [
    ("not json", b"{not json"),
    ("an object, not an array", json.dumps(aliyun_report()).encode()),
    ("success is a string", json.dumps([aliyun_report(success="true")]).encode()),
    ("no biz_id", json.dumps([{k: v for k, v in aliyun_report().items() if k != "biz_id"}]).encode()),
    ("an impossible time", json.dumps([aliyun_report(report_time="2026-13-01 10:00:07")]).encode()),
    ("a row that is a string", json.dumps(["13812345678"]).encode()),
    # one good row (the real reference) and one bad one: the whole push is refused
    ("one bad row of two", json.dumps([aliyun_report(), aliyun_report(biz_id="")]).encode()),
]


@pytest.mark.parametrize(("case", "body"), ALIYUN_MALFORMED, ids=[c for c, _ in ALIYUN_MALFORMED])
async def test_malformed_aliyun_push_gets_aliyuns_error_shape_and_changes_nothing(
    api: Api, fake: FakeServer, reports_on: Callable[..., None], case: str, body: bytes
) -> None:
    fake.answers.append((200, ALIYUN_OK))
    await sent_through(api, aliyun(fake))
    before = await raw(api, DELIVERY)
    malformed = counted("aliyun", "malformed")
    response = await api.client.post(ALIYUN, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, (case, response.text)
    answer = response.json()
    assert set(answer) == {"code", "msg"} and answer["code"] != 0 and answer["msg"]
    assert PHONE not in response.text  # the message names fields, never the values
    assert await raw(api, DELIVERY) == before
    assert counted("aliyun", "malformed") == malformed + 1


async def test_malformed_tencent_push_gets_tencents_error_shape_and_changes_nothing(
    api: Api, fake: FakeServer, reports_on: Callable[..., None]
) -> None:
    fake.answers.append((200, tencent_status("Ok", "send success", SERIAL)))
    await sent_through(api, tencent(fake))
    before = await raw(api, DELIVERY)
    for body in (
        [tencent_report(status="DELIVERED")],
        [tencent_report(), tencent_report(user_receive_time="yesterday")],
        [tencent_report(sid=12345)],
        {"sid": SERIAL},
    ):
        response = await api.client.post(TENCENT, json=body)
        assert response.status_code == 400, response.text
        answer = response.json()
        assert set(answer) == {"result", "errmsg"} and answer["result"] != 0 and answer["errmsg"]
        assert PHONE not in response.text
    assert await raw(api, DELIVERY) == before


async def test_unknown_references_are_ignored_but_counted(
    api: Api, fake: FakeServer, reports_on: Callable[..., None]
) -> None:
    fake.answers.append((200, ALIYUN_OK))
    message = await sent_through(api, aliyun(fake))
    before = await raw(api, DELIVERY)
    unknown = counted("aliyun", "unknown")
    response = await api.client.post(ALIYUN, json=[aliyun_report(biz_id="111111111111111111^0")])
    assert response.status_code == 200 and response.json() == {"code": 0, "msg": "成功"}
    assert counted("aliyun", "unknown") == unknown + 1
    # a Tencent report carrying the Aliyun reference matches nothing either (provider + reference)
    tencent_unknown = counted("tencent", "unknown")
    response = await api.client.post(TENCENT, json=[tencent_report(sid=BIZ_ID)])
    assert response.status_code == 200 and response.json() == {"result": 0, "errmsg": "OK"}
    assert counted("tencent", "unknown") == tencent_unknown + 1
    assert await raw(api, DELIVERY) == before
    # an empty push is a valid push of nothing
    assert (await api.client.post(ALIYUN, json=[])).json() == {"code": 0, "msg": "成功"}
    assert (await view(api, message["id"]))["delivery"] is None


async def test_body_size_and_per_address_rate_limits(api: Api, reports_on: Callable[..., None]) -> None:
    reports_on(YUYUE_SMS_REPORT_MAX_BYTES="1024", YUYUE_SMS_REPORT_RATE="3/minute")
    big = [aliyun_report(biz_id=f"{i:018d}^0") for i in range(10)]
    assert len(json.dumps(big)) > 1024
    too_big = await api.client.post(ALIYUN, json=big)
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
    assert (await api.client.post(ALIYUN, json=[])).status_code == 200
    assert (await api.client.post("/api/v1/sms/reports/aliyun/wrong" + "x" * 40, json=[])).status_code == 404
    limited = await api.client.post(ALIYUN, json=[])  # the 4th push from this address in a minute
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
