"""The annotator's span edits: add, remove, relabel and re-bound values, with undo.

A selection is widened to the whole tagging units it touches, the same words the model tags
(`dram.data.tagging.split_words`), so a corrected span is always one the model can learn; spans are
`dram.data.spans.Span`s without text or confidence, and the overlap rule is the one the store and
files use (`dram.data.spans.clash`). Messages name the words and say what to do, in the annotator's terms.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from dram.data.spans import Span, clash, covered_words, reading_order
from dram.data.tagging import split_words
from store.errors import CorrectionError
from store.records import QueueItem


class ReviewError(CorrectionError):
    """An edit that cannot be made as asked; the message tells the annotator what to do instead."""


def clean_spans(spans: Iterable[Span]) -> list[Span]:
    """Only position and attribute (a prediction's text/confidence are not the annotator's), in reading order."""
    return reading_order(s.bare() for s in spans)


def _check_attribute(attribute: str | None, attributes: Sequence[str]) -> str:
    if not attribute or attribute not in attributes:
        shown = ", ".join(attributes[:12]) + (", ..." if len(attributes) > 12 else "")
        raise ReviewError(f"{attribute!r} is not an attribute of this model: pick one of the list ({shown}), "
                          "or add it as a new attribute first." if attribute else
                          "Choose the attribute for the value: press 1-9 or type a few letters of its name.")
    return attribute


def _check_index(spans: Sequence[Span], index: int | None) -> int:
    if index is None or not 0 <= int(index) < len(spans):
        raise ReviewError("Click the value you want to change first (a highlighted value in the text).")
    return int(index)


def span_from_selection(text: str, start: int | None, end: int | None, attribute: str) -> Span:
    """The character span of the whole words the selection [start, end) touches: a half-selected
    word counts whole, so "Navy Blu" marks "Navy Blue"."""
    if start is None or end is None or int(start) == int(end):
        raise ReviewError("Select the value's words first: drag over them or double-click a word.")
    start, end = sorted((int(start), int(end)))
    if not 0 <= start < end <= len(text):
        raise ReviewError(f"The selection {start}..{end} is outside this listing's text ({len(text)} characters).")
    words = split_words(text)
    inside = covered_words(words, Span(start, end, attribute))
    if not inside:
        raise ReviewError("The selection holds only spaces or punctuation: select the value's words.")
    return Span(words[inside[0]].start, words[inside[-1]].end, attribute)


def words_to_span(text: str, first: int, last: int, attribute: str) -> Span:
    """The character span of tagging units first..last (inclusive), as the Annotate tab's editor sends them."""
    words = split_words(text)
    first, last = sorted((int(first), int(last)))
    if not 0 <= first <= last < len(words):
        raise ReviewError(f"Words {first}..{last} are outside this listing's {len(words)} words; select them again.")
    return Span(words[first].start, words[last].end, attribute)


def _with(text: str, spans: Sequence[Span], new: Span, replacing: int | None = None) -> list[Span]:
    """spans with `new` (instead of spans[replacing]), refusing one the same attribute already overlaps."""
    others = [s for i, s in enumerate(spans) if i != replacing]
    if clash(new, others) is not None:
        held = next(o for o in others if o.attribute == new.attribute and o.overlaps(new))
        raise ReviewError(f"{text[new.start:new.end]!r} overlaps the {new.attribute} value {text[held.start:held.end]!r}, "
                          f"and a word can hold one {new.attribute} value: click that value to re-bound or remove it.")
    return clean_spans([*others, new])


def add_span(text: str, spans: Sequence[Span], start: int | None, end: int | None, attribute: str | None,
             attributes: Sequence[str]) -> list[Span]:
    return _with(text, spans, span_from_selection(text, start, end, _check_attribute(attribute, attributes)))


def remove_span(spans: Sequence[Span], index: int | None) -> list[Span]:
    index = _check_index(spans, index)
    return [s for i, s in enumerate(spans) if i != index]


def relabel_span(text: str, spans: Sequence[Span], index: int | None, attribute: str | None,
                 attributes: Sequence[str]) -> list[Span]:
    index = _check_index(spans, index)
    return _with(text, spans, replace(spans[index], attribute=_check_attribute(attribute, attributes)), replacing=index)


def rebound_span(text: str, spans: Sequence[Span], index: int | None, start: int | None,
                 end: int | None) -> list[Span]:
    index = _check_index(spans, index)
    return _with(text, spans, span_from_selection(text, start, end, spans[index].attribute), replacing=index)


def status_for(spans: Sequence[Span], predicted: Sequence[Span]) -> str:
    """'accepted' when the annotator kept the model's spans exactly, else 'corrected'."""
    return "accepted" if clean_spans(spans) == clean_spans(predicted) else "corrected"


@dataclass(frozen=True)
class ReviewItem:
    """The listing an annotator is reviewing: the model's spans as predicted and as edited so far.

    `history` holds the spans before each edit, so undo needs no server-side session store;
    `confidences` keeps the model's belief in each predicted span, which the bare spans drop.
    """

    listing_id: int
    external_id: str | None
    text: str
    photo_sha256: str | None
    prediction_id: int | None
    predicted: tuple[Span, ...]
    spans: tuple[Span, ...]
    attribute_scores: tuple[tuple[str, float], ...] = ()
    confidences: tuple[tuple[Span, float], ...] = ()
    history: tuple[tuple[Span, ...], ...] = ()
    revision: int = 0  # counts edits and undos, so the page can tell a stale click from a current one
    notes: tuple[str, ...] = ()  # what the annotator should know before deciding (double review, a second look)
    touched: float = field(default_factory=time.time, compare=False)  # when the annotator last acted on it (claims renew until idle)

    @classmethod
    def from_queue(cls, item: QueueItem) -> ReviewItem:
        predicted = tuple(clean_spans(item.spans))
        confidences = tuple((s.bare(), float(s.confidence)) for s in item.spans if s.confidence is not None)
        return cls(item.listing_id, item.external_id, item.text, item.photo_sha256, item.prediction_id,
                   predicted, predicted, tuple(item.attribute_scores.items()), confidences)

    def with_spans(self, spans: Iterable[Span]) -> ReviewItem:
        """The item after one edit; the spans before it go on the undo history."""
        spans = tuple(spans)
        if spans == self.spans:
            return self
        return replace(self, spans=spans, history=(*self.history, self.spans), revision=self.revision + 1,
                       touched=time.time())

    def undo(self) -> ReviewItem:
        if not self.history:
            raise ReviewError("Nothing to undo on this listing.")
        return replace(self, spans=self.history[-1], history=self.history[:-1], revision=self.revision + 1,
                       touched=time.time())

    def confidence(self, span: Span) -> float | None:
        """The model's confidence in `span` if the model predicted exactly it, else None (the annotator's)."""
        return dict(self.confidences).get(span.bare())

    @property
    def unsaved(self) -> bool:
        """Whether leaving now would lose edits: the spans differ from what the model predicted."""
        return self.spans != self.predicted

    @property
    def status(self) -> str:
        """What saving it means: 'accepted' when the model's spans were kept exactly, else 'corrected'."""
        return status_for(self.spans, self.predicted)


def apply_edit(item: ReviewItem, action: str, attributes: Sequence[str], *, span: int | None = None,
               first: int | None = None, last: int | None = None, attribute: str | None = None) -> ReviewItem:
    """One editor action on the item: words `first`..`last` are tagging-unit indices, `span` an index
    into `item.spans`; raises ReviewError with what to do when the action cannot be made."""
    text, spans = item.text, item.spans
    if action == "undo":
        return item.undo()
    if action == "remove":
        return item.with_spans(remove_span(spans, span))
    if action == "relabel":
        return item.with_spans(relabel_span(text, spans, span, attribute, attributes))
    if first is None or last is None:
        raise ReviewError("Select the value's words first: drag over them or double-click a word.")
    words = words_to_span(text, first, last, "")
    if action == "add":
        return item.with_spans(add_span(text, spans, words.start, words.end, attribute, attributes))
    if action == "rebound":
        return item.with_spans(rebound_span(text, spans, span, words.start, words.end))
    raise ReviewError(f"Unknown edit {action!r}.")
