"""Rate limits shared through Redis by several `yuyue serve` processes, and what each limit does while
Redis is down (issue 22, decisions 0064 and 0091).

Two real `yuyue serve` processes on one database, their limits in a throwaway `redis-server` started
for this test (so it can be stopped mid-run without touching the machine's Redis, which other
processes use). Client addresses come from X-Forwarded-For (the servers trust 127.0.0.1, the default).
Then apps of two deployments on one Redis: their key prefixes (decision 0101) keep them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.pgcluster import free_port
from yuyue.app import create_app
from yuyue.config import Settings

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
LIMIT = 10  # requests a minute per address, for this test


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="yuyue-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.folder),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout
            != b"PONG\n"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def servers(redis: Redis, sqlite_template: Path, tmp_path: Path) -> Iterator[list[str]]:
    database = tmp_path / "yuyue.sqlite3"
    shutil.copy(sqlite_template, database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUYUE_")}
    env.update(
        YUYUE_ENV="test",
        YUYUE_DATABASE_URL=f"sqlite:///{database}",
        YUYUE_LOG_LEVEL="WARNING",
        YUYUE_REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
        YUYUE_RATE_LIMIT_ADDRESS=f"{LIMIT}/minute",
        YUYUE_RATE_LIMIT_LOGIN=f"{LIMIT}/minute",
    )
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "yuyue", "serve", "--port", str(port), "--no-jobs"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, process in zip(urls, processes, strict=True):
            deadline = time.monotonic() + 120  # importing the app can take a while on a busy machine
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


def _address() -> str:
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"  # a fresh client each time


async def _spread(urls: list[str], address: str, each: int, path: str = "/api/v1/units") -> list[int]:
    """`each` requests from one client address to every server, interleaved; their statuses."""
    statuses = []
    async with httpx.AsyncClient(timeout=30, headers={"X-Forwarded-For": address}) as client:
        for _ in range(each):
            for url in urls:
                statuses.append((await client.get(f"{url}{path}")).status_code)
    return statuses


async def _gauge(url: str) -> float:
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(f"{url}/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("yuyue_rate_limit_storage_up"))
    return float(line.split()[-1])


async def _login(url: str, address: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30, headers={"X-Forwarded-For": address}) as client:
        return await client.post(
            f"{url}/api/v1/admin/login", json={"username": "nobody", "password": "x" * 12}
        )


async def test_limits_are_shared_by_two_serve_processes_and_defined_while_redis_is_down(
    servers: list[str], redis: Redis
) -> None:
    # Shared: one address, 6 requests to each process, 12 in all against 10 a minute.
    statuses = await _spread(servers, _address(), 6)
    assert statuses.count(200) == LIMIT and statuses.count(429) == 2, statuses
    assert [await _gauge(url) for url in servers] == [1.0, 1.0]

    redis.stop()  # mid-run
    # Address limit: fails open to each process's own counters (6 per process, under 10 each).
    statuses = await _spread(servers, _address(), 6)
    assert set(statuses) == {200}, statuses
    # ...but still a limit per process: 12 more to each from one address, 10 pass in each process.
    statuses = await _spread(servers, _address(), 12)
    assert statuses.count(200) == 2 * LIMIT and statuses.count(429) == 4, statuses
    # Login limit: fails closed, 503 with Retry-After, never a 500.
    for url in servers:
        refused = await _login(url, _address())
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "unavailable" and refused.headers["Retry-After"] == "1"
    # The alert: each process says its shared storage is down.
    assert [await _gauge(url) for url in servers] == [0.0, 0.0]

    redis.start()  # an empty Redis: the counters start again
    await asyncio.sleep(1.2)  # each process tries Redis again after RETRY_REDIS_S
    statuses = await _spread(servers, _address(), 6)
    assert statuses.count(200) == LIMIT and statuses.count(429) == 2, statuses
    assert [await _gauge(url) for url in servers] == [1.0, 1.0]
    login = await _login(servers[0], _address())
    assert login.status_code == 401, login.text  # wrong password: the login door works again


async def _hits(app: object, address: str, count: int) -> list[int]:
    """`count` requests from one client address to an in-process app; their statuses."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers={"X-Forwarded-For": address}
    ) as client:
        return [(await client.get("/api/v1/units")).status_code for _ in range(count)]


async def test_deployments_on_one_redis_share_limits_only_within_their_prefix(
    redis: Redis, sqlite_template: Path, tmp_path: Path
) -> None:
    database = tmp_path / "yuyue.sqlite3"
    shutil.copy(sqlite_template, database)
    tag = secrets.token_hex(3)
    first, second = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

    def app(prefix: str = "", secret: str = first) -> object:
        settings = Settings(
            env="test",
            database_url=f"sqlite:///{database}",
            log_level="WARNING",
            redis_url=f"redis://127.0.0.1:{redis.port}/0",
            redis_prefix=prefix,
            secret_key=secret,
            rate_limit_address=f"{LIMIT}/minute",
        )
        return create_app(settings, run_jobs=False)

    # An explicit YUYUE_REDIS_PREFIX: the hosts of one deployment share it, another deployment's differs.
    one, same, other = app(f"city-{tag}"), app(f"city-{tag}"), app(f"town-{tag}")
    # The default, derived from the secret key: the same secret shares, another one does not.
    derived, derived_same, derived_other = app(), app(), app(secret=second)
    apps = (one, same, other, derived, derived_same, derived_other)
    async with contextlib.AsyncExitStack() as started:
        for each in apps:
            await started.enter_async_context(LifespanManager(each))  # type: ignore[arg-type]
        for pair, stranger in (((one, same), other), ((derived, derived_same), derived_other)):
            address = _address()
            statuses = await _hits(pair[0], address, 6) + await _hits(pair[1], address, 6)
            assert statuses.count(200) == LIMIT and statuses.count(429) == 2, statuses  # shared
            assert await _hits(stranger, address, LIMIT) == [200] * LIMIT  # its own counters

    listed = subprocess.run(
        ["redis-cli", "-p", str(redis.port), "--scan"], capture_output=True, text=True, check=True
    ).stdout.split()
    prefixes = {key.split(":", 1)[0] for key in listed}
    derived_prefixes = {Settings(env="test", secret_key=s).redis_key_prefix for s in (first, second)}
    assert prefixes == {f"city-{tag}", f"town-{tag}", *derived_prefixes}, listed  # every key prefixed
    assert all(p.startswith("yuyue-") and first not in p for p in derived_prefixes)


@pytest.mark.parametrize("prefix", ["has space", "a" * 65, "new\nline", "ключ"])
def test_a_redis_prefix_of_other_characters_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="YUYUE_REDIS_PREFIX"):
        Settings(env="test", redis_prefix=prefix)
