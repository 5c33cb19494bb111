"""Start a REAL throw-away PostgreSQL server for the tests and the store benchmark.

`scripts/install_postgres.sh` installs Debian's server binaries. PostgreSQL refuses to run as
root (and CI runs as root), so when we are root `initdb` and `pg_ctl` run as the `postgres` user
through `runuser`. The server listens on 127.0.0.1 on a free port with trust authentication and
lives in a temporary folder that is deleted when it stops; it takes a few seconds to start.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

START_TIMEOUT_S = 60


class PostgresFailed(RuntimeError):
    """The server could not be set up or started; the message ends with its log."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, prefix: str = "dram") -> str:
        """A new empty database (tests each get one, so they never see each other's rows); its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def pg_bin() -> Path | None:
    """The folder with initdb and pg_ctl: PG_BIN, else Debian's newest /usr/lib/postgresql/N/bin."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def running_postgres(binaries: Path | None = None) -> Iterator[PostgresServer]:
    """Init a cluster in a temporary folder, start it, yield it, stop it and delete the folder."""
    binaries = binaries or pg_bin()
    if binaries is None:
        raise PostgresFailed("PostgreSQL is not installed: run scripts/install_postgres.sh (or set PG_BIN)")
    base = Path(tempfile.mkdtemp(prefix="dram-pg-"))
    data, log_file = base / "data", base / "server.log"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()

    def run(command: list[str]) -> None:
        done = subprocess.run(_as_server_user(command), capture_output=True, text=True, cwd=base)
        if done.returncode != 0:
            log_tail = log_file.read_text()[-3000:] if log_file.exists() else ""
            raise PostgresFailed(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log_tail}")

    try:
        run([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=100"
        run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log_file), "-o", options, "-w",
             "-t", str(START_TIMEOUT_S), "start"])
        try:
            yield PostgresServer("127.0.0.1", port)
        finally:
            run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":  # manual check: python -m tests.postgres_server
    started = time.monotonic()
    with running_postgres() as server:
        print(f"up at {server.url()} after {time.monotonic() - started:.1f}s; {server.create_database()}")
