"""ui.audit directly, without the app: a batch read with its photo zip, the "usually has" rule, the values CSV.

Reading the file and the zip is `dram.data.readers`' and `dram.data.photo_sources`' (tests/test_readers.py,
tests/test_photo_sources.py); here, what the audit makes of it."""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

from dram.data.listings import Listing
from dram.data.spans import Span
from dram.errors import DramInputError
from dram.inference import Extraction
from ui import audit
from ui.audit import missing_summary, run_audit


def listing(i: int, attributes: list[str], category: str = "") -> tuple[Listing, Extraction]:
    spans = [Span(0, 1, a, "x", 0.9) for a in attributes]
    return Listing(f"id{i}", "x", meta={"category": category} if category else {}), Extraction("x", spans, {}, 0.5, [])


class FakeExtractor:
    """extract_batch as dram.inference.Extractor has it: one brand value per listing, a bad text fails alone."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Path | bytes | None]] = []
        self.categories: list[str | None] = []

    def extract_batch(self, items, tau_r=None, batch_size=32, categories=None):
        out = []
        self.categories += categories or [None] * len(items)
        for text, image in items:
            self.seen.append((text, image))
            if text == "bad":
                out.append(DramInputError("cannot read this listing"))
            else:
                out.append(Extraction(text, [Span(0, 4, "brand", text[:4], 0.875)], {}, 0.5, []))
        return out


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
    row, extraction = listing(1, ["article_type"], category=" Tops ")
    extraction.spans[0] = Span(0, 5, "article_type", "Tshirts", 0.9)
    assert audit.listing_category(row, extraction) == "Tops"
    row.meta["category"] = ""
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
        [2, "b", "its photo 'nope.jpg' is not in the photo zip", "skipped"],
        [3, "", 'it has no "id"', "skipped"],
        [4, "d", 'its "text" is empty or missing', "skipped"],
        [5, "e", "cannot read this listing", "skipped"],
    ]
    assert [text for text, _ in extractor.seen] == ["Roadster shirt", "bad", "Nike cap"]
    assert extractor.seen[0][1] == b"jpeg" and extractor.seen[2][1] is None  # the photo's bytes, from the zip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch-attributes.csv", "batch.csv", "photos.zip"]
    assert [listing.id for listing, _ in result.done] == ["a", "f"]
    assert result.rows_read == 6
    assert shares == [0.0, 1.0]
    assert result.csv_path == tmp_path / "batch-attributes.csv"
    with result.csv_path.open(newline="") as f:
        assert list(csv.reader(f)) == [["id", "attribute", "value", "confidence", "unlike_training"],
                                       ["a", "brand", "Road", "0.8750", ""], ["f", "brand", "Nike", "0.8750", ""]]
    assert result.summary_markdown().startswith(
        "**6** listings read, **2** extracted, **4** skipped (see problems), **0** missing attributes their "
        "category usually has.\n\n| category | listings |")


def test_run_audit_counts_a_broken_jsonl_line_as_read_and_skipped(tmp_path: Path):
    listings = tmp_path / "batch.jsonl"
    listings.write_text('{"id": "a", "text": "Roadster shirt", "Category": "Shirts"}\n{not json\n')
    extractor = FakeExtractor()
    result = run_audit(extractor, listings, None, 0.5, out_dir=tmp_path)
    assert extractor.categories == ["Shirts"]  # the model limits a known category's tags to its schema
    assert result.problems == [[2, "", "the line is not JSON (Expecting property name enclosed in double quotes)",
                                "skipped"]]
    assert audit.listing_category(*result.done[0]) == "Shirts"
    assert result.summary_markdown().startswith("**2** listings read, **1** extracted, **1** skipped (see problems)")


def test_run_audit_refuses_more_rows_than_it_audits_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(audit, "MAX_BATCH_ROWS", 2)
    big = tmp_path / "big.csv"
    big.write_text("id,text\n1,a\n2,b\n3,c\n")
    extractor = FakeExtractor()
    with pytest.raises(DramInputError) as err:
        run_audit(extractor, big, None, 0.5, out_dir=tmp_path)
    assert str(err.value) == "The listing file big.csv has 3 listings; at most 2 are read at a time. Split the file."
    assert extractor.seen == []


def test_run_audit_without_a_zip_skips_rows_that_name_a_photo(tmp_path: Path):
    listings = tmp_path / "batch.jsonl"
    listings.write_text('{"id": "a", "text": "Roadster shirt", "image": "shirt.jpg"}\n')
    result = run_audit(FakeExtractor(), listings, None, 0.5, out_dir=tmp_path)
    assert result.problems == [[1, "a", "it names the photo 'shirt.jpg' but no photo zip was uploaded", "skipped"]]
    assert result.done == [] and result.missing == []


class CheckingExtractor(FakeExtractor):
    """A model with a familiarity reference: listings about laptops are unlike its training listings."""

    def extract_batch(self, items, tau_r=None, batch_size=32, categories=None):
        results = super().extract_batch(items, tau_r, batch_size, categories)
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
