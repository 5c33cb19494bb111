"""The Annotate tab's span editor: what its page script (`ui/static/span_editor.js`) draws and sends.

The script draws the listing as tagging units (`dram.data.tagging.split_words`) and sends unit
indices, never character offsets, so a selection always snaps to what the model tags and no browser
counts characters differently from Python. Everything the script needs to draw comes from
`editor_view`, so the server stays the one place where edits are checked (`review.edits`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from dram.data.spans import Span, covered_words
from dram.data.tagging import Word, split_words
from review.edits import ReviewItem
from ui.colours import TEXT_COLOUR, listing_colours

STATIC = Path(__file__).parent / "static"
UNSURE_BELOW = 0.6  # a predicted span under this confidence is drawn as unsure: the queue's second key
HOTKEYS = 9
CONTEXT_WORDS = 4
SHORTCUTS = [("drag / double-click", "select words"), ("1-9", "label with that attribute"),
             ("type + Enter", "label by name"), ("click a value", "select it"), ("drag", "re-bound the selected value"),
             ("Backspace", "remove it"), ("Z", "undo"), ("A", "accept as predicted"), ("S", "save"), ("K", "skip"),
             ("N", "next listing"), ("Esc", "clear")]


def editor_script() -> str:
    return (STATIC / "span_editor.js").read_text(encoding="utf-8")


def editor_css() -> str:
    return (STATIC / "span_editor.css").read_text(encoding="utf-8")


def _tokens(text: str, words: Sequence[Word]) -> list[list[Any]]:
    """The text as [piece, unit index] pairs: each tagging unit, and the gaps between them as unit -1."""
    tokens: list[list[Any]] = []
    at = 0
    for index, word in enumerate(words):
        if word.start > at:
            tokens.append([text[at:word.start], -1])
        tokens.append([word.text, index])
        at = word.end
    if at < len(text):
        tokens.append([text[at:], -1])
    return tokens


def ranked_attributes(item: ReviewItem, attributes: Sequence[str]) -> list[str]:
    """The attributes the model scores highest for this listing first (they get keys 1-9), then the rest."""
    scores = dict(item.attribute_scores)
    return sorted(attributes, key=lambda a: (-scores.get(a, -1.0), attributes.index(a)))


def _context(text: str, words: Sequence[Word], first: int, last: int) -> tuple[str, str]:
    """A few words either side of a value, so equal values in one listing can be told apart."""
    left = _squeeze(text[words[max(0, first - CONTEXT_WORDS)].start : words[first].start])
    right = _squeeze(text[words[last].end : words[min(len(words) - 1, last + CONTEXT_WORDS)].end])
    return ("…" if first > CONTEXT_WORDS else "") + left, right + ("…" if last + CONTEXT_WORDS < len(words) - 1 else "")


def _squeeze(piece: str) -> str:
    return re.sub(r"\s+", " ", piece)


def _span_entry(item: ReviewItem, words: Sequence[Word], index: int, span: Span, colour: str) -> dict[str, Any]:
    units = covered_words(words, span)
    first, last = units[0], units[-1]
    confidence = item.confidence(span)
    before, after = _context(item.text, words, first, last)
    return {"i": index, "attribute": span.attribute, "first": first, "last": last, "colour": colour,
            "value": item.text[span.start:span.end], "before": before, "after": after,
            "confidence": None if confidence is None else round(confidence, 3),
            "unsure": confidence is not None and confidence < UNSURE_BELOW}


def editor_view(item: ReviewItem | None, attributes: Sequence[str], home: dict[str, str],
                confirm: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the page script draws for the listing under review (or the empty queue)."""
    if item is None:
        return {"listing": None, "shortcuts": SHORTCUTS}
    words = split_words(item.text)
    ranked = ranked_attributes(item, attributes)
    colours = listing_colours([*(s.attribute for s in item.spans), *ranked[:HOTKEYS]], home)
    colours.update({a: home.get(a, "#e5e7eb") for a in ranked if a not in colours})
    scores = dict(item.attribute_scores)
    return {
        "listing": item.listing_id, "external_id": item.external_id, "revision": item.revision,
        "tokens": _tokens(item.text, words),
        "spans": [_span_entry(item, words, i, s, colours[s.attribute]) for i, s in enumerate(item.spans)],
        "attributes": [{"name": a, "key": str(k + 1) if k < HOTKEYS else None, "colour": colours[a],
                        "score": round(scores[a], 3) if a in scores else None} for k, a in enumerate(ranked)],
        "unsaved": item.unsaved, "can_undo": bool(item.history), "confirm": confirm, "notes": list(item.notes),
        "text_colour": TEXT_COLOUR, "shortcuts": SHORTCUTS, "unsure_below": UNSURE_BELOW,
    }
