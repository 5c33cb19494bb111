"""MEPAVE and MAE readers, and format detection."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dram.data.listings import ListingError
from dram.data.readers import read_listings, read_mae, read_mepave

# Made-up sentences in the MEPAVE layout: cid, sid, raw text, tagged text.
MEPAVE_LINES = [
    "c_1\ts_1\t简约纯棉短袖衬衫\t简约<材质>纯棉</材质><袖长>短袖</袖长>衬衫",
    "c_2\ts_2\t红色连衣裙\t<颜色>红色</颜色>连衣裙",
    "c_3\ts_3\t宽松外套\t宽松外套",
]


def test_mepave_offsets_index_the_raw_text(tmp_path: Path) -> None:
    path = tmp_path / "mini.train.sample"
    path.write_text("\n".join(MEPAVE_LINES) + "\n", encoding="utf-8")
    listings = read_mepave(path)
    first = listings[0]
    assert first.id == "s_1" and first.meta["cid"] == "c_1" and first.image is None
    assert [(s.attribute, first.span_text(s)) for s in first.spans] == [("材质", "纯棉"), ("袖长", "短袖")]
    assert listings[2].spans == []


@pytest.mark.parametrize("line, reason", [
    ("c_9\ts_9\t红色裙\t<颜色>红色裙", "never closed"),
    ("c_9\ts_9\t红色裙\t<颜色>红色</尺码>裙", "does not match"),
    ("c_9\ts_9\t蓝色裙\t<颜色>红色</颜色>裙", "differs from the raw text"),
    ("c_9\ts_9\t红色裙", "4 tab-separated columns"),
])
def test_mepave_bad_line_is_skipped_with_reason(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "bad.sample"
    path.write_text(MEPAVE_LINES[1] + "\n" + line + "\n", encoding="utf-8")
    listings, report = read_listings(path)
    assert [l.id for l in listings] == ["s_2"] and report.n_skipped == 1 and reason in report.problems[0]


def _mae_items(tmp_path: Path) -> list[dict]:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "1.jpg").write_bytes(b"x")
    return [{"id": "m1", "title": "Acme Red Jacket", "text": "Warm cotton jacket",
             "specs": {"colour": "red", "material": ["Cotton"], "size": "XL"}, "images": ["pics/1.jpg", "pics/2.jpg"]}]


def test_mae_json_list_locates_specs_and_takes_first_image(tmp_path: Path) -> None:
    path = tmp_path / "mae.json"
    path.write_text(json.dumps(_mae_items(tmp_path)))
    listing = read_mae(path)[0]
    assert listing.text == "Acme Red Jacket Warm cotton jacket"
    assert {(s.attribute, listing.span_text(s)) for s in listing.spans} == {("colour", "Red"), ("material", "cotton")}
    assert listing.image == (tmp_path / "pics" / "1.jpg").resolve()
    _, report = read_listings(path)
    assert report.values_not_found == 1 and "'XL'" in report.problems[0]


def test_mae_jsonl_is_detected_by_keys(tmp_path: Path) -> None:
    path = tmp_path / "mae.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in _mae_items(tmp_path)) + "\n")
    listings, _ = read_listings(path)
    assert listings[0].id == "m1" and len(listings[0].spans) == 2


def test_canonical_jsonl_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "c", "text": "Red Shirt", "values": {"colour": ["Red"]}}) + "\n")
    listings, report = read_listings(path)
    assert listings[0].spans[0].end == 3 and report.n_loaded == 1


def test_unknown_format_raises_listing_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n")
    with pytest.raises(ListingError, match="Could not tell the format"):
        read_listings(path)


@pytest.mark.shared_data
def test_public_mepave_sample_reads_cleanly() -> None:
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "mepave-sample"
    if not folder.is_dir():
        pytest.skip("shared data not available on this machine")
    for part in ("train", "valid", "test"):
        listings, report = read_listings(folder / f"jdai.jave.fashion.{part}.sample")
        assert report.n_skipped == 0 and listings and all(l.spans for l in listings[:5])


def _offer(**overrides) -> dict:
    offer = {"id": 7, "category": "Computers", "input_title": "HP Xeon E5335 2.0GHz DL360 G5",
             "input_description": "Intel Xeon E5335 (2.0GHz/4-core) 13w x 4d. Ships from DE.",
             "target_scores": {"Processor Type": {"Xeon E5335": {"pid": [0], "score": 1},
                                                  "Intel Xeon E5335": {"pid": [1], "score": 1}},
                               "Clock Speed": {"2.0GHz": {"pid": [0, 1], "score": 1}},
                               "Width": {"13": {"pid": [1], "score": 1}},
                               "Interface": {"Ultra320 SCSI": {"pid": [1], "score": 1}},
                               "Bus Speed": {"n/a": 1}}}
    offer.update(overrides)
    return offer


def test_target_scores_reader_locates_every_value_keeps_na_and_reports_missing(tmp_path: Path) -> None:
    path = tmp_path / "offers.jsonl"
    path.write_text(json.dumps(_offer()) + "\n")
    listings, report = read_listings(path)
    listing = listings[0]
    assert listing.id == "7" and listing.meta["category"] == "Computers"
    assert listing.text.startswith("HP Xeon") and "\nIntel Xeon" in listing.text
    found = sorted((s.attribute, listing.span_text(s), s.start) for s in listing.spans)
    found = sorted(found, key=lambda f: (f[0], f[2]))
    # "2.0GHz" twice (title and description); both processor names, the longer one where they nest;
    # "13" inside "13w" is found on its own tagging unit.
    assert [(a, t) for a, t, _ in found] == [
        ("Clock Speed", "2.0GHz"), ("Clock Speed", "2.0GHz"),
        ("Processor Type", "Xeon E5335"), ("Processor Type", "Intel Xeon E5335"), ("Width", "13")]
    # n/a is a labelled slot with no value; the value not written in the text is kept as a slot too.
    assert listing.target_values()["Bus Speed"] == []
    assert listing.target_values()["Interface"] == ["Ultra320 SCSI"]
    assert report.values_not_found == 1 and "'Ultra320 SCSI'" in report.problems[0] and report.n_loaded == 1


def test_target_scores_reader_takes_the_single_input_field(tmp_path: Path) -> None:
    offer = {"id": "a", "input": "Acme Blue Kettle 1.7 l", "target_scores": {"Color": {"Blue": 1}, "Size": {"n/a": 1}}}
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps(offer) + "\n")
    listing = read_listings(path)[0][0]
    assert listing.text == "Acme Blue Kettle 1.7 l"
    assert [listing.span_text(s) for s in listing.spans] == ["Blue"]
    assert listing.target_values() == {"Color": ["Blue"], "Size": []}


def test_target_values_survive_a_canonical_write_and_read(tmp_path: Path) -> None:
    from dram.data.listings import read_jsonl, write_jsonl

    path = tmp_path / "offers.jsonl"
    path.write_text(json.dumps(_offer()) + "\n")
    listing = read_listings(path)[0][0]
    write_jsonl(tmp_path / "canonical.jsonl", [listing])
    again = read_jsonl(tmp_path / "canonical.jsonl")[0][0]
    assert again.spans == listing.spans and again.target_values() == listing.target_values()


def test_target_scores_line_without_scores_is_skipped_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "offers.jsonl"
    path.write_text(json.dumps(_offer()) + "\n" + json.dumps({"id": 8, "target_scores": {"A": {"x": 1}}, "input_title": "x"})
                    + "\n" + "not json\n")
    listings, report = read_listings(path, format="target_scores")
    assert len(listings) == 2 and report.n_skipped == 1 and "line 3" in report.problems[-1]
