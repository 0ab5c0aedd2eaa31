"""Email behind the outbox (issue 7 item 7): an admin registered with an email address gets alerts
by email as well as by SMS, through SMTP (aiosmtplib) to a local SMTP server (aiosmtpd); a refused
recipient is dead-lettered at once, an unreachable server is retried."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import Api, raw
from yuyue.clock import clock
from yuyue.kit.events import Event, emit
from yuyue.models import Alert
from yuyue.notify import config

ADDRESS = "zhang.wei@tianhe.gov.cn"


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Any] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.mails.append(email.message_from_bytes(envelope.content, policy=default))  # type: ignore[arg-type]
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    box = Inbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("YUYUE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("YUYUE_SMTP_PORT", str(port))
    monkeypatch.setenv("YUYUE_SMTP_STARTTLS", "false")
    monkeypatch.setenv("YUYUE_SMTP_SENDER", "noreply@yuyue.gz.gov.cn")
    config.email_settings.cache_clear()
    yield box
    controller.stop()
    config.email_settings.cache_clear()


async def admin_with_email(api: Api) -> None:
    body = {
        "username": "tianhe-l1",
        "password": "tianhe-admin-2026",
        "name": "张伟",
        "title": "区一级管理员",
        "phone": "13900001111",
        "unit_id": "platform",
        "level": 2,
        "email": ADDRESS,
    }
    made = await api.client.post("/api/v1/admin/admins", json=body, headers=api.admin())
    assert made.status_code == 201, made.text
    assert made.json()["email"] == "z****@tianhe.gov.cn"  # masked in answers


async def raise_alert(api: Api, key: str) -> None:
    async with api.app.state.sessionmaker() as session:
        alert = Alert(
            kind="approval_overdue",
            unit_id="platform",
            service_id=None,
            dedup_key=key,
            raised_at=clock.now(),
            detail="…",
        )
        session.add(alert)
        await session.flush()
        await emit(session, Event("alert.raised", {"alert": alert}))
        await session.commit()


async def deliver(api: Api) -> None:
    assert (await api.client.get("/api/v1/test/messages")).status_code == 200


async def test_alert_goes_by_email_too(api: Api, inbox: Inbox) -> None:
    await admin_with_email(api)
    await raise_alert(api, "test:overdue")
    await deliver(api)
    [mail] = inbox.mails
    assert mail["To"] == ADDRESS and mail["From"] == "noreply@yuyue.gz.gov.cn"
    # the alert's own sentence (decision 0102), not a generic "new alert"
    assert "预警" in str(mail["Subject"]) and "号源调整申请未在规定时限内审批" in mail.get_content()
    rows = await raw(api, "SELECT channel, status, phone_masked FROM messages ORDER BY id")
    channels = sorted((r.channel, r.status) for r in rows)
    assert channels == [("email", "sent"), ("sms", "sent"), ("sms", "sent")]  # root + tianhe-l1 by SMS
    assert ADDRESS not in [r.phone_masked for r in rows]
    [ref] = await raw(api, "SELECT provider_ref FROM messages WHERE channel = 'email'")
    assert ref.provider_ref == mail["Message-ID"]  # the idempotency key travels as the Message-ID


async def test_refused_recipient_is_dead_at_once(api: Api, inbox: Inbox) -> None:
    inbox.refuse.add(ADDRESS)
    await admin_with_email(api)
    await raise_alert(api, "test:refused")
    await deliver(api)
    [row] = await raw(api, "SELECT status, attempts FROM messages WHERE channel = 'email'")
    assert (row.status, row.attempts) == ("dead", 1)
    assert inbox.mails == []


async def test_unreachable_server_is_retried(api: Api, inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    await admin_with_email(api)
    monkeypatch.setenv("YUYUE_SMTP_PORT", str(_free_port()))  # nobody listens there
    config.email_settings.cache_clear()
    await raise_alert(api, "test:down")
    await deliver(api)
    [row] = await raw(api, "SELECT status, attempts, last_error FROM messages WHERE channel = 'email'")
    assert (row.status, row.attempts) == ("pending", 1) and "smtp_unreachable" in row.last_error


async def test_no_smtp_server_no_email_rows(api: Api) -> None:
    config.email_settings.cache_clear()
    await admin_with_email(api)
    await raise_alert(api, "test:nosmtp")
    assert await raw(api, "SELECT id FROM messages WHERE channel = 'email'") == []
