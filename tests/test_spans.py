"""The one span type and the one rule for which spans a listing may hold."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dram.data.photo_sources import PhotoFolder
from dram.data.listings import LoadReport, listing_from_record
from dram.data.spans import (
    Span,
    SpanError,
    WordSpan,
    char_spans,
    checked_span,
    clash,
    covered_words,
)
from dram.data.tagging import split_words
from dram.nn.model import DecodedSpan
from store.errors import CorrectionError
from store.records import check_spans

TEXT = "Red Cotton Shirt"


def test_spans_are_equal_by_position_and_attribute_whatever_the_model_added() -> None:
    assert Span(0, 3, "colour", "Red", 0.9) == Span(0, 3, "colour")
    assert Span(0, 3, "colour") != Span(0, 3, "brand")
    assert sorted([Span(4, 10, "material"), Span(0, 3, "colour")])[0] == Span(0, 3, "colour")


def test_to_dict_carries_text_and_confidence_only_when_the_span_has_them() -> None:
    assert Span(0, 3, "colour").to_dict() == {"start": 0, "end": 3, "attribute": "colour"}
    full = Span(0, 3, "colour", "Red", 0.0)
    assert full.to_dict() == {"start": 0, "end": 3, "attribute": "colour", "text": "Red", "confidence": 0.0}
    assert Span.from_dict(full.to_dict()).confidence == 0.0 and Span.from_dict(full.to_dict()).text == "Red"
    assert full.bare().to_dict() == Span(0, 3, "colour").to_dict()


@pytest.mark.parametrize("raw, reason", [
    ({"start": 0, "end": 99, "attribute": "colour"}, "not inside the text"),
    ({"start": 3, "end": 3, "attribute": "colour"}, "start must come before end"),
    ({"start": 0.0, "end": 3, "attribute": "colour"}, "needs integer"),
    ({"start": 0, "end": 3, "attribute": " "}, "no attribute name"),
    ({"start": 0, "end": 3, "attribute": "size"}, "unknown attribute 'size'"),
])
def test_a_file_and_the_store_refuse_a_bad_span_for_the_same_reason(raw: dict, reason: str) -> None:
    with pytest.raises(SpanError, match=reason):
        checked_span(raw, TEXT, {"colour"})
    with pytest.raises(CorrectionError, match=reason):
        check_spans(TEXT, [raw], {"colour"}, what="correction")
    report = LoadReport()
    record = {"id": "x", "text": TEXT, "spans": [raw]}
    listing = listing_from_record(record, where="file", photos=PhotoFolder(Path(".")), report=report, attributes=["colour"])
    assert listing is not None and listing.spans == [] and reason in report.problems[0]


def test_one_attribute_may_not_mark_a_character_twice_but_two_attributes_may() -> None:
    kept = [Span(0, 10, "colour")]
    assert "overlaps 0-10" in clash(Span(4, 16, "colour"), kept)
    assert "more than once" in clash(Span(0, 10, "colour"), kept)
    assert clash(Span(4, 16, "material"), kept) is None and clash(Span(11, 16, "colour"), kept) is None


def test_covered_words_are_the_words_sharing_characters_with_the_span() -> None:
    words = split_words(TEXT)
    assert list(covered_words(words, Span(2, 6, "x"))) == [0, 1]
    assert list(covered_words(words, Span(3, 4, "x"))) == []


def test_a_decoded_span_is_cut_at_a_line_break_and_each_piece_keeps_its_confidence() -> None:
    text = "Steel Backsplash\nCountertop, 30 in"
    words = split_words(text)
    over_the_break = DecodedSpan(0, "Product Type", 1, 3, 0.8)  # "Backsplash\nCountertop"
    within_a_line = DecodedSpan(0, "Material", 0, 1, 0.9)
    spans = char_spans(text, words, [over_the_break, within_a_line])
    assert [(s.text, s.attribute, s.confidence) for s in spans] == [
        ("Steel", "Material", 0.9), ("Backsplash", "Product Type", 0.8), ("Countertop", "Product Type", 0.8)]
    two_words = char_spans("Drum Unit", split_words("Drum Unit"), [DecodedSpan(0, "Product Type", 0, 2, 0.7)])
    assert [s.text for s in two_words] == ["Drum Unit"]


def test_char_spans_reads_any_word_span_and_the_networks_decoded_span_is_one() -> None:
    """The data layer states what it reads (`WordSpan`) instead of importing the network's type."""

    @dataclass
    class Tagged:  # a tagger's output that is not the network's
        attribute: str
        first_word: int
        end_word: int
        confidence: float

    spans = char_spans(TEXT, split_words(TEXT), [Tagged("article_type", 2, 3, 0.91234)])
    assert [(s.start, s.end, s.text, s.confidence) for s in spans] == [(11, 16, "Shirt", 0.9123)]
    assert isinstance(DecodedSpan(0, "colour", 0, 1, 0.9), WordSpan) and isinstance(Tagged("colour", 0, 1, 0.9), WordSpan)
    assert not isinstance(Span(0, 3, "colour"), WordSpan)  # characters, not words
