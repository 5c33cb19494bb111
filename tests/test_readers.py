"""The one reader of listing files: every format (canonical JSONL, CSV, Parquet, MEPAVE, MAE, WDC-PAVE), format
detection, rows that keep their place with a reason, photos beside the file or in a zip, clear refusals."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from dram.data.listings import ListingError
from dram.data.photo_sources import PhotoZip
from dram.data.readers import read_listing_file, read_listings
from dram.data.spans import Span

# Made-up sentences in the MEPAVE layout: cid, sid, raw text, tagged text.
MEPAVE_LINES = [
    "c_1\ts_1\t简约纯棉短袖衬衫\t简约<材质>纯棉</材质><袖长>短袖</袖长>衬衫",
    "c_2\ts_2\t红色连衣裙\t<颜色>红色</颜色>连衣裙",
    "c_3\ts_3\t宽松外套\t宽松外套",
]


def test_mepave_offsets_index_the_raw_text(tmp_path: Path) -> None:
    path = tmp_path / "mini.train.sample"
    path.write_text("\n".join(MEPAVE_LINES) + "\n", encoding="utf-8")
    listings, _ = read_listings(path, "mepave")
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
    listing = read_listings(path, "mae")[0][0]
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
    from dram.data.listings import write_jsonl

    path = tmp_path / "offers.jsonl"
    path.write_text(json.dumps(_offer()) + "\n")
    listing = read_listings(path)[0][0]
    write_jsonl(tmp_path / "canonical.jsonl", [listing])
    again = read_listings(tmp_path / "canonical.jsonl", "jsonl")[0][0]
    assert again.spans == listing.spans and again.target_values() == listing.target_values()


def test_target_scores_line_without_scores_is_skipped_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "offers.jsonl"
    path.write_text(json.dumps(_offer()) + "\n" + json.dumps({"id": 8, "target_scores": {"A": {"x": 1}}, "input_title": "x"})
                    + "\n" + "not json\n")
    listings, report = read_listings(path, format="target_scores")
    assert len(listings) == 2 and report.n_skipped == 1 and "line 3" in report.problems[-1]


# ---------------------------------------------------------------- CSV, JSONL and Parquet rows, in their places

def test_csv_rows_are_trimmed_and_keyed_case_insensitively(tmp_path: Path) -> None:
    path = tmp_path / "listings.csv"
    path.write_text("\ufeff Id ,TEXT,category,Note\n 7 ,  Navy shirt ,Shirts,\n8,Red shoe,,on sale\n", encoding="utf-8")
    read = read_listing_file(path)
    assert [(r.number, r.id, r.problem) for r in read.rows] == [(1, "7", ""), (2, "8", "")]
    first, second = read.listings
    assert (first.id, first.text, first.image, first.meta) == ("7", "Navy shirt", None, {"category": "Shirts"})
    assert (second.id, second.text, second.meta) == ("8", "Red shoe", {"Note": "on sale"})


def test_csv_problems_keep_their_row_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "shirt.jpg").write_bytes(b"x")
    path = tmp_path / "listings.csv"
    path.write_text("id,text,image\n"
                    "a,Roadster shirt,shirt.jpg\n"
                    ",no id here,\n"
                    "d,,\n"
                    "e,Navy, Blue shirt,\n"  # an unquoted comma: one cell too many
                    "a,Same id again,\n"
                    "f,Puma shoe,nope.jpg\n")
    read = read_listing_file(path)
    assert [(r.number, r.id, r.problem) for r in read.rows] == [
        (1, "a", ""),
        (2, "", 'it has no "id"'),
        (3, "d", 'its "text" is empty or missing'),
        (4, "e", "it has 1 more cells than the header has columns; put text that holds commas in double quotes"),
        (5, "a", "the id was already used by an earlier listing"),
        (6, "f", f"its photo 'nope.jpg' does not exist (looked for {(tmp_path / 'nope.jpg').resolve()})"),
    ]
    assert read.listings[0].image == (tmp_path / "shirt.jpg").resolve()  # beside the file, as in canonical JSONL
    assert (read.report.n_read, read.report.n_loaded, read.report.n_skipped) == (6, 1, 5)
    assert "listings.csv row 6 (listing 'f'): listing skipped: its photo 'nope.jpg'" in read.report.problems[-1]


def test_jsonl_bad_lines_keep_their_place_even_the_first(tmp_path: Path) -> None:
    (tmp_path / "p.jpg").write_bytes(b"x")
    path = tmp_path / "listings.jsonl"
    path.write_text('not json\n{"id": 1, "text": "a"}\n\n[1, 2]\n{"ID": "2", " Text ": "b", "image": "p.jpg"}\n')
    read = read_listing_file(path)
    assert [(r.number, r.id, r.problem) for r in read.rows] == [
        (1, "", "the line is not JSON (Expecting value)"), (2, "1", ""), (4, "", "the line is not a JSON object"),
        (5, "2", "")]
    assert [(l.id, l.text, l.image) for l in read.listings] == [("1", "a", None), ("2", "b", (tmp_path / "p.jpg").resolve())]


def test_parquet_rows_are_read_like_csv_rows(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "part.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": 1, "text": "Red shirt", "category": None, "score": float("nan")},
                                         {"id": 2, "text": None, "category": "Shoes", "score": 0.5}]), path)
    read = read_listing_file(path)
    assert [(r.number, r.id, r.problem) for r in read.rows] == [(1, "1", ""), (2, "2", 'its "text" is empty or missing')]
    assert read.listings[0].meta == {}  # empty cells (None, NaN) are no values


@pytest.mark.parametrize("name, content, message", [
    ("listings.csv", "ID,title,Image\n1,shirt,a.jpg\n",
     "The listing file listings.csv is missing the column(s) text. It needs columns `id` and `text`, and may have "
     "`image` (a photo's path beside the file, or its name in the photo zip) and `category`. "
     "Columns found: id, image, title."),
    ("listings.jsonl", '{"name": "x"}\n',
     "The listing file listings.jsonl is missing the column(s) id, text. It needs columns `id` and `text`, and may "
     "have `image` (a photo's path beside the file, or its name in the photo zip) and `category`. "
     "Columns found: name."),
    ("listings.txt", "id,text\n1,a\n", "Could not tell the format of listings.txt: expected CSV (.csv), canonical "
     "JSONL, Parquet, MEPAVE (4 tab-separated columns with <attribute>value</attribute> tags) or MAE JSON."),
    ("listings.csv", "id,text\n", "The listing file listings.csv holds no listings."),
    ("listings.jsonl", "\n\n", "The listing file listings.jsonl holds no listings."),
])
def test_unusable_files_are_refused_saying_what_to_do(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ListingError) as err:
        read_listing_file(path)
    assert str(err.value) == message


def test_an_empty_file_is_read_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "listings.csv"
    path.write_text("id,text\n")
    assert read_listing_file(path, allow_empty=True).rows == []


def test_non_utf8_and_oversized_files_are_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,text\n1,Café\n".encode("latin-1"))
    with pytest.raises(ListingError, match=r"^The listing file latin.csv is not UTF-8 text \(.*\); save it as UTF-8\.$"):
        read_listing_file(latin)
    big = tmp_path / "big.csv"
    big.write_text("id,text\n1,a\n2,b\n3,c\n")
    with pytest.raises(ListingError) as err:
        read_listing_file(big, max_rows=2)
    assert str(err.value) == "The listing file big.csv has 3 listings; at most 2 are read at a time. Split the file."
    assert len(read_listing_file(big, max_rows=3).rows) == 3


def test_a_zip_gives_photos_by_name_to_any_format(tmp_path: Path) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("img/shirt.jpg", b"shirt bytes")
    path = tmp_path / "labelled.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "Red Shirt", "image": "shirt.jpg",
                                "spans": [{"start": 0, "end": 3, "attribute": "colour"}]}) + "\n"
                    + json.dumps({"id": "b", "text": "Blue Shirt", "image": "img\\shirt.jpg"}) + "\n"
                    + json.dumps({"id": "c", "text": "Green Shirt", "image": "green.jpg"}) + "\n")
    with PhotoZip(archive) as photos:
        read = read_listing_file(path, photos=photos)
    a, b = read.listings
    assert a.image == b"shirt bytes" and a.image.name == "img/shirt.jpg" and a.spans == [Span(0, 3, "colour")]
    assert b.image is a.image  # read from the zip once
    assert read.rows[2].problem == "its photo 'green.jpg' is not in the photo zip"
    with PhotoZip(None) as no_zip:
        assert read_listing_file(path, photos=no_zip).rows[0].problem == \
            "it names the photo 'shirt.jpg' but no photo zip was uploaded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labelled.jsonl", "photos.zip"]  # nothing unpacked


def test_mae_json_lines_keep_a_bad_line_in_its_place(tmp_path: Path) -> None:
    path = tmp_path / "mae.jsonl"
    item = {"id": "m1", "title": "Acme Red Jacket", "specs": {"colour": "red"}}
    path.write_text(json.dumps(item) + "\n{broken\n")
    read = read_listing_file(path, "mae")
    assert [(r.number, r.id, r.problem) for r in read.rows] == [
        (1, "m1", ""), (2, "", "the line is not JSON (Expecting property name enclosed in double quotes)")]
