"""Citizen pages on a slow phone (issue 8 item 7): page weight and time to first byte.

Starts `yuyue serve` on a throwaway SQLite database with the demo loaded (clock Tue 2026-12-01
10:00), logs a citizen in through the page form, books once, then fetches each page of the booking
flow N times. Prints, per page: HTML bytes, the bytes of everything it loads (CSS, JS), the median
and p95 time to first byte, and the time to download it all on a 400 kbit/s link (slow 3G), and
writes bench/results/web_pages.json.

    .venv/bin/python bench/web_pages.py [--n 50]
"""

from __future__ import annotations

# isort: off
import _venv  # noqa: F401 - first: runs this script under the project's .venv
# isort: on

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SLOW_LINK_BPS = 400_000
ID_NUMBER = "11010519491231002X"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ttfb(client: httpx.Client, url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with client.stream("GET", url) as response:
        first = time.perf_counter() - started
        body = response.read()
        assert response.status_code == 200, (url, response.status_code)
    return first, body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="yuyue-web-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "YUYUE_ENV": "development",
        "YUYUE_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
        "YUYUE_CLOCK": "2026-12-01T10:00:00+08:00",
        "YUYUE_RATE_LIMITS": "off",
        "YUYUE_LOG_LEVEL": "WARNING",
    }
    cli = [sys.executable, "-m", "yuyue"]
    for step in (["db", "upgrade"], ["demo"]):
        subprocess.run([*cli, *step], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--no-jobs"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(100):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            client.get("/halls?agree=1")
            hall = client.get("/halls/tianhe-hall").text
            service = re.search(r'href="(/services/\d+)"', hall).group(1)  # type: ignore[union-attr]
            slot = re.search(r'href="(/confirm\?slot=[0-9-]+)"', client.get(service).text).group(1)  # type: ignore[union-attr]
            token = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
            client.post(
                "/login",
                data={"csrf": token, "name": "测试", "id_number": ID_NUMBER, "phone": "13800138000"},
            )
            confirm = client.get(slot).text
            key = re.search(r'name="form_key" value="([^"]+)"', confirm).group(1)  # type: ignore[union-attr]
            booked = client.post(
                "/book", data={"csrf": token, "slot_id": slot.split("=")[1], "form_key": key}
            )
            booking = booked.headers["location"].split("?")[0]
            pages = {
                "notice /": "/",
                "halls": "/halls",
                "hall": "/halls/tianhe-hall",
                "calendar": service,
                "confirm": slot,
                "success": booking + "?done=booked",
                "my bookings": "/bookings",
                "receipt": booking + "/receipt",
            }
            assets = {
                path: len(client.get(path).content) for path in ("/static/portal.css", "/static/portal.js")
            }
            rows = []
            for name, path in pages.items():
                times, size = [], 0
                for _ in range(args.n):
                    first, body = ttfb(client, path)
                    times.append(first * 1000)
                    size = len(body)
                loads = sum(assets.values()) if path != booking + "/receipt" else 0
                total = size + loads
                times.sort()
                rows.append(
                    {
                        "page": name,
                        "html_bytes": size,
                        "total_bytes": total,
                        "ttfb_ms_median": round(statistics.median(times), 1),
                        "ttfb_ms_p95": round(times[int(len(times) * 0.95) - 1], 1),
                        "slow_3g_ms": round(statistics.median(times) + total * 8 / SLOW_LINK_BPS * 1000),
                    }
                )
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{'page':<12} {'html B':>8} {'total B':>8} {'TTFB med':>9} {'TTFB p95':>9} {'400kbit/s':>10}")
    for row in rows:
        print(
            f"{row['page']:<12} {row['html_bytes']:>8} {row['total_bytes']:>8} {row['ttfb_ms_median']:>7} ms"
            f" {row['ttfb_ms_p95']:>6} ms {row['slow_3g_ms']:>7} ms"
        )
    RESULTS.mkdir(exist_ok=True)
    result = {"n": args.n, "assets": assets, "pages": rows, "link_bps": SLOW_LINK_BPS}
    (RESULTS / "web_pages.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
