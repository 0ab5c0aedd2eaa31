"""Support of the browser tests (citizen portal, consoles): a live `yuyue serve` on a throwaway SQLite
database with the Guangzhou demo loaded and the settable clock, Debian's Chromium driven by
Playwright (never a downloaded browser), and a page check (screenshot + axe-core: no serious or
critical violation). In CI (CI=true) a missing Chromium fails the tests instead of skipping them."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS_ROOT = ROOT / "test-artefacts"
CLOCK = "2026-12-01T10:00:00+08:00"

try:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - dev extra not installed
    Axe = None  # type: ignore[assignment,misc]


def require_browser() -> None:
    missing = []
    if Axe is None:
        missing.append("the playwright and axe-playwright-python packages (pip install -e '.[dev]')")
    if not Path(CHROMIUM).is_file():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium fonts-wqy-microhei)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_DEMOS: dict[tuple[str, tuple[tuple[str, str], ...]], Path] = {}


@contextlib.contextmanager
def serve_live(folder: Path, clock: str = CLOCK, **env_extra: str) -> Iterator[str]:
    """`yuyue serve` on a fresh copy of a SQLite database made by `yuyue db upgrade` and `yuyue demo`
    (made once per run for each clock and environment); yields the base URL."""
    port = free_port()
    env = {
        **os.environ,
        "YUYUE_ENV": "test",
        "YUYUE_DATABASE_URL": f"sqlite:///{folder / 'live.sqlite3'}",
        "YUYUE_CLOCK": clock,
        "YUYUE_RATE_LIMITS": "off",
        "YUYUE_LOG_LEVEL": "WARNING",
        **env_extra,
    }
    cli = [sys.executable, "-m", "yuyue"]
    key = (clock, tuple(sorted(env_extra.items())))
    if key not in _DEMOS:  # the migrated demo database, built once per run and copied for each server
        built = Path(tempfile.mkdtemp(prefix="yuyue-demo-")) / "demo.sqlite3"
        build_env = {**env, "YUYUE_DATABASE_URL": f"sqlite:///{built}"}
        for step in (["db", "upgrade"], ["demo"]):
            subprocess.run([*cli, *step], env=build_env, check=True, capture_output=True, timeout=120)
        atexit.register(shutil.rmtree, built.parent, True)
        _DEMOS[key] = built
    for suffix in ("", "-wal"):  # a WAL the demo left unmerged belongs to the copy too
        if _DEMOS[key].with_name(f"demo.sqlite3{suffix}").exists():
            shutil.copy(_DEMOS[key].with_name(f"demo.sqlite3{suffix}"), folder / f"live.sqlite3{suffix}")
    log = (folder / "serve.log").open("w")
    server = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "serve.log").read_text())
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    require_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def serious_violations(page: Page) -> list[str]:
    """axe-core on the page as it is now: the serious and critical violations."""
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def check_page(page: Page, folder: str, name: str) -> Path:
    """Screenshot the page under test-artefacts/<folder>/<name>.png and assert the axe check."""
    target = ARTEFACTS_ROOT / folder
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    bad = serious_violations(page)
    assert not bad, f"{name}: {bad}"
    return path
