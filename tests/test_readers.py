"""MEPAVE and MAE readers, and format detection."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dram.listings import ListingError
from dram.readers import read_listings, read_mae, read_mepave

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
