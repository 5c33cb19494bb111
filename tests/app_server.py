"""Starting and stopping the real app (`python app.py`) for the app tests; the fixtures are in conftest.py."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from dram.paths import ROOT

# The default model's label map (training data order: most frequent first).
ATTRIBUTES = ["brand", "gender", "article_type", "colour", "pattern"]
STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, log_file: Path) -> None:
    import httpx

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}:\n{log_file.read_text()[-4000:]}")
        try:
            if httpx.get(url + "gradio_api/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the app did not start in {STARTUP_TIMEOUT_S}s:\n{log_file.read_text()[-4000:]}")


def launch_app(checkpoint: Path, log_file: Path, env: dict[str, str] | None = None,
               tree: Path = ROOT) -> tuple[str, subprocess.Popen]:
    """Start `python app.py` of `tree` (this checkout unless told) on 127.0.0.1 at a free port, the way
    a user would (`env` adds to the environment, e.g. DRAM_DB_URL); return its URL."""
    port = free_port()
    env = {**os.environ, **(env or {}), "DRAM_CHECKPOINT": str(checkpoint), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    handle = log_file.open("w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=tree, env=env, stdout=handle,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, process, log_file)
    except BaseException:
        stop_app(process)
        raise
    return url, process


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
