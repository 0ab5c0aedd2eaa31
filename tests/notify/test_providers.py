"""The Aliyun and Tencent Cloud adapters, through their official SDKs, against a local fake HTTP
server that checks the signed request (recomputing ACS3-HMAC-SHA256 and TC3-HMAC-SHA256) and
answers with the providers' real success and error shapes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from yuyue.notify.config import SmsSettings
from yuyue.notify.providers import AliyunProvider, Outgoing, ProviderError, TencentProvider, placeholders

if os.environ.get("CI") != "true":  # in CI the `sms` extra is installed (dev depends on it)
    pytest.importorskip("alibabacloud_dysmsapi20170525")
    pytest.importorskip("tencentcloud.sms")

AK_ID, AK_SECRET = "LTAI5tFakeAccessKey", "fake-access-key-secret"
SECRET_ID, SECRET_KEY = "AKIDfakeSecretId", "fake-secret-key"
MESSAGE = Outgoing(
    idem_key="3f2a9c0d1e2b4a5c8d7e6f5a4b3c2d1e",
    phone="13812345678",
    kind="booked",
    template="booked",
    params={
        "when": "12月3日9时",
        "hall": "天河区政务服务中心",
        "number": "I042026120300001",
        "hotline": "020-12345",
    },
    text="【广州预约】…",
)

# Real answer shapes (Aliyun Dysmsapi 2017-05-25 SendSms; Tencent SMS 2021-01-11 SendSms).
ALIYUN_OK = {
    "Message": "OK",
    "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
    "Code": "OK",
    "BizId": "900619746936498440^0",
}
ALIYUN_BAD_NUMBER = {
    "Message": "手机号码格式错误",
    "RequestId": "3B5A1F9E-0C4B-5F3A-9B0E-1A2B3C4D5E6F",
    "Code": "isv.MOBILE_NUMBER_ILLEGAL",
}
ALIYUN_FLOW_CONTROL = {
    "Message": "触发小时级流控Permits:5",
    "RequestId": "8F1C2E3D-4B5A-6978-8A9B-0C1D2E3F4A5B",
    "Code": "isv.BUSINESS_LIMIT_CONTROL",
}
ALIYUN_BAD_SIGNATURE = {
    "RequestId": "6D1E7F2A-3B4C-5D6E-7F8A-9B0C1D2E3F4A",
    "HostId": "dysmsapi.aliyuncs.com",
    "Code": "SignatureDoesNotMatch",
    "Message": "Specified signature does not match our calculation.",
    "Recommend": "https://api.aliyun.com/troubleshoot?q=SignatureDoesNotMatch&product=Dysmsapi",
}
ALIYUN_UNAVAILABLE = {
    "Code": "ServiceUnavailable",
    "Message": "The request has failed due to a temporary failure of the server.",
    "RequestId": "0A1B2C3D-4E5F-6A7B-8C9D-0E1F2A3B4C5D",
}


def tencent_status(code: str, message: str, serial: str = "") -> dict[str, Any]:
    return {
        "Response": {
            "SendStatusSet": [
                {
                    "SerialNo": serial,
                    "PhoneNumber": "+8613812345678",
                    "Fee": 1 if code == "Ok" else 0,
                    "SessionContext": MESSAGE.idem_key,
                    "Code": code,
                    "Message": message,
                    "IsoCode": "CN",
                }
            ],
            "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279",
        }
    }


def tencent_error(code: str, message: str) -> dict[str, Any]:
    return {
        "Response": {
            "Error": {"Code": code, "Message": message},
            "RequestId": "b5ed4b3c-1a2b-4c5d-9e8f-0a1b2c3d4e5f",
        }
    }


@dataclass
class FakeServer:
    port: int = 0
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _aliyun_signature_ok(path: str, headers: dict[str, str]) -> bool:
    parts = urlsplit(path)
    pairs = sorted(parse_qsl(parts.query, keep_blank_values=True))
    encode = lambda value: quote(value, safe="-_.~")  # noqa: E731
    query = "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs)
    authorization = headers["authorization"]
    assert authorization.startswith(f"ACS3-HMAC-SHA256 Credential={AK_ID},")
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    canonical = "\n".join(
        [
            "POST",
            parts.path or "/",
            query,
            canonical_headers,
            ";".join(signed),
            headers["x-acs-content-sha256"],
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(AK_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return authorization.endswith(f"Signature={expected}") and "x-acs-signature-nonce" in signed


def _tencent_signature_ok(headers: dict[str, str], body: bytes) -> bool:
    timestamp = int(headers["x-tc-timestamp"])
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = (
        f"POST\n/\n\ncontent-type:{headers['content-type']}\nhost:{headers['host']}\n\ncontent-type;host\n"
        + hashlib.sha256(body).hexdigest()
    )
    scope = f"{day}/sms/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n" + hashlib.sha256(canonical.encode()).hexdigest()
    key = hmac.new(f"TC3{SECRET_KEY}".encode(), day.encode(), hashlib.sha256).digest()
    key = hmac.new(key, b"sms", hashlib.sha256).digest()
    key = hmac.new(key, b"tc3_request", hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    credential = f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{scope}"
    return headers["authorization"] == f"{credential}, SignedHeaders=content-type;host, Signature={expected}"


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    state = FakeServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append({"path": self.path, "headers": headers, "body": body})
            if "x-acs-action" in headers:
                signed = _aliyun_signature_ok(self.path, headers)
            else:
                signed = _tencent_signature_ok(headers, body)
            if not signed:
                state.problems.append("bad signature")
            status, answer = state.answers.pop(0) if state.answers else (500, {})
            payload = json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(status)
            # each provider's real Content-Type (the Tencent SDK reads errors only from this exact one)
            kind = "application/json;charset=utf-8" if "x-acs-action" in headers else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def aliyun(fake: FakeServer) -> AliyunProvider:
    return AliyunProvider(
        SmsSettings(
            provider="aliyun",
            access_key_id=AK_ID,
            access_key_secret=AK_SECRET,
            endpoint=f"127.0.0.1:{fake.port}",
            scheme="http",
            templates={"booked": "SMS_465910123"},
            timeout_s=5,
        )
    )


def tencent(fake: FakeServer) -> TencentProvider:
    return TencentProvider(
        SmsSettings(
            provider="tencent",
            access_key_id=SECRET_ID,
            access_key_secret=SECRET_KEY,
            sdk_app_id="1400787878",
            endpoint=f"127.0.0.1:{fake.port}",
            scheme="http",
            templates={"booked": "1876543"},
            timeout_s=5,
        )
    )


def test_aliyun_success_sends_a_signed_request_with_the_right_parameters(fake: FakeServer) -> None:
    fake.answers.append((200, ALIYUN_OK))
    receipt = asyncio.run(aliyun(fake).send(MESSAGE))
    assert receipt.provider_ref == "900619746936498440^0" and receipt.code == "OK"
    assert fake.problems == []
    [request] = fake.requests
    headers = request["headers"]
    assert headers["x-acs-action"] == "SendSms" and headers["x-acs-version"] == "2017-05-25"
    query = dict(parse_qsl(urlsplit(request["path"]).query))
    assert query["PhoneNumbers"] == "13812345678"
    assert query["SignName"] == "广州预约"
    assert query["TemplateCode"] == "SMS_465910123"
    assert query["OutId"] == MESSAGE.idem_key  # the idempotency key travels with the message
    assert json.loads(query["TemplateParam"]) == MESSAGE.params


@pytest.mark.parametrize(
    ("status", "answer", "temporary"),
    [
        (200, ALIYUN_BAD_NUMBER, False),
        (200, ALIYUN_FLOW_CONTROL, True),
        (400, ALIYUN_BAD_SIGNATURE, False),
        (503, ALIYUN_UNAVAILABLE, True),
    ],
)
def test_aliyun_errors_are_classified(fake: FakeServer, status: int, answer: dict, temporary: bool) -> None:
    fake.answers.append((status, answer))
    with pytest.raises(ProviderError) as caught:
        asyncio.run(aliyun(fake).send(MESSAGE))
    assert caught.value.code == answer["Code"]
    assert caught.value.temporary is temporary
    assert len(fake.requests) == 1  # the SDK does not retry behind our back


def test_aliyun_unreachable_is_temporary() -> None:
    provider = AliyunProvider(
        SmsSettings(
            provider="aliyun", access_key_id=AK_ID, access_key_secret=AK_SECRET, endpoint="127.0.0.1:9",
            scheme="http", templates={"booked": "SMS_1"}, timeout_s=2,
        )
    )  # fmt: skip
    with pytest.raises(ProviderError) as caught:
        asyncio.run(provider.send(MESSAGE))
    assert caught.value.temporary


def test_missing_template_code_is_permanent(fake: FakeServer) -> None:
    message = Outgoing(**{**MESSAGE.__dict__, "kind": "reminder", "template": "reminder"})
    for provider in (aliyun(fake), tencent(fake)):
        with pytest.raises(ProviderError) as caught:
            asyncio.run(provider.send(message))
        assert caught.value.code == "no_template" and not caught.value.temporary
    assert fake.requests == []


def test_tencent_success_sends_a_signed_request_with_the_right_parameters(fake: FakeServer) -> None:
    fake.answers.append((200, tencent_status("Ok", "send success", "5000:1045710669157053657849499619")))
    receipt = asyncio.run(tencent(fake).send(MESSAGE))
    assert receipt.provider_ref == "5000:1045710669157053657849499619"
    assert fake.problems == []
    [request] = fake.requests
    assert request["headers"]["x-tc-action"] == "SendSms"
    assert request["headers"]["x-tc-version"] == "2021-01-11"
    assert request["headers"]["x-tc-region"] == "ap-guangzhou"
    body = json.loads(request["body"])
    assert body["PhoneNumberSet"] == ["+8613812345678"]
    assert body["SmsSdkAppId"] == "1400787878" and body["SignName"] == "广州预约"
    assert body["TemplateId"] == "1876543"
    assert body["SessionContext"] == MESSAGE.idem_key
    # positional parameters in the order the template names them
    assert placeholders("booked") == ["when", "hall", "number", "hotline"]
    assert body["TemplateParamSet"] == ["12月3日9时", "天河区政务服务中心", "I042026120300001", "020-12345"]


TENCENT_ERRORS = [
    ("status", "InvalidParameterValue.IncorrectPhoneNumber", "invalid mobile number", False),
    (
        "status",
        "LimitExceeded.PhoneNumberThirtySecondLimit",
        "the number of sms messages sent from a single mobile number within 30 seconds exceeds the "
        "upper limit",
        True,
    ),
    (
        "status",
        "FailedOperation.TemplateIncorrectOrUnapproved",
        "template is not approved or request content does not match the approved template content",
        False,
    ),
    (
        "error",
        "AuthFailure.SignatureFailure",
        "The provided credentials could not be validated. Please check your signature is correct.",
        False,
    ),
    ("error", "InternalError.Timeout", "request timeout", True),
]


@pytest.mark.parametrize(("shape", "code", "text", "temporary"), TENCENT_ERRORS)
def test_tencent_errors_are_classified(
    fake: FakeServer, shape: str, code: str, text: str, temporary: bool
) -> None:
    answer = tencent_status(code, text) if shape == "status" else tencent_error(code, text)
    fake.answers.append((200, answer))
    with pytest.raises(ProviderError) as caught:
        asyncio.run(tencent(fake).send(MESSAGE))
    assert caught.value.code == code
    assert caught.value.temporary is temporary
    assert fake.problems == []


def test_the_fake_server_rejects_a_wrong_signature(fake: FakeServer) -> None:
    """The signature check would catch a wrongly signed request (the test can fail)."""
    fake.answers.append((200, ALIYUN_OK))
    wrong = AliyunProvider(
        SmsSettings(
            provider="aliyun", access_key_id=AK_ID, access_key_secret="another-secret",
            endpoint=f"127.0.0.1:{fake.port}", scheme="http", templates={"booked": "SMS_1"},
        )
    )  # fmt: skip
    asyncio.run(wrong.send(MESSAGE))
    assert fake.problems == ["bad signature"]
