"""`make deploy-check`: the deployment of docs/operations.md, run for real on this machine.

nginx with deploy/nginx/yuyue.conf (ports, paths and logs rewritten, its own prefix, no system-wide
config) in front of two `yuyue serve` processes and a `yuyue worker`, on a throwaway PostgreSQL
database at 127.0.0.1:5432 (user postgres, trust). Through nginx it books a seat as a citizen and
reads it back, follows a hall display's event stream while staff issue and call a ticket, checks that
the client address the app records is the one nginx saw (a forged X-Forwarded-For is ignored), that
static files come from nginx, and that one stopped process does not stop the service. Then it runs
the backup script (deploy/yuyue-backup.sh), restores the dump into a second database as
docs/operations.md says, and reads the booking back from an app serving the restored copy.

The app processes run under the kernel's refusal of writable executable memory (prctl PR_SET_MDWE,
what MemoryDenyWriteExecute=yes in the systemd units enforces), so that setting is tested too.

Run with the venv's python (the one `yuyue` is installed in): `make deploy-check`. Needs nginx
(installed from Debian when missing and run as root), psql/pg_dump/pg_restore, PostgreSQL on
127.0.0.1:5432. Everything it starts is stopped and both databases are dropped on exit.
"""

# ruff: noqa: S603, S607 - fixed commands (psql, nginx, yuyue, apt-get) are what this script runs

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx" / "yuyue.conf"
BACKUP = ROOT / "deploy" / "yuyue-backup.sh"
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
CLOCK = "2026-12-01T10:00:00+08:00"  # a Tuesday, 10:00: halls open, the city horizon ahead
HALL = "gz-hall"
SPOOFED = "203.0.113.9"  # TEST-NET-3: never a real client
CONTROL = "198.51.100.7"  # TEST-NET-2: the forwarded address of the control request


class Failed(Exception):
    pass


def resident_id(body: str) -> str:
    """17 digits and their GB 11643 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip() or "(no output)"


class Check:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="yuyue-deploy-check-"))
        self.tmp.chmod(0o755)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.databases: list[str] = []
        self.passed = 0
        self.yuyue = str(Path(sys.executable).parent / "yuyue")
        self.secret = secrets.token_urlsafe(48)
        tag = secrets.token_hex(4)
        self.role = f"yuyue_deploy_{tag}_owner"  # owns the databases, as `yuyue` does in production
        self.db = f"yuyue_deploy_{tag}"
        self.restored = f"yuyue_deploy_{tag}_restored"
        self.nginx_port = 0
        self.ports: list[int] = []
        self.mdwe_ok = False

    # --- reporting -----------------------------------------------------------------------------

    def ok(self, what: str) -> None:
        self.passed += 1
        print(f"ok   {what}", flush=True)

    # --- commands and processes ----------------------------------------------------------------

    def env(self, database: str | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("YUYUE_")}
        env.update(
            YUYUE_ENV="test",  # the dev login and the settable clock (never in production)
            YUYUE_SECRET_KEY=self.secret,
            YUYUE_DATABASE_URL=self.url(database or self.db),
            YUYUE_RATE_LIMITS="off",
            YUYUE_LOG_LEVEL="INFO",
            YUYUE_FORWARDED_ALLOW_IPS="127.0.0.1",  # nginx: the proxy whose X-Forwarded-For counts
            YUYUE_JOBS_INTERVAL_S="2",
        )
        env.update(extra)
        return env

    def url(self, database: str) -> str:
        return f"postgresql://{self.role}@{PG['host']}:{PG['port']}/{database}"

    def run(self, what: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> str:
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise Failed(f"{what}: {exc}") from None
        except subprocess.TimeoutExpired:
            raise Failed(f"{what}: no answer within {timeout:.0f} s") from None
        if done.returncode != 0:
            raise Failed(f"{what}: exit {done.returncode}: {first_line(done.stderr or done.stdout)}")
        return done.stdout

    def psql(self, sql: str, database: str = "postgres") -> str:
        argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", PG["host"], "-p", PG["port"]]
        return self.run(f"psql {sql[:40]!r}", [*argv, "-U", PG["user"], "-d", database, "-c", sql]).strip()

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.tmp / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def alive(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            raise Failed(f"{name} exited with {process.returncode}: {self.log_error(name)}")

    def log_error(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        for line in lines:
            if any(word in line for word in ("Error", "error", "Traceback", "emerg", "crit")):
                return line.strip()[:300]
        return lines[-1].strip()[:300] if lines else "(empty log)"

    def mdwe(self, argv: list[str]) -> list[str]:
        """argv run under PR_SET_MDWE (what MemoryDenyWriteExecute=yes enforces) when the kernel has it."""
        if not self.mdwe_ok:
            return argv
        code = (
            "import ctypes, os, sys\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit('prctl(PR_SET_MDWE) failed')\n"
            "os.execv(sys.argv[1], sys.argv[1:])\n"
        )
        return [sys.executable, "-c", code, *argv]

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def wait_http(self, name: str, port: int, path: str = "/healthz", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive(name)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise Failed(f"{name} did not answer {path} on port {port} within {timeout:.0f} s")

    # --- HTTP ------------------------------------------------------------------------------------

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        port: int | None = None,
        expect: int = 200,
    ) -> tuple[Any, http.client.HTTPResponse, bytes]:
        sent = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if token:
            sent["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port or self.nginx_port}{path}", data=data, headers=sent, method=method
        )
        try:
            answer = urllib.request.urlopen(request, timeout=20)  # noqa: S310 - 127.0.0.1 only
        except urllib.error.HTTPError as error:
            answer = error
        except (urllib.error.URLError, OSError) as exc:
            raise Failed(f"{method} {path}: {exc}") from None
        with answer:
            raw = answer.read()
            status = answer.status
        if status != expect:
            raise Failed(
                f"{method} {path}: {status} instead of {expect}: {first_line(raw.decode(errors='replace'))}"
            )
        parsed: Any = None
        if raw and "json" in (answer.headers.get("content-type") or ""):
            parsed = json.loads(raw)
        return parsed, answer, raw  # type: ignore[return-value]

    # --- the steps ---------------------------------------------------------------------------------

    def ensure_tools(self) -> None:
        if shutil.which("nginx") is None:
            if os.geteuid() != 0:
                raise Failed("nginx is not installed and this is not root: apt-get install nginx-light")
            install_nginx()
        for tool in ("psql", "pg_dump", "pg_restore"):
            if shutil.which(tool) is None:
                raise Failed(f"{tool} is missing: apt-get install postgresql-client")
        if not Path(self.yuyue).exists():
            raise Failed(f"{self.yuyue} is missing: run with the python of the venv yuyue is installed in")
        probe = subprocess.run(  # in a child: the setting cannot be undone in this process
            [
                sys.executable,
                "-c",
                "import ctypes,sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)",
            ],
            check=False,
        )
        self.mdwe_ok = probe.returncode == 0
        self.ok("tools: " + ", ".join(f"{t} {shutil.which(t)}" for t in ("nginx", "psql", "pg_dump")))

    def units(self) -> None:
        """deploy/systemd/: every directive known to this systemd (`systemd-analyze verify` prints
        nothing), with the ExecStart paths pointed at what exists here."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.ok("systemd units: not verified (no systemd-analyze here)")
            return
        units = self.tmp / "units"
        units.mkdir()
        for unit in sorted((ROOT / "deploy" / "systemd").iterdir()):
            text = unit.read_text().replace("/opt/yuyue/venv/bin/yuyue", self.yuyue)
            (units / unit.name).write_text(text.replace("/usr/local/sbin/yuyue-backup", str(BACKUP)))
        names = sorted(str(u) for u in units.iterdir())
        done = subprocess.run([analyze, "verify", *names], capture_output=True, text=True, check=False)
        said = (done.stderr + done.stdout).strip()
        if done.returncode != 0 or said:
            raise Failed(f"systemd-analyze verify deploy/systemd: {first_line(said)}")
        self.ok(f"systemd units verified: {', '.join(u.name for u in sorted(units.iterdir()))}")

    def database(self) -> None:
        self.psql("SELECT 1")
        self.psql(f'CREATE ROLE "{self.role}" LOGIN')  # not a superuser
        self.databases.append(self.role)
        self.psql(f'CREATE DATABASE "{self.db}" OWNER "{self.role}" ENCODING \'UTF8\' TEMPLATE template0')
        self.databases.append(self.db)
        env = self.env()
        self.run("yuyue db upgrade", [self.yuyue, "db", "upgrade"], env)
        self.run("yuyue demo", [self.yuyue, "demo"], env)
        self.admin_password = "Ops-" + secrets.token_hex(8) + "9"
        out = self.run(
            "yuyue admin create",
            [
                self.yuyue,
                "admin",
                "create",
                "--username",
                "opsroot",
                "--password",
                self.admin_password,
                "--unit",
                "platform",
                "--level",
                "1",
                "--name",
                "运维管理员",
                "--title",
                "平台一级管理员",
                "--phone",
                "13800000001",
            ],
            env,
        )
        if "created" not in out:
            raise Failed(f"yuyue admin create: {first_line(out)}")
        self.ok(
            f"database {self.db} of role {self.role}: migrated, demo, first admin by `yuyue admin create`"
        )

    def app(self) -> None:
        self.ports = [self.free_port(), self.free_port()]
        for i, port in enumerate(self.ports):
            env = self.env(YUYUE_CLOCK=CLOCK) if i == 0 else self.env()
            argv = [self.yuyue, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-jobs"]
            self.start(f"serve-{i + 1}", self.mdwe(argv), env)
            self.wait_http(f"serve-{i + 1}", port)
        self.start("worker", self.mdwe([self.yuyue, "worker"]), self.env())
        note = "under PR_SET_MDWE" if self.mdwe_ok else "(kernel without PR_SET_MDWE: W^X not tested)"
        self.ok(f"two `yuyue serve` processes on {self.ports} and a `yuyue worker`, {note}")

    def nginx(self) -> None:
        import yuyue

        static = Path(yuyue.__file__).resolve().parent / "web" / "static"
        site = SITE.read_text()
        self.nginx_port = self.free_port()
        rules: list[tuple[str, str, int]] = [
            (
                r"(?m)^(\s*)listen 80 default_server;",
                rf"\1listen 127.0.0.1:{self.nginx_port} default_server;",
                1,
            ),
            (r"(?m)^\s*listen \[::\]:80 default_server;\n", "", 1),
            (r"(?m)^(\s*server )127\.0\.0\.1:8001\b", rf"\g<1>127.0.0.1:{self.ports[0]}", 1),
            (r"(?m)^(\s*server )127\.0\.0\.1:8002\b", rf"\g<1>127.0.0.1:{self.ports[1]}", 1),
            (r"(?m)^(\s*alias )/opt/yuyue/venv/\S+/yuyue/web/static/;", rf"\g<1>{static}/;", 1),
            (r"(?m)^(\s*access_log )/var/log/nginx/yuyue\.access\.log", rf"\g<1>{self.tmp}/access.log", 1),
            (r"(?m)^(\s*error_log )/var/log/nginx/yuyue\.error\.log", rf"\g<1>{self.tmp}/nginx-error.log", 1),
        ]
        for pattern, replacement, count in rules:
            site, n = re.subn(pattern, replacement, site)
            if n != count:
                raise Failed(f"deploy/nginx/yuyue.conf no longer has the line {pattern!r} the check rewrites")
        (self.tmp / "yuyue.conf").write_text(site)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.tmp / "temp" / sub).mkdir(parents=True, exist_ok=True)
        # Workers run as the user running the check: the installed package may sit below a home
        # directory that `nobody` (nginx's default worker user) cannot read.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"    {sub}_temp_path {self.tmp}/temp/{sub.replace('client_body', 'body')};\n"
            for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.tmp / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {self.tmp}/nginx.pid;\n"
            f"error_log {self.tmp}/nginx-error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
            f"{temp}    include {self.tmp}/yuyue.conf;\n}}\n"
        )
        base = [
            "nginx",
            "-p",
            str(self.tmp),
            "-c",
            str(self.tmp / "nginx.conf"),
            "-e",
            str(self.tmp / "nginx-error.log"),
        ]
        self.run("nginx -t", [*base, "-t"])
        self.start("nginx", [*base, "-g", "daemon off;"])
        self.wait_http("nginx", self.nginx_port)
        self.ok(f"nginx on 127.0.0.1:{self.nginx_port} with deploy/nginx/yuyue.conf (prefix {self.tmp})")

    def through_nginx(self) -> None:
        self.http("GET", "/readyz")
        _, answer, raw = self.http("GET", "/static/portal.css")
        import yuyue

        shipped = (Path(yuyue.__file__).resolve().parent / "web" / "static" / "portal.css").read_bytes()
        if raw != shipped or answer.headers.get("content-security-policy") is not None:
            raise Failed("/static/portal.css was not the package's file served by nginx")
        if answer.headers.get("x-content-type-options") != "nosniff":
            raise Failed("/static/portal.css: no X-Content-Type-Options: nosniff")
        self.http("GET", "/metrics", expect=404)
        self.ok("readyz through nginx; /static/ from the installed package by nginx; /metrics not exposed")

        citizen, _, _ = self.http(
            "POST",
            "/api/v1/auth/dev/login",
            {
                "name": "张三",
                "id_type": "resident_id",
                "id_number": "11010519491231002X",
                "phone": "13800138000",
            },
        )
        self.citizen = citizen["token"]
        services, _, _ = self.http("GET", f"/api/v1/halls/{HALL}/services")
        if not services:
            raise Failed(f"{HALL} has no services")
        self.service = next((s["id"] for s in services if not s.get("bundle_of")), services[0]["id"])
        availability, _, _ = self.http("GET", f"/api/v1/services/{self.service}/availability")
        slot = next((s for d in availability["days"] for s in d["slots"] if s["status"] == "open"), None)
        if slot is None:
            raise Failed(f"service {self.service}: no open slot in its horizon")
        booking, _, _ = self.http(
            "POST",
            "/api/v1/appointments",
            {"slot_id": slot["id"], "channel": "web"},
            token=self.citizen,
            expect=201,
        )
        self.number = booking["number"]
        again, _, _ = self.http("GET", f"/api/v1/appointments/{self.number}", token=self.citizen)
        if again["number"] != self.number or again["status"] != "booked" or again["slot_id"] != slot["id"]:
            raise Failed(f"GET /api/v1/appointments/{self.number}: {again}")
        self.ok(f"citizen dev login, booked {self.number} ({slot['start']}) and read it back, through nginx")

    def display_stream(self) -> None:
        admin, _, _ = self.http(
            "POST", "/api/v1/admin/login", {"username": "opsroot", "password": self.admin_password}
        )
        token = admin["token"]
        events: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Condition()
        stream = http.client.HTTPConnection("127.0.0.1", self.nginx_port, timeout=30)
        stream.request("GET", f"/api/v1/halls/{HALL}/queue/events", headers={"Accept": "text/event-stream"})
        answer = stream.getresponse()
        if answer.status != 200 or not (answer.getheader("content-type") or "").startswith(
            "text/event-stream"
        ):
            raise Failed(f"queue/events: {answer.status} {answer.getheader('content-type')}")

        def read() -> None:
            kind = ""
            with contextlib.suppress(Exception):  # the stream is cut from the main thread at the end
                while True:
                    line = answer.readline()
                    if not line:
                        return
                    text = line.decode().rstrip("\n")
                    if text.startswith("event: "):
                        kind = text[7:]
                    elif text.startswith("data: "):
                        with lock:
                            events.append((kind, json.loads(text[6:])))
                            lock.notify_all()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def wait_for(kind: str, timeout: float = 10) -> dict[str, Any]:
            with lock:
                found = lock.wait_for(lambda: any(k == kind for k, _ in events), timeout)
                if not found:
                    seen = [k for k, _ in events]
                    raise Failed(
                        f"hall display stream: no `{kind}` event within {timeout:.0f} s (got {seen})"
                    )
                data = next(d for k, d in events if k == kind)
                events.clear()
                return data

        try:
            wait_for("queue")  # the snapshot on connect
            ticket, _, _ = self.http(
                "POST",
                f"/api/v1/halls/{HALL}/tickets",
                {
                    "service_id": self.service,
                    "id_type": "resident_id",
                    "id_number": resident_id("44010619800101001"),
                    "green": None,
                },
                token=token,
                expect=201,
            )
            number = ticket["ticket"]["number"]
            wait_for("change")
            counters, _, _ = self.http("GET", f"/api/v1/halls/{HALL}/counters", token=token)
            called, _, _ = self.http("POST", f"/api/v1/counters/{counters[0]['id']}/call-next", token=token)
            call = wait_for("call")
            if number not in json.dumps(call, ensure_ascii=False) or called["ticket"]["number"] != number:
                raise Failed(f"hall display stream: the call event {call} is not ticket {number}")
        finally:
            with contextlib.suppress(OSError):
                stream.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
            stream.close()
            reader.join(timeout=5)
        self.ok(f"hall display stream through nginx: snapshot, ticket {number} issued, then its call")

    def client_address(self) -> None:
        from yuyue.kit import crypto

        def recorded(phone: str) -> str:
            phone_hash = crypto.lookup_hash(self.secret, f"phone:{phone}")
            return self.psql(
                f"SELECT client_hash FROM phone_codes WHERE phone_hash = '{phone_hash}'", self.db
            )

        def address(value: str) -> str:
            return crypto.lookup_hash(self.secret, f"client:{value}")

        # Control: straight to a process from 127.0.0.1 (a trusted proxy address), the header counts,
        # so the record below can tell the two addresses apart.
        self.http(
            "POST",
            "/api/v1/auth/phone/code",
            {"phone": "13900000001"},
            headers={"X-Forwarded-For": CONTROL},
            port=self.ports[0],
            expect=201,
        )
        if recorded("13900000001") != address(CONTROL):
            raise Failed("control failed: a trusted proxy's X-Forwarded-For did not reach the app's records")
        # Through nginx: it replaces the header with its $remote_addr, so the forged one is dropped.
        forged = {"X-Forwarded-For": SPOOFED}
        self.http("POST", "/api/v1/auth/phone/code", {"phone": "13900000002"}, headers=forged, expect=201)
        seen = recorded("13900000002")
        if seen == address(SPOOFED):
            raise Failed(f"the app took the client's forged X-Forwarded-For {SPOOFED} through nginx")
        if seen != address("127.0.0.1"):
            raise Failed("the app did not record nginx's $remote_addr (127.0.0.1) as the client address")
        self.ok(f"client address: a forged X-Forwarded-For {SPOOFED} is replaced by nginx's 127.0.0.1")

    def balanced(self) -> None:
        log = (self.tmp / "access.log").read_text()
        upstreams = set(re.findall(r"127\.0\.0\.1:(\d+) [\d.-]+$", log, re.M))
        if {str(p) for p in self.ports} - upstreams:
            raise Failed(
                f"nginx sent nothing to one of the processes (access log upstreams: {sorted(upstreams)})"
            )
        if "11010519491231002X" in log or "13800138000" in log:
            raise Failed("nginx's access log holds personal data")
        self.stop("serve-2")  # a process being restarted (docs: upgrades restart them one at a time)
        for _ in range(6):
            self.http("GET", "/api/v1/halls")
        self.http("GET", f"/api/v1/appointments/{self.number}", token=self.citizen)
        self.ok("both processes served requests; with one stopped every request still answered")

    def backup_restore(self) -> None:
        self.alive("worker")
        backups = self.tmp / "backups"
        backups.mkdir(mode=0o700)
        out = self.run(
            "deploy/yuyue-backup.sh",
            ["sh", str(BACKUP)],
            {**os.environ, "YUYUE_DATABASE_URL": self.url(self.db), "YUYUE_BACKUP_DIR": str(backups)},
        )
        dumps = sorted(backups.glob("yuyue-*.dump"))
        if len(dumps) != 1:
            raise Failed(f"deploy/yuyue-backup.sh left {len(dumps)} dumps: {first_line(out)}")
        # The restore of docs/operations.md: an empty database, pg_restore --no-owner, db upgrade.
        self.psql(
            f'CREATE DATABASE "{self.restored}" OWNER "{self.role}" ENCODING \'UTF8\' TEMPLATE template0'
        )
        self.databases.append(self.restored)
        self.run(
            "pg_restore",
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                "--single-transaction",
                "-d",
                self.url(self.restored),
                str(dumps[0]),
            ],
        )
        env = self.env(self.restored)
        self.run("yuyue db upgrade (restored)", [self.yuyue, "db", "upgrade"], env)
        port = self.free_port()
        self.start("serve-restored", self.mdwe([self.yuyue, "serve", "--port", str(port), "--no-jobs"]), env)
        self.wait_http("serve-restored", port)
        again, _, _ = self.http("GET", f"/api/v1/appointments/{self.number}", token=self.citizen, port=port)
        if again["status"] != "booked" or again["applicant"]["phone"] != "138****8000":
            raise Failed(f"the restored database answers {again}")
        self.ok(f"backup {dumps[0].name} restored into {self.restored}; an app on it reads {self.number}")

    # --- cleanup ----------------------------------------------------------------------------------

    def cleanup(self, keep_logs: bool) -> None:
        for name in list(self.processes):
            self.stop(name)
        for database in reversed(self.databases):  # the databases, then their role
            try:
                if database == self.role:
                    self.psql(f'DROP ROLE IF EXISTS "{database}"')
                else:
                    self.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            except Failed as exc:
                print(f"cleanup: {exc}", flush=True)
        if keep_logs:
            for log in sorted(self.tmp.glob("*.log")):
                lines = log.read_text(errors="replace").splitlines()[-5:]
                if lines:
                    print(f"--- {log.name} (last lines)", *lines, sep="\n", flush=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def install_nginx() -> None:
    """Debian's nginx, without letting the package start a system-wide nginx on port 80."""
    policy = Path("/usr/sbin/policy-rc.d")
    made = False
    if not policy.exists():  # an existing policy is left exactly as it is
        policy.write_text(
            "#!/bin/sh\n# yuyue deploy check: no service starts while installing nginx\nexit 101\n"
        )
        policy.chmod(0o755)
        made = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        for package in ("nginx-light", "nginx"):
            done = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                env=env,
                check=False,
                capture_output=True,
                text=True,
            )
            if done.returncode == 0 and shutil.which("nginx"):
                return
        raise Failed(f"apt-get install nginx: {first_line(done.stderr or done.stdout)}")
    finally:
        if made:
            policy.unlink(missing_ok=True)


@contextlib.contextmanager
def signals_end_the_check() -> Iterator[None]:
    def stop(signum: int, _frame: Any) -> None:
        raise Failed(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    check = Check()
    steps = [
        check.ensure_tools,
        check.units,
        check.database,
        check.app,
        check.nginx,
        check.through_nginx,
        check.display_stream,
        check.client_address,
        check.balanced,
        check.backup_restore,
    ]
    failed = False
    try:
        with signals_end_the_check():
            for step in steps:
                step()
    except (Exception, KeyboardInterrupt) as exc:  # every failure: its first line, then cleanup
        failed = True
        what = str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}"
        print(f"FAIL deploy-check: {first_line(what)}", flush=True)
    finally:
        check.cleanup(keep_logs=failed)
    print(f"deploy-check: {check.passed} passed, {int(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
