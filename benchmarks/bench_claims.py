"""Seconds until a listing held by a crashed annotator goes to the next one, with the app's real defaults.

For SQLite and a real PostgreSQL server: starts `app.py`, an annotator opens the Annotate tab in
headless Chromium and takes a listing, reads for `--read` seconds (the page renews the claim), then
the app is killed with SIGKILL; another annotator asks the store for a listing every 0.5 s until that
one is handed out. Prints the seconds from the kill, and whether the reader kept the listing.

    .venv/bin/python benchmarks/bench_claims.py            # about 6 minutes: two backends, 120 s claims
"""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dram.paths import DEFAULT_CHECKPOINT  # noqa: E402
from review.queue import ClaimSettings  # noqa: E402
from store import open_store  # noqa: E402
from tests.app_server import launch_app  # noqa: E402
from tests.browser import launch_chromium, start_annotating  # noqa: E402
from tests.postgres_server import running_postgres  # noqa: E402

TEXTS = ["Roadster Men Navy Blue Casual Shirt", "Nike Women White Running Shoes"]


def measure(url: str, read_s: float, work: Path) -> tuple[bool, float]:
    from playwright.sync_api import sync_playwright

    with open_store(url) as store:
        for text in TEXTS:
            store.add_listing(text)
    app_url, process = launch_app(DEFAULT_CHECKPOINT, work / "app.log", {"DRAM_DB_URL": url})
    try:
        with sync_playwright() as playwright, open_store(url) as store:
            held = start_annotating(launch_chromium(playwright).new_page(), app_url, "alice")
            store.claim_next("bob", 0.5, timedelta(hours=1))  # the other listing: only alice's is left
            time.sleep(read_s)
            kept = store.claims().get(held) == "alice"
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed = time.monotonic()
            while (item := store.claim_next("carol", 0.5)) is None:
                time.sleep(0.5)
            assert item.listing_id == held
            return kept, time.monotonic() - killed
    finally:
        if process.poll() is None:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--read", type=float, default=ClaimSettings().lifetime_s * 1.5,
                        help="seconds the annotator reads before the crash (past one claim lifetime)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-claims-"))
    settings = ClaimSettings.from_env()
    print(f"claim lifetime {settings.lifetime_s:.0f} s, heartbeat {settings.heartbeat_s:.0f} s, read {args.read:.0f} s")
    print("| store | reader kept the listing | seconds from kill -9 to the next annotator |\n|---|---|--:|")
    kept, seconds = measure(f"sqlite:///{work / 'store.sqlite'}", args.read, work)
    print(f"| SQLite | {kept} | {seconds:.1f} |", flush=True)
    with running_postgres() as server:
        kept, seconds = measure(server.create_database(), args.read, work)
    print(f"| PostgreSQL | {kept} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
