"""The annotator's span edits: add, remove, relabel and re-bound values by word.

The annotator picks bounds by word, the same words the model tags (`dram.tagging.split_words`),
so a corrected span is always one the model can learn; spans are `dram.spans.Span`s without text
or confidence, and the overlap rule is `dram.spans.clash`, the one the store and files use.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from dram.spans import Span, clash, covered_words, reading_order
from dram.tagging import split_words
from store.errors import CorrectionError
from store.repository import QueueItem


class ReviewError(CorrectionError):
    """An edit that cannot be made as asked; the message tells the annotator what to pick instead."""


def word_choices(text: str) -> list[tuple[str, int]]:
    """Dropdown choices for span bounds: "index: word", valued by word index."""
    return [(f"{i}: {w.text}", i) for i, w in enumerate(split_words(text))]


def clean_spans(spans: Iterable[Span]) -> list[Span]:
    """Only position and attribute (a prediction's text/confidence are not the annotator's), in reading order."""
    return reading_order(s.bare() for s in spans)


def _check_attribute(attribute: str | None, attributes: Sequence[str]) -> str:
    if not attribute or attribute not in attributes:
        raise ReviewError(f"Pick an attribute from the model's set: {', '.join(attributes)}.")
    return attribute


def _check_index(spans: Sequence[Span], index: int | None) -> int:
    if index is None or not 0 <= int(index) < len(spans):
        raise ReviewError("Pick one of the listing's spans first.")
    return int(index)


def span_from_words(text: str, first: int | None, last: int | None, attribute: str) -> Span:
    """The character span covering words first..last (inclusive)."""
    words = split_words(text)
    if first is None or last is None:
        raise ReviewError("Pick the first and the last word of the value.")
    first, last = int(first), int(last)
    if not 0 <= first < len(words) or not 0 <= last < len(words):
        raise ReviewError(f"Word numbers go from 0 to {len(words) - 1} for this listing.")
    if last < first:
        raise ReviewError(f"The last word ({last}) comes before the first ({first}); swap them.")
    return Span(words[first].start, words[last].end, attribute)


def word_bounds(text: str, span: Span) -> tuple[int, int]:
    """(first, last) word index of a span, to pre-fill the bound dropdowns when it is selected."""
    inside = covered_words(split_words(text), span)
    return (inside[0], inside[-1]) if inside else (0, 0)


def _with(spans: Sequence[Span], new: Span, replacing: int | None = None) -> list[Span]:
    """spans with `new` (instead of spans[replacing]), refusing one the same attribute already overlaps."""
    others = [s for i, s in enumerate(spans) if i != replacing]
    problem = clash(new, others)
    if problem is not None:
        raise ReviewError(f"{new.attribute} already has a value overlapping these words ({problem}); re-bound or "
                          "remove that one instead.")
    return clean_spans([*others, new])


def add_span(text: str, spans: Sequence[Span], first: int | None, last: int | None, attribute: str | None,
             attributes: Sequence[str]) -> list[Span]:
    return _with(spans, span_from_words(text, first, last, _check_attribute(attribute, attributes)))


def remove_span(spans: Sequence[Span], index: int | None) -> list[Span]:
    index = _check_index(spans, index)
    return [s for i, s in enumerate(spans) if i != index]


def relabel_span(spans: Sequence[Span], index: int | None, attribute: str | None,
                 attributes: Sequence[str]) -> list[Span]:
    index = _check_index(spans, index)
    return _with(spans, replace(spans[index], attribute=_check_attribute(attribute, attributes)), replacing=index)


def rebound_span(text: str, spans: Sequence[Span], index: int | None, first: int | None,
                 last: int | None) -> list[Span]:
    index = _check_index(spans, index)
    return _with(spans, span_from_words(text, first, last, spans[index].attribute), replacing=index)


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
