"""Seconds from `python app.py` to the first page answer on a machine without a model, as on a fresh Space.

The app starts with DRAM_CHECKPOINT at an empty temporary folder and DRAM_BUILD_MISSING=1, so it
builds the default model in the background; this measures when the page answers (GET / and the
page's config showing the build banner) and, with --wait, asks "/extract" every 10 seconds until the
model is served, printing the progress each refusal reports.

    python benchmarks/bench_space_start.py            # start-up only, then stops the app (and its build)
    python benchmarks/bench_space_start.py --wait     # also the whole build, until "/extract" answers
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from gradio_client import Client
from gradio_client.exceptions import AppError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app_server import free_port, stop_app  # noqa: E402

TITLE = "U.S. Polo Assn. Men Checks Navy Blue Shirt"
POLL_S = 0.25
BANNER = "The model is being built"


def seconds_until(check, process: subprocess.Popen, started: float, limit_s: float, poll_s: float = POLL_S) -> float:
    """Seconds from `started` until `check()` is true; fails if the app exits or `limit_s` passes."""
    while time.monotonic() - started < limit_s:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}")
        try:
            if check():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
    raise RuntimeError(f"not within {limit_s:.0f} s")


def extract_answers(url: str, seen: list[str]) -> bool:
    """True once "/extract" answers; while the model is being built, note the progress it reports."""
    try:
        Client(url, verbose=False).predict(TITLE, None, 0.5, api_name="/extract")
        return True
    except AppError as err:
        seen.append(str(err))
        print(f"  {err}", flush=True)
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wait", action="store_true", help="also wait for the build and the first extraction")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds the page may take to answer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="space-start-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "DRAM_CHECKPOINT": str(Path(tmp) / "models" / "default"), "DRAM_BUILD_MISSING": "1",
               "DRAM_DB_URL": f"sqlite:///{tmp}/store.sqlite", "GRADIO_SERVER_NAME": "127.0.0.1",
               "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
        with open(Path(tmp) / "app.log", "w") as log_file:
            started = time.monotonic()
            process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log_file,
                                       stderr=subprocess.STDOUT)
            try:
                page_s = seconds_until(lambda: httpx.get(url, timeout=5).status_code == 200, process, started,
                                       args.limit)
                banner_s = seconds_until(lambda: BANNER in httpx.get(url + "config", timeout=5).text, process,
                                         started, args.limit)
                print(f"page answered {page_s:.1f} s after `python app.py`; build banner in the page at "
                      f"{banner_s:.1f} s")
                if args.wait:
                    seen: list[str] = []
                    ready_s = seconds_until(lambda: extract_answers(url, seen), process, started, 3600, poll_s=10)
                    print(f"model built and served: first extraction answered {ready_s / 60:.1f} min after start")
            finally:
                stop_app(process)
        print(f"load average: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
