"""Canonical JSONL: loading, value location, validation messages and round trips."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dram.data.listings import Listing, ListingError, locate_values, write_jsonl
from dram.data.readers import read_listings
from dram.data.spans import Span


def _write(path: Path, records: list[dict | str]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_spans_and_relative_image_become_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"x")
    path = _write(tmp_path / "l.jsonl", [{"id": "a", "text": "Red Shirt", "image": "img/a.jpg",
                                          "spans": [{"start": 0, "end": 3, "attribute": "colour"}]}])
    listings, report = read_listings(path, "jsonl")
    assert listings[0].image == (tmp_path / "img" / "a.jpg").resolve() and listings[0].image.is_absolute()
    assert listings[0].spans == [Span(0, 3, "colour")]
    assert (report.n_read, report.n_loaded, report.n_skipped) == (1, 1, 0)


def test_values_are_located_everywhere_case_insensitive_on_word_boundaries(tmp_path: Path) -> None:
    text = "Blue shirt, BLUE collar, blueish cuffs"
    path = _write(tmp_path / "l.jsonl", [{"id": 1, "text": text, "values": {"colour": ["blue"]}}])
    listing = read_listings(path, "jsonl")[0][0]
    assert [listing.span_text(s) for s in listing.spans] == ["Blue", "BLUE"]
    assert listing.id == "1"


def test_values_not_found_are_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "l.jsonl", [{"id": "p9", "text": "Red Shirt", "values": {"colour": ["Red", "Green"]}}])
    with caplog.at_level(logging.WARNING):
        listings, report = read_listings(path, "jsonl")
    assert report.values_not_found == 1 and len(listings[0].spans) == 1
    assert "p9" in caplog.text and "'Green'" in caplog.text


def test_longer_overlapping_value_wins() -> None:
    spans, missing = locate_values("Navy Blue Shirt", {"colour": ["Blue", "Navy Blue"]})
    assert spans == [Span(0, 9, "colour")] and missing == []


@pytest.mark.parametrize("record, reason", [
    ({"id": "e", "text": "   "}, "empty"),
    ({"text": "No id"}, "no \"id\""),
    ({"id": "m", "text": "Red Shirt", "image": "missing.jpg"}, "does not exist"),
])
def test_unusable_listing_is_skipped_with_line_and_id(tmp_path: Path, record: dict, reason: str) -> None:
    path = _write(tmp_path / "l.jsonl", [{"id": "ok", "text": "fine"}, record])
    listings, report = read_listings(path, "jsonl")
    assert [l.id for l in listings] == ["ok"] and report.n_skipped == 1
    assert "line 2" in report.problems[0] and reason in report.problems[0]


@pytest.mark.parametrize("span, reason", [
    ({"start": 5, "end": 99, "attribute": "colour"}, "not inside the text of length 9"),
    ({"start": 3, "end": 3, "attribute": "colour"}, "start must come before end"),
    ({"start": 0, "end": 2, "attribute": "colour"}, "overlaps"),
    ({"start": 4, "end": 9, "attribute": "size"}, "unknown attribute 'size'"),
])
def test_bad_span_is_skipped_and_listing_kept(tmp_path: Path, span: dict, reason: str) -> None:
    good = {"start": 0, "end": 3, "attribute": "colour"}
    path = _write(tmp_path / "l.jsonl", [{"id": "s1", "text": "Red Shirt", "spans": [good, span]}])
    listings, report = read_listings(path, "jsonl", attributes=["colour"])
    assert listings[0].spans == [Span(0, 3, "colour")]
    assert report.n_spans_skipped == 1 and reason in report.problems[0] and "'s1'" in report.problems[0]


def test_unknown_attribute_in_values_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.jsonl", [{"id": "v", "text": "Red Shirt", "values": {"fabric": ["Shirt"]}}])
    listings, report = read_listings(path, "jsonl", attributes=["colour"])
    assert listings[0].spans == [] and "unknown attribute 'fabric'" in report.problems[0]


def test_not_jsonl_raises_listing_error(tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    path.write_text("id,title\n1,Red Shirt\n")
    with pytest.raises(ListingError, match="not a JSONL listing file"):
        read_listings(path, "jsonl")


def test_bad_line_after_good_ones_is_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.jsonl", [{"id": "a", "text": "x"}, "{broken", {"id": "a", "text": "dup"}])
    listings, report = read_listings(path, "jsonl")
    assert len(listings) == 1 and report.n_skipped == 2 and report.n_read == 3


def test_write_then_read_round_trips_with_relative_image_and_meta(tmp_path: Path) -> None:
    photo = tmp_path / "photos" / "p.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"x")
    listing = Listing("p", "Red Shirt", photo, [Span(0, 3, "colour")], {"n_colour_words": 1})
    out = tmp_path / "out" / "l.jsonl"
    write_jsonl(out, [listing])
    assert json.loads(out.read_text())["image"] == "../photos/p.jpg"
    again = read_listings(out, "jsonl")[0][0]
    assert again.image == photo.resolve() and again.spans == listing.spans and again.meta == listing.meta
