"""Weak labels, the seeded split and the bundle, on a tiny made-up catalogue."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from dram.data.readers import read_listings
from training.prepare_myntra import Labeller, main, split_of

COLUMNS = ["product_id", "title", "description", "category", "masterCategory", "subCategory",
           "articleType", "baseColour", "usage", "image"]
ROWS = [  # (title, articleType, baseColour)
    ("Zorba Men Navy Blue Kurtas", "Kurtas", "Navy Blue"),
    ("Zorba Women White & Pink Printed T-shirt", "Tshirts", "White"),
    ("Zorba Elite Men Black Watch", "Watches", "Black"),
    ("Zorba Boys Grey Flip-Flops", "Flip Flops", "Grey"),
    ("Red Tape Men Brown Formal Shoes", "Formal Shoes", "Brown"),
    ("Mr. Men Girls Yellow Top", "Tops", "Yellow"),
    ("Zorba Off-White Tote Bag", "Handbags", "Off White"),
    ("Lumo New Skin Compact Foundation", "Foundation and Primer", "Skin"),
] + [(f"Zorba Men Blue Shirt {i}", "Shirts", "Blue") for i in range(40)]


def _labels(title: str, article_type: str, colour: str, category: str = "Apparel") -> dict[str, list[str]]:
    labeller = Labeller([t for t, _, _ in ROWS] + ["Red Tape Men Black Shoes"] * 5, {c for _, _, c in ROWS})
    labels = labeller.label(title, article_type, colour, category)
    found: dict[str, list[str]] = {}
    for span in labels.spans:
        found.setdefault(span.attribute, []).append(title[span.start:span.end])
    return found


def test_rules_mark_brand_gender_colour_and_article_type() -> None:
    assert _labels("Zorba Men Navy Blue Kurtas", "Kurtas", "Navy Blue") == {
        "brand": ["Zorba"], "gender": ["Men"], "colour": ["Navy Blue"], "article_type": ["Kurtas"]}


def test_article_type_inflections_and_spellings() -> None:
    assert _labels("Zorba Elite Men Black Watch", "Watches", "Black")["article_type"] == ["Watch"]
    assert _labels("Zorba Boys Grey Flip-Flops", "Flip Flops", "Grey")["article_type"] == ["Flip-Flops"]
    assert _labels("Zorba Men Kurta", "Kurtas", "Red")["article_type"] == ["Kurta"]


def test_brand_line_reduces_to_frequent_brand_and_colour_words_in_brand_are_not_colours() -> None:
    assert _labels("Zorba Elite Men Black Watch", "Watches", "Black")["brand"] == ["Zorba"]
    red_tape = _labels("Red Tape Men Red Formal Shoes", "Formal Shoes", "Red")
    assert red_tape["brand"] == ["Red Tape"] and red_tape["colour"] == ["Red"]


def test_only_base_colour_is_marked_and_colour_words_are_counted() -> None:
    labeller = Labeller([t for t, _, _ in ROWS], {c for _, _, c in ROWS})
    labels = labeller.label("Zorba Women White & Pink Printed T-shirt", "Tshirts", "White")
    assert [s.attribute for s in labels.spans].count("colour") == 1 and labels.n_colour_words == 2


def test_possessive_gender_and_mr_men_brand() -> None:
    assert _labels("Zorba Men's Blue Shirt", "Shirts", "Blue")["gender"] == ["Men"]
    assert "gender" not in {a for a, v in _labels("Mr. Men Yellow Top", "Tops", "Yellow").items()
                            if "Men" in v}


def test_skin_in_cosmetics_is_not_a_colour() -> None:
    assert "colour" not in _labels("Lumo New Skin Compact Foundation", "Foundation and Primer", "Skin", "Personal Care")


def test_split_is_seeded_stable_and_roughly_80_10_10() -> None:
    splits = [split_of(str(i), 13) for i in range(3000)]
    assert splits == [split_of(str(i), 13) for i in range(3000)]
    assert 0.76 < splits.count("train") / 3000 < 0.84 and splits.count("test") > 200
    assert splits != [split_of(str(i), 14) for i in range(3000)]


@pytest.fixture()
def catalogue(tmp_path: Path) -> Path:
    source = tmp_path / "myntra"
    source.mkdir()
    with (source / "products.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for number, (title, article, colour) in enumerate(ROWS, start=100):
            writer.writerow([number, title, "", "Apparel", "Apparel", "Topwear", article, colour,
                             "Casual", f"images/{number}.jpg"])
    with zipfile.ZipFile(source / "images.zip", "w") as archive:
        for number in range(100, 100 + len(ROWS)):
            photo = io.BytesIO()
            Image.new("RGB", (60, 80), (number % 255, 10, 10)).save(photo, "JPEG")
            archive.writestr(f"images/{number}.jpg", photo.getvalue())
    return source


def test_cli_writes_splits_photos_and_a_bundle_subset(catalogue: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out, bundle = tmp_path / "out", tmp_path / "bundle"
    main(["--source", str(catalogue), "--out", str(out), "--bundle", str(bundle),
          "--bundle-train", "5", "--bundle-valid", "2", "--bundle-test", "2"])
    full = {s: read_listings(out / f"{s}.jsonl", "jsonl")[0] for s in ("train", "valid", "test")}
    assert sum(len(v) for v in full.values()) == len(ROWS)
    assert all(split_of(l.id, 13) == s for s, items in full.items() for l in items)
    first = next(l for items in full.values() for l in items if l.id == "100")
    assert first.meta["catalogue"]["articleType"] == "Kurtas" and "n_colour_words" in first.meta
    with zipfile.ZipFile(catalogue / "images.zip") as archive:
        assert first.image.read_bytes() == archive.read("images/100.jpg")
    for split in ("train", "valid", "test"):
        small, report = read_listings(bundle / f"{split}.jsonl", "jsonl")
        assert report.n_skipped == 0 and {l.id for l in small} <= {l.id for l in full[split]}
        assert all(l.image.parent == (bundle / "images").resolve() for l in small)
    assert len(read_listings(bundle / "train.jsonl", "jsonl")[0]) == 5
    assert "Spans per attribute" in capsys.readouterr().out


def test_cli_refuses_a_source_without_the_catalogue(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--source", str(tmp_path), "--out", str(tmp_path / "out")])
