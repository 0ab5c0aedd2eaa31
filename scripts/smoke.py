#!/usr/bin/env python3
"""`make smoke`: try the README on a fresh checkout, as a newcomer and as a city's IT team would.

(a) `git clone` of this checkout's HEAD into a temporary folder, `make run PORT=<free port>` there,
    wait for /healthz, then fetch /, /halls and /admin.
(b) `pip install .` (no extras) into a new virtual environment, then the README's production block
    ("Running on PostgreSQL with several workers") as written, on a throwaway PostgreSQL database,
    with only the database URL, the port and the worker count swapped; check /healthz, /readyz, a
    citizen page and an admin login.

Standard library only, so it runs with any python3. Fails loudly with the first error line.
Set SMOKE_PG (default postgresql://postgres@127.0.0.1:5432/postgres) for another server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("SMOKE_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
README_DB = "postgresql://yuyue@db.example/yuyue"


class SmokeFailed(Exception):
    pass


def step(text: str) -> None:
    print(f"smoke: {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def first_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"(Error|error:|Traceback|No such|not found|failed|FAILED)", line):
            return line
    return lines[-1] if lines else "(no output)"


def run(cmd: list[str] | str, *, cwd: Path, env: dict[str, str] | None = None, shell: bool = False) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, shell=shell, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        raise SmokeFailed(f"{cmd if isinstance(cmd, str) else ' '.join(cmd)}: {first_error_line(output)}")
    return done.stdout


def fetch(url: str, *, data: dict[str, object] | None = None, timeout: float = 10) -> tuple[int, str]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"} if body else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def wait_healthy(base: str, process: subprocess.Popen[str], log: Path, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SmokeFailed(f"server exited ({process.returncode}): {first_error_line(log.read_text())}")
        if "Traceback (most recent call last)" in log.read_text():
            raise SmokeFailed(f"the server failed: {first_error_line(log.read_text())}")
        try:
            if fetch(f"{base}/healthz", timeout=2)[0] == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(1)
    last = first_error_line(log.read_text())
    raise SmokeFailed(f"{base}/healthz did not answer within {limit_s:.0f} s: {last}")


def expect(base: str, path: str, status: int = 200, contains: str | None = None) -> str:
    code, text = fetch(base + path)
    if code != status:
        raise SmokeFailed(f"GET {path}: {code}, expected {status}: {first_error_line(text)}")
    if contains is not None and contains not in text:
        raise SmokeFailed(f"GET {path}: answer lacks {contains!r}")
    step(f"GET {path} -> {code}")
    return text


def stop(process: subprocess.Popen[str] | None) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def clean_env() -> dict[str, str]:
    """The caller's environment without anything of ours (a venv, YUYUE_* settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YUYUE_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return env


def newcomer(tmp: Path) -> None:
    """(a) A fresh clone, `make run`, the three pages."""
    clone = tmp / "clone"
    step(f"git clone {ROOT} -> {clone}")
    run(["git", "clone", "--quiet", str(ROOT), str(clone)], cwd=tmp)
    port = free_port()
    log = tmp / "make-run.log"
    step(f"make run PORT={port} (installs, migrates, loads the demo, serves)")
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=clone,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, process, log, limit_s=900)
        expect(base, "/", contains="<html")
        expect(base, "/halls", contains="<html")
        expect(base, "/admin", contains="<form")
        if "admin" not in log.read_text():
            raise SmokeFailed("`yuyue demo` printed no admin accounts")
    finally:
        stop(process)


def readme_production_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Running on PostgreSQL with several workers", 1)
    if len(section) != 2:
        raise SmokeFailed("README.md has no 'Running on PostgreSQL with several workers' section")
    match = re.search(r"```sh\n(.*?)```", section[1], re.S)
    if match is None:
        raise SmokeFailed("README.md's production section has no sh block")
    return match.group(1).rstrip("\n").split("\n")


def production(tmp: Path) -> None:
    """(b) `pip install .` without extras, then the README's production steps on PostgreSQL."""
    database = f"yuyue_smoke_{secrets.token_hex(4)}"
    admin_url = PG
    server = PG.rsplit("/", 1)[0]
    run(["psql", admin_url, "-qc", f'CREATE DATABASE "{database}"'], cwd=tmp)
    checkout = tmp / "release"  # only what is committed goes into the package (package data included)
    run(["git", "clone", "--quiet", str(ROOT), str(checkout)], cwd=tmp)
    venv = tmp / "venv"
    processes: list[subprocess.Popen[str]] = []
    try:
        step(f"python3 -m venv {venv}")
        run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
        env = clean_env()
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
        env["VIRTUAL_ENV"] = str(venv)
        port = free_port()
        lines = readme_production_block()
        script: list[str] = ["set -euo pipefail"]
        swaps = {
            README_DB: f"{server}/{database}",
            "--port 8000": f"--port {port}",
            "--workers 8": "--workers 2",
        }
        for line in lines:
            for old, new in swaps.items():
                line = line.replace(old, new)
            line = line.replace("--host 0.0.0.0", "--host 127.0.0.1")
            script.append(line)
        script.append("wait")
        for old in swaps:
            if not any(old in line for line in lines):
                raise SmokeFailed(f"README's production block lacks {old!r}: update scripts/smoke.py")
        step("README production block, as run:\n    " + "\n    ".join(script[1:-1]))
        log = tmp / "production.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                ["bash", "-c", "\n".join(script)],
                cwd=checkout,  # `pip install .` installs the fresh clone
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, process, log, limit_s=900)
        expect(base, "/readyz")
        expect(base, "/halls", contains="<html")
        expect(base, "/", contains="<html")
        code, text = fetch(
            f"{base}/api/v1/admin/login", data={"username": "root", "password": "change-me-now-2026"}
        )
        if code != 200 or "token" not in text:
            raise SmokeFailed(f"admin login: {code}: {first_error_line(text)}")
        step("POST /api/v1/admin/login -> 200 (production, PostgreSQL, 2 workers)")
        code, _ = fetch(f"{base}/api/v1/test/clock")
        if code != 404:
            raise SmokeFailed(f"GET /api/v1/test/clock answered {code} in production (expected 404)")
        output = log.read_text()
        if "Traceback" in output:
            raise SmokeFailed(f"the production server logged an error: {first_error_line(output)}")
    finally:
        for process in processes:
            stop(process)
        subprocess.run(
            ["psql", admin_url, "-qc", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
            capture_output=True,
            check=False,
        )


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="yuyue-smoke-"))
    started = time.monotonic()
    try:
        which = sys.argv[1:] or ["newcomer", "production"]
        if "newcomer" in which:
            newcomer(tmp)
        if "production" in which:
            production(tmp)
    except SmokeFailed as exc:
        print(f"smoke FAILED: {exc}", file=sys.stderr, flush=True)
        print(f"smoke: logs kept in {tmp}", file=sys.stderr)
        return 1
    step(f"passed in {time.monotonic() - started:.0f} s")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
