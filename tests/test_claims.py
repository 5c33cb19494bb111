"""Claims that outlive their annotator only briefly: the open page renews its claim while the annotator
works, and after a `kill -9` of the app the listing goes to the next annotator once the claim lapses.

The real app and a real browser, on SQLite and on a real PostgreSQL server; the lifetime is cut to a
few seconds here (DRAM_CLAIM_SECONDS) so the suite does not wait the default 120 s.
"""
from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from review.edits import ReviewItem
from review.queue import ClaimSettings, keep_claim
from store import open_store
from tests.app_server import launch_app
from tests.browser import CHROMIUM, launch_chromium, start_annotating

LIFETIME_S, HEARTBEAT_S = 4.0, 1.0
TEXTS = ["Roadster Men Navy Blue Casual Shirt", "Nike Women White Running Shoes"]


def test_the_heartbeat_renews_only_a_listing_its_annotator_acted_on_lately(tmp_path: Path) -> None:
    claims = ClaimSettings(lifetime_s=60, heartbeat_s=15, idle_s=900)
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        listing = store.add_listing(TEXTS[0])
        store.claim_next("alice", 0.5, timedelta(seconds=1))
        item = ReviewItem(listing, None, TEXTS[0], None, None, (), (), touched=time.time())
        assert keep_claim(store, "alice", item, claims)
        time.sleep(1.5)  # past the first claim's second: renewed, it still holds
        assert store.claims() == {listing: "alice"}
        assert not keep_claim(store, "alice", item, claims, now=time.time() + 901)  # idle for 15 minutes
        assert not keep_claim(store, "bob", item, claims)  # not bob's to renew
        assert not keep_claim(store, "alice", None, claims)
    assert ClaimSettings().lifetime_s == 120 and ClaimSettings().heartbeat_s == 30


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run scripts/install_browser.sh")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_claim_outlives_a_killed_app_only_briefly(backend: str, app_checkpoint: Path, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import sync_playwright

    url = (f"sqlite:///{tmp_path / 'store.sqlite'}" if backend == "sqlite"
           else request.getfixturevalue("postgres").create_database())
    with open_store(url) as store:
        ids = [store.add_listing(text) for text in TEXTS]
    app_url, process = launch_app(app_checkpoint, tmp_path / "app.log", {
        "DRAM_DB_URL": url, "DRAM_CLAIM_SECONDS": str(LIFETIME_S), "DRAM_CLAIM_HEARTBEAT_SECONDS": str(HEARTBEAT_S)})
    try:
        with sync_playwright() as playwright, open_store(url) as store:
            browser = launch_chromium(playwright)
            held = start_annotating(browser.new_page(), app_url, "alice")
            other = next(i for i in ids if i != held)
            assert store.claim_next("bob", 0.5, timedelta(minutes=10)).listing_id == other

            time.sleep(3 * LIFETIME_S)  # alice reads on: her open page keeps the listing hers
            assert store.claims().get(held) == "alice"
            assert store.claim_next("carol", 0.5) is None

            process.send_signal(signal.SIGKILL)  # the app dies with alice's listing claimed
            process.wait()
            killed = time.monotonic()
            while (item := store.claim_next("carol", 0.5)) is None:
                assert time.monotonic() - killed < LIFETIME_S + HEARTBEAT_S + 5, "the claim never lapsed"
                time.sleep(0.2)
            free_after = time.monotonic() - killed
            browser.close()
        assert item.listing_id == held
        assert free_after <= LIFETIME_S + HEARTBEAT_S + 1  # the bound: lifetime plus one heartbeat (and polling)
    finally:
        if process.poll() is None:
            process.kill()
