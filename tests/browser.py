"""Debian's chromium, driven by Playwright, the way the browser tests start it (no network calls home)."""
from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 60_000


def start_annotating(page, app_url: str, annotator: str) -> int:
    """What an annotator does first: open the app, the Annotate tab, type their name, press N; the
    id of the listing they are handed."""
    page.goto(app_url, wait_until="load", timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="Annotate").click()
    page.locator("#annotator textarea, #annotator input").first.fill(annotator)
    page.locator(".se-root").click()
    page.keyboard.press("n")
    page.wait_for_selector(".se-root[data-revision='0'] .se-text", timeout=TIMEOUT_MS)
    return int(page.locator(".se-root").get_attribute("data-listing"))


def launch_chromium(playwright):
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"])
