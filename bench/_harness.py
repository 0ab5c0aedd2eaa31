"""Shared pieces of the benchmarks: a throwaway PostgreSQL database, a `yuyue serve` process, the
set-up of a hall through the HTTP API, and an open-loop load generator that runs in its own process.

The load generator is deliberately small: raw HTTP/1.1 over keep-alive asyncio streams (uvloop when
available). It fires requests at a fixed arrival rate whatever the answers do (open loop), and
measures every latency from the moment the request was *due*, not from when a connection became
free, so a slow server cannot hide its queueing (no coordinated omission).
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = os.environ.get("YUYUE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_USER = "bench"
ADMIN_PASSWORD = "bench-admin-2026"

# --- database -----------------------------------------------------------------------------------


async def _pg_admin(sql: str, url: str = PG_ADMIN_URL) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def throwaway_database(prefix: str = "yuyue_bench") -> Iterator[str]:
    """A new database on the machine's PostgreSQL, migrated; dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        subprocess.run(
            [sys.executable, "-m", "yuyue", "db", "upgrade"],
            env={**os.environ, "YUYUE_DATABASE_URL": url, "YUYUE_ENV": "test"},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def sql_rows(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def analyze(url: str) -> None:
    """Autovacuum is off on this machine: give the planner statistics after loading data."""
    asyncio.run(_pg_admin("ANALYZE", url))


# --- server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`yuyue serve --workers N --no-jobs` in YUYUE_ENV=test with rate limits off."""

    def __init__(self, url: str, workers: int, pool: int, extra_env: dict[str, str] | None = None) -> None:
        self.url = url
        self.workers = workers
        self.pool = pool
        self.port = free_port()
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="yuyue-bench-", suffix=".log", delete=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "YUYUE_ENV": "test",
            "YUYUE_RATE_LIMITS": "off",
            "YUYUE_DATABASE_URL": self.url,
            "YUYUE_LOG_LEVEL": "WARNING",
            "YUYUE_DB_POOL_SIZE": str(self.pool),
            "YUYUE_DB_MAX_OVERFLOW": "0",
            **self.extra_env,
        }
        command = [sys.executable, "-m", "yuyue", "serve", "--port", str(self.port)]
        command += ["--workers", str(self.workers), "--no-jobs"]
        self.proc = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 180  # the machine may be busy with other work
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start; see {self.log.name}")
            time.sleep(0.2)
        time.sleep(0.5 * self.workers)  # let every worker finish its start-up

    def kill(self) -> None:
        """SIGKILL the server and every worker at once: a crash, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


ADMIN_ARGS = ("--username", ADMIN_USER, "--password", ADMIN_PASSWORD, "--unit", "platform", "--level", "1")
ADMIN_ARGS += ("--name", "压测管理员", "--title", "平台一级管理员", "--phone", "13800000000")


def make_admin(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "yuyue", "admin", "create", *ADMIN_ARGS],
        env={**os.environ, "YUYUE_DATABASE_URL": url, "YUYUE_ENV": "test"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


# --- set-up through the API ---------------------------------------------------------------------


def gb11643(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


def resident_id(n: int) -> str:
    """Distinct valid resident IDs: 1000 per birth date, birth dates from 1970 on."""
    day = datetime(1970, 1, 1).toordinal() + n // 1000
    birth = datetime.fromordinal(day).strftime("%Y%m%d")
    return gb11643(f"440106{birth}{n % 1000:03d}")


class Setup:
    """Admin steps over HTTP (the same calls an operator makes)."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=60)
        token = self.client.post(
            "/api/v1/admin/login", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        )
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['token']}"}

    def call(self, method: str, path: str, body: Any = None, ok: int = 200) -> Any:
        answer = self.client.request(method, path, json=body, headers=self.headers)
        if answer.status_code != ok:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def hall(self, hall_id: str) -> dict[str, Any]:
        body = {
            "id": hall_id,
            "name": f"压测大厅 {hall_id}",
            "kind": "city_hall",
            "parent_id": "platform",
            "address": "广州市天河区测试路1号",
            "hotline": "020-12345",
            "mode": "appointment_priority",
            "hours": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
            "counters": 4,
            "code": None,
        }
        return dict(self.call("POST", "/api/v1/admin/units", body, 201))

    def service(self, hall_id: str, name: str, daily_capacity: int) -> dict[str, Any]:
        body = {
            "hall_id": hall_id,
            "department": "公安户政",
            "name": name,
            "business_types": [],
            "daily_capacity": daily_capacity,
        }
        return dict(self.call("POST", "/api/v1/admin/services", body, 201))

    def set_clock(self, when: str) -> None:
        self.call("PUT", "/api/v1/test/clock", {"now": when})

    def availability(self, service_id: int) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v1/services/{service_id}/availability"))


async def _login_many(base: str, numbers: list[str], concurrency: int = 32) -> list[str]:
    tokens: list[str] = [""] * len(numbers)
    queue = list(enumerate(numbers))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            i, number = queue.pop()
            body = {"name": "测试市民", "id_number": number, "phone": "13800138000"}
            answer = await client.post("/api/v1/auth/dev/login", json=body)
            answer.raise_for_status()
            tokens[i] = answer.json()["token"]

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return tokens


def login_citizens(base: str, count: int, offset: int = 0) -> list[str]:
    """Log `count` distinct citizens in through the (development) login; returns their tokens."""
    return asyncio.run(_login_many(base, [resident_id(offset + i) for i in range(count)]))


# --- the open-loop load generator ---------------------------------------------------------------


def http_request(
    method: str, path: str, token: str | None = None, body: Any = None, headers: dict[str, str] | None = None
) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body
    return status, await reader.readexactly(length) if length else b""


async def _open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    rate: float,
    connections: int,
    start_at: float,
    timeout: float,
    keep: str,
    grace: float,
) -> dict[str, Any]:
    n = len(requests)
    status = [0] * n
    latency = [0.0] * n
    kept: list[str | None] = [None] * n
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
        await asyncio.sleep(0.002)  # spread the accepts over the server's worker processes
    delay = start_at - time.time()
    t0 = time.perf_counter() + max(delay, 0.0)

    # An attempt still waiting for a connection `grace` seconds after the last one was due is given
    # up (status -2, reported as an error): the run ends in bounded time even when the server cannot
    # keep up, and the give-ups show how far behind it was.
    give_up = t0 + n / rate + grace

    async def one(i: int, due: float) -> None:
        reader, writer = await pool.get()
        if time.perf_counter() > give_up:
            status[i], latency[i] = -2, time.perf_counter() - due
            pool.put_nowait((reader, writer))
            return
        try:
            writer.write(requests[i])
            async with asyncio.timeout(timeout):  # no task per request, as wait_for makes on 3.11
                code, body = await _read_answer(reader)
            status[i] = code
            if keep and body:
                with contextlib.suppress(ValueError):
                    answer = json.loads(body)
                    if isinstance(answer, dict):
                        kept[i] = answer.get(keep) if code < 300 else answer.get("code")
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            status[i] = -1  # timeout or broken connection: counted as an error
            writer.close()
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.1)
                reader, writer = await asyncio.open_connection(host, port)
        finally:
            latency[i] = time.perf_counter() - due
            pool.put_nowait((reader, writer))

    tasks: list[asyncio.Task[None]] = []
    while time.perf_counter() < t0:
        await asyncio.sleep(min(0.01, t0 - time.perf_counter()))
    sent = 0
    while sent < n:
        now = time.perf_counter()
        due_count = min(n, int((now - t0) * rate) + 1)
        while sent < due_count:
            tasks.append(asyncio.create_task(one(sent, t0 + sent / rate)))
            sent += 1
        # Sleep until the next attempt is due, not in fixed small steps: the load generator shares
        # the machine's two cores with the server and should take as little of them as it can.
        await asyncio.sleep(max(0.0, t0 + sent / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {"status": status, "latency": latency, "kept": kept, "elapsed": elapsed, "t0_wall": start_at}


def _loader_main(args: dict[str, Any], out: str) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(_open_loop(**args))
    Path(out).write_text(json.dumps(result))


def run_load(
    port: int,
    requests: list[bytes],
    rate: float,
    connections: int,
    start_at: float,
    timeout: float = 10.0,
    keep: str = "",
    grace: float = 15.0,
) -> dict[str, Any]:
    """Fire `requests` at `rate` per second from a separate process, starting at wall time `start_at`.
    `keep` names a JSON field of 2xx answers to return (error answers return their `code`)."""
    out = tempfile.NamedTemporaryFile(prefix="yuyue-load-", suffix=".json", delete=False)
    out.close()
    args = {
        "host": "127.0.0.1",
        "port": port,
        "requests": requests,
        "rate": rate,
        "connections": connections,
        "start_at": start_at,
        "timeout": timeout,
        "keep": keep,
        "grace": grace,
    }
    process = multiprocessing.get_context("spawn").Process(target=_loader_main, args=(args, out.name))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"load generator failed with exit code {process.exitcode}")
    result: dict[str, Any] = json.loads(Path(out.name).read_text())
    os.unlink(out.name)
    return result


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def latency_summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 1),
        "p95_ms": round(percentile(ordered, 95) * 1000, 1),
        "p99_ms": round(percentile(ordered, 99) * 1000, 1),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
    }


def cpu_times() -> list[int]:
    """The machine's CPU time counters (/proc/stat's first line: user, nice, system, idle, iowait,
    irq, softirq, steal), or [] where there is no /proc."""
    with contextlib.suppress(OSError):
        return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return []


def cpu_share(before: list[int], after: list[int]) -> dict[str, float] | None:
    """Per cent of the machine's CPU time between two `cpu_times()`: busy, idle, iowait, and steal
    (time the hypervisor gave this machine's cores to another guest: a run with much of it was
    slowed by the host, not by the code)."""
    if not before or not after:
        return None
    d = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(d) or 1
    user, nice, system, idle, iowait, irq, softirq, steal = d
    return {
        "busy_pct": round(100 * (user + nice + system + irq + softirq) / total, 1),
        "idle_pct": round(100 * idle / total, 1),
        "iowait_pct": round(100 * iowait / total, 1),
        "steal_pct": round(100 * steal / total, 1),
    }


def loop_ms() -> float:
    """How long this machine takes for a pure-Python loop of two million additions, in ms: the
    machine's speed at the time of the run (seen here between runs: 180-360 ms)."""
    started, total = time.perf_counter(), 0
    for i in range(2_000_000):
        total += i
    return round((time.perf_counter() - started) * 1000, 1)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "loop_2m_ms": loop_ms(),
        "note": "load generator, server and PostgreSQL share the same cores",
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path
