"""The app in a real browser (Debian chromium driven by Playwright): what a merchandiser sees.

Needs /usr/bin/chromium (scripts/install_browser.sh). Run with `pytest -m browser`.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

from dram.paths import EXAMPLES
from tests.app_server import ATTRIBUTES
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


def check_model_tab(page) -> None:
    """The default model's settings, and its metrics as tables: per split, and per attribute on the test split."""
    from playwright.sync_api import expect

    expect(page.locator("#model-info")).to_contain_text("Runs on", timeout=TIMEOUT_MS)
    expect(page.locator("#model-info")).to_contain_text(", ".join(ATTRIBUTES))
    overall = page.locator("#model-metrics")
    for text in ("split", "TAG-F1", "CLS-F1", "value F1", "validation", "test"):
        expect(overall).to_contain_text(text)
    per_attribute = page.locator("#model-attribute-metrics")
    expect(per_attribute).to_contain_text("on the test split")
    for attribute in ATTRIBUTES:
        expect(per_attribute.get_by_role("row").filter(has_text=attribute).first).to_be_visible()


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
            check_model_tab(page)
            page.get_by_role("button", name="Show registered versions").click()
            expect(page.locator("#model-versions-table")).to_contain_text("#1", timeout=TIMEOUT_MS)
            # the served version's figures, one point per version: its name is an x-axis label
            expect(page.locator("#model-history svg").first).to_contain_text("#1 default", timeout=TIMEOUT_MS)
            expect(page.locator("#model-history svg .mark-symbol path").first).to_be_attached(timeout=TIMEOUT_MS)
            expect(page.locator("#model-agreement")).to_contain_text("agreed spans")  # nothing double-reviewed yet
            shot = _save_screenshot(page, tmp_path, "model.png")
            assert Image.open(shot).height < 2500, "the Model tab should stay compact"
        finally:
            browser.close()
    assert console_errors == [], f"console errors: {console_errors}"


@pytest.fixture
def app_while_building(app_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The app (in this process) serving a model still being built: the fake build stands at epoch 3 of 6
    until the test sets the returned event, then writes the default model (a copy) where the app loads it."""
    import app
    from tests.app_server import free_port
    from ui.model_build import BuildProgress
    from ui.serving import ModelHandle

    monkeypatch.setenv("DRAM_DB_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    finish = threading.Event()

    def builder(path: Path, progress: BuildProgress) -> None:
        progress.stage_begins("preparing")
        progress.epoch_ends(0, 6)
        progress.epoch_ends(2, 6)
        finish.wait(TIMEOUT_MS / 1000)
        shutil.copytree(app_checkpoint, path)

    demo = app.build_page(ModelHandle(tmp_path / "models" / "default").build_then_load(builder))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", finish
    finally:
        finish.set()
        demo.close()


def test_an_open_page_follows_the_build_without_a_reload(app_while_building, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    url, finish = app_while_building
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
            banner = page.locator("#model-banner")
            expect(banner).to_contain_text("The model is being built: epoch 3 of 6", timeout=TIMEOUT_MS)
            page.locator("#listing-text textarea").fill(TITLE)
            page.locator("#extract-button").click()
            expect(page.locator(".toast-body").filter(has_text="try again when it is ready").first).to_be_visible(
                timeout=TIMEOUT_MS)
            _save_screenshot(page, tmp_path, "building.png")

            finish.set()  # the build ends: the open page learns it on the timer's next tick
            expect(banner).to_be_hidden(timeout=TIMEOUT_MS)
            page.locator("#extract-button").click()
            legend = page.locator("#highlighted .legend-item")
            expect(legend.filter(has_text="brand")).to_be_visible(timeout=TIMEOUT_MS)
            # the served model's colours: the palette's first (#fde68a, drawn half transparent) for its first attribute
            expect(legend.filter(has_text=ATTRIBUTES[0])).to_have_css("background-color", "rgba(253, 230, 138, 0.5)")
            page.get_by_role("tab", name="Model").click()
            check_model_tab(page)
            _save_screenshot(page, tmp_path, "built.png")
        finally:
            browser.close()
