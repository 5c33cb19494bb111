"""The Annotate tab in a real browser, worked the way an annotator works it: Playwright's mouse and
keyboard only (drag, click, double-click, keys; typing into a box), never the page's state set by
script. Each test asserts the character offsets the store saved.

Needs /usr/bin/chromium (scripts/install_browser.sh). The app gets its own SQLite store here.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from dram.data.spans import Span
from store import open_store
from tests.app_server import launch_app, stop_app
from tests.browser import CHROMIUM, TIMEOUT_MS, launch_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run scripts/install_browser.sh"),
]

# A title and a 150-word description; the model's values on it are partly wrong.
LONG = ("Aurelle Women 18K Rose Gold Plated Hoop Earrings\n" + " ".join(
    ["Lightweight hoops for everyday wear, finished by hand and polished to a soft shine."] * 10)
    + " Made of 18K Rose Gold plated brass with a secure hinged clasp; gift box included.")
SHIRT = "Roadster Men Navy Blue Casual Shirt"
SHOES = "Nike Women White Running Shoes"


def at(text: str, part: str, nth: int = 0) -> tuple[int, int]:
    start = -1
    for _ in range(nth + 1):
        start = text.index(part, start + 1)
    return start, start + len(part)


def predicted(text: str, *values: tuple[str, str, float]) -> list[dict]:
    return [{"start": at(text, part)[0], "end": at(text, part)[1], "attribute": attribute, "confidence": confidence}
            for part, attribute, confidence in values]


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('annotate-browser') / 'store.sqlite'}"
    scores = {"brand": 0.99, "colour": 0.9, "article_type": 0.8, "gender": 0.7, "pattern": 0.52}
    with open_store(url) as store:
        for text, values, margin in (
            (LONG, [("Aurelle", "brand", 0.95), ("Women", "gender", 0.4), ("Gold", "colour", 0.8),
                    ("Hoop", "colour", 0.7), ("Earrings", "pattern", 0.55)], 0.51),
            (SHIRT, [("Roadster", "brand", 0.97), ("Navy Blue", "colour", 0.9)], 0.6),
            (SHOES, [("Nike", "brand", 0.98)], 0.7),
        ):
            listing = store.add_listing(text, external_id=text.split()[0].lower())
            store.add_prediction(listing, None, predicted(text, *values), {**scores, "pattern": margin}, 0.5)
    return url


@pytest.fixture(scope="module")
def app_url(app_checkpoint: Path, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = launch_app(app_checkpoint, tmp_path_factory.mktemp("annotate-browser-log") / "app.log",
                              {"DRAM_DB_URL": db_url})
    yield url
    stop_app(process)


@pytest.fixture(scope="module")
def page(app_url: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url, wait_until="load", timeout=TIMEOUT_MS)
        page.get_by_role("tab", name="Annotate").click()
        page.locator("#annotator textarea, #annotator input").first.fill("carol")
        yield page
        browser.close()


class Annotator:
    """What a person does in the editor: words are found by their text and reached with the mouse."""

    def __init__(self, page) -> None:
        self.page = page

    def expect_view(self, listing: int, revision: int) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator(f".se-root[data-listing='{listing}'][data-revision='{revision}']")).to_be_visible(
            timeout=TIMEOUT_MS)

    def unit(self, word: str, nth: int = 0):
        return self.page.locator(".se-u", has_text=re.compile(f"^{re.escape(word)}$")).nth(nth)

    def drag(self, first: str, last: str, nth: int = 0) -> None:
        """Press inside the first word, move to inside the last one, release: a half-covered word counts whole."""
        start, end = self.unit(first, nth), self.unit(last, nth)
        start.scroll_into_view_if_needed()
        a, b = start.bounding_box(), end.bounding_box()
        self.page.mouse.move(a["x"] + a["width"] * 0.6, a["y"] + a["height"] / 2)
        self.page.mouse.down()
        self.page.mouse.move(b["x"] + b["width"] * 0.4, b["y"] + b["height"] / 2, steps=6)
        self.page.mouse.up()

    def key(self, key: str) -> None:
        self.page.keyboard.press(key)


def saved_spans(db_url: str, text: str) -> tuple[str, list[tuple[str, str, int]]]:
    with open_store(db_url) as store:
        listing = next(item.id for item in store.list_listings() if item.text == text)
        (correction,) = store.corrections_for(listing)
        return correction.status, [(s.attribute, text[s.start:s.end], s.start) for s in correction.spans]


def test_correct_a_long_listing_with_mouse_and_keys(page, db_url: str) -> None:
    from playwright.sync_api import expect

    you = Annotator(page)
    page.locator(".se-root").click()
    you.key("n")
    you.expect_view(1, 0)
    expect(page.locator(".se-chip-unsure")).to_have_text(["gender ?", "pattern ?"])  # under 0.6: marked unsure

    # an error: "Rose Gold" as a second colour over "Gold"; a toast says what to do, the panel carries on
    you.drag("Rose", "Gold")
    you.key("2")  # keys 1-9: the attributes the model scores highest here (brand, colour, ...)
    expect(page.locator(".toast-body, [data-testid='toast-body']").first).to_contain_text(
        "overlaps the colour value 'Gold'", timeout=TIMEOUT_MS)
    you.key("Escape")

    # re-bound: click the value, drag its new words
    you.unit("Gold").click()
    you.drag("Rose", "Gold")
    you.expect_view(1, 1)
    # relabel: click "Hoop" (colour), press the key of article_type
    you.unit("Hoop").click()
    you.key("3")
    you.expect_view(1, 2)
    # remove: click "Earrings" (pattern), Backspace
    you.unit("Earrings").click()
    you.key("Backspace")
    you.expect_view(1, 3)

    # a new attribute, marked near the end of the description by its name in the filter
    page.locator("#review-new-attribute textarea, #review-new-attribute input").first.fill("metal type")
    page.locator("#review-add-attribute").click()
    expect(page.locator(".se-attr", has_text="metal type")).to_be_visible(timeout=TIMEOUT_MS)
    you.drag("Rose", "Gold", nth=1)
    page.keyboard.type("metal")
    you.key("Enter")
    you.expect_view(1, 4)

    # a double-clicked word marked by mistake, then undone
    you.unit("brass").dblclick()
    you.key("2")
    you.expect_view(1, 5)
    expect(page.locator(".se-text .se-chip")).to_have_count(6)
    you.key("z")
    you.expect_view(1, 6)
    expect(page.locator(".se-text .se-chip")).to_have_count(5)

    you.key("s")
    you.expect_view(2, 0)  # saved: the next listing is on screen
    status, spans = saved_spans(db_url, LONG)
    assert status == "corrected"
    assert spans == [("brand", "Aurelle", 0), ("gender", "Women", 8), ("colour", "Rose Gold", at(LONG, "Rose Gold")[0]),
                     ("article_type", "Hoop", at(LONG, "Hoop")[0]),
                     ("metal type", "Rose Gold", at(LONG, "Rose Gold", 1)[0])]
    expect(page.locator("#review-progress")).to_contain_text("Saved: 1")


def test_accept_skip_a_second_look_and_the_question_before_dropping_edits(page, db_url: str) -> None:
    from playwright.sync_api import expect

    you = Annotator(page)
    you.expect_view(2, 0)  # the shirt, left on screen by the test before
    # "Navy Blue" relabelled brand contradicts the model (colour at 0.9) and the training data: a second look
    you.unit("Navy").click()
    you.key("1")
    you.expect_view(2, 1)
    you.key("s")
    expect(page.locator(".se-confirm")).to_contain_text(
        "Second look: 'Navy Blue' is marked brand, but the model says colour", timeout=TIMEOUT_MS)
    you.key("Escape")  # back to fix it
    expect(page.locator(".se-confirm")).to_have_count(0, timeout=TIMEOUT_MS)
    you.key("z")
    you.expect_view(2, 2)
    you.key("a")  # accepted as predicted
    you.expect_view(3, 0)
    status, spans = saved_spans(db_url, SHIRT)
    assert status == "accepted" and spans == [("brand", "Roadster", 0), ("colour", "Navy Blue", 13)]

    you.unit("White").dblclick()
    you.key("2")
    you.expect_view(3, 1)
    you.key("k")  # skipping would drop the new value: the page asks first
    expect(page.locator(".se-confirm")).to_contain_text("unsaved changes", timeout=TIMEOUT_MS)
    you.key("Escape")  # stay
    expect(page.locator(".se-confirm")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(page.locator(".se-text .se-chip")).to_have_count(2)
    you.key("k")
    expect(page.locator(".se-confirm")).to_be_visible(timeout=TIMEOUT_MS)
    you.key("Enter")  # yes, skip
    # nothing waits any more, so the skipped listing is the one that comes back
    you.expect_view(3, 0)
    expect(page.locator("#review-progress")).to_contain_text("skipped: 1")
    status, _ = saved_spans(db_url, SHOES)
    assert status == "skipped"
    with open_store(db_url) as store:
        assert store.progress() == (2, 1, 0)
        assert [Span(s.start, s.end, s.attribute) for s in store.corrections_for(3)[0].spans] == [Span(0, 4, "brand")]
