"""A signing partner client for the channel tests."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from yuyue.config import Settings
from yuyue.kit import addresses
from yuyue.kit.signing import sign

PUBLIC_IP = "93.184.216.34"  # what the fake DNS answers for partner hosts (a public address)


@pytest.fixture(autouse=True)
def dns() -> Iterator[dict[str, list[str]]]:
    """A fake resolver for webhook hosts (decision 0094): tests change its answers; a name it does
    not know does not resolve."""
    answers: dict[str, list[str]] = {"partner.test": [PUBLIC_IP], "partner.example": [PUBLIC_IP]}

    async def resolve(host: str, port: int) -> list[str]:
        return list(answers.get(host, []))

    addresses.resolve = resolve
    yield answers
    addresses.resolve = addresses.system_resolve


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(env="test", database_url=database_url, db_pool_size=20, log_level="WARNING")


class Partner:
    """Signs requests as a registered API client (X-Yuyue-Key, -Timestamp, -Nonce, -Signature)."""

    def __init__(self, api: Api, key_id: str, key_secret: str) -> None:
        self.api, self.key_id, self.key_secret = api, key_id, key_secret
        self.citizen_token = ""

    def headers(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        nonce: str | None = None,
        timestamp: int | None = None,
        query: str = "",
        idempotency: str | None = None,
    ) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or secrets.token_urlsafe(16)
        authorization = f"Bearer {self.citizen_token}" if self.citizen_token else ""
        headers = {
            "X-Yuyue-Key": self.key_id,
            "X-Yuyue-Timestamp": ts,
            "X-Yuyue-Nonce": nonce,
            "X-Yuyue-Signature": sign(self.key_secret, method, path, query, ts, nonce, body, authorization),
            "Content-Type": "application/json",
        }
        if authorization:  # decision 0094: the token is signed with the request
            headers["Authorization"] = authorization
        if idempotency is not None:
            headers["Idempotency-Key"] = idempotency
        return headers

    async def call(self, method: str, path: str, payload: Any = None, **kw: Any) -> httpx.Response:
        body = json.dumps(payload).encode() if payload is not None else b""
        return await self.api.client.request(
            method, path, content=body, headers=self.headers(method, path, body, **kw)
        )


async def register(api: Api, client_id: str = "wechat-gz", channel: str = "wechat", **extra: Any) -> Partner:
    body = {
        "id": client_id,
        "name": "广州政务微信公众号",
        "channel": channel,
        "scopes": ["citizens:login", "bookings:read", "bookings:write"],
        **extra,
    }
    response = await api.client.post("/api/v1/admin/api-clients", json=body, headers=api.admin())
    assert response.status_code == 201, response.text
    key = response.json()["key"]
    return Partner(api, key["id"], key["secret"])
