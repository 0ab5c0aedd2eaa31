"""A throwaway PostgreSQL primary with a streaming replica, for the tests of reads from replicas
(decision 0090) and of several hosts. `initdb` + `postgres` on free ports in a temporary folder;
the replica is `pg_basebackup -R` of the primary. Run as the `postgres` user when the tests run as
root (PostgreSQL refuses root). The machine's own server is left alone: it does not accept
replication connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

BIN = Path(os.environ.get("YUYUE_PG_BIN", "/usr/lib/postgresql/15/bin"))
NEEDED = ("initdb", "pg_ctl", "pg_basebackup", "postgres")


def missing_binaries() -> str | None:
    """Why the cluster cannot be built here, or None."""
    absent = [name for name in NEEDED if not (BIN / name).exists()]
    return f"PostgreSQL server binaries absent from {BIN}: {', '.join(absent)}" if absent else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A primary and one replica; `url(db)` and `replica_url(db)` name a database on each."""

    def __init__(
        self,
        listen: tuple[str, ...] = ("127.0.0.1",),
        trust_from: tuple[str, ...] = (),
        durable: bool = False,
    ) -> None:
        """`listen`: the addresses both servers listen on; `trust_from`: more networks (CIDR) that
        may connect and replicate without a password (the bench's app hosts, bench/hosts.py);
        `durable`: commits wait for the disk as in production (the bench), else no fsync (tests)."""
        self.listen = listen
        self.durable = durable
        self.trust_from = trust_from
        self.root = Path(tempfile.mkdtemp(prefix="yuyue-pg-"))
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = [str(BIN / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root, timeout=120)

    def _options(self, port: int) -> str:
        # Test speed: no fsync (a crash of the machine loses a throwaway cluster, nothing else).
        fast = "" if self.durable else "-c fsync=off -c full_page_writes=off "
        return (
            f"-p {port} -k {self.root} -c listen_addresses={','.join(self.listen)} {fast}"
            "-c max_connections=300 -c wal_receiver_status_interval=1"
        )

    def start(self) -> None:
        primary, replica = self.root / "primary", self.root / "replica"
        self._run("initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C")
        with (primary / "pg_hba.conf").open("a") as hba:
            for network in self.trust_from:
                hba.write(f"host all all {network} trust\nhost replication all {network} trust\n")
        self._run("pg_ctl", "-D", str(primary), "-o", self._options(self.primary_port), "-l",
                  str(self.root / "primary.log"), "-w", "start")  # fmt: skip
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(replica), "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        self.start_replica()

    def start_replica(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "replica"), "-o", self._options(self.replica_port),
                  "-l", str(self.root / "replica.log"), "-w", "start")  # fmt: skip

    def stop_replica(self) -> None:
        """Stop the replica at once, as a crash would (connections dropped, nothing flushed)."""
        self._run("pg_ctl", "-D", str(self.root / "replica"), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        for name in ("replica", "primary"):
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.root / name), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/{database}"

    def replica_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.replica_port}/{database}"

    async def primary_sql(self, sql: str, database: str = "postgres") -> object:
        conn = await asyncpg.connect(self.url(database))
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    async def replica_sql(self, sql: str, database: str = "postgres") -> object:
        conn = await asyncpg.connect(self.replica_url(database))
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    async def caught_up(self, timeout: float = 10.0) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        target = await self.primary_sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                replayed = await self.replica_sql("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
                if replayed is not None and replayed >= target:  # type: ignore[operator]
                    return
            await asyncio.sleep(0.05)
        raise TimeoutError("the replica did not catch up")
