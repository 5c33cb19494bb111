"""Start a REAL Label Studio server from its own virtualenv, for the tests and the fault benchmark.

`scripts/install_label_studio.sh` makes `.ls-venv` (or point LABEL_STUDIO_BIN at a `label-studio`
executable). Starting it, database migrations included, takes about a minute on two cores.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
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


def _stop(process: subprocess.Popen) -> None:
    """End the server and anything it spawned (it runs in its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def running_label_studio(binary: Path, data_dir: Path) -> Iterator[Server]:
    """A fresh server with an admin whose legacy token is `TOKEN`, stopped on exit."""
    port = free_port()
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
    with log_path.open("wb") as server_log:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while not _healthy(url):
            if process.poll() is not None:
                raise ServerFailed(f"Label Studio exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() - started > START_TIMEOUT_S:
                raise ServerFailed(f"Label Studio not healthy after {START_TIMEOUT_S:.0f}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield Server(url=url, token=TOKEN, startup_s=time.monotonic() - started)
    finally:
        _stop(process)
