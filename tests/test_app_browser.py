"""The app in a real browser (Debian chromium driven by Playwright): what a merchandiser sees.

Needs /usr/bin/chromium (scripts/install_browser.sh). Run with `pytest -m browser`.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from dram.paths import EXAMPLES
from tests.browser import CHROMIUM, TIMEOUT_MS, launch_chromium

log = logging.getLogger(__name__)

TITLE = "U.S. Polo Assn. Men Checks Navy Blue Shirt"
PHOTO = EXAMPLES / "17187.jpg"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run scripts/install_browser.sh"),
]


def _save_screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("SCREENSHOT_DIR"):
        target = Path(os.environ["SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / name)
    log.info("screenshot: %s", shot)
    return shot


def test_extract_in_the_browser(app_url: str, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(f"page error: {e}"))
            # not "networkidle": the page keeps a heartbeat connection to the server open
            page.goto(app_url, wait_until="load", timeout=TIMEOUT_MS)
            expect(page.locator("#listing-text textarea")).to_be_visible(timeout=TIMEOUT_MS)

            page.locator("#listing-text textarea").fill(TITLE)
            page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
            expect(page.locator("#photo img").first).to_be_visible(timeout=TIMEOUT_MS)
            tau = page.locator("#tau input[type=number]")
            tau.fill("0")
            tau.press("Enter")
            page.locator("#extract-button").click()

            highlighted = page.locator("#highlighted")
            expect(highlighted).to_contain_text("Navy", timeout=TIMEOUT_MS)
            # tau_R = 0: every attribute is selected, so the text carries labelled spans
            labelled = highlighted.locator(".token.highlighted")
            expect(labelled.first).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.locator("#arm-chart img").first).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.locator("#values-table")).to_contain_text("confidence", timeout=TIMEOUT_MS)
            expect(page.locator("#value-heatmaps img").first).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.locator("#word-heatmap img").first).to_be_visible(timeout=TIMEOUT_MS)
            page.locator("#value-heatmaps").scroll_into_view_if_needed()
            # every TEM caption ("brand: U.S. Polo Assn. · 1.23x") is shown whole, not cut to "brand: U.S. …"
            captions = page.locator("#value-heatmaps .caption-label")
            expect(captions.first).to_be_visible(timeout=TIMEOUT_MS)
            for caption in captions.all():
                assert caption.evaluate("e => e.scrollWidth <= e.clientWidth"), caption.inner_text()
            assert "brand: U.S. Polo Assn. · " in captions.all_inner_texts()[0]
            shot = _save_screenshot(page, tmp_path, "extract.png")
            assert shot.stat().st_size > 10_000

            # tau_R = 1 selects nothing: the slider alone (no new extraction) empties the table
            tau.fill("1")
            tau.press("Enter")
            expect(page.locator("#values-table")).not_to_contain_text("Navy", timeout=TIMEOUT_MS)
            expect(labelled).to_have_count(0, timeout=TIMEOUT_MS)
            expect(page.locator("#value-heatmaps img")).to_have_count(0, timeout=TIMEOUT_MS)
            _save_screenshot(page, tmp_path, "extract-tau1.png")

            page.get_by_role("tab", name="Model").click()
            expect(page.locator("#model-info")).to_contain_text("Runs on", timeout=TIMEOUT_MS)
            page.get_by_role("button", name="Show registered versions").click()
            expect(page.locator("#model-versions-table")).to_contain_text("#1", timeout=TIMEOUT_MS)
            # the served version's test-split TAG-F1, drawn over time
            expect(page.locator("#model-history canvas, #model-history svg").first).to_be_visible(timeout=TIMEOUT_MS)
            _save_screenshot(page, tmp_path, "model.png")
        finally:
            browser.close()
    assert console_errors == [], f"console errors: {console_errors}"
