"""The one span type: an attribute value as characters start..end of a listing's text.

Gold labels, the model's extractions, the annotator's corrections and Label Studio regions are all
`Span`s; a tagger's word-level output is a `WordSpan` until `char_spans` places it in the text (the
network's `DecodedSpan` is one; this layer imports nothing of the network). One rule (`checked_span`,
`clash`) says which spans a listing may hold, so a file, the app and Label Studio refuse the same
things with the same words.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Collection, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from dram.data.tagging import Word, word_range
from dram.errors import DramInputError


class SpanError(DramInputError):
    """A span that cannot be part of its listing; the message says why."""


@dataclass(frozen=True, order=True)
class Span:
    """Characters [start, end) of a listing's text hold a value of `attribute`.

    `text` and `confidence` are what an extraction adds (the characters, the model's belief);
    two spans are equal when they mark the same characters with the same attribute.
    """

    start: int
    end: int
    attribute: str
    text: str = field(default="", compare=False)
    confidence: float | None = field(default=None, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        """A span from its `to_dict()` form (as stored); other keys are ignored. Not a check: see `checked_span`."""
        confidence = data.get("confidence")
        return cls(int(data["start"]), int(data["end"]), str(data["attribute"]), str(data.get("text") or ""),
                   float(confidence) if confidence is not None else None)

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end

    def bare(self) -> Span:
        """Position and attribute only: what a label or a correction states."""
        return Span(self.start, self.end, self.attribute)

    def with_text(self, text: str) -> Span:
        """This span with its characters cut from the listing `text`."""
        return replace(self, text=text[self.start:self.end])

    def to_dict(self) -> dict[str, Any]:
        """{"start", "end", "attribute"}, plus "text" and "confidence" when the span carries them."""
        out: dict[str, Any] = {"start": self.start, "end": self.end, "attribute": self.attribute}
        if self.text:
            out["text"] = self.text
        if self.confidence is not None:
            out["confidence"] = self.confidence
        return out


def _position(value: Any) -> int:
    """A character offset: a real int, never a float, bool or string that `int()` would quietly bend."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not a whole number")
    return value


def checked_span(raw: Span | Mapping[str, Any], text: str, allowed: Collection[str] | None = None) -> Span:
    """`raw` as a Span of `text`, or `SpanError` saying what is wrong with it.

    Offsets must be ints inside the text with start < end (0.9 is not silently 0), the attribute a
    non-empty name, and one of `allowed` when given.
    """
    if isinstance(raw, Span):
        raw = raw.to_dict()
    try:
        start, end, attribute = _position(raw["start"]), _position(raw["end"]), raw["attribute"]
    except (KeyError, TypeError) as exc:
        raise SpanError(f"span {raw!r} needs integer 'start' and 'end' character positions and an "
                        "'attribute'") from exc
    if not isinstance(attribute, str) or not attribute.strip():
        raise SpanError(f"span {raw!r} has no attribute name; pick one of the attributes")
    if not 0 <= start < end <= len(text):
        raise SpanError(f"span {start}-{end} ({attribute}) is not inside the text of length {len(text)} "
                        "(start must come before end); select a non-empty part of the listing text")
    if allowed is not None and attribute not in allowed:
        raise SpanError(f"unknown attribute {attribute!r}: not one of {sorted(allowed)}; pick one of those")
    confidence = raw.get("confidence")
    return Span(start, end, attribute, str(raw.get("text") or ""),
                float(confidence) if confidence is not None else None)


def clash(span: Span, others: Iterable[Span]) -> str | None:
    """Why `span` cannot join `others` (the same attribute already marks some of its characters), or None.

    B-I-O tagging can hold one value per attribute and word; two attributes may share words.
    """
    for other in others:
        if other.attribute != span.attribute or not other.overlaps(span):
            continue
        if (other.start, other.end) == (span.start, span.end):
            return f"span {span.start}-{span.end} ({span.attribute}) is given more than once"
        return (f"span {span.start}-{span.end} ({span.attribute}) overlaps {other.start}-{other.end} "
                "of the same attribute")
    return None


def reading_order(spans: Iterable[Span]) -> list[Span]:
    """Spans by position, then attribute: the order every listing's spans are kept and shown in."""
    return sorted(spans, key=lambda s: (s.start, s.end, s.attribute))


def covered_words(words: Sequence[Word], span: Span) -> range:
    """Indices of the words that share characters with `span` (empty when none does)."""
    found = word_range(list(words), span.start, span.end)
    return range(*found) if found else range(0)


@runtime_checkable
class WordSpan(Protocol):
    """A value as words first_word..end_word (exclusive) of a text, with the tagger's confidence: what
    `char_spans` reads. Any object with these attributes is one (`dram.nn.model.DecodedSpan` is)."""

    attribute: str
    first_word: int
    end_word: int
    confidence: float


def char_spans(text: str, words: Sequence[Word], decoded: Iterable[WordSpan]) -> list[Span]:
    """The decoder's word-level output as character spans of `text`, in reading order.

    A value never runs across a line break (a title and its description are joined by one), but a
    tagger can carry a span over it ("Backsplash\nCountertop"): such a span is cut there, each piece
    keeping the span's confidence."""
    spans = []
    for d in decoded:
        breaks = [w for w in range(d.first_word + 1, d.end_word) if "\n" in text[words[w - 1].end:words[w].start]]
        for first, end_word in zip([d.first_word, *breaks], [*breaks, d.end_word]):
            start, end = words[first].start, words[end_word - 1].end
            spans.append(Span(start, end, d.attribute, text[start:end], round(d.confidence, 4)))
    return sorted(spans, key=lambda s: (s.start, s.attribute))
