"""The titles-only view of WDC-PAVE on hand-written offers in the source's format."""
from __future__ import annotations

import json
from pathlib import Path

from dram.data.readers import read_listings
from training.wdc_titles import ViewCounts, build_split, title_offer

OFFER = {
    "id": 7, "category": "Computers And Accessories",
    "input_title": "HP Xeon E5335 2.0GHz DL360 G5",
    "input_description": "Intel Xeon E5335 processor, 4-core, for the DL360 G5. Colour: Black",
    "target_scores": {
        "Generation": {"G5": {"pid": [0, 1], "score": 1}},  # in both: kept
        "Processor Type": {"Xeon E5335": {"pid": [0], "score": 1},  # title only: kept
                           "Intel Xeon E5335": {"pid": [1], "score": 1}},  # description only: dropped
        "Color": {"Black": {"pid": [1], "score": 1}},  # description only, the slot's only value
        "Bus Speed": {"n/a": 1},  # checked and absent: stays a slot
    },
    "url": "www.example.com",
}


def test_title_values_kept_description_values_dropped_na_kept() -> None:
    counts = ViewCounts()
    offer = title_offer(OFFER, counts)
    assert "input_description" not in offer and offer["input_title"] == OFFER["input_title"]
    assert offer["target_scores"] == {
        "Generation": {"G5": {"pid": [0, 1], "score": 1}},
        "Processor Type": {"Xeon E5335": {"pid": [0], "score": 1}},
        "Bus Speed": {"n/a": 1},
    }
    assert list(offer) == ["id", "category", "input_title", "target_scores", "url"]  # the source's order
    assert (counts.listings, counts.values_kept, counts.values_dropped, counts.slots_dropped, counts.na_slots) == (1, 2, 2, 1, 1)


def test_the_view_reads_as_titles_with_the_title_values(tmp_path: Path) -> None:
    """The reader detects the output; the emptied attribute has no slot, n/a stays an empty slot."""
    source = tmp_path / "train.jsonl"
    source.write_text(json.dumps(OFFER) + "\n", encoding="utf-8")
    build_split(source, tmp_path / "out" / "train.jsonl")
    first = (tmp_path / "out" / "train.jsonl").read_bytes()
    build_split(source, tmp_path / "out" / "train.jsonl")
    assert (tmp_path / "out" / "train.jsonl").read_bytes() == first  # rebuilding gives the same file
    [listing], report = read_listings(tmp_path / "out" / "train.jsonl")
    assert listing.text == OFFER["input_title"] and report.values_not_found == 0
    assert listing.target_values() == {"Generation": ["G5"], "Processor Type": ["Xeon E5335"], "Bus Speed": []}
    assert sorted(listing.span_text(s) for s in listing.spans) == ["G5", "Xeon E5335"]

