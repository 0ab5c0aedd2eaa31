"""YUYUE_FORWARDED_ALLOW_IPS: `yuyue serve` takes the client address from X-Forwarded-For only when
the request comes from a listed proxy. Seen where the app records a client address: the SMS-code
limit's keyed hash of it (phone_codes.client_hash). Real `yuyue serve` processes, both backends."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import Api, raw
from yuyue.kit import crypto


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _client_recorded(api: Api, database_url: str, allow: str | None, phone: str) -> str:
    """POST a code request with a forged X-Forwarded-For to a `yuyue serve` started with `allow`;
    the keyed hash of the client address the app recorded."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUYUE_")}
    env.update(YUYUE_ENV="test", YUYUE_DATABASE_URL=database_url, YUYUE_LOG_LEVEL="WARNING")
    if allow is not None:
        env["YUYUE_FORWARDED_ALLOW_IPS"] = allow
    server = subprocess.Popen(
        [sys.executable, "-m", "yuyue", "serve", "--port", str(port), "--no-jobs"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120  # importing the app can take a while on a busy machine
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                await asyncio.sleep(0.2)
            answer = await client.post(
                "/api/v1/auth/phone/code", json={"phone": phone}, headers={"X-Forwarded-For": "203.0.113.9"}
            )
            assert answer.status_code == 201, answer.text
    finally:
        server.terminate()
        server.wait(timeout=20)
    secret = api.app.state.settings.effective_secret
    phone_hash = crypto.lookup_hash(secret, f"phone:{phone}")
    [(client_hash,)] = await raw(
        api, "SELECT client_hash FROM phone_codes WHERE phone_hash = :p", p=phone_hash
    )
    return str(client_hash)


async def test_forwarded_for_counts_only_from_the_listed_proxies(api: Api, database_url: str) -> None:
    secret = api.app.state.settings.effective_secret

    def address(value: str) -> str:
        return crypto.lookup_hash(secret, f"client:{value}")

    # The two servers start side by side (each is mostly its own process starting up); each records
    # its own phone's code, so neither sees the other's row.
    default, other = await asyncio.gather(
        _client_recorded(api, database_url, None, "13900000001"),
        _client_recorded(api, database_url, "192.0.2.1", "13900000002"),
    )
    # Default: the local proxy (127.0.0.1) is trusted, so its X-Forwarded-For is the client.
    assert default == address("203.0.113.9")
    # Another proxy listed: a request from 127.0.0.1 is a client like any other, its header ignored.
    assert other == address("127.0.0.1")
