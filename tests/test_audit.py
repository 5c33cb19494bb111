"""ui.audit directly, without the app: reading a batch, unpacking its photos, the "usually has" rule."""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

from dram.data.spans import Span
from dram.errors import DramInputError
from dram.inference import Extraction
from ui import audit
from ui.audit import BatchRow, missing_summary, read_rows, run_audit, unpack_photos


def listing(i: int, attributes: list[str], category: str = "") -> tuple[BatchRow, Extraction]:
    spans = [Span(0, 1, a, "x", 0.9) for a in attributes]
    return BatchRow(i, f"id{i}", "x", "", category), Extraction("x", spans, {}, 0.5, [])


class FakeExtractor:
    """extract_batch as dram.inference.Extractor has it: one brand value per listing, a bad text fails alone."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Path | None]] = []

    def extract_batch(self, items, tau_r=None, batch_size=32):
        out = []
        for text, image in items:
            self.seen.append((text, image))
            if text == "bad":
                out.append(DramInputError("cannot read this listing"))
            else:
                out.append(Extraction(text, [Span(0, 4, "brand", text[:4], 0.875)], {}, 0.5, []))
        return out


# ---------------------------------------------------------------- read_rows

def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path):
    path = tmp_path / "listings.csv"
    path.write_text("ID,title,Image\n1,shirt,a.jpg\n")
    with pytest.raises(DramInputError) as err:
        read_rows(path)
    assert str(err.value) == ("The listing file is missing the column(s) text. It needs columns `id` and `text`, "
                              "and may have `image` (a file name in the photo zip) and `category`. "
                              "Columns found: id, image, title.")


def test_jsonl_without_id_or_text_says_so(tmp_path: Path):
    path = tmp_path / "listings.jsonl"
    path.write_text('{"name": "x"}\n')
    with pytest.raises(DramInputError, match=r"missing the column\(s\) id, text\. .* Columns found: name\.$"):
        read_rows(path)


def test_csv_rows_are_trimmed_and_keyed_case_insensitively(tmp_path: Path):
    path = tmp_path / "listings.csv"
    path.write_text("\ufeff Id ,TEXT,category\n 7 ,  Navy shirt ,Shirts\n8,Red shoe,\n", encoding="utf-8")
    rows, problems = read_rows(path)
    assert rows == [BatchRow(1, "7", "Navy shirt", "", "Shirts"), BatchRow(2, "8", "Red shoe", "", "")]
    assert problems == []


def test_jsonl_bad_lines_become_problems_and_the_rest_is_read(tmp_path: Path):
    path = tmp_path / "listings.jsonl"
    path.write_text('{"id": 1, "text": "a"}\nnot json\n\n[1, 2]\n{"ID": "2", "Text": "b", "image": "p.jpg"}\n')
    rows, problems = read_rows(path)
    assert rows == [BatchRow(1, "1", "a", "", ""), BatchRow(5, "2", "b", "p.jpg", "")]
    assert problems == [[2, "", "line is not valid JSON", "skipped"], [4, "", "line is not a JSON object", "skipped"]]


@pytest.mark.parametrize("name, content, message", [
    ("listings.txt", "id,text\n1,a\n", "Unsupported listing file 'listings.txt': upload a .csv or .jsonl file."),
    ("listings.csv", "id,text\n", "The listing file has no rows."),
])
def test_unusable_files_are_refused(tmp_path: Path, name: str, content: str, message: str):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DramInputError) as err:
        read_rows(path)
    assert str(err.value) == message


def test_non_utf8_and_oversized_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,text\n1,Café\n".encode("latin-1"))
    with pytest.raises(DramInputError, match="not UTF-8 text"):
        read_rows(latin)
    monkeypatch.setattr(audit, "MAX_BATCH_ROWS", 2)
    big = tmp_path / "big.csv"
    big.write_text("id,text\n1,a\n2,b\n3,c\n")
    with pytest.raises(DramInputError) as err:
        read_rows(big)
    assert str(err.value) == "The file has 3 listings; this app audits at most 2 at a time. Split the file."


# ---------------------------------------------------------------- unpack_photos

def test_zip_path_traversal_is_refused(tmp_path: Path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.jpg", b"evil")
        zf.writestr("/abs.jpg", b"evil")
        zf.writestr("a/../../up.jpg", b"evil")
        zf.writestr("__MACOSX/._shirt.jpg", b"junk")
        zf.writestr("shirts/shirt.jpg", b"shirt")
        zf.writestr("a/same.jpg", b"1")
        zf.writestr("b/same.jpg", b"2")
    into = tmp_path / "out" / "photos"
    names = unpack_photos(archive, into)
    # shirt.jpg by its path and its unique base name; same.jpg only by path (two files share it)
    assert names == {"shirts/shirt.jpg": into / "shirts" / "shirt.jpg", "shirt.jpg": into / "shirts" / "shirt.jpg",
                     "a/same.jpg": into / "a" / "same.jpg", "b/same.jpg": into / "b" / "same.jpg"}
    assert (into / "shirts" / "shirt.jpg").read_bytes() == b"shirt"
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["out/photos/a/same.jpg", "out/photos/b/same.jpg", "out/photos/shirts/shirt.jpg", "photos.zip"]


def test_broken_and_oversized_zips_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert unpack_photos(None, tmp_path) == {}
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(DramInputError) as err:
        unpack_photos(broken, tmp_path / "x")
    assert str(err.value) == "The photo archive is not a valid zip file."
    monkeypatch.setattr(audit, "MAX_ZIP_BYTES", 2 * 2**20)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("one.jpg", b"\0" * 2**20)
        zf.writestr("two.jpg", b"\0" * (2**20 + 1))
    with pytest.raises(DramInputError) as err:
        unpack_photos(big, tmp_path / "y")
    assert str(err.value) == "The photo zip unpacks to more than 2 MB; upload smaller photos or fewer at a time."


# ---------------------------------------------------------------- the "usually has" rule

def test_usually_has_means_at_least_80_percent_of_the_category():
    assert audit.USUAL_SHARE == 0.8
    shirts = [listing(i, ["brand", "colour", "article_type"]) for i in range(4)]
    shirts += [listing(4, ["colour", "article_type"])]  # brand: 4/5 = 80% -> usual, id4 lacks it
    for _, extraction in shirts:
        extraction.spans[-1] = Span(0, 5, "article_type", "Shirt", 0.9)  # category "shirt"
    shoes = [listing(10 + i, ["colour"] if i < 2 else [], category="Shoes") for i in range(3)]  # 2/3 < 80%
    bags = [listing(20 + i, ["brand"] * (i < 3), category="Bags<b>") for i in range(4)]  # 3/4 = 75% < 80%
    unknown = [listing(30, [])]  # neither a category column nor an article type
    missing, table = missing_summary(shirts + shoes + bags + unknown)
    assert missing == [["id4", "shirt", "brand", 5, "x"]]
    assert table.splitlines() == [
        "| category | listings | usually has | listings missing some |",
        "|---|---|---|---|",
        "| (no category) | 1 | — | 0 |",
        "| Bags&lt;b&gt; | 4 | — | 0 |",
        "| Shoes | 3 | — | 0 |",
        "| shirt | 5 | article_type, brand, colour | 1 |",
    ]


def test_category_column_wins_over_the_extracted_article_type():
    row, extraction = listing(1, ["article_type"], category="Tops")
    extraction.spans[0] = Span(0, 5, "article_type", "Tshirts", 0.9)
    assert audit.listing_category(row, extraction) == "Tops"
    row.category = ""
    assert audit.listing_category(row, extraction) == "tshirts"
    assert audit.listing_category(row, Extraction("x", [], {}, 0.5, [])) == audit.NO_CATEGORY == "(no category)"


# ---------------------------------------------------------------- run_audit

def test_run_audit_reports_unknown_images_and_bad_rows_and_writes_the_csv(tmp_path: Path):
    listings = tmp_path / "batch.csv"
    listings.write_text("id,text,image\n"
                        "a,Roadster shirt,shirt.jpg\n"
                        "b,Puma shoe,nope.jpg\n"
                        ",no id here,\n"
                        "d,,\n"
                        "e,bad,\n"
                        "f,Nike cap,\n")
    photos = tmp_path / "photos.zip"
    with zipfile.ZipFile(photos, "w") as zf:
        zf.writestr("img/shirt.jpg", b"jpeg")
    extractor = FakeExtractor()
    shares: list[float] = []
    result = run_audit(extractor, listings, photos, 0.5, progress=shares.append, out_dir=tmp_path)

    assert result.problems == [
        [2, "b", "unknown image name 'nope.jpg': not in the photo zip", "skipped"],
        [3, "", "no id", "skipped"],
        [4, "d", "empty text", "skipped"],
        [5, "e", "cannot read this listing", "skipped"],
    ]
    assert [text for text, _ in extractor.seen] == ["Roadster shirt", "bad", "Nike cap"]
    assert extractor.seen[0][1].name == "shirt.jpg" and extractor.seen[2][1] is None
    assert not extractor.seen[0][1].exists()  # unpacked photos are removed after the audit
    assert [row.id for row, _ in result.done] == ["a", "f"]
    assert result.rows_read == 6
    assert shares == [0.0, 1.0]
    assert result.csv_path == tmp_path / "batch-attributes.csv"
    with result.csv_path.open(newline="") as f:
        assert list(csv.reader(f)) == [["id", "attribute", "value", "confidence", "unlike_training"],
                                       ["a", "brand", "Road", "0.8750", ""], ["f", "brand", "Nike", "0.8750", ""]]
    assert result.summary_markdown().startswith(
        "**6** listings read, **2** extracted, **4** skipped (see problems), **0** missing attributes their "
        "category usually has.\n\n| category | listings |")


def test_run_audit_without_a_zip_skips_rows_that_name_a_photo(tmp_path: Path):
    listings = tmp_path / "batch.jsonl"
    listings.write_text('{"id": "a", "text": "Roadster shirt", "image": "shirt.jpg"}\n')
    result = run_audit(FakeExtractor(), listings, None, 0.5, out_dir=tmp_path)
    assert result.problems == [[1, "a", "names the photo 'shirt.jpg' but no photo zip was uploaded", "skipped"]]
    assert result.done == [] and result.missing == []


class CheckingExtractor(FakeExtractor):
    """A model with a familiarity reference: listings about laptops are unlike its training listings."""

    def extract_batch(self, items, tau_r=None, batch_size=32):
        results = super().extract_batch(items, tau_r, batch_size)
        for result in results:
            result.unfamiliar = "laptop" in result.text
        return results


def test_run_audit_marks_and_counts_listings_unlike_the_training_data(tmp_path: Path):
    listings = tmp_path / "batch.csv"
    listings.write_text("id,text\na,Roadster shirt\nb,Lenovo laptop 14 inch\nc,Dell laptop bag\n")
    result = run_audit(CheckingExtractor(), listings, None, 0.5, out_dir=tmp_path)
    assert result.unfamiliar == ["b", "c"]
    with result.csv_path.open(newline="") as f:
        assert [row[0::4] for row in csv.reader(f)] == [["id", "unlike_training"], ["a", "no"], ["b", "yes"],
                                                        ["c", "yes"]]
    assert ("**2** unlike the listings the model learned from, so their values may be wrong (column "
            "`unlike_training` of the CSV): b, c.") in result.summary_markdown()


def test_the_audit_summary_names_no_count_when_the_model_cannot_check(tmp_path: Path):
    listings = tmp_path / "batch.csv"
    listings.write_text("id,text\na,Lenovo laptop\n")
    assert "unlike" not in run_audit(FakeExtractor(), listings, None, 0.5, out_dir=tmp_path).summary_markdown()
