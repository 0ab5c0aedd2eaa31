"""Several app hosts on one machine (issue 22): each `yuyue serve` in its own network namespace
(`ip netns`, a veth pair to the machine), behind nginx with deploy/nginx/yuyue.conf, sharing one
throwaway PostgreSQL primary and its streaming replica (tests/pgcluster.py, durable commits).

    host i:  netns yuyue-<tag>-i, address 10.<n>.i.2 ; the machine's side 10.<n>.i.1
    nginx:   127.0.0.1:<port> on the machine, upstream = every host's 10.<n>.i.2:8000
    database: primary and replica listen on 127.0.0.1 and every 10.<n>.i.1; each host reads
             availability from the replica (YUYUE_DATABASE_REPLICA_URLS, decision 0090)

`Hosts` has the interface of _harness.Server (`base`, `port`, `url`) plus `kill(i)`; bench/rush.py
uses it with `--hosts N`. Needs root (ip netns) and nginx (deploy/check.py installs it).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.pgcluster import Cluster  # noqa: E402 - the repository root first

SITE = ROOT / "deploy" / "nginx" / "yuyue.conf"
APP_PORT = 8000


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


class Hosts:
    """N app hosts in network namespaces behind nginx, over a primary and a replica."""

    def __init__(self, count: int, workers: int, pool: int, replica: bool = True) -> None:
        self.count = count
        self.workers = workers
        self.pool = pool
        self.replica = replica
        self.tag = secrets.token_hex(2)
        self.net = 100 + secrets.randbelow(100)  # 10.<net>.i.0/24: unlikely to meet another bench
        self.tmp = Path(tempfile.mkdtemp(prefix="yuyue-hosts-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.nginx: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.cluster: Cluster | None = None
        self.database = "yuyue_hosts"
        self.namespaces: list[str] = []

    # --- addresses ---
    def machine_side(self, i: int) -> str:
        return f"10.{self.net}.{i}.1"

    def host_address(self, i: int) -> str:
        return f"10.{self.net}.{i}.2"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        assert self.cluster is not None
        return self.cluster.url(self.database)

    def host_base(self, i: int) -> str:
        return f"http://{self.host_address(i)}:{APP_PORT}"

    # --- network ---
    def _netns(self) -> None:
        for i in range(1, self.count + 1):
            ns, outside, inside = f"yuyue-{self.tag}-{i}", f"yyh{self.tag}{i}", f"yyn{self.tag}{i}"
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            sh("ip", "link", "set", inside, "netns", ns)
            sh("ip", "addr", "add", f"{self.machine_side(i)}/24", "dev", outside)
            sh("ip", "link", "set", outside, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.host_address(i)}/24", "dev", inside)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    # --- processes ---
    def _serve(self, i: int) -> subprocess.Popen[bytes]:
        assert self.cluster is not None
        side = self.machine_side(i)
        primary = f"postgresql://postgres@{side}:{self.cluster.primary_port}/{self.database}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("YUYUE_")}
        env.update(
            YUYUE_ENV="test",
            YUYUE_RATE_LIMITS="off",
            YUYUE_DATABASE_URL=primary,
            YUYUE_LOG_LEVEL="WARNING",
            YUYUE_DB_POOL_SIZE=str(self.pool),
            YUYUE_DB_MAX_OVERFLOW="0",
            YUYUE_FORWARDED_ALLOW_IPS=side,  # nginx, as this host sees it
        )
        if self.replica:
            env["YUYUE_DATABASE_REPLICA_URLS"] = (
                f"postgresql://postgres@{side}:{self.cluster.replica_port}/{self.database}"
            )
        log = (self.tmp / f"host-{i}.log").open("wb")
        command = ["ip", "netns", "exec", self.namespaces[i - 1], sys.executable, "-m", "yuyue", "serve"]
        command += ["--host", self.host_address(i), "--port", str(APP_PORT), "--workers", str(self.workers)]
        command += ["--no-jobs"]
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait(self, url: str, proc: subprocess.Popen[bytes] | None, name: str) -> None:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {self.tmp}")
            time.sleep(0.2)

    def _nginx(self) -> None:
        from _harness import free_port

        import yuyue

        static = Path(yuyue.__file__).resolve().parent / "web" / "static"
        self.port = free_port()
        upstreams = "".join(
            f"    server {self.host_address(i)}:{APP_PORT} max_fails=1 fail_timeout=5s;\n"
            for i in range(1, self.count + 1)
        )
        site = SITE.read_text()
        rules = [
            (r"(?m)^(\s*)listen 80 default_server;", rf"\1listen 127.0.0.1:{self.port} default_server;"),
            (r"(?m)^\s*listen \[::\]:80 default_server;\n", ""),
            (r"(?m)^\s*server 127\.0\.0\.1:8001\b.*\n\s*server 127\.0\.0\.1:8002\b.*\n", upstreams),
            (r"(?m)^(\s*alias )/opt/yuyue/venv/\S+/yuyue/web/static/;", rf"\g<1>{static}/;"),
            (r"(?m)^(\s*access_log )/var/log/nginx/yuyue\.access\.log", rf"\g<1>{self.tmp}/access.log"),
            (r"(?m)^(\s*error_log )/var/log/nginx/yuyue\.error\.log", rf"\g<1>{self.tmp}/nginx-error.log"),
        ]
        for pattern, replacement in rules:
            site, n = re.subn(pattern, replacement, site)
            if n != 1:
                raise RuntimeError(f"deploy/nginx/yuyue.conf no longer has {pattern!r}")
        (self.tmp / "yuyue.conf").write_text(site)
        temp = ""
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.tmp / "temp" / sub).mkdir(parents=True, exist_ok=True)
            temp += f"    {sub}_temp_path {self.tmp}/temp/{sub};\n"
        (self.tmp / "nginx.conf").write_text(
            f"user root;\nworker_processes 1;\npid {self.tmp}/nginx.pid;\n"
            f"error_log {self.tmp}/nginx-error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
            f"{temp}    include {self.tmp}/yuyue.conf;\n}}\n"
        )
        command = [
            "nginx",
            "-p",
            str(self.tmp),
            "-c",
            str(self.tmp / "nginx.conf"),
            "-e",
            str(self.tmp / "nginx-error.log"),
        ]
        sh(*command, "-t")
        self.nginx = subprocess.Popen([*command, "-g", "daemon off;"], start_new_session=True)
        self._wait(self.base, self.nginx, "nginx")

    def start(self) -> None:
        self._netns()
        listen = ("127.0.0.1", *(self.machine_side(i) for i in range(1, self.count + 1)))
        self.cluster = Cluster(listen=listen, trust_from=(f"10.{self.net}.0.0/16",), durable=True)
        self.cluster.start()
        import asyncio

        asyncio.run(self.cluster.primary_sql(f'CREATE DATABASE "{self.database}"'))
        env = {**os.environ, "YUYUE_DATABASE_URL": self.url, "YUYUE_ENV": "test"}
        subprocess.run(
            [sys.executable, "-m", "yuyue", "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        self.procs = [self._serve(i) for i in range(1, self.count + 1)]
        for i, proc in enumerate(self.procs, start=1):
            self._wait(self.host_base(i), proc, f"host {i}")
        time.sleep(0.5 * self.workers)
        self._nginx()

    def kill(self, i: int) -> None:
        """SIGKILL host i's server and workers at once: the host is gone, no clean shutdown."""
        proc = self.procs[i - 1]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(20)
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if self.cluster is not None:
            self.cluster.stop()
        for ns in self.namespaces:  # deleting the namespace deletes its veth end, and so the pair
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Hosts:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def sse_reaches_every_host(hosts: Hosts, hall_id: str, act: Any, timeout: float = 10.0) -> list[bool]:
    """Open the hall display's event stream on every host directly, run `act()` (a change made
    through nginx, so on one host), and tell for each host whether its stream carried the change."""
    import threading

    got = [False] * hosts.count
    ready = threading.Barrier(hosts.count + 1)

    def listen(i: int) -> None:
        seen_snapshot = False
        try:
            with httpx.stream(
                "GET", f"{hosts.host_base(i + 1)}/api/v1/halls/{hall_id}/queue/events", timeout=timeout
            ) as answer:
                for line in answer.iter_lines():
                    if line.startswith("event: queue") and not seen_snapshot:
                        seen_snapshot = True
                        ready.wait(timeout)
                    elif line.startswith("event: ") and seen_snapshot and line != "event: queue":
                        got[i] = True
                        return
        except (httpx.HTTPError, threading.BrokenBarrierError):
            return

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(hosts.count)]
    for thread in threads:
        thread.start()
    ready.wait(timeout)
    time.sleep(0.3)  # every stream subscribed
    act()
    for thread in threads:
        thread.join(timeout)
    return got
