"""The annotator's span edits: add, remove, relabel and re-bound values from a text selection.

The annotator selects the value in the listing text; the selection is widened to the whole words
it touches, the same words the model tags (`dram.data.tagging.split_words`), so a corrected span is
always one the model can learn; spans are `dram.data.spans.Span`s without text
or confidence, and the overlap rule is `dram.data.spans.clash`, the one the store and files use.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from dram.data.spans import Span, clash, covered_words, reading_order
from dram.data.tagging import split_words
from store.errors import CorrectionError
from store.repository import QueueItem


class ReviewError(CorrectionError):
    """An edit that cannot be made as asked; the message tells the annotator what to pick instead."""


def clean_spans(spans: Iterable[Span]) -> list[Span]:
    """Only position and attribute (a prediction's text/confidence are not the annotator's), in reading order."""
    return reading_order(s.bare() for s in spans)


def _check_attribute(attribute: str | None, attributes: Sequence[str]) -> str:
    if not attribute or attribute not in attributes:
        raise ReviewError(f"Pick an attribute from the list ({', '.join(attributes)}), or add a new one first.")
    return attribute


def _check_index(spans: Sequence[Span], index: int | None) -> int:
    if index is None or not 0 <= int(index) < len(spans):
        raise ReviewError("Pick one of the listing's spans first.")
    return int(index)


def selection_offsets(text: str, start: int, end: int, selected: str | None = None) -> tuple[int, int]:
    """A browser selection as character offsets into `text`.

    A textarea counts UTF-16 code units (an emoji is two) and shows "\r\n" as one "\n", so its
    offsets can drift from Python's; the selected string, when given, pins the selection to the
    occurrence of it nearest to where the browser said it was."""
    units = text.encode("utf-16-le")

    def characters(first_unit: int, end_unit: int) -> int:
        return len(units[2 * max(0, int(first_unit)) : 2 * max(0, int(end_unit))].decode("utf-16-le", errors="ignore"))

    first, length = characters(0, start), characters(start, end)
    if selected and text[first : first + len(selected)] != selected:
        hits = [i for i in range(len(text)) if text.startswith(selected, i)]
        if hits:
            first = min(hits, key=lambda i: abs(i - first))
            length = len(selected)
    return first, first + length


def span_from_selection(text: str, start: int | None, end: int | None, attribute: str) -> Span:
    """The character span of the whole words the selection [start, end) touches: a half-selected
    word counts whole, so "Navy Blu" marks "Navy Blue"."""
    if start is None or end is None or int(start) == int(end):
        raise ReviewError("Select the value in the listing text first (drag over its words).")
    start, end = sorted((int(start), int(end)))
    if not 0 <= start < end <= len(text):
        raise ReviewError(f"The selection {start}..{end} is outside this listing's text ({len(text)} characters).")
    words = split_words(text)
    inside = covered_words(words, Span(start, end, attribute))
    if not inside:
        raise ReviewError("The selection holds no word, only spaces or punctuation; select the value's words.")
    return Span(words[inside[0]].start, words[inside[-1]].end, attribute)


def _with(spans: Sequence[Span], new: Span, replacing: int | None = None) -> list[Span]:
    """spans with `new` (instead of spans[replacing]), refusing one the same attribute already overlaps."""
    others = [s for i, s in enumerate(spans) if i != replacing]
    problem = clash(new, others)
    if problem is not None:
        raise ReviewError(f"{new.attribute} already has a value overlapping these words ({problem}); re-bound or "
                          "remove that one instead.")
    return clean_spans([*others, new])


def add_span(text: str, spans: Sequence[Span], start: int | None, end: int | None, attribute: str | None,
             attributes: Sequence[str]) -> list[Span]:
    return _with(spans, span_from_selection(text, start, end, _check_attribute(attribute, attributes)))


def remove_span(spans: Sequence[Span], index: int | None) -> list[Span]:
    index = _check_index(spans, index)
    return [s for i, s in enumerate(spans) if i != index]


def relabel_span(spans: Sequence[Span], index: int | None, attribute: str | None,
                 attributes: Sequence[str]) -> list[Span]:
    index = _check_index(spans, index)
    return _with(spans, replace(spans[index], attribute=_check_attribute(attribute, attributes)), replacing=index)


def rebound_span(text: str, spans: Sequence[Span], index: int | None, start: int | None,
                 end: int | None) -> list[Span]:
    index = _check_index(spans, index)
    return _with(spans, span_from_selection(text, start, end, spans[index].attribute), replacing=index)


def span_choices(text: str, spans: Sequence[Span]) -> list[tuple[str, int]]:
    """Dropdown choices naming each span by attribute and value, valued by its index."""
    return [(f"{i}: {s.attribute} = {text[s.start:s.end]!r}", i) for i, s in enumerate(spans)]


def status_for(spans: Sequence[Span], predicted: Sequence[Span]) -> str:
    """'accepted' when the annotator kept the model's spans exactly, else 'corrected'."""
    return "accepted" if clean_spans(spans) == clean_spans(predicted) else "corrected"


@dataclass(frozen=True)
class ReviewItem:
    """The listing an annotator is reviewing: the model's spans as predicted and as edited so far."""

    listing_id: int
    external_id: str | None
    text: str
    photo_sha256: str | None
    prediction_id: int | None
    predicted: tuple[Span, ...]
    spans: tuple[Span, ...]

    @classmethod
    def from_queue(cls, item: QueueItem) -> ReviewItem:
        predicted = tuple(clean_spans(item.spans))
        return cls(item.listing_id, item.external_id, item.text, item.photo_sha256, item.prediction_id,
                   predicted, predicted)

    def with_spans(self, spans: Iterable[Span]) -> ReviewItem:
        return replace(self, spans=tuple(spans))

    @property
    def status(self) -> str:
        """What saving it means: 'accepted' when the model's spans were kept exactly, else 'corrected'."""
        return status_for(self.spans, self.predicted)
