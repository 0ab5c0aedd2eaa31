"""A real OpenID Provider for the tests: panva's certified `oidc-provider` (npm, v8) run with the
machine's Node.js from tests/identity/oidc_op/provider.mjs. The first use installs its locked
dependencies (`npm ci`) into tests/identity/oidc_op/node_modules (not committed). Without Node.js
or the npm registry the tests that need it are skipped, except in CI (`CI` set), where they fail."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).parent / "oidc_op"
CLIENT_ID = "yuyue-portal"
CLIENT_SECRET = "real-op-client-secret-0123456789"  # noqa: S105 - a test provider's client
REDIRECT_URI = "http://test/login/callback"
POST_LOGOUT_URI = "http://test/"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the real OpenID Provider is required in CI: {reason}")
    pytest.skip(f"no real OpenID Provider: {reason}")


def install() -> None:
    """`npm ci` once (a lock file serialises parallel test processes)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node/npm not installed")
    with open(HERE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
            return
        done = subprocess.run(  # noqa: S603 - fixed arguments
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],  # noqa: S607
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            _unavailable(f"npm ci failed: {done.stderr.strip()[-300:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealProvider:
    """One provider process. `conform=True` is the specification's default placement (profile and
    phone claims only in UserInfo once an access token is issued); False puts them in the ID token
    too. `rotate()` restarts it with a new signing key under a new key id."""

    def __init__(self, users: dict[str, dict[str, Any]], conform: bool = True) -> None:
        self.users, self.conform = users, conform
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.kid = "k1"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "OP_PORT": str(self.port),
            "OP_USERS": json.dumps(self.users),
            "OP_CLIENT_ID": CLIENT_ID,
            "OP_CLIENT_SECRET": CLIENT_SECRET,
            "OP_REDIRECT_URI": REDIRECT_URI,
            "OP_POST_LOGOUT_URI": POST_LOGOUT_URI,
            "OP_CONFORM": "1" if self.conform else "0",
            "OP_KID": self.kid,
        }
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
            ["node", str(HERE / "provider.mjs")],  # noqa: S607
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "ready <issuer>", or "" when it died
        if not line.startswith("ready"):
            self.stop()
            pytest.fail(f"the OpenID Provider did not start (exit {self.process.poll()})")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        pytest.fail("the OpenID Provider does not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def rotate(self) -> None:
        self.stop()
        self.kid = f"k{int(self.kid[1:]) + 1}"
        self.start()

    def jwks_mode(self, mode: str) -> None:
        """`ok`, `html` (a maintenance page), `reset` (connection dropped), `503`."""
        httpx.get(f"{self.issuer}/__test/jwks", params={"mode": mode}, timeout=5).raise_for_status()
