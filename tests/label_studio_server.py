"""Start a REAL Label Studio server from its own virtualenv, for the tests and the fault benchmark.

`scripts/install_label_studio.sh` makes `.ls-venv` (or point LABEL_STUDIO_BIN at a `label-studio`
executable). Starting it, database migrations included, takes about a minute on two cores; a server
started on a copy of a migrated data dir (`copy_label_studio_data`) or restarted on its own data dir
is up in about ten seconds. `start_label_studio` and `kill_label_studio` are for the tests that
`kill -9` a server and start it again on the same data dir.
"""
from __future__ import annotations

import contextlib
import os
import signal
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = float(os.environ.get("LABEL_STUDIO_START_TIMEOUT", "300"))
ADMIN_EMAIL = "admin@dram.test"
TOKEN = "dram-integration-token-0123456789abcdef"


class ServerFailed(RuntimeError):
    """The server exited or never became healthy; the message ends with its log."""


@dataclass(frozen=True)
class Server:
    url: str
    token: str
    startup_s: float
    data_dir: Path | None = None


def label_studio_bin() -> Path | None:
    candidate = Path(os.environ.get("LABEL_STUDIO_BIN") or REPO / ".ls-venv" / "bin" / "label-studio")
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop_label_studio(process: subprocess.Popen) -> None:
    """End the server and anything it spawned (it runs in its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start_label_studio(binary: Path, data_dir: Path, port: int | None = None) -> tuple[Server, subprocess.Popen]:
    """A server on `data_dir` (fresh, or one an earlier server used, which it carries on with) whose admin's
    legacy token is `TOKEN`, once it answers /health; the caller stops it (`stop_label_studio`, `kill_label_studio`)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LABEL_STUDIO_USERNAME": ADMIN_EMAIL,
        "LABEL_STUDIO_PASSWORD": "dram-admin-password",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = data_dir / "server.log"
    command = [
        str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), "--enable-legacy-api-token",
    ]
    started = time.monotonic()
    with log_path.open("ab") as server_log:  # a restart's log follows the killed server's
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while not _healthy(url):
            if process.poll() is not None:
                raise ServerFailed(f"Label Studio exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() - started > START_TIMEOUT_S:
                raise ServerFailed(f"Label Studio not healthy after {START_TIMEOUT_S:.0f}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
    except BaseException:
        stop_label_studio(process)
        raise
    return Server(url=url, token=TOKEN, startup_s=time.monotonic() - started, data_dir=data_dir), process


@contextlib.contextmanager
def running_label_studio(binary: Path, data_dir: Path) -> Iterator[Server]:
    """A fresh server with an admin whose legacy token is `TOKEN`, stopped on exit."""
    server, process = start_label_studio(binary, data_dir)
    try:
        yield server
    finally:
        stop_label_studio(process)


def kill_label_studio(process: subprocess.Popen) -> None:
    """`kill -9` the server and everything it spawned (its process group), as a crash or an OOM kill would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def copy_label_studio_data(source: Path, target: Path) -> None:
    """Give a second server a migrated database (a consistent copy, even of a running server's) and the
    same secret key, so it starts in seconds instead of migrating a fresh one for a minute."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / ".env", target / ".env")
    with contextlib.closing(sqlite3.connect(source / "label_studio.sqlite3")) as original, \
            contextlib.closing(sqlite3.connect(target / "label_studio.sqlite3")) as copy:
        original.backup(copy)
