"""An annotator's work in the Annotate tab, played with a real mouse and keyboard over WDC-PAVE offers.

The offers are queued with the served model's output (the app's own intake) in a fresh SQLite store,
with the data set's attributes added to the store, and the real app is started on it. For each offer
the script, in headless Chromium through Playwright's mouse and keyboard only:

- marks a labelled value the model missed: a drag over its words, then one action (its key 1-9 when
  the attribute is among the nine the model scores highest, else a few letters in the filter + Enter);
- relabels a predicted value: a click on it, then its new attribute's key;
- removes a predicted value: a click on it, then Backspace;
- saves: S, which also brings the next offer.

An action is one click, one drag or one key (a filter entry counts as one). It reports the actions
each task took and the time from each action to the updated view (the editor's drawn revision, or
the selection for a click), p50 and p90, with the machine's load before and after.

    python benchmarks/bench_annotator.py --data ../shared/data/wdc-pave/test.jsonl --offers 20
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dram.data.listings import Listing  # noqa: E402
from dram.data.spans import Span  # noqa: E402
from dram.data.tagging import split_words, word_range  # noqa: E402
from dram.inference import Extractor  # noqa: E402
from dram.paths import DEFAULT_CHECKPOINT  # noqa: E402
from review.intake import record_extraction  # noqa: E402
from store import open_store  # noqa: E402
from tests.app_server import launch_app, stop_app  # noqa: E402
from tests.browser import TIMEOUT_MS, launch_chromium, start_annotating  # noqa: E402
from training.common import load_data  # noqa: E402

log = logging.getLogger("bench_annotator")
BOUNDS = {"mark": 1, "relabel": 2, "remove": 2}  # actions beyond the drag (mark) the issue allows


def queue_offers(db_url: str, checkpoint: Path, offers: list[Listing], attributes: list[str]) -> dict[int, Listing]:
    """The offers in a new store with the model's output, as the app's intake queues them; listing id -> offer."""
    extractor = Extractor.load(checkpoint)
    by_id = {}
    with open_store(db_url) as store:
        for name in attributes:
            store.add_attribute(name, added_by="bench")
        for offer, extraction in zip(offers, extractor.extract_batch([(o.text, None) for o in offers])):
            by_id[record_extraction(store, extraction, None, None, f"wdc-{offer.id}")] = offer
    return by_id


class Player:
    """The annotator's hands: each method is one action, timed until the page shows its result."""

    def __init__(self, page) -> None:
        self.page = page
        self.times: dict[str, list[float]] = defaultdict(list)

    def root(self):
        return self.page.locator(".se-root")

    def state(self) -> tuple[int, int]:
        return int(self.root().get_attribute("data-listing") or 0), int(self.root().get_attribute("data-revision") or 0)

    def wait_view(self, kind: str, started: float, listing: int, revision: int) -> None:
        self.page.wait_for_selector(f".se-root[data-listing='{listing}'][data-revision='{revision}']", timeout=TIMEOUT_MS)
        self.times[kind].append((time.perf_counter() - started) * 1000)

    def unit(self, index: int):
        return self.page.locator(f".se-u[data-u='{index}']")

    def drag(self, first: int, last: int) -> None:
        start, end = self.unit(first), self.unit(last)
        start.scroll_into_view_if_needed()
        a, b = start.bounding_box(), end.bounding_box()
        self.page.mouse.move(a["x"] + 1, a["y"] + a["height"] / 2)  # from the first word's left edge
        self.page.mouse.down()
        self.page.mouse.move(b["x"] + b["width"] - 1, b["y"] + b["height"] / 2, steps=4)  # to the last's right edge
        started = time.perf_counter()
        self.page.mouse.up()
        self.page.wait_for_selector(".se-pending", timeout=TIMEOUT_MS)
        self.times["drag"].append((time.perf_counter() - started) * 1000)

    def click_value(self, unit: int) -> None:
        started = time.perf_counter()
        self.unit(unit).click()
        self.page.wait_for_selector(".se-text .se-selected", timeout=TIMEOUT_MS)
        self.times["click a value"].append((time.perf_counter() - started) * 1000)

    def label(self, kind: str, attribute: str, keyed: dict[str, str]) -> None:
        """One action: the attribute's key, or a filter entry (letters until it is the first match, then Enter)."""
        listing, revision = self.state()
        started = time.perf_counter()
        kind += " (key 1-9)" if attribute in keyed else " (filter + Enter)"
        if attribute in keyed:
            self.page.keyboard.press(keyed[attribute])
        else:
            for letter in attribute:
                self.page.keyboard.type(letter)
                if first_choice(self.page) == attribute:
                    break
            started = time.perf_counter()
            self.page.keyboard.press("Enter")
        self.wait_view(kind, started, listing, revision + 1)

    def key(self, kind: str, key: str, next_listing: bool = False) -> None:
        listing, revision = self.state()
        started = time.perf_counter()
        self.page.keyboard.press(key)
        if next_listing:
            self.page.wait_for_function("l => document.querySelector('.se-root').dataset.listing !== l",
                                        arg=str(listing), timeout=TIMEOUT_MS)
            self.times[kind].append((time.perf_counter() - started) * 1000)
        else:
            self.wait_view(kind, started, listing, revision + 1)


def first_choice(page) -> str:
    """The attribute the filter's Enter would pick: the first one listed."""
    first = page.locator(".se-attrs .se-attr").first
    return re.sub(r"^Enter\s*", "", first.inner_text()).strip() if first.count() else ""


def units_of(text: str, span: Span) -> tuple[int, int] | None:
    found = word_range(split_words(text), span.start, span.end)
    return (found[0], found[1] - 1) if found else None


def read_editor(page) -> dict[str, str]:
    """The attributes the page gives keys 1-9 to, with their keys."""
    keyed = {}
    for chip in page.locator(".se-attr").all():
        kbd = chip.locator("kbd")
        if kbd.count():
            keyed[re.sub(r"^\d\s*", "", chip.inner_text()).strip()] = kbd.inner_text().strip()
    return keyed


def play(page, offers: dict[int, Listing], predicted: dict[int, list[Span]]) -> dict:
    player = Player(page)
    actions: dict[str, list[int]] = defaultdict(list)
    for _ in range(len(offers)):
        listing, _revision = player.state()
        offer = offers[listing]
        keyed = read_editor(page)
        spans = list(predicted[listing])
        singles = [s for s in spans if sum(o.overlaps(s) for o in spans) == 1]
        missed = [g for g in offer.spans if g.bare() not in {s.bare() for s in spans}
                  and not any(s.attribute == g.attribute and s.overlaps(g) for s in spans)]
        if missed and (where := units_of(offer.text, missed[0])):
            player.drag(*where)
            player.label("mark: label", missed[0].attribute, keyed)
            actions["mark"].append(1)
            spans.append(missed[0].bare())
        if singles:  # relabel the first value the model gave to a word alone
            target = singles[0]
            first, _last = units_of(offer.text, target)
            new = next(a for a in keyed if a != target.attribute
                       and not any(s.attribute == a and s.overlaps(target) for s in spans))
            player.click_value(first)
            player.label("relabel: key", new, keyed)
            actions["relabel"].append(2)
        if len(singles) > 1:
            first, _last = units_of(offer.text, singles[1])
            player.click_value(first)
            player.key("remove: Backspace", "Backspace")
            actions["remove"].append(2)
        player.key("save: S (and the next offer)", "s", next_listing=True)
        actions["save"].append(1)
    return {"actions": dict(actions), "times": dict(player.times)}


def summarise(result: dict) -> str:
    lines = ["| action | n | p50 ms | p90 ms |", "|---|---|---|---|"]
    every = []
    for kind, values in result["times"].items():
        ordered = sorted(values)
        every += values
        lines.append(f"| {kind} | {len(values)} | {statistics.median(values):.0f} | "
                     f"{ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]:.0f} |")
    lines.append(f"| **every action** | {len(every)} | {statistics.median(every):.0f} | "
                 f"{sorted(every)[round(0.9 * (len(every) - 1))]:.0f} |")
    lines += ["", "| task | done | actions beyond the drag (most) | bound |", "|---|---|---|---|"]
    for task, counts in result["actions"].items():
        lines.append(f"| {task} | {len(counts)} | {max(counts)} | {BOUNDS.get(task, 1)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a labelled file (WDC-PAVE test.jsonl)")
    parser.add_argument("--offers", type=int, default=20)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--out", type=Path, help="write the raw figures here as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    listings = load_data(args.data, "offers")
    names = sorted({s.attribute for listing in listings for s in listing.spans})
    offers = [o for o in listings if o.spans][: args.offers]
    work = Path(tempfile.mkdtemp(prefix="bench-annotator-"))
    db_url = f"sqlite:///{work / 'store.sqlite'}"
    by_id = queue_offers(db_url, args.checkpoint, offers, names)
    with open_store(db_url) as store:
        predicted = {i: store.predictions_for(i)[-1].spans for i in by_id}
    url, process = launch_app(args.checkpoint, work / "app.log", {"DRAM_DB_URL": db_url})
    load_before = os.getloadavg()
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start_annotating(page, url, "bench")
            result = play(page, by_id, predicted)
            browser.close()
    finally:
        stop_app(process)
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    result["offers"] = len(by_id)
    print(summarise(result))
    print(f"\nload average before {load_before[0]:.2f}, after {result['load_average']['after'][0]:.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
