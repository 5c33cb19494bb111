"""README's pictures of the app, taken from the running app so they show what it shows today.

Starts `python app.py` on the default model with a fresh store, then in headless Chromium: the
Extract tab on a bundled listing and photo, the Batch audit tab on the bundled batch, the Annotate
tab on the bundled batch queued through the app's own import (one value selected), and the Model tab.

    .venv/bin/python scripts/screenshots.py            # writes docs/screenshots/*.png
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dram.paths import DEFAULT_CHECKPOINT, EXAMPLES  # noqa: E402
from tests.app_server import launch_app, stop_app  # noqa: E402
from tests.browser import TIMEOUT_MS, launch_chromium  # noqa: E402

LISTING = "U.S. Polo Assn. Men Checks Navy Blue Shirt"
PHOTO = EXAMPLES / "17187.jpg"
QUEUED = EXAMPLES / "batch.csv", EXAMPLES / "batch_photos.zip"


def shoot(page, out: Path, name: str) -> None:
    page.wait_for_timeout(600)  # let plots and pictures finish drawing
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"wrote {out / f'{name}.png'}")


def extract(page, out: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Extract").click()
    page.locator("#listing-text textarea").fill(LISTING)
    page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
    expect(page.locator("#photo img").first).to_be_visible(timeout=TIMEOUT_MS)
    page.locator("#extract-button").click()
    expect(page.locator("#value-heatmaps img").first).to_be_visible(timeout=TIMEOUT_MS)
    shoot(page, out, "extract")


def audit(page, out: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Batch audit").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(EXAMPLES / "batch.csv"))
    page.locator("#batch-zip input[type=file]").set_input_files(str(EXAMPLES / "batch_photos.zip"))
    page.locator("#audit-button").click()
    expect(page.locator("#audit-summary")).to_contain_text("listings read", timeout=TIMEOUT_MS)
    shoot(page, out, "audit")


def annotate(page, out: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Annotate").click()
    page.get_by_text("Import listings for review").first.click()
    page.locator("#review-import-file input[type=file]").set_input_files(str(QUEUED[0]))
    page.locator("#review-import-zip input[type=file]").set_input_files(str(QUEUED[1]))
    page.locator("#review-import").click()
    expect(page.locator("#review-progress")).to_contain_text("waiting", timeout=TIMEOUT_MS)
    page.get_by_text("Import listings for review").first.click()  # folded again
    page.locator("#annotator textarea, #annotator input").first.fill("alice")
    page.locator(".se-root").click()
    page.keyboard.press("n")
    expect(page.locator(".se-text")).to_be_visible(timeout=TIMEOUT_MS)
    page.locator(".se-text .se-chip").first.click()  # a value selected: the picker offers its relabelling
    shoot(page, out, "annotate")


def model(page, out: Path) -> None:
    page.get_by_role("tab", name="Model").click()
    button = page.get_by_role("button", name="Show registered versions")
    if button.count():
        button.click()
    shoot(page, out, "model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dram-screenshots-"))
    url, process = launch_app(args.checkpoint, work / "app.log", {"DRAM_DB_URL": f"sqlite:///{work / 'store.sqlite'}"})
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
            for take in (extract, audit, annotate, model):
                take(page, args.out)
            browser.close()
    finally:
        stop_app(process)


if __name__ == "__main__":
    main()
