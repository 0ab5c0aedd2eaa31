"""SMS providers behind one interface: `console` (default; writes `console_messages`), Aliyun SMS
(alibabacloud_dysmsapi20170525) and Tencent Cloud SMS (tencentcloud-sdk-python-sms), both through
their official SDKs, installed with the `sms` extra (`pip install 'yuyue[sms]'`).

Each send carries the message's idempotency key (Aliyun `OutId`, Tencent `SessionContext`, the
console's unique key), and every failure is classified: temporary (retried with backoff) or
permanent (dead-lettered at once).
"""

from __future__ import annotations

import asyncio
import json
import string
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from yuyue.clock import clock
from yuyue.models import ConsoleMessage
from yuyue.notify.config import EmailSettings, SmsSettings
from yuyue.notify.templates import TEMPLATES


@dataclass(frozen=True)
class Outgoing:
    """One message as a provider sees it."""

    idem_key: str
    phone: str
    kind: str
    template: str
    params: dict[str, str]  # the template's parameters, formatted for display
    text: str  # the rendered text, sign included


@dataclass(frozen=True)
class Receipt:
    provider_ref: str | None
    code: str | None = None


class ProviderError(Exception):
    def __init__(self, code: str, detail: str, *, temporary: bool) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.temporary = temporary


class Provider(Protocol):
    name: str

    async def send(self, message: Outgoing) -> Receipt: ...


def placeholders(template_id: str) -> list[str]:
    """The template's parameters in order of appearance (Tencent's TemplateParamSet is positional)."""
    names: list[str] = []
    for _, field, _, _ in string.Formatter().parse(TEMPLATES[template_id].text):
        if field and field not in names:
            names.append(field)
    return names


# --- console ------------------------------------------------------------------------------------


class ConsoleProvider:
    """Writes the text to `console_messages` (read by GET /api/v1/test/messages). A second send of
    the same idempotency key changes nothing, like a provider that honours the key."""

    name = "console"

    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self.maker = maker

    async def send(self, message: Outgoing) -> Receipt:
        async with self.maker() as session:
            dialect = session.bind.dialect.name if session.bind else "sqlite"
            dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            values = {
                "idem_key": message.idem_key,
                "phone": message.phone,
                "kind": message.kind,
                "text": message.text,
                "sent_at": clock.now(),
            }
            statement = dialect_insert(ConsoleMessage).values(**values)
            await session.execute(statement.on_conflict_do_nothing(index_elements=["idem_key"]))
            await session.commit()
        return Receipt(provider_ref=f"console:{message.idem_key}", code="OK")


# --- Aliyun -------------------------------------------------------------------------------------

# Aliyun SendSms error codes worth retrying; every other code is permanent (bad number, template,
# sign or credentials will not get better by waiting).
ALIYUN_TEMPORARY = (
    "isv.BUSINESS_LIMIT_CONTROL",
    "isv.AMOUNT_NOT_ENOUGH",
    "isp.SYSTEM_ERROR",
    "isp.GATEWAY_ERROR",
    "Throttling",
    "ServiceUnavailable",
    "InternalError",
    "SDK.",
)


def _aliyun_temporary(code: str) -> bool:
    return any(code.startswith(prefix) for prefix in ALIYUN_TEMPORARY)


class AliyunProvider:
    name = "aliyun"

    def __init__(self, settings: SmsSettings) -> None:
        from alibabacloud_dysmsapi20170525.client import Client  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from alibabacloud_tea_openapi import models as openapi  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self.settings = settings
        config = openapi.Config(
            access_key_id=settings.access_key_id,
            access_key_secret=settings.access_key_secret,
            endpoint=settings.endpoint or "dysmsapi.aliyuncs.com",
            protocol=settings.scheme,
            connect_timeout=int(settings.timeout_s * 1000),
            read_timeout=int(settings.timeout_s * 1000),
        )
        self.client = Client(config)

    async def send(self, message: Outgoing) -> Receipt:
        from alibabacloud_dysmsapi20170525 import models  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from darabonba.runtime import RuntimeOptions  # type: ignore[import-untyped,import-not-found,unused-ignore]

        template_code = self.settings.templates.get(message.kind)
        if not template_code:
            raise ProviderError("no_template", f"no Aliyun template code for {message.kind}", temporary=False)
        request = models.SendSmsRequest(
            phone_numbers=message.phone,
            sign_name=self.settings.sign_name,
            template_code=template_code,
            template_param=json.dumps(message.params, ensure_ascii=False),
            out_id=message.idem_key,
        )
        try:
            response = await self.client.send_sms_with_options_async(request, RuntimeOptions(autoretry=False))
        except Exception as exc:  # the SDK raises its own exception types for HTTP and network errors
            raw_code = getattr(exc, "code", None)
            status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
            code = str(raw_code or type(exc).__name__)
            # no provider code: the request never got an answer (connection, timeout): retry
            temporary = not raw_code or _aliyun_temporary(code) or (isinstance(status, int) and status >= 500)
            raise ProviderError(code, str(getattr(exc, "message", exc))[:300], temporary=temporary) from None
        body: Any = response.body
        code = str(getattr(body, "code", "") or "")
        if code != "OK":
            detail = str(getattr(body, "message", "") or "")
            raise ProviderError(code or "unknown", detail[:300], temporary=_aliyun_temporary(code))
        return Receipt(provider_ref=getattr(body, "biz_id", None), code=code)


# --- Tencent Cloud ------------------------------------------------------------------------------

TENCENT_TEMPORARY = (
    "InternalError",
    "RequestLimitExceeded",
    "LimitExceeded.",
    "FailedOperation.InsufficientBalanceInSmsPackage",
    "ResourceUnavailable",
    "ClientNetworkError",
    "ServerNetworkError",
)


def _tencent_temporary(code: str) -> bool:
    return any(code.startswith(prefix) for prefix in TENCENT_TEMPORARY)


class TencentProvider:
    name = "tencent"

    def __init__(self, settings: SmsSettings) -> None:
        from tencentcloud.common import credential  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from tencentcloud.sms.v20210111 import sms_client  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self.settings = settings
        http = HttpProfile(endpoint=settings.endpoint or "sms.tencentcloudapi.com")
        http.scheme = settings.scheme
        http.reqTimeout = int(settings.timeout_s)
        self.client = sms_client.SmsClient(
            credential.Credential(settings.access_key_id, settings.access_key_secret),
            settings.region,
            ClientProfile(httpProfile=http),
        )

    def _send(self, message: Outgoing) -> Receipt:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from tencentcloud.sms.v20210111 import models  # type: ignore[import-untyped,import-not-found,unused-ignore]

        template_id = self.settings.templates.get(message.kind)
        if not template_id:
            raise ProviderError("no_template", f"no Tencent template id for {message.kind}", temporary=False)
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [f"+86{message.phone}"]
        request.SmsSdkAppId = self.settings.sdk_app_id
        request.SignName = self.settings.sign_name
        request.TemplateId = template_id
        request.TemplateParamSet = [message.params[name] for name in placeholders(message.template)]
        request.SessionContext = message.idem_key
        try:
            response = self.client.SendSms(request)
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "ClientNetworkError")
            raise ProviderError(
                code, str(exc.get_message())[:300], temporary=_tencent_temporary(code)
            ) from None
        except Exception as exc:  # requests' network errors
            raise ProviderError("ClientNetworkError", type(exc).__name__, temporary=True) from None
        statuses = response.SendStatusSet or []
        if not statuses:
            raise ProviderError("EmptyResponse", "no send status in the answer", temporary=True)
        status = statuses[0]
        if status.Code != "Ok":
            code = str(status.Code)
            raise ProviderError(code, str(status.Message)[:300], temporary=_tencent_temporary(code))
        return Receipt(provider_ref=status.SerialNo, code=status.Code)

    async def send(self, message: Outgoing) -> Receipt:
        # The SDK is synchronous (requests): run it off the event loop.
        return await asyncio.to_thread(self._send, message)


# --- email (issue 7 item 7) --------------------------------------------------------------------

SUBJECTS = {"alert": "【统一预约平台】预警提醒"}


class EmailProvider:
    """SMTP through aiosmtplib. `Outgoing.phone` carries the address for this channel. The message's
    idempotency key is its Message-ID, so a mail resent after a lost answer can be recognised."""

    name = "email"

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    async def send(self, message: Outgoing) -> Receipt:
        import aiosmtplib

        settings = self.settings
        mail = EmailMessage()
        mail["From"] = settings.sender
        mail["To"] = message.phone
        mail["Subject"] = SUBJECTS.get(message.kind, "【统一预约平台】通知")
        mail["Message-ID"] = f"<{message.idem_key}@yuyue>"
        mail.set_content(message.text)
        try:
            await aiosmtplib.send(
                mail,
                hostname=settings.host,
                port=settings.port,
                username=settings.username or None,
                password=settings.password or None,
                use_tls=settings.tls,
                start_tls=settings.starttls and not settings.tls,
                timeout=settings.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise ProviderError("recipient_refused", str(exc)[:200], temporary=False) from None
        except aiosmtplib.SMTPResponseException as exc:  # 4xx: try again later; 5xx: never
            raise ProviderError(f"smtp_{exc.code}", exc.message[:200], temporary=exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ProviderError("smtp_unreachable", type(exc).__name__, temporary=True) from None
        return Receipt(provider_ref=str(mail["Message-ID"]), code="250")


def make_provider(settings: SmsSettings, maker: async_sessionmaker[AsyncSession]) -> Provider:
    if settings.provider == "aliyun":
        return AliyunProvider(settings)
    if settings.provider == "tencent":
        return TencentProvider(settings)
    return ConsoleProvider(maker)
